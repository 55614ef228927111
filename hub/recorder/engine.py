"""The recorder engine: a bus listener that only enqueues, and the writer thread behind it.

    recorder = Recorder(RecorderSettings.for_config_dir(hub.config_dir))
    recorder.start(hub)          # on the loop: subscribes, starts the writer thread
    ...
    await recorder.flush()       # everything recorded so far is committed
    rows = await hub.run_in_executor(recorder.samples, "sensor.t", start, end)
    await recorder.stop()        # unsubscribes, writes what is queued, closes

The listener does no I/O: it filters, builds one tuple and appends it to a bounded deque (when
full, the item is dropped and counted). Everything else happens in the writer thread
(`writer.py`). Reads (`samples`, `states`, `rollups`, `stats`) block: call them off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from ..core import EVENT_STATE_CHANGED, MATCH_ALL, Context, Event, EventOrigin, State
from .settings import RecorderSettings
from .store import Period, RecorderReader, StateRow
from .writer import HIGH_WATER, ITEM_EVENT, ITEM_STATE, Counters, Writer

if TYPE_CHECKING:
    from ..core import Hub

__all__ = ["NOTIFICATION_ID", "Recorder"]

_LOGGER = logging.getLogger(__name__)

NOTIFICATION_ID: Final = "recorder_database"
READY_TIMEOUT: Final = 60.0  # reads wait this long for the writer to open the database


class Recorder:
    """Records state changes and events into SQLite; see the module docstring."""

    def __init__(
        self, settings: RecorderSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock  # wall clock for rollups, compaction and retention (tests fake it)
        self.counters = Counters()
        self.reader = RecorderReader(settings.db_path)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queue_max = settings.queue_max
        self._wake = threading.Event()
        self._writer: Writer | None = None
        self._hub: Hub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._allowed: dict[str, bool] = {}
        self._excluded_events = settings.exclude_event_types | {EVENT_STATE_CHANGED}

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    def start(self, hub: Hub | None = None) -> None:
        """Start the writer thread and, given a hub, record its bus. Call it on the event loop
        (without a hub, from anywhere: then feed it with `record_state`/`record_event`)."""
        if self._writer is not None:
            raise RuntimeError("the recorder is already started")
        self.settings.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._hub = hub
        if hub is not None:
            self._loop = asyncio.get_running_loop()
            if self.settings.record_events:
                self._unsubscribe = hub.bus.listen(MATCH_ALL, self._on_event)
            else:
                self._unsubscribe = hub.bus.listen(EVENT_STATE_CHANGED, self._on_event)
        self._writer = Writer(
            self.settings, self._queue, self._wake, self.counters, self.clock, self._notify
        )
        self._writer.start()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop recording: unsubscribe, write what is queued, close. Waits at most `timeout`
        seconds (a writer still busy then is left to finish in its daemon thread)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        writer = self._writer
        if writer is None:
            return
        writer.stopping = True
        self._wake.set()
        await asyncio.to_thread(writer.join, timeout)
        if writer.is_alive():
            _LOGGER.error("The recorder did not stop within %g s", timeout)
        self.reader.close()

    def stop_blocking(self, timeout: float = 30.0) -> None:
        """`stop()` for code without an event loop (scripts, the CLI)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._writer is not None:
            self._writer.stopping = True
            self._wake.set()
            self._writer.join(timeout)
        self.reader.close()

    async def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything recorded before this call is committed. False if the database
        cannot be written (a fault) or the wait timed out."""
        return await self._request("flush", timeout)

    async def run_maintenance(self, timeout: float = 120.0) -> bool:
        """Run rollups, compaction, retention and a full incremental vacuum now; wait for them."""
        return await self._request("maintenance", timeout)

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Wait until the writer has opened (and migrated) the database, or failed to; True if
        it has. The read methods wait for this themselves."""
        writer = self._writer
        if writer is None:
            return False
        if not writer.ready.is_set():
            await asyncio.to_thread(writer.ready.wait, timeout)
        return writer.ready.is_set()

    def _wait_ready(self) -> None:
        writer = self._writer
        if writer is not None and not writer.ready.is_set():
            writer.ready.wait(READY_TIMEOUT)

    def flush_blocking(self, timeout: float = 30.0) -> bool:
        return self._request_blocking("flush", timeout)

    def run_maintenance_blocking(self, timeout: float = 120.0) -> bool:
        return self._request_blocking("maintenance", timeout)

    async def _request(self, kind: str, timeout: float) -> bool:
        writer = self._writer
        if writer is None or not writer.is_alive():
            return False
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()

        def resolve(ok: bool) -> None:
            if not future.done():
                future.set_result(ok)

        def done(ok: bool) -> None:  # in the writer thread
            try:
                loop.call_soon_threadsafe(resolve, ok)
            except RuntimeError:
                pass  # the loop is closed

        writer.requests.append((kind, done))
        self._wake.set()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False

    def _request_blocking(self, kind: str, timeout: float) -> bool:
        writer = self._writer
        if writer is None or not writer.is_alive():
            return False
        event = threading.Event()
        result: list[bool] = []

        def done(ok: bool) -> None:
            result.append(ok)
            event.set()

        writer.requests.append((kind, done))
        self._wake.set()
        return event.wait(timeout) and result[0]

    # --- ingest (the event loop) -------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        event_type = event.event_type
        if event_type == EVENT_STATE_CHANGED:
            data = event.data
            entity_id = data["entity_id"]
            allowed = self._allowed.get(entity_id)
            if allowed is None:
                allowed = self._allowed[entity_id] = self.settings.records_entity(entity_id)
            if not allowed:
                return
            new_state = data["new_state"]
            ts = event.time_fired_ts if new_state is None else new_state.last_updated_ts
            # The Context object, not its id: making an id costs a microsecond, and a context
            # nobody has asked for by the time its row is written is stored without one.
            item: tuple[Any, ...] = (ITEM_STATE, entity_id, new_state, ts, event.context)
        elif event_type in self._excluded_events:
            return
        else:
            item = (
                ITEM_EVENT,
                event_type,
                event.data,
                event.time_fired_ts,
                event.context,
                0 if event.origin is EventOrigin.local else 1,
            )
        self._put(item)

    def _put(self, item: tuple[Any, ...]) -> bool:
        queue = self._queue
        length = len(queue)
        if length >= self._queue_max:
            self.counters.dropped_queue_full += 1
            return False
        queue.append(item)
        # Wake the writer for the first item after it went idle, and when a batch has piled up
        # while it waits for its commit time.
        writer = self._writer
        if writer is not None and (writer.idle or length == HIGH_WATER):
            self._wake.set()
        return True

    def record_state(
        self,
        entity_id: str,
        state: State | None,
        *,
        ts: float | None = None,
        context: Context | None = None,
    ) -> bool:
        """Record one state (None: the entity was removed at `ts`) as if it came from the bus,
        filters included; for imports and benchmarks. False if it was dropped or filtered."""
        if not self.settings.records_entity(entity_id):
            return False
        if state is not None:
            ts = state.last_updated_ts
            if context is None:
                context = state._context  # None unless someone made one
        elif ts is None:
            ts = self.clock()
        return self._put((ITEM_STATE, entity_id, state, ts, context))

    def record_event(self, event: Event) -> bool:
        """Record one event (unless its type is excluded); False if dropped or excluded."""
        if event.event_type in self._excluded_events:
            return False
        origin = 0 if event.origin is EventOrigin.local else 1
        return self._put(
            (ITEM_EVENT, event.event_type, event.data, event.time_fired_ts, event.context, origin)
        )

    # --- faults ------------------------------------------------------------------------------

    def _notify(self, message: str | None, title: str) -> None:
        """From the writer thread: show (or with None, dismiss) the recorder's notification."""
        hub, loop = self._hub, self._loop
        if hub is None or loop is None:
            return
        notifications = hub.notifications
        try:
            if message is None:
                loop.call_soon_threadsafe(notifications.dismiss, NOTIFICATION_ID)
            else:
                loop.call_soon_threadsafe(notifications.create, message, title, NOTIFICATION_ID)
        except RuntimeError:
            pass  # the loop is closed: nobody to tell

    # --- reads (blocking; any thread) --------------------------------------------------------

    def samples(self, entity_id: str, start: float, end: float) -> list[tuple[float, float]]:
        """Raw numeric samples (epoch s, value) with start <= ts < end; see RecorderReader."""
        self._wait_ready()
        return self.reader.samples(entity_id, start, end)

    def states(
        self,
        entity_ids: Iterable[str],
        start: float,
        end: float,
        *,
        with_attributes: bool = True,
        include_start: bool = True,
    ) -> dict[str, list[StateRow]]:
        """States per entity in time order; see RecorderReader.states."""
        self._wait_ready()
        return self.reader.states(
            entity_ids, start, end, with_attributes=with_attributes, include_start=include_start
        )

    def rollups(
        self, entity_id: str, start: float, end: float, period: Period = "hour"
    ) -> list[dict[str, Any]]:
        """5-minute or hourly rollup rows; see RecorderReader.rollups."""
        self._wait_ready()
        return self.reader.rollups(entity_id, start, end, period)

    def runtime_stats(self) -> dict[str, Any]:
        """Queue and writer figures; cheap, safe on the event loop."""
        writer = self._writer
        counters = self.counters
        return {
            "running": self.running,
            "queue_length": len(self._queue),
            "queue_max": self._queue_max,
            "dropped": counters.dropped_queue_full + counters.dropped_errors,
            "dropped_queue_full": counters.dropped_queue_full,
            "dropped_errors": counters.dropped_errors,
            "rejected_non_finite": counters.rejected_non_finite,
            "rejected_too_old": counters.rejected_too_old,
            "written_samples": counters.samples,
            "written_states": counters.states,
            "written_events": counters.events,
            "commits": counters.commits,
            "faults": counters.faults,
            "fault_since": None if writer is None else writer.fault_since,
            "last_error": None if writer is None else writer.last_error,
            "rollup_until": None if writer is None else writer.rollup_until,
            "last_maintenance": None if writer is None else writer.last_maintenance,
        }

    def stats(self, per_entity: bool = True) -> dict[str, Any]:
        """`runtime_stats()` plus the database's rows and bytes per table and (with
        `per_entity`) per entity. Reads whole tables: call it off the loop."""
        self._wait_ready()
        return {**self.runtime_stats(), "database": self.reader.db_stats(per_entity)}
