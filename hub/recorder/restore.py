"""Restore: entities that opt in get their last recorded state back after a restart.

The contract for integrations (see docs/recorder.md):

- Push (any set-up order): an Entity subclass sets the class attribute `restore_state = True`
  and defines `restored(state)` (plain or `async def`). Once per run, when the entity is on the
  hub, the recorder reads the entity's last state recorded before this run (skipping
  `unavailable`, `unknown` and removals) and, if there is one, calls `restored(state)` with a
  `hub.core.State` carrying the old state string, attributes and times. The entity decides
  what to take (a fresher value from its device wins) and calls `write_state()` itself.
- Pull: `await hub.recorder.restore.last_state(hub, entity_id)` (None when the recorder is not
  set up, or nothing was recorded): from an entity's `added()`, in an integration that declares
  `after=("recorder",)` so the recorder is set up first.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..core import EVENT_STATE_CHANGED, STATE_UNAVAILABLE, STATE_UNKNOWN, Event, State

if TYPE_CHECKING:
    from ..core import Hub
    from .engine import Recorder
    from .integration import RecorderRuntime

_LOGGER = logging.getLogger(__name__)

SKIPPED_STATES: Final = frozenset({STATE_UNAVAILABLE, STATE_UNKNOWN, ""})  # "": removed
MAX_STEPS_BACK: Final = 20  # unavailable/unknown rows skipped before giving up


def read_last_state(recorder: Recorder, entity_id: str, before: float) -> State | None:
    """Blocking: the last usable state of `entity_id` recorded before `before` (epoch s)."""
    point = before
    for _ in range(MAX_STEPS_BACK):
        rows = recorder.states([entity_id], point, point, include_start=True).get(entity_id)
        if not rows:
            return None
        row = rows[0]
        if row.state not in SKIPPED_STATES:
            return State(entity_id, row.state, row.attributes or {}, row.last_changed,
                         row.last_updated, validate=False)
        if row.last_updated >= point:  # cannot step further back
            return None
        point = row.last_updated
    return None


async def last_state(hub: Hub, entity_id: str) -> State | None:
    """The entity's last state from before this run; None without a recorder or a record."""
    runtime: RecorderRuntime | None = hub.data.get("recorder")
    if runtime is None:
        return None
    return await runtime.last_state(entity_id)


def start(runtime: RecorderRuntime) -> Callable[[], None]:
    """Restore the entities already on the hub that opted in, and each one added later (its
    first state_changed, old_state None). Returns the function that stops it."""
    hub = runtime.hub
    done: set[int] = set()  # id() of entity objects restored (or being restored) this run
    tasks: set[asyncio.Task[Any]] = set()

    def consider(entity_id: str) -> None:
        entity = hub.entities.get(entity_id)
        if entity is None or not getattr(entity, "restore_state", False) or id(entity) in done:
            return
        if not callable(getattr(entity, "restored", None)):
            _LOGGER.warning("%s sets restore_state but has no restored(state) method", entity_id)
            return
        done.add(id(entity))
        task = hub.create_task(_restore(runtime, entity), f"restore {entity_id}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_state_changed(event: Event) -> None:
        if event.data.get("old_state") is None and event.data.get("new_state") is not None:
            consider(event.data["entity_id"])

    for entity in hub.entities.all():
        consider(entity.entity_id)
    unsubscribe = hub.bus.listen(EVENT_STATE_CHANGED, on_state_changed)

    def stop() -> None:
        unsubscribe()
        for task in list(tasks):
            task.cancel()

    return stop


async def _restore(runtime: RecorderRuntime, entity: Any) -> None:
    entity_id = entity.entity_id
    try:
        state = await runtime.last_state(entity_id)
        if state is None or entity.hub is None:
            return  # nothing recorded, or the entity left meanwhile
        result = entity.restored(state)
        if inspect.isawaitable(result):
            await result
        _LOGGER.debug("Restored %s to %s", entity_id, state.state)
    except asyncio.CancelledError:
        raise
    except Exception:
        _LOGGER.exception("Could not restore the state of %s", entity_id)
