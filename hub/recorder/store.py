"""Reading the recorder's database: samples, states, rollups and size statistics.

`RecorderReader` works from any thread: each thread gets its own read connection, and every
call reads inside one transaction, so it sees one consistent WAL snapshot even while the writer
moves samples into blocks. Calls block (SQLite): from the event loop, run them in the executor.
"""

from __future__ import annotations

import sqlite3
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import orjson

from .codec import decode_block
from .schema import MAX_BLOCK_SPAN_US, PERIOD_1H, PERIOD_5M, connect_reader
from .series import format_value, merge_points

__all__ = ["Period", "RecorderReader", "StateRow", "load_points"]

Period = Literal["5minute", "hour"]
_ROLLUP_TABLES: Final = {"5minute": ("rollup_5m", PERIOD_5M), "hour": ("rollup_1h", PERIOD_1H)}
TailCache = dict[tuple[int, int, int, int], tuple[int, float]]
_TAIL_CACHE_MAX: Final = 4096


class StateRow(NamedTuple):
    """One state of an entity as recorded (numeric states rebuilt from samples)."""

    entity_id: str
    state: str
    attributes: dict[str, Any] | None  # None when read without attributes
    last_changed: float
    last_updated: float
    context_id: str | None
    context_user_id: str | None
    context_parent_id: str | None


def _us(ts: float) -> int:
    return round(ts * 1_000_000)


def load_points(
    conn: sqlite3.Connection,
    entity: int,
    start_us: int,
    end_us: int,
    *,
    carry: bool = True,
    tails: TailCache | None = None,
) -> tuple[list[int], list[float]]:
    """An entity's samples in [start_us, end_us) from blocks and the `samples` table, sorted;
    with `carry`, preceded by the last sample before `start_us` if there is one.

    `tails` caches the last sample of blocks that end before `start_us`, so a quiet entity's
    carried-in value costs no decoding the next time.
    """
    parts: list[Iterable[tuple[int, float]]] = []
    best: tuple[int, float] | None = None
    for data in conn.execute(
        "SELECT data FROM blocks WHERE entity = ? AND start_us > ? AND start_us < ?"
        " AND end_us >= ? ORDER BY start_us",
        (entity, start_us - MAX_BLOCK_SPAN_US, end_us, start_us),
    ):
        ts, vs = decode_block(data[0])
        i = bisect_left(ts, start_us)
        j = bisect_left(ts, end_us)
        if carry and i > 0 and (best is None or ts[i - 1] > best[0]):
            best = (ts[i - 1], vs[i - 1])
        parts.append(zip(ts[i:j], vs[i:j]))
    rows = conn.execute(
        "SELECT ts_us, value FROM samples WHERE entity = ? AND ts_us >= ? AND ts_us < ?",
        (entity, start_us, end_us),
    ).fetchall()
    if carry:
        row = conn.execute(
            "SELECT ts_us, value FROM samples WHERE entity = ? AND ts_us < ?"
            " ORDER BY ts_us DESC LIMIT 1",
            (entity, start_us),
        ).fetchone()
        if row is not None and (best is None or row[0] >= best[0]):
            best = row
        block = conn.execute(
            "SELECT start_us, end_us, count FROM blocks WHERE entity = ? AND start_us < ?"
            " AND end_us < ? ORDER BY start_us DESC LIMIT 1",
            (entity, start_us, start_us),
        ).fetchone()
        if block is not None and (best is None or block[1] > best[0]):
            best = _block_tail(conn, entity, block, tails)
    if best is not None:
        parts.insert(0, (best,))
    if not parts:
        return merge_points(rows)
    return merge_points(*parts, rows)


def _block_tail(
    conn: sqlite3.Connection, entity: int, block: tuple[int, int, int], tails: TailCache | None
) -> tuple[int, float]:
    key = (entity, *block)
    if tails is not None and (hit := tails.get(key)) is not None:
        return hit
    data = conn.execute(
        "SELECT data FROM blocks WHERE entity = ? AND start_us = ?", (entity, block[0])
    ).fetchone()[0]
    ts, vs = decode_block(data)
    tail = (ts[-1], vs[-1])
    if tails is not None:
        if len(tails) >= _TAIL_CACHE_MAX:
            tails.clear()  # (shared by reader threads: clear() is atomic, popping in turn is not)
        tails[key] = tail
    return tail


