"""The recorder's SQLite schema, its migrations, and how connections are opened.

Tables (times: `ts`/`last_changed` are float epoch seconds, `*_us` integer microseconds,
rollup `start` integer epoch seconds aligned to the period):

    entities      (id, entity_id UNIQUE)                     each entity id stored once
    attributes    (id, hash, shared JSON)                    identical attribute sets stored once
    states        (id, entity, ts, last_changed, state, attributes, context_id,
                   context_user_id, context_parent_id)
                  text states; for numeric entities only attribute changes (state NULL: the
                  value is in `samples` at the same ts, or unchanged) and non-numeric values
                  (unavailable, unknown); "" when the entity was removed. `last_changed` is NULL
                  when equal to `ts`.
    samples       (entity, ts_us, value) WITHOUT ROWID       raw numeric values, the hot window
    blocks        (entity, start_us, end_us, count, data)    older raw values packed by codec.py:
                  one block per hour while its day is young, one per UTC day once the day is
                  over (measured: 1 h blocks 3.0, 6 h 2.7, 1 day 2.4 bytes/sample on disk). A
                  rowid table, not WITHOUT ROWID: blobs over ~1 kB spill to overflow pages in an
                  index b-tree, which cost 10-25 % more on disk.
    rollup_5m, rollup_1h (entity, start, mean, min, max, last, count, duration) WITHOUT ROWID
                  time-weighted mean; `duration` is the seconds of the period the entity had a
                  value, so hours combine 5-minute rows exactly.
    event_types   (id, type UNIQUE); event_data (id, hash, shared JSON) deduplicated
    events        (id, type, ts, data, origin, context_id, context_user_id, context_parent_id)
    recorder_runs (id, start, end, closed_incorrectly)       one row per run of the writer
    meta          (key, value)                               schema_version, rollup_until, ...

Migrations use sqlite-utils' `Migrations` (set "hub.recorder", recorded in
`_sqlite_migrations`); each runs in one transaction together with its record. They run in the
writer thread, never on the event loop, so a long one delays recording (items wait in the
bounded queue) but never start-up.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["SCHEMA_VERSION", "SchemaError", "connect", "get_meta", "migrate", "set_meta"]

PERIOD_5M: Final = 300
PERIOD_1H: Final = 3600
HOUR_US: Final = 3_600_000_000
DAY_US: Final = 86_400_000_000
# The longest span one block covers: readers look this far back for blocks overlapping a range.
MAX_BLOCK_SPAN_US: Final = DAY_US

PAGE_SIZE: Final = 4096
JOURNAL_SIZE_LIMIT: Final = 32 * 1024 * 1024  # the WAL file is truncated back to this size
CACHE_KIB: Final = 16 * 1024

MIGRATIONS = Migrations("hub.recorder")
_KNOWN: list[str] = []  # migration names in order


def _migration(name: str):  # type: ignore[no-untyped-def]
    _KNOWN.append(name)
    return MIGRATIONS(name=name)


class SchemaError(Exception):
    """The database cannot be used by this version (written by a newer one)."""


@_migration("0001_initial")
def _initial(db: Database) -> None:
    for sql in (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
        (
            "CREATE TABLE recorder_runs (id INTEGER PRIMARY KEY, start REAL NOT NULL, end REAL,"
            " closed_incorrectly INTEGER NOT NULL DEFAULT 0)"
        ),
        "CREATE TABLE entities (id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL UNIQUE)",
        (
            "CREATE TABLE attributes (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL,"
            " shared TEXT NOT NULL)"
        ),
        "CREATE INDEX ix_attributes_hash ON attributes (hash)",
        (
            "CREATE TABLE states (id INTEGER PRIMARY KEY, entity INTEGER NOT NULL, ts REAL NOT NULL,"
            " last_changed REAL, state TEXT, attributes INTEGER, context_id TEXT,"
            " context_user_id TEXT, context_parent_id TEXT)"
        ),
        "CREATE INDEX ix_states_entity_ts ON states (entity, ts)",
        "CREATE INDEX ix_states_ts ON states (ts)",
        "CREATE INDEX ix_states_attributes ON states (attributes)",
        (
            "CREATE TABLE samples (entity INTEGER NOT NULL, ts_us INTEGER NOT NULL,"
            " value REAL NOT NULL, PRIMARY KEY (entity, ts_us)) WITHOUT ROWID"
        ),
        (
            "CREATE TABLE blocks (entity INTEGER NOT NULL, start_us INTEGER NOT NULL,"
            " end_us INTEGER NOT NULL, count INTEGER NOT NULL, data BLOB NOT NULL,"
            " PRIMARY KEY (entity, start_us))"
        ),
        *(
            f"CREATE TABLE {table} (entity INTEGER NOT NULL, start INTEGER NOT NULL, mean REAL,"
            " min REAL, max REAL, last REAL, count INTEGER NOT NULL, duration REAL NOT NULL,"
            " PRIMARY KEY (entity, start)) WITHOUT ROWID"
            for table in ("rollup_5m", "rollup_1h")
        ),
        "CREATE TABLE event_types (id INTEGER PRIMARY KEY, type TEXT NOT NULL UNIQUE)",
        (
            "CREATE TABLE event_data (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL,"
            " shared TEXT NOT NULL)"
        ),
        "CREATE INDEX ix_event_data_hash ON event_data (hash)",
        (
            "CREATE TABLE events (id INTEGER PRIMARY KEY, type INTEGER NOT NULL, ts REAL NOT NULL,"
            " data INTEGER, origin INTEGER NOT NULL DEFAULT 0, context_id TEXT,"
            " context_user_id TEXT, context_parent_id TEXT)"
        ),
        "CREATE INDEX ix_events_ts ON events (ts)",
        "CREATE INDEX ix_events_data ON events (data)",
    ):
        db.execute(sql)
    _record_version(db, 1)


def _record_version(db: Database, version: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])


SCHEMA_VERSION: Final = 1


def connect(path: str | Path, *, max_size_mb: float | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the database for writing: WAL, synchronous=NORMAL, and
    auto_vacuum=INCREMENTAL set before the first table so purges can shrink the file.

    The connection is in autocommit mode (`isolation_level=None`): callers BEGIN and COMMIT.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    try:
        if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch the database to WAL (mode {mode})")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        if max_size_mb is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={max(1, int(max_size_mb * 1e6 / page_size))}")
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing database (its own WAL snapshot per transaction)."""
    uri = Path(path).resolve().as_uri() + "?mode=rw"  # rw: never create the file; query_only
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA query_only=1")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; return the schema version. Refuses a newer database."""
    db = Database(conn, execute_plugins=False, recursive_triggers=False)
    unknown = [m.name for m in MIGRATIONS.applied(db) if m.name not in _KNOWN]
    if unknown:
        raise SchemaError(
            f"the database was written by a newer version (migrations {', '.join(unknown)});"
            " this version will not write to it"
        )
    MIGRATIONS.apply(db)
    version = get_meta(conn, "schema_version")
    return int(version) if version is not None else 0


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
