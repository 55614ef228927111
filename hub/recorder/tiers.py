"""Rollups, compaction and retention: the writer thread's housekeeping, in small transactions.

Each job is a generator that commits one chunk of work per step and then yields, so the writer
can go back to ingesting between steps and no step holds the write lock for long. A job that is
abandoned half way (stop, crash, fault) leaves a consistent database: every chunk is its own
transaction, and redoing a chunk gives the same result.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import orjson

from .codec import decode_block, encode_block
from .schema import DAY_US, HOUR_US, MAX_BLOCK_SPAN_US, PERIOD_1H, PERIOD_5M
from .series import Bucket, combine_buckets, compute_buckets, merge_points
from .settings import Retention
from .store import TailCache, load_points

__all__ = [
    "compact_entity",
    "next_record_us",
    "purge_entity",
    "purge_events",
    "rollup_range",
    "transaction",
    "vacuum",
]

DELETE_CHUNK: Final = 20_000  # rows per purge transaction
VACUUM_PAGES: Final = 2_048  # pages freed per incremental_vacuum step (8 MB)
_INSERT_5M: Final = "INSERT OR REPLACE INTO rollup_5m VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_1H: Final = "INSERT OR REPLACE INTO rollup_1h VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN ... COMMIT, or ROLLBACK if the body raises."""
    conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- rollups ---------------------------------------------------------------------------------


def _breaks(
    conn: sqlite3.Connection, entity: int, after_us: int, end_us: int, run_breaks: Sequence[int]
) -> list[int]:
    """Times in (after_us, end_us) where a held value ends: text states, recorder restarts."""
    text = [
        round(ts * 1_000_000)
        for (ts,) in conn.execute(
            "SELECT ts FROM states WHERE entity = ? AND ts > ? AND ts < ? AND state IS NOT NULL",
            (entity, after_us / 1e6, end_us / 1e6),
        )
    ]
    return sorted(text + [t for t in run_breaks if after_us < t < end_us])