class RecorderReader:
    """Read helpers over one database file; safe to call from several threads at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._tails: TailCache = {}

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection | None]:
        """One read transaction (one WAL snapshot) on this thread's connection; None before the
        writer has created the file and its schema. For reads this class has no helper for."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self.path.exists():
                yield None
                return
            conn = connect_reader(self.path)
            if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entities'"
            ).fetchone() is None:  # the writer has not created the schema (yet): no data
                conn.close()
                yield None
                return
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _entity(conn: sqlite3.Connection, entity_id: str) -> int | None:
        row = conn.execute("SELECT id FROM entities WHERE entity_id = ?", (entity_id,)).fetchone()
        return None if row is None else row[0]

    def entity_ids(self) -> list[str]:
        """Every entity id the database knows, sorted."""
        with self.read() as conn:
            if conn is None:
                return []
            return [r[0] for r in conn.execute("SELECT entity_id FROM entities ORDER BY entity_id")]

    def samples(self, entity_id: str, start: float, end: float) -> list[tuple[float, float]]:
        """Numeric samples with start <= ts < end as (epoch seconds, value), oldest first,
        whether they are still raw or already packed into blocks."""
        with self.read() as conn:
            if conn is None or (eid := self._entity(conn, entity_id)) is None:
                return []
            ts, vs = load_points(conn, eid, _us(start), _us(end), carry=False)
        return [(t / 1e6, v) for t, v in zip(ts, vs)]

    def states(
        self,
        entity_ids: Iterable[str],
        start: float,
        end: float,
        *,
        with_attributes: bool = True,
        include_start: bool = True,
    ) -> dict[str, list[StateRow]]:
        """Each entity's states with start <= last_updated < end, oldest first.

        With `include_start`, the state in effect at `start` comes first (with its own, earlier
        timestamps: the caller decides whether to clamp them to `start`). Numeric entities'
        states are rebuilt from their samples and recorded attribute changes; their state
        strings are canonical numbers (`format_value`).
        """
        start_us, end_us = _us(start), _us(end)
        out: dict[str, list[StateRow]] = {}
        attr_cache: dict[str, dict[str, Any]] = {}
        with self.read() as conn:
            for entity_id in entity_ids:
                if conn is None or (eid := self._entity(conn, entity_id)) is None:
                    out[entity_id] = []
                    continue
                out[entity_id] = _Rebuild(
                    entity_id, conn, eid, start_us, end_us, with_attributes, attr_cache
                ).rows(include_start, self._tails)
        return out

    def rollups(
        self, entity_id: str, start: float, end: float, period: Period = "hour"
    ) -> list[dict[str, Any]]:
        """Rollup rows of the periods starting in [start floored to the period, end): dicts with
        start, end (epoch seconds), mean, min, max, last, count and duration (seconds covered)."""
        table, seconds = _ROLLUP_TABLES[period]
        first = int(start // seconds * seconds)
        with self.read() as conn:
            if conn is None or (eid := self._entity(conn, entity_id)) is None:
                return []
            rows = conn.execute(
                f"SELECT start, mean, min, max, last, count, duration FROM {table}"
                " WHERE entity = ? AND start >= ? AND start < ? ORDER BY start",
                (eid, first, end),
            ).fetchall()
        return [
            {
                "start": float(s),
                "end": float(s + seconds),
                "mean": mean,
                "min": lo,
                "max": hi,
                "last": last,
                "count": count,
                "duration": duration,
            }
            for s, mean, lo, hi, last, count, duration in rows
        ]

    def db_stats(self, per_entity: bool = True) -> dict[str, Any]:
        """Rows and bytes per table (indexes included) and, with `per_entity`, per entity:
        rows per tier and an estimate of the bytes each entity takes. Reads whole tables."""
        with self.read() as conn:
            if conn is None:
                return {"path": str(self.path), "exists": False}
            return _db_stats(conn, self.path, per_entity)


class _Rebuild:
    """Rebuilds one entity's state rows from `states` and its samples."""

    def __init__(
        self,
        entity_id: str,
        conn: sqlite3.Connection,
        eid: int,
        start_us: int,
        end_us: int,
        with_attributes: bool,
        attr_cache: dict[str, dict[str, Any]],
    ) -> None:
        self.entity_id = entity_id
        self.conn = conn
        self.eid = eid
        self.start_us = start_us
        self.end_us = end_us
        self.with_attributes = with_attributes
        self.attr_cache = attr_cache

    def _attrs(self, shared: str | None) -> dict[str, Any] | None:
        if not self.with_attributes:
            return None
        if shared is None:
            return {}
        attrs = self.attr_cache.get(shared)
        if attrs is None:
            attrs = self.attr_cache[shared] = orjson.loads(shared)
        return attrs

    def _state_rows(self, where: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        join = "a.shared" if self.with_attributes else "NULL"
        return self.conn.execute(
            f"SELECT s.ts, s.last_changed, s.state, {join}, s.context_id, s.context_user_id,"
            " s.context_parent_id FROM states s LEFT JOIN attributes a ON a.id = s.attributes"
            f" WHERE s.entity = ? AND {where}",
            (self.eid, *args),
        ).fetchall()

    def rows(self, include_start: bool, tails: TailCache) -> list[StateRow]:
        start_us, end_us = self.start_us, self.end_us
        in_range = self._state_rows("s.ts >= ? AND s.ts < ? ORDER BY s.ts, s.id", (
            start_us / 1e6, end_us / 1e6
        ))
        before = self._state_rows("s.ts < ? ORDER BY s.ts DESC, s.id DESC LIMIT 1", (
            start_us / 1e6,
        ))
        ts, vs = load_points(self.conn, self.eid, start_us, end_us, tails=tails)
        first = 0
        carry: tuple[int, float] | None = None
        if ts and ts[0] < start_us:
            carry, first = (ts[0], vs[0]), 1

        out: list[StateRow] = []
        make = StateRow
        eid_ = self.entity_id
        attrs: dict[str, Any] | None = None
        value: float | None = carry[1] if carry else None
        if before:
            b_ts, b_lc, b_state, b_shared, *b_ctx = before[0]
            attrs = self._attrs(b_shared)
            if b_state is not None and (carry is None or _us(b_ts) >= carry[0]):
                value = None  # a text state (or removal) came after the last sample
                if include_start:
                    out.append(make(eid_, b_state, attrs, b_lc or b_ts, b_ts, *b_ctx))
            elif include_start and carry is not None:
                if _us(b_ts) >= carry[0]:  # attributes changed after the last sample
                    out.append(make(eid_, format_value(carry[1]), attrs, carry[0] / 1e6, b_ts, *b_ctx))
                else:
                    t = carry[0] / 1e6
                    out.append(make(eid_, format_value(carry[1]), attrs, t, t, None, None, None))
        elif include_start and carry is not None:
            t = carry[0] / 1e6
            out.append(make(eid_, format_value(carry[1]), attrs, t, t, None, None, None))

        i, n = first, len(ts)
        pending_ctx: tuple[Any, ...] = (None, None, None)
        for r_ts, r_lc, r_state, r_shared, *r_ctx in in_range:
            r_us = _us(r_ts)
            while i < n and ts[i] < r_us:
                value = vs[i]
                t = ts[i] / 1e6
                out.append(make(eid_, format_value(value), attrs, t, t, *pending_ctx))
                pending_ctx = (None, None, None)
                i += 1
            attrs = self._attrs(r_shared)
            if r_state is not None:
                value = None
                out.append(make(eid_, r_state, attrs, r_lc or r_ts, r_ts, *r_ctx))
            elif i < n and ts[i] == r_us:
                pending_ctx = tuple(r_ctx)  # the sample at this instant carries it
            elif value is not None:
                out.append(make(eid_, format_value(value), attrs, r_lc or r_ts, r_ts, *r_ctx))
        while i < n:
            value = vs[i]
            t = ts[i] / 1e6
            out.append(make(eid_, format_value(value), attrs, t, t, *pending_ctx))
            pending_ctx = (None, None, None)
            i += 1
        return out


_TABLES: Final = (
    "samples",
    "blocks",
    "rollup_5m",
    "rollup_1h",
    "states",
    "attributes",
    "events",
    "event_data",
    "event_types",
    "entities",
    "recorder_runs",
    "meta",
)


def _db_stats(conn: sqlite3.Connection, path: Path, per_entity: bool) -> dict[str, Any]:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    page_count = conn.execute("PRAGMA page_count").fetchone()[0]
    freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
    owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
    table_bytes: dict[str, int] = {}
    for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
        table = owner.get(name, name)
        table_bytes[table] = table_bytes.get(table, 0) + size
    tables: dict[str, dict[str, int]] = {}
    for table in _TABLES:
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        tables[table] = {"rows": rows, "bytes": table_bytes.get(table, 0)}
    tables["blocks"]["samples"] = conn.execute(
        "SELECT coalesce(sum(count), 0) FROM blocks"
    ).fetchone()[0]
    wal = Path(f"{path}-wal")
    result: dict[str, Any] = {
        "path": str(path),
        "exists": True,
        "file_bytes": path.stat().st_size if path.exists() else 0,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "page_size": page_size,
        "page_count": page_count,
        "freelist_count": freelist,
        "tables": tables,
    }
    if per_entity:
        result["entities"] = _entity_stats(conn, tables)
    return result


def _entity_stats(
    conn: sqlite3.Connection, tables: dict[str, dict[str, int]]
) -> dict[str, dict[str, Any]]:
    names = dict(conn.execute("SELECT id, entity_id FROM entities"))
    out: dict[str, dict[str, Any]] = {
        name: {"samples": 0, "block_samples": 0, "blocks": 0, "states": 0, "rollup_5m": 0,
               "rollup_1h": 0, "bytes": 0}
        for name in names.values()
    }

    def per_row(table: str) -> float:
        info = tables[table]
        return info["bytes"] / info["rows"] if info["rows"] else 0.0

    for table, key in (
        ("samples", "samples"),
        ("states", "states"),
        ("rollup_5m", "rollup_5m"),
        ("rollup_1h", "rollup_1h"),
    ):
        size = per_row(table)
        for eid, rows in conn.execute(f"SELECT entity, count(*) FROM {table} GROUP BY entity"):
            if eid in names:
                entry = out[names[eid]]
                entry[key] = rows
                entry["bytes"] += round(rows * size)
    block_overhead = per_row("blocks") - (
        conn.execute("SELECT coalesce(avg(length(data)), 0) FROM blocks").fetchone()[0]
    )
    for eid, blocks, count, data_bytes in conn.execute(
        "SELECT entity, count(*), sum(count), sum(length(data)) FROM blocks GROUP BY entity"
    ):
        if eid in names:
            entry = out[names[eid]]
            entry["blocks"] = blocks
            entry["block_samples"] = count
            entry["bytes"] += round(data_bytes + blocks * max(block_overhead, 0.0))
    return out
