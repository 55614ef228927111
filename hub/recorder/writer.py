"""The writer thread: the one place that writes the recorder's database.

It takes items from the queue the bus listener fills, writes them in batches inside a
transaction it commits every `commit_interval` (WAL, synchronous=NORMAL: a commit is durable
against a process crash at once, against a power cut from the next checkpoint), and between
batches it runs the housekeeping jobs of `tiers.py` a fraction of a second at a time.

Faults: when SQLite cannot write (disk full, read-only or vanished file, I/O error), the open
transaction is rolled back and its items go back to the front of the queue; the writer logs one
error, raises a persistent notification, closes the connection and tries again every
`retry_interval` seconds. Meanwhile the queue keeps what it can (`queue_max`, plus the items of
the failed transaction); the listener drops and counts the rest. The first successful commit
ends the fault.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from math import isfinite
from typing import TYPE_CHECKING, Any, Final

import orjson

from . import tiers
from .schema import PERIOD_5M, SchemaError, connect, get_meta, migrate, set_meta
from .series import numeric_candidate, parse_number
from .settings import RecorderSettings
from .store import TailCache

if TYPE_CHECKING:
    from ..core import Context

_LOGGER = logging.getLogger(__name__)

# Queue items. States: (ITEM_STATE, entity_id, State | None, ts, Context | None);
# events: (ITEM_EVENT, event_type, data, ts, Context | None, origin 0 local / 1 remote).
ITEM_STATE: Final = 0
ITEM_EVENT: Final = 1

BATCH_MAX: Final = 20_000  # items written per executemany round
HIGH_WATER: Final = 20_000  # queued items that wake a writer waiting for its commit time
STEP_BUDGET: Final = 0.2  # seconds of housekeeping between two ingest rounds
ROLLUP_DELAY: Final = 10  # seconds after a 5-minute period ends before it is rolled up
ROLLUP_CHUNK: Final = 6 * 3600  # seconds of rollups per transaction when catching up
DIRTY_INTERVAL: Final = 5.0  # seconds between recomputations for late records
MAX_IDLE_WAIT: Final = 5.0
DROP_WARNING_INTERVAL: Final = 60.0
VACUUM_MIN_FREE_PAGES: Final = 4096  # 16 MB
_CACHE_MAX: Final = 8192
_NEG_INF: Final = float("-inf")
_JSON_OPTIONS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

Done = Callable[[bool], None]  # called from the writer thread with True if it succeeded


@dataclass(slots=True)
class Counters:
    """What the recorder did and refused; read by stats() from any thread."""

    dropped_queue_full: int = 0  # listener: the queue was full
    dropped_errors: int = 0  # items that could not be encoded, or lost at a failed stop
    rejected_non_finite: int = 0  # NaN / inf on a numeric entity: never stored
    rejected_too_old: int = 0  # older than the entity's raw retention
    samples: int = 0
    states: int = 0
    events: int = 0
    commits: int = 0
    faults: int = 0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    return str(obj)


def _context(ctx: Context | None) -> tuple[str | None, str | None, str | None]:
    """Id, user id and parent id of a context, without making an id nobody asked for: the
    loop makes ids lazily, and reading `_id` (one attribute) is safe from this thread."""
    if ctx is None:
        return None, None, None
    return ctx._id, ctx.user_id, ctx.parent_id


def _hash64(blob: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little", signed=True)


class Writer(threading.Thread):
    """The writer thread. The Recorder owns it; all of its state belongs to this thread except
    the queue, the counters and the request list, which the Recorder shares."""

    def __init__(
        self,
        settings: RecorderSettings,
        queue: deque[tuple[Any, ...]],
        wake: threading.Event,
        counters: Counters,
        clock: Callable[[], float],
        notify: Callable[[str | None, str], None],
    ) -> None:
        super().__init__(name="recorder-writer", daemon=True)
        self.settings = settings
        self.queue = queue
        self.wake = wake
        self.counters = counters
        self.clock = clock
        self.notify = notify  # (message, title) of the persistent notification; None dismisses
        self.idle = False  # True while waiting with nothing uncommitted: the listener wakes us
        self.stopping = False
        self.requests: deque[tuple[str, Done]] = deque()
        self.last_error: str | None = None
        self.fault_since: float | None = None
        self.rollup_until: int | None = None  # epoch s: 5-minute periods before it are rolled up
        self.last_maintenance: float | None = None
        self.ready = threading.Event()  # set once the database was opened (or failed to)

        self._conn: sqlite3.Connection | None = None
        self._uncommitted: list[tuple[Any, ...]] = []
        self._txn_started = 0.0
        self._run_id: int | None = None
        self._run_breaks: list[int] = []
        self._entity_ids: dict[str, int] = {}
        self._raw_keep: dict[int, float | None] = {}  # per-entity overrides of raw retention
        self._last: dict[int, tuple[Any, int | None, bool]] = {}  # attrs object, attr id, numeric
        self._attr_ids: dict[bytes, int] = {}
        self._event_type_ids: dict[str, int] = {}
        self._data_ids: dict[bytes, int] = {}
        self._dirty: dict[int, list[int]] = {}  # entity -> [min, max] µs of late records
        self._tails: TailCache = {}
        self._job: Iterator[Any] | None = None
        self._job_full = False
        self._job_waiters: list[Done] = []
        self._full_requested: list[Done] = []
        self._next_full = 0.0  # monotonic
        self._next_retry = 0.0
        self._next_dirty = 0.0  # monotonic: late records are rolled up at most this often
        self._dropped_reported = 0
        self._last_drop_warning = _NEG_INF

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._open()
            self.ready.set()
            self._loop()
        except Exception:
            _LOGGER.exception("The recorder's writer thread failed; recording has stopped")
            self.last_error = "writer thread failed"
        finally:
            self.ready.set()
            self._answer_all(False)
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
                self._conn = None

    def _loop(self) -> None:
        last_try = False  # stopping during a fault: one more attempt to write, then give up
        while True:
            self._warn_drops()
            if self._conn is None:
                if self.stopping:
                    if not last_try:
                        last_try = True
                        self._open()
                    if self._conn is None:
                        self._give_up()
                        return
                elif time.monotonic() >= self._next_retry:
                    self._open()
                if self._conn is None:
                    self._answer_requests(ok=False)
                    self._wait(self._next_retry - time.monotonic(), for_items=False)
                    continue
            try:
                requests = len(self.requests)  # before the queue: their items are in it
                self._ingest(len(self.queue))
                self._answer_requests(ok=True, count=requests)
                if self.stopping and not self.queue:
                    self._commit()
                    self._close_run()
                    return
                self._housekeeping()
            except sqlite3.Error as err:
                self._on_fault(err)
                continue
            if not self._job and not self.queue and not self.requests:
                self._wait(self._timeout())

    def _timeout(self) -> float:
        now = time.monotonic()
        if self._uncommitted:
            return max(0.0, self._txn_started + self.settings.commit_interval - now)
        return max(0.0, min(self._next_full - now, MAX_IDLE_WAIT))

    def _wait(self, timeout: float, *, for_items: bool = True) -> None:
        """Sleep until the timeout, a stop or a request, or (with `for_items`) the first item
        after going idle, or a pile of HIGH_WATER items while a transaction waits to commit."""
        self.wake.clear()
        self.idle = for_items and not self._uncommitted
        pending = for_items and (
            len(self.queue) >= HIGH_WATER if self._uncommitted else bool(self.queue)
        )
        if not (self.stopping or self.requests or pending):
            self.wake.wait(max(0.0, timeout))
        self.idle = False

    # --- opening, faults ---------------------------------------------------------------------

    def _open(self) -> None:
        settings = self.settings
        try:
            conn = connect(settings.db_path, max_size_mb=settings.max_db_size_mb)
        except sqlite3.Error as err:
            self._on_fault(err)
            return
        try:
            migrate(conn)
            conn.execute("BEGIN")
            now = self.clock()
            run_id = self._run_id
            if run_id is None and settings.open_run:
                conn.execute(
                    "UPDATE recorder_runs SET closed_incorrectly = 1 WHERE end IS NULL"
                )
                run_id = conn.execute(
                    "INSERT INTO recorder_runs (start) VALUES (?)", (now,)
                ).lastrowid
            set_meta(conn, "last_open", now)
            conn.execute("COMMIT")
            self._run_id = run_id
            self._conn = conn
            self._load()
        except (sqlite3.Error, SchemaError, OSError) as err:
            try:
                conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
            self._on_fault(err)
            return
        if self.fault_since is not None and not self.queue:
            self._resolved()

    def _load_entities(self) -> None:
        conn = self._conn
        assert conn is not None
        self._entity_ids = dict(conn.execute("SELECT entity_id, id FROM entities"))
        self._raw_keep = {}
        for entity_id, eid in self._entity_ids.items():
            self._note_entity(entity_id, eid)

    def _load(self) -> None:
        conn = self._conn
        assert conn is not None
        self._load_entities()
        until = get_meta(conn, "rollup_until")
        self.rollup_until = None if until is None else int(until)
        breaks: list[int] = []
        runs = conn.execute("SELECT start, end FROM recorder_runs ORDER BY start").fetchall()
        for index, (start, end) in enumerate(runs):
            if index:
                breaks.append(round(start * 1_000_000))
            if end is not None:
                breaks.append(round(end * 1_000_000))
        self._run_breaks = sorted(breaks)
        last = get_meta(conn, "last_maintenance")
        self.last_maintenance = None if last is None else float(last)

    def _note_entity(self, entity_id: str, eid: int) -> None:
        if entity_id in self.settings.entity_overrides:
            self._raw_keep[eid] = self.settings.retention(entity_id).raw

    def _clear_caches(self) -> None:
        self._entity_ids = {}
        self._raw_keep = {}
        self._last = {}
        self._attr_ids = {}
        self._event_type_ids = {}
        self._data_ids = {}
        self._tails = {}

    def _forget(self, table: str) -> None:
        """Housekeeping deleted rows of a shared table: its cached ids may be gone."""
        if table == "attributes":
            self._attr_ids = {}
        else:
            self._data_ids = {}

    def _on_fault(self, err: BaseException) -> None:
        """Roll back, put the failed transaction's items back in the queue, close, retry later."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            try:
                conn.close()
            except sqlite3.Error:
                pass
        if self._uncommitted:
            self.queue.extendleft(reversed(self._uncommitted))
            self._uncommitted = []
        self._clear_caches()
        self._abandon_job()
        self._next_retry = time.monotonic() + self.settings.retry_interval
        self.counters.faults += 1
        message = f"{type(err).__name__}: {err}"
        self.last_error = message
        if self.fault_since is not None:
            _LOGGER.debug("Recorder still cannot write %s: %s", self.settings.db_path, message)
            return
        self.fault_since = self.clock()
        _LOGGER.error(
            "The recorder cannot write to %s (%s). History is not being recorded; up to %d "
            "changes wait in memory and will be written when this is fixed. Retrying every %g s.",
            self.settings.db_path,
            message,
            self.settings.queue_max,
            self.settings.retry_interval,
        )
        self.notify(
            f"The recorder cannot write to `{self.settings.db_path}`: {err}.\n\n"
            "History is not being recorded. Up to "
            f"{self.settings.queue_max} changes are kept in memory and written as soon as the "
            "database can be written again (free some disk space, or fix the file's "
            "permissions); beyond that, changes are dropped and counted.",
            "Recorder: history is not being saved",
        )

    def _resolved(self) -> None:
        since = self.fault_since
        self.fault_since = None
        dropped = self.counters.dropped_queue_full
        _LOGGER.warning(
            "The recorder writes to %s again (after %.0f s); %d changes dropped so far",
            self.settings.db_path,
            self.clock() - (since or 0.0),
            dropped,
        )
        if dropped:
            self.notify(
                f"The recorder writes to `{self.settings.db_path}` again. "
                f"{dropped} changes were dropped while it could not.",
                "Recorder: some history was lost",
            )
        else:
            self.notify(None, "")

    def _give_up(self) -> None:
        lost = len(self.queue)
        self.queue.clear()
        self.counters.dropped_errors += lost
        _LOGGER.error(
            "The recorder stops without writing %d changes: %s", lost, self.last_error
        )

    def _warn_drops(self) -> None:
        dropped = self.counters.dropped_queue_full
        if dropped > self._dropped_reported:
            now = time.monotonic()
            if now - self._last_drop_warning >= DROP_WARNING_INTERVAL:
                _LOGGER.warning(
                    "The recorder's queue is full (%d items): %d changes dropped since the last "
                    "warning, %d in all",
                    self.settings.queue_max,
                    dropped - self._dropped_reported,
                    dropped,
                )
                self._dropped_reported = dropped
                self._last_drop_warning = now

    # --- ingest ------------------------------------------------------------------------------

    def _ingest(self, count: int) -> None:
        """Write the first `count` queued items (those queued later wait for the next round)."""
        queue = self.queue
        conn = self._conn
        assert conn is not None
        interval = self.settings.commit_interval
        while count > 0 and queue:
            popleft = queue.popleft
            items = [popleft() for _ in range(min(len(queue), count, BATCH_MAX))]
            count -= len(items)
            if not self._uncommitted:
                conn.execute("BEGIN")
                self._txn_started = time.monotonic()
            self._uncommitted.extend(items)
            try:
                self._write(conn, items)
            except sqlite3.Error:
                raise
            except Exception:
                # Not the database's fault: a bug or data nothing can store. Losing this
                # transaction is better than retrying it forever.
                _LOGGER.exception("The recorder could not write %d changes", len(self._uncommitted))
                self.counters.dropped_errors += len(self._uncommitted)
                self._uncommitted = []
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._clear_caches()
                self._load_entities()
                return
            if interval <= 0 or time.monotonic() - self._txn_started >= interval:
                self._commit()
        if self._uncommitted and time.monotonic() - self._txn_started >= interval:
            self._commit()

    def _commit(self) -> None:
        conn = self._conn
        if conn is None or not self._uncommitted:
            return
        conn.execute("COMMIT")
        self._uncommitted = []
        self.counters.commits += 1
        if self.fault_since is not None:
            self._resolved()

    def _write(self, conn: sqlite3.Connection, items: list[tuple[Any, ...]]) -> None:
        samples: list[tuple[int, int, float]] = []
        states: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        entity_ids = self._entity_ids
        last = self._last
        raw_keep = self._raw_keep
        counters = self.counters
        now = self.clock()
        keep = self.settings.raw_keep_days
        horizon = _NEG_INF if keep is None else now - keep * 86_400
        until_us = None if self.rollup_until is None else self.rollup_until * 1_000_000
        for item in items:
            if item[0] != ITEM_STATE:
                if item[3] < horizon:
                    counters.rejected_too_old += 1
                else:
                    events.append(item)
                continue
            _, entity_id, st, ts, ctx = item
            eid = entity_ids.get(entity_id)
            if eid is None:
                eid = self._add_entity(conn, entity_id)
            if raw_keep and eid in raw_keep:
                days = raw_keep[eid]
                if days is not None and ts < now - days * 86_400:
                    counters.rejected_too_old += 1
                    continue
            elif ts < horizon:
                counters.rejected_too_old += 1
                continue
            ts_us = round(ts * 1_000_000)
            cid, uid, pid = _context(ctx)
            if st is None:  # the entity was removed
                last.pop(eid, None)
                states.append((eid, ts, None, "", None, cid, uid, pid))
            else:
                attrs = st.attributes
                prev = last.get(eid)
                if prev is not None and prev[0] is attrs:
                    attr_id, candidate, changed, refresh = prev[1], prev[2], False, False
                else:
                    candidate = numeric_candidate(entity_id.partition(".")[0], attrs)
                    attr_id = self._attr_id(conn, attrs) if attrs else None
                    changed = prev is None or prev[1] != attr_id
                    refresh = True
                value = parse_number(st.state) if candidate else None
                if value is not None and not isfinite(value):
                    counters.rejected_non_finite += 1
                    continue
                lc = st.last_changed_ts
                if value is not None:
                    if lc == ts:
                        samples.append((eid, ts_us, value))
                    if changed:
                        states.append((eid, ts, None if lc == ts else lc, None, attr_id, cid, uid, pid))
                else:
                    states.append(
                        (eid, ts, None if lc == ts else lc, st.state, attr_id, cid, uid, pid)
                    )
                if refresh:
                    last[eid] = (attrs, attr_id, candidate)
            if until_us is not None and ts_us < until_us:
                self._mark_late(eid, ts_us)
        if samples:
            conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?)", samples)
            counters.samples += len(samples)
        if states:
            conn.executemany(
                "INSERT INTO states (entity, ts, last_changed, state, attributes, context_id,"
                " context_user_id, context_parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                states,
            )
            counters.states += len(states)
        if events:
            self._write_events(conn, events)

    def _mark_late(self, eid: int, ts_us: int) -> None:
        """A record older than `rollup_until`: its buckets are recomputed by the next job."""
        span = self._dirty.get(eid)
        if span is None:
            self._dirty[eid] = [ts_us, ts_us]
        elif ts_us < span[0]:
            span[0] = ts_us
        elif ts_us > span[1]:
            span[1] = ts_us

    def _write_events(self, conn: sqlite3.Connection, items: list[tuple[Any, ...]]) -> None:
        rows = []
        for _, event_type, data, ts, ctx, origin in items:
            cid, uid, pid = _context(ctx)
            type_id = self._event_type_ids.get(event_type)
            if type_id is None:
                conn.execute("INSERT OR IGNORE INTO event_types (type) VALUES (?)", (event_type,))
                type_id = conn.execute(
                    "SELECT id FROM event_types WHERE type = ?", (event_type,)
                ).fetchone()[0]
                self._event_type_ids[event_type] = type_id
            data_id = self._shared_id(conn, "event_data", self._data_ids, data) if data else None
            rows.append((type_id, ts, data_id, origin, cid, uid, pid))
        conn.executemany(
            "INSERT INTO events (type, ts, data, origin, context_id, context_user_id,"
            " context_parent_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.counters.events += len(rows)

    def _add_entity(self, conn: sqlite3.Connection, entity_id: str) -> int:
        conn.execute("INSERT OR IGNORE INTO entities (entity_id) VALUES (?)", (entity_id,))
        eid: int = conn.execute(
            "SELECT id FROM entities WHERE entity_id = ?", (entity_id,)
        ).fetchone()[0]
        self._entity_ids[entity_id] = eid
        self._note_entity(entity_id, eid)
        return eid

    def _attr_id(self, conn: sqlite3.Connection, attrs: Mapping[str, Any]) -> int:
        return self._shared_id(conn, "attributes", self._attr_ids, attrs)

    @staticmethod
    def _shared_id(
        conn: sqlite3.Connection, table: str, cache: dict[bytes, int], value: Any
    ) -> int:
        """The id of a JSON document in a deduplicated table (attributes, event_data)."""
        try:
            blob = orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
        except TypeError:  # a cycle, a huge int, ...: keep what can be kept
            blob = orjson.dumps({str(k): repr(v) for k, v in dict(value).items()})
        found = cache.get(blob)
        if found is not None:
            return found
        digest = _hash64(blob)
        text = blob.decode()
        for row_id, shared in conn.execute(f"SELECT id, shared FROM {table} WHERE hash = ?", (digest,)):
            if shared == text:
                found = row_id
                break
        else:
            found = conn.execute(
                f"INSERT INTO {table} (hash, shared) VALUES (?, ?)", (digest, text)
            ).lastrowid
        if len(cache) >= _CACHE_MAX:
            cache.pop(next(iter(cache)))
        cache[blob] = found
        return found  # type: ignore[return-value]

    # --- requests ----------------------------------------------------------------------------

    def _answer_requests(self, ok: bool, count: int | None = None) -> None:
        """Flushes are answered once what was queued before them is committed; maintenance
        requests join the next full housekeeping job."""
        count = len(self.requests) if count is None else count
        if not count:
            return
        if ok:
            self._commit()
        for _ in range(count):
            kind, done = self.requests.popleft()
            if kind == "maintenance" and ok:
                self._full_requested.append(done)
            else:
                done(ok)

    def _answer_all(self, ok: bool) -> None:
        while self.requests:
            self.requests.popleft()[1](ok)
        for done in self._job_waiters + self._full_requested:
            done(ok)
        self._job_waiters = []
        self._full_requested = []

    # --- housekeeping ------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        if self._job is None:
            now = time.monotonic()
            if self._full_requested or now >= self._next_full:
                self._job = self._full_job(force_vacuum=bool(self._full_requested))
                self._job_full = True
                self._job_waiters, self._full_requested = self._full_requested, []
            elif self._rollup_due():
                self._job = self._rollup_job()
                self._job_full = False
            else:
                return
        self._commit()  # housekeeping runs in transactions of its own
        deadline = time.monotonic() + STEP_BUDGET
        ok = True
        try:
            while time.monotonic() < deadline:
                next(self._job)
            return
        except StopIteration:
            pass
        except sqlite3.Error:
            raise
        except Exception:
            _LOGGER.exception("Recorder housekeeping failed; it will run again later")
            conn = self._conn
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
            ok = False
        self._job = None
        if self._job_full or not ok:
            self._next_full = time.monotonic() + self.settings.maintenance_interval
        waiters, self._job_waiters = self._job_waiters, []
        for done in waiters:
            done(ok)

    def _abandon_job(self) -> None:
        if self._job is not None:
            self._job.close()
            self._job = None
            # A full job's waiters are answered by the next full job.
            self._full_requested = self._job_waiters + self._full_requested
            self._job_waiters = []

    def _rollup_due(self) -> bool:
        if self._dirty and time.monotonic() >= self._next_dirty:
            return True
        until = self.rollup_until
        return until is None or self.clock() - ROLLUP_DELAY >= until + PERIOD_5M

    def _full_job(self, force_vacuum: bool = False) -> Iterator[Any]:
        now = self.clock()  # one time for the whole job, even if the clock moves meanwhile
        yield from self._rollup_job(now)
        conn = self._conn
        assert conn is not None
        cutoff_us = round((now - self.settings.hot_window_hours * 3600) * 1_000_000)
        entities = list(self._entity_ids.items())
        for _, eid in entities:
            yield from tiers.compact_entity(conn, eid, cutoff_us)
        for entity_id, eid in entities:
            yield from tiers.purge_entity(
                conn, eid, self.settings.retention(entity_id), now, self.rollup_until,
                self._forget,
            )
        keep = self.settings.raw_keep_days
        if keep is not None:
            yield from tiers.purge_events(conn, now - keep * 86_400, self._forget)
        self._tails = {}
        pages, free = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count"))
        # Free pages are reused by new rows anyway: give them back to the file system only when
        # asked or when there are many (moving pages costs writes, which wear SD cards).
        if force_vacuum or free > max(VACUUM_MIN_FREE_PAGES, pages // 10):
            yield from tiers.vacuum(conn)
        with tiers.transaction(conn):
            set_meta(conn, "last_maintenance", now)
        self.last_maintenance = now

    def _rollup_job(self, now: float | None = None) -> Iterator[None]:
        conn = self._conn
        assert conn is not None
        now = self.clock() if now is None else now
        target = int((now - ROLLUP_DELAY) // PERIOD_5M * PERIOD_5M)
        until = self.rollup_until
        if until is None:
            first = self._first_sample_us(conn)
            until = target if first is None else min(target, first // 1_000_000 // PERIOD_5M * PERIOD_5M)
            with tiers.transaction(conn):
                set_meta(conn, "rollup_until", until)
            self.rollup_until = until
        # Late records: recompute from their first bucket to the bucket of the entity's next
        # record (up to there, the value they carry forward changed).
        dirty, self._dirty = self._dirty, {}
        self._next_dirty = time.monotonic() + DIRTY_INTERVAL
        floors = self._recompute_floors(now, dirty)
        try:
            while dirty:
                eid, (lo, hi) = next(iter(dirty.items()))
                start = lo // 1_000_000 // PERIOD_5M * PERIOD_5M
                nxt = tiers.next_record_us(conn, eid, hi) if start < until else None
                end = until
                if nxt is not None:
                    end = min(until, nxt // 1_000_000 // PERIOD_5M * PERIOD_5M + PERIOD_5M)
                while start < end:
                    stop = min(end, start + ROLLUP_CHUNK)
                    with tiers.transaction(conn):
                        tiers.rollup_range(
                            conn, eid, start, stop, until, self._run_breaks, self._tails,
                            floor=floors.get(eid),
                        )
                    start = stop
                    dirty[eid][0] = stop * 1_000_000
                    yield
                del dirty[eid]
        finally:  # abandoned half way (a fault, a stop): what is left stays to do
            for eid, (lo, hi) in dirty.items():
                self._mark_late(eid, lo)
                self._mark_late(eid, hi)
        while until < target:
            stop = min(target, until + ROLLUP_CHUNK)
            with tiers.transaction(conn):
                for eid in list(self._entity_ids.values()):
                    tiers.rollup_range(conn, eid, until, stop, stop, self._run_breaks, self._tails)
                set_meta(conn, "rollup_until", stop)
            self.rollup_until = until = stop
            yield

    def _recompute_floors(self, now: float, entities: Iterable[int]) -> dict[int, float]:
        """Per entity, the time before which periods are not recomputed: older raw samples or
        5-minute rows may have been purged, so a recomputation would lose data."""
        names = {eid: entity_id for entity_id, eid in self._entity_ids.items()}
        floors = {}
        for eid in entities:
            keep = self.settings.retention(names.get(eid, ""))
            days = [d for d in (keep.raw, keep.rollup_5m) if d is not None]
            if days:
                floors[eid] = now - min(days) * 86_400
        return floors

    @staticmethod
    def _first_sample_us(conn: sqlite3.Connection) -> int | None:
        firsts: list[int] = []
        for sample, block in conn.execute(
            "SELECT (SELECT ts_us FROM samples WHERE entity = e.id ORDER BY ts_us LIMIT 1),"
            " (SELECT start_us FROM blocks WHERE entity = e.id ORDER BY start_us LIMIT 1)"
            " FROM entities e"
        ):
            firsts.extend(t for t in (sample, block) if t is not None)
        return min(firsts) if firsts else None

    def _close_run(self) -> None:
        conn = self._conn
        if conn is None or self._run_id is None:
            return
        with tiers.transaction(conn):
            conn.execute(
                "UPDATE recorder_runs SET end = ? WHERE id = ?", (self.clock(), self._run_id)
            )
        conn.execute("PRAGMA optimize")  # closing checkpoints (and drops the WAL if last)