def rollup_range(
    conn: sqlite3.Connection,
    entity: int,
    start: int,
    end: int,
    closed_until: int,
    run_breaks: Sequence[int],
    tails: TailCache | None = None,
    floor: float | None = None,
) -> int:
    """(Re)compute an entity's 5-minute rows starting in [start, end) (epoch s, aligned), then
    its hourly rows for the hours overlapping that range that end by `closed_until`. Periods
    starting before `floor` are left alone (their raw or 5-minute data may be purged already).
    Runs inside the caller's transaction; returns the number of 5-minute rows written."""
    hour = start - start % PERIOD_1H
    if floor is not None:
        start = max(start, -int(-floor // PERIOD_5M) * PERIOD_5M)
        hour = max(hour, -int(-floor // PERIOD_1H) * PERIOD_1H)
        if start >= end:
            return 0
    start_us, end_us = start * 1_000_000, end * 1_000_000
    ts, vs = load_points(conn, entity, start_us, end_us, tails=tails)
    if not ts:
        return 0  # no value held and none arrived: no rows, and none existed
    conn.execute(
        "DELETE FROM rollup_5m WHERE entity = ? AND start >= ? AND start < ?", (entity, start, end)
    )
    breaks = _breaks(conn, entity, ts[0], end_us, run_breaks)
    rows = compute_buckets(ts, vs, breaks, start_us, end_us, PERIOD_5M)
    conn.executemany(_INSERT_5M, [(entity, *row) for row in rows])
    while hour < end and hour + PERIOD_1H <= closed_until:
        fine = [
            Bucket(*row)
            for row in conn.execute(
                "SELECT start, mean, min, max, last, count, duration FROM rollup_5m"
                " WHERE entity = ? AND start >= ? AND start < ? ORDER BY start",
                (entity, hour, hour + PERIOD_1H),
            )
        ]
        conn.execute("DELETE FROM rollup_1h WHERE entity = ? AND start = ?", (entity, hour))
        if fine:
            conn.executemany(_INSERT_1H, [(entity, *row) for row in combine_buckets(fine, PERIOD_1H)])
        hour += PERIOD_1H
    return len(rows)


def next_record_us(conn: sqlite3.Connection, entity: int, after_us: int) -> int | None:
    """An upper bound of the time of the entity's first sample or text state after `after_us`
    (None if there is none): how far a late sample's carried value can reach."""
    found: list[int] = []
    row = conn.execute(
        "SELECT ts_us FROM samples WHERE entity = ? AND ts_us > ? ORDER BY ts_us LIMIT 1",
        (entity, after_us),
    ).fetchone()
    if row is not None:
        found.append(row[0])
    row = conn.execute(
        "SELECT start_us, end_us FROM blocks WHERE entity = ? AND start_us > ? AND end_us > ?"
        " ORDER BY start_us LIMIT 1",
        (entity, after_us - MAX_BLOCK_SPAN_US, after_us),
    ).fetchone()
    if row is not None:
        found.append(row[0] if row[0] > after_us else row[1])
    row = conn.execute(
        "SELECT ts FROM states WHERE entity = ? AND ts > ? AND state IS NOT NULL"
        " ORDER BY ts LIMIT 1",
        (entity, after_us / 1e6),
    ).fetchone()
    if row is not None:
        found.append(round(row[0] * 1_000_000))
    return min(found) if found else None


# --- compaction ------------------------------------------------------------------------------


def _pack(conn: sqlite3.Connection, entity: int, start_us: int, end_us: int) -> int:
    """Pack the entity's samples and blocks in [start_us, end_us) into one block; returns the
    number of samples moved out of the `samples` table."""
    rows = conn.execute(
        "SELECT ts_us, value FROM samples WHERE entity = ? AND ts_us >= ? AND ts_us < ?",
        (entity, start_us, end_us),
    ).fetchall()
    blobs = conn.execute(
        "SELECT data FROM blocks WHERE entity = ? AND start_us >= ? AND start_us < ?"
        " ORDER BY start_us",
        (entity, start_us, end_us),
    ).fetchall()
    if not rows and len(blobs) < 2:
        return 0
    ts, vs = merge_points(*(zip(*decode_block(blob)) for (blob,) in blobs), rows)
    conn.execute(
        "DELETE FROM blocks WHERE entity = ? AND start_us >= ? AND start_us < ?",
        (entity, start_us, end_us),
    )
    conn.execute(
        "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)",
        (entity, ts[0], ts[-1], len(ts), encode_block(ts, vs)),
    )
    conn.execute(
        "DELETE FROM samples WHERE entity = ? AND ts_us >= ? AND ts_us < ?",
        (entity, start_us, end_us),
    )
    return len(rows)


def compact_entity(conn: sqlite3.Connection, entity: int, cutoff_us: int) -> Iterator[int]:
    """Move the entity's raw samples older than `cutoff_us` (floored to the hour) into blocks:
    one block per hour while the UTC day is not over by the cutoff, one per day once it is (its
    hour blocks merged). One transaction per day; yields the samples packed in each."""
    hour_cut = cutoff_us - cutoff_us % HOUR_US
    day_cut = hour_cut - hour_cut % DAY_US
    pos = -(2**62)
    while True:
        row = conn.execute(
            "SELECT ts_us FROM samples WHERE entity = ? AND ts_us >= ? AND ts_us < ?"
            " ORDER BY ts_us LIMIT 1",
            (entity, pos, hour_cut),
        ).fetchone()
        if row is None:
            break
        day = row[0] - row[0] % DAY_US
        with transaction(conn):
            if day + DAY_US <= hour_cut:
                packed = _pack(conn, entity, day, day + DAY_US)
                pos = day + DAY_US
            else:
                packed = 0
                for hour in range(row[0] - row[0] % HOUR_US, hour_cut, HOUR_US):
                    packed += _pack(conn, entity, hour, hour + HOUR_US)
                pos = hour_cut
        yield packed
    # Days that are over but still hold several hour blocks (and no samples): merge them.
    days = conn.execute(
        "SELECT start_us - start_us % ? AS day FROM blocks WHERE entity = ? AND start_us < ?"
        " GROUP BY day HAVING count(*) > 1",
        (DAY_US, entity, day_cut),
    ).fetchall()
    for (day,) in days:
        with transaction(conn):
            _pack(conn, entity, day, day + DAY_US)
        yield 0


# --- retention -------------------------------------------------------------------------------


def _delete_before(
    conn: sqlite3.Connection, table: str, column: str, entity: int, cutoff: float
) -> Iterator[int]:
    """Delete the entity's rows with `column < cutoff`, oldest first, DELETE_CHUNK per
    transaction (the primary key is (entity, column), so each chunk is one range)."""
    while True:
        row = conn.execute(
            f"SELECT {column} FROM {table} WHERE entity = ? AND {column} < ?"
            f" ORDER BY {column} LIMIT 1 OFFSET ?",
            (entity, cutoff, DELETE_CHUNK),
        ).fetchone()
        bound = cutoff if row is None else row[0]
        with transaction(conn):
            deleted = conn.execute(
                f"DELETE FROM {table} WHERE entity = ? AND {column} < ?", (entity, bound)
            ).rowcount
        yield deleted
        if row is None:
            return


def _purge_rows(
    conn: sqlite3.Connection,
    table: str,
    column: str,
    shared: str,
    where: str,
    args: tuple[Any, ...],
    forget: Callable[[str], None],
) -> Iterator[int]:
    """Delete the rows of `table` matching `where`, DELETE_CHUNK per transaction, and with
    each chunk the rows of `shared` (attributes, event_data) that only those rows used; tell
    `forget(shared)` when some went, so that caches of shared ids are dropped."""
    while True:
        ids = [row[0] for row in conn.execute(
            f"SELECT id FROM {table} WHERE {where} LIMIT ?", (*args, DELETE_CHUNK)
        )]
        if not ids:
            return
        doc = orjson.dumps(ids)
        with transaction(conn):
            refs = [row[0] for row in conn.execute(
                f"SELECT DISTINCT {column} FROM {table} WHERE id IN"
                f" (SELECT value FROM json_each(?)) AND {column} IS NOT NULL",
                (doc,),
            )]
            conn.execute(f"DELETE FROM {table} WHERE id IN (SELECT value FROM json_each(?))", (doc,))
            gone = 0
            if refs:
                gone = conn.execute(
                    f"DELETE FROM {shared} WHERE id IN (SELECT value FROM json_each(?))"
                    f" AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = {shared}.id)",
                    (orjson.dumps(refs),),
                ).rowcount
        if gone:
            forget(shared)
        yield len(ids)
        if len(ids) < DELETE_CHUNK:
            return


def purge_entity(
    conn: sqlite3.Connection,
    entity: int,
    keep: Retention,
    now: float,
    rolled_up_until: float | None,
    forget: Callable[[str], None],
) -> Iterator[int]:
    """Delete one entity's data older than its retention, tier by tier; yields rows deleted
    per transaction. Raw data not rolled up yet is kept whatever its age (after a jump of the
    clock, rollups come first), and so is the entity's newest state row (it says what the entity
    was last, for restore and for history that starts after it)."""
    if keep.raw is not None and rolled_up_until is not None:
        cutoff = min(now - keep.raw * 86_400, rolled_up_until)
        cutoff_us = round(cutoff * 1_000_000)
        yield from _delete_before(conn, "samples", "ts_us", entity, cutoff_us)
        with transaction(conn):
            # A block goes when all of it is older than the cutoff.
            deleted = conn.execute(
                "DELETE FROM blocks WHERE entity = ? AND start_us < ? AND end_us < ?",
                (entity, cutoff_us, cutoff_us),
            ).rowcount
        yield deleted
        newest = conn.execute(
            "SELECT max(ts) FROM states WHERE entity = ?", (entity,)
        ).fetchone()[0]
        if newest is not None:
            yield from _purge_rows(
                conn, "states", "attributes", "attributes", "entity = ? AND ts < ?",
                (entity, min(cutoff, newest)), forget,
            )
    for days, table, period in (
        (keep.rollup_5m, "rollup_5m", PERIOD_5M),
        (keep.rollup_1h, "rollup_1h", PERIOD_1H),
    ):
        if days is not None:
            # A period goes when it ended before the cutoff.
            yield from _delete_before(conn, table, "start", entity, now - days * 86_400 - period + 1)


def purge_events(
    conn: sqlite3.Connection, cutoff: float, forget: Callable[[str], None]
) -> Iterator[int]:
    """Delete events older than the cutoff, and the event data only they used."""
    yield from _purge_rows(conn, "events", "data", "event_data", "ts < ?", (cutoff,), forget)


def vacuum(conn: sqlite3.Connection) -> Iterator[int]:
    """Give free pages back to the file system (auto_vacuum=INCREMENTAL), a few MB per step,
    then checkpoint the WAL so the main file really shrinks. The checkpoint is PASSIVE: it never
    waits for readers (a long export would stall the writer); if one holds an old snapshot, the
    file shrinks at a later checkpoint. Yields pages freed per step."""
    while (free := conn.execute("PRAGMA freelist_count").fetchone()[0]) > 0:
        conn.execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES})").fetchall()
        yield min(free, VACUUM_PAGES)
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
