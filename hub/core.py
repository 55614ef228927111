"""The core: Hub, Event, EventBus, State, StateMachine, ServiceRegistry, Context.

Everything here runs in the one event loop. The hot path (fire an event, set a state) allocates
as little as it can: slotted objects, float timestamps with datetimes computed on demand,
listener lists stored as tuples that are replaced (not mutated) when someone subscribes.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
import os
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from .exceptions import InvalidEntityId, InvalidStateError

_LOGGER = logging.getLogger(__name__)

MATCH_ALL: Final = "*"
EVENT_STATE_CHANGED: Final = "state_changed"
EVENT_STATE_REPORTED: Final = "state_reported"
EVENT_SERVICE_REGISTERED: Final = "service_registered"
EVENT_SERVICE_REMOVED: Final = "service_removed"
EVENT_CALL_SERVICE: Final = "call_service"
EVENT_HUB_START: Final = "hub_start"
EVENT_HUB_STARTED: Final = "hub_started"
EVENT_HUB_STOP: Final = "hub_stop"
MAX_STATE_LENGTH: Final = 255
STATE_UNKNOWN: Final = "unknown"
STATE_UNAVAILABLE: Final = "unavailable"

# Home Assistant's rule: lower-case letters, digits and single underscores, not at either end.
_ENTITY_ID_RE = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")


def valid_entity_id(entity_id: str) -> bool:
    """True if `entity_id` has the form `domain.object_id`."""
    return isinstance(entity_id, str) and _ENTITY_ID_RE.match(entity_id) is not None


def split_entity_id(entity_id: str) -> tuple[str, str]:
    """`light.kitchen` -> (`light`, `kitchen`)."""
    domain, _, object_id = entity_id.partition(".")
    if not domain or not object_id:
        raise InvalidEntityId(f"Invalid entity id: {entity_id!r}")
    return domain, object_id


def id_list(value: Any) -> list[str]:
    """Ids as services accept them: None, one id, a comma-separated string, or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(item).strip() for item in value]


def utc_from_timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


# Ids are time-ordered like ULIDs (so they sort by creation) but made from a counter, which is far
# cheaper than random bits per event. The random prefix keeps ids unique across restarts.
_ID_PREFIX: Final = os.urandom(4).hex()
_id_counter = 0


def new_id() -> str:
    """A unique, roughly time-ordered id string."""
    global _id_counter
    _id_counter += 1
    return f"{int(time.time() * 1000):011x}{_ID_PREFIX}{_id_counter:08x}"


class Context:
    """Who or what caused something: carried from trigger to action to resulting state."""

    __slots__ = ("_id", "user_id", "parent_id")

    def __init__(
        self, user_id: str | None = None, parent_id: str | None = None, id: str | None = None
    ) -> None:
        self._id = id  # made on first read: most contexts are never looked at
        self.user_id = user_id
        self.parent_id = parent_id

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = new_id()
        return self._id

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "parent_id": self.parent_id, "user_id": self.user_id}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Context {self.id} user={self.user_id} parent={self.parent_id}>"


class EventOrigin(enum.StrEnum):
    local = "LOCAL"
    remote = "REMOTE"


class Event:
    """Something that happened: a type, its data, when, where it came from and why."""

    __slots__ = ("event_type", "data", "origin", "time_fired_ts", "_context")

    def __init__(
        self,
        event_type: str,
        data: Mapping[str, Any] | None = None,
        origin: EventOrigin = EventOrigin.local,
        time_fired_ts: float | None = None,
        context: Context | None = None,
    ) -> None:
        self.event_type = event_type
        self.data = data if data is not None else {}
        self.origin = origin
        self.time_fired_ts = time.time() if time_fired_ts is None else time_fired_ts
        self._context = context

    @property
    def context(self) -> Context:
        if self._context is None:
            self._context = Context()
        return self._context

    @property
    def time_fired(self) -> datetime:
        return utc_from_timestamp(self.time_fired_ts)

    def as_dict(self) -> dict[str, Any]:
        data = self.data
        if self.event_type == EVENT_STATE_CHANGED:
            data = {
                "entity_id": data["entity_id"],
                "old_state": data["old_state"].as_dict() if data.get("old_state") else None,
                "new_state": data["new_state"].as_dict() if data.get("new_state") else None,
            }
        return {
            "event_type": self.event_type,
            "data": dict(data),
            "origin": str(self.origin),
            "time_fired": self.time_fired.isoformat(),
            "context": self.context.as_dict(),
        }

    def __repr__(self) -> str:
        return f"<Event {self.event_type}[{self.origin.value[0]}]: {dict(self.data)}>"


Callback = Callable[[Event], Any]
Unsubscribe = Callable[[], None]


class _Listener:
    __slots__ = ("callback", "is_coroutine", "event_filter", "name", "backlog", "worker")

    def __init__(self, callback: Callback, event_filter: Callable[[Event], bool] | None) -> None:
        self.callback = callback
        self.is_coroutine = _is_coroutine_function(callback)
        self.event_filter = event_filter
        self.name = getattr(callback, "__qualname__", repr(callback))
        # Coroutine listeners: events waiting for this listener, and the one task draining them.
        self.backlog: deque[Event] | None = deque() if self.is_coroutine else None
        self.worker: asyncio.Task[None] | None = None


def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    # Also an object whose __call__ is `async def`.
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(type(func), "__call__", None)
    )


class EventBus:
    """Fires events to listeners indexed by event type; `*` listeners see every event.

    Callback listeners run inline, in the order they subscribed. A coroutine listener gets its
    events in order, one at a time, from a backlog drained by one task of its own (no task per
    event; a listener that wants concurrency starts its own tasks). A listener that raises is
    logged with its name and the others still run.
    """

    # A coroutine listener this far behind is probably stuck: say so (once per burst).
    BACKLOG_WARNING = 10_000

    def __init__(self, task_runner: TaskRunner) -> None:
        self._listeners: dict[str, tuple[_Listener, ...]] = {}
        self._match_all: tuple[_Listener, ...] = ()
        self._tasks = task_runner

    def listen(
        self,
        event_type: str,
        callback: Callback,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> Unsubscribe:
        """Call `callback(event)` for every event of `event_type` (or of any type: `*`).

        `event_filter(event)` runs inline first and must be a plain function. Returns the
        function that unsubscribes.
        """
        listener = _Listener(callback, event_filter)
        if event_type == MATCH_ALL:
            self._match_all = (*self._match_all, listener)
        else:
            self._listeners[event_type] = (*self._listeners.get(event_type, ()), listener)

        def unsubscribe() -> None:
            if event_type == MATCH_ALL:
                self._match_all = tuple(li for li in self._match_all if li is not listener)
                return
            remaining = tuple(li for li in self._listeners.get(event_type, ()) if li is not listener)
            if remaining:
                self._listeners[event_type] = remaining
            else:
                self._listeners.pop(event_type, None)

        return unsubscribe

    def listen_once(
        self,
        event_type: str,
        callback: Callback,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> Unsubscribe:
        """Like `listen`, but only for the first matching event."""
        done = False

        def once(event: Event) -> Any:
            nonlocal done
            if done:
                return None
            done = True
            unsubscribe()
            return callback(event)

        once.__qualname__ = getattr(callback, "__qualname__", "listen_once")
        if _is_coroutine_function(callback):

            async def once_async(event: Event) -> Any:
                result = once(event)
                if result is not None:
                    await result

            once_async.__qualname__ = once.__qualname__
            unsubscribe = self.listen(event_type, once_async, event_filter)
        else:
            unsubscribe = self.listen(event_type, once, event_filter)

        def safe_unsubscribe() -> None:
            nonlocal done
            if not done:
                done = True
                unsubscribe()

        return safe_unsubscribe

    def has_listeners(self, event_type: str) -> bool:
        return bool(self._match_all) or event_type in self._listeners

    def listener_counts(self) -> dict[str, int]:
        counts = {etype: len(lis) for etype, lis in self._listeners.items()}
        if self._match_all:
            counts[MATCH_ALL] = len(self._match_all)
        return counts

    def fire(
        self,
        event_type: str,
        data: Mapping[str, Any] | None = None,
        origin: EventOrigin = EventOrigin.local,
        context: Context | None = None,
        time_fired_ts: float | None = None,
    ) -> None:
        """Fire an event; listeners see it before `fire` returns (coroutines are scheduled)."""
        listeners = self._listeners.get(event_type)
        if listeners is None and not self._match_all:
            return  # nobody listens: skip even building the Event
        self.dispatch(Event(event_type, data, origin, time_fired_ts, context), listeners)

    def dispatch(self, event: Event, listeners: tuple[_Listener, ...] | None = None) -> None:
        if listeners:
            self._run(listeners, event)
        if self._match_all:
            self._run(self._match_all, event)

    def _run(self, listeners: tuple[_Listener, ...], event: Event) -> None:
        for listener in listeners:
            try:
                if listener.event_filter is not None and not listener.event_filter(event):
                    continue
                if listener.backlog is not None:
                    listener.backlog.append(event)
                    if listener.worker is None:
                        listener.worker = self._tasks.spawn(self._drain(listener))
                    elif len(listener.backlog) == self.BACKLOG_WARNING:
                        _LOGGER.warning(
                            "Listener %s is %d events behind", listener.name, self.BACKLOG_WARNING
                        )
                else:
                    result = listener.callback(event)
                    if result is not None and inspect.isawaitable(result):
                        # A plain function that returned a coroutine (`lambda e: self.go(e)`):
                        # run it rather than drop it, as service calls do.
                        self._tasks.spawn(_await(result))
            except Exception:
                _LOGGER.exception(
                    "Listener %s failed on %s event", listener.name, event.event_type
                )

    @staticmethod
    async def _drain(listener: _Listener) -> None:
        backlog = listener.backlog
        assert backlog is not None
        handled = 0
        try:
            while backlog:
                event = backlog.popleft()
                try:
                    await listener.callback(event)
                except Exception:
                    _LOGGER.exception(
                        "Listener %s failed on %s event", listener.name, event.event_type
                    )
                handled += 1
                if handled % 256 == 0:
                    await asyncio.sleep(0)  # a long backlog must not starve the loop
        finally:
            listener.worker = None


async def _await(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        _LOGGER.exception("Listener coroutine failed")


class TaskRunner:
    """Keeps a reference to every background task so it is neither garbage-collected nor
    forgotten at shutdown."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for running tasks (and those they start) up to `timeout`, then cancel the rest."""
        deadline = time.monotonic() + timeout
        while (others := self._others()) and (remaining := deadline - time.monotonic()) > 0:
            await asyncio.wait(others, timeout=remaining)
        await self.cancel_all()

    def _others(self) -> list[asyncio.Task[Any]]:
        # The task that drains (e.g. the hub's own stop) must not wait for or cancel itself.
        current = asyncio.current_task()
        return [task for task in self.tasks if task is not current and not task.done()]

    async def cancel_all(self) -> None:
        pending = self._others()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class ReadOnlyDict(dict[str, Any]):
    """A dict that refuses changes: state attributes are a snapshot."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("State attributes are read-only; set a new state instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]


_EMPTY_ATTRIBUTES: Final = ReadOnlyDict()


class State:
    """An immutable snapshot of one entity: its state string and attributes, and when they
    changed (`last_changed`: the state string; `last_updated`: state or attributes;
    `last_reported`: the same values reported again)."""

    __slots__ = (
        "entity_id",
        "state",
        "attributes",
        "last_changed_ts",
        "last_updated_ts",
        "last_reported_ts",
        "_context",
    )

    def __init__(
        self,
        entity_id: str,
        state: str,
        attributes: Mapping[str, Any] | None = None,
        last_changed_ts: float | None = None,
        last_updated_ts: float | None = None,
        context: Context | None = None,
        validate: bool = True,
    ) -> None:
        if validate:
            if not valid_entity_id(entity_id):
                raise InvalidEntityId(
                    f"Invalid entity id {entity_id!r}: use domain.object_id with lower-case "
                    "letters, digits and underscores"
                )
            state = str(state)
            if len(state) > MAX_STATE_LENGTH:
                raise InvalidStateError(
                    f"State of {entity_id} is {len(state)} characters long; the limit is "
                    f"{MAX_STATE_LENGTH}"
                )
        self.entity_id = entity_id
        self.state = state
        if attributes is None:
            self.attributes = _EMPTY_ATTRIBUTES
        elif type(attributes) is ReadOnlyDict:
            self.attributes = attributes
        else:
            self.attributes = ReadOnlyDict(attributes)
        now = time.time()
        self.last_updated_ts = now if last_updated_ts is None else last_updated_ts
        self.last_changed_ts = self.last_updated_ts if last_changed_ts is None else last_changed_ts
        self.last_reported_ts = self.last_updated_ts
        self._context = context  # made on first read: saves memory and time per state

    @property
    def context(self) -> Context:
        if self._context is None:
            self._context = Context()
        return self._context

    @property
    def domain(self) -> str:
        return self.entity_id.partition(".")[0]

    @property
    def object_id(self) -> str:
        return self.entity_id.partition(".")[2]

    @property
    def last_changed(self) -> datetime:
        return utc_from_timestamp(self.last_changed_ts)

    @property
    def last_updated(self) -> datetime:
        return utc_from_timestamp(self.last_updated_ts)

    @property
    def last_reported(self) -> datetime:
        return utc_from_timestamp(self.last_reported_ts)

    @property
    def name(self) -> str:
        return self.attributes.get("friendly_name") or self.object_id.replace("_", " ")

    def as_dict(self) -> dict[str, Any]:
        """The shape of Home Assistant's REST and WebSocket state objects."""
        return {
            "entity_id": self.entity_id,
            "state": self.state,
            "attributes": dict(self.attributes),
            "last_changed": self.last_changed.isoformat(),
            "last_reported": self.last_reported.isoformat(),
            "last_updated": self.last_updated.isoformat(),
            "context": self.context.as_dict(),
        }

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, State)
            and self.entity_id == other.entity_id
            and self.state == other.state
            and self.attributes == other.attributes
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        attrs = f"; {dict(self.attributes)}" if self.attributes else ""
        return f"<State {self.entity_id}={self.state}{attrs}>"


class StateMachine:
    """The current State of every entity. `set` fires `state_changed` only on a real change."""

    def __init__(self, bus: EventBus) -> None:
        self._states: dict[str, State] = {}
        self._bus = bus
        self._entity_listeners: dict[str, tuple[_Listener, ...]] = {}

    def get(self, entity_id: str) -> State | None:
        return self._states.get(entity_id) or self._states.get(entity_id.lower())

    def all(self, domain: str | Iterable[str] | None = None) -> list[State]:
        if domain is None:
            return list(self._states.values())
        domains = (domain,) if isinstance(domain, str) else tuple(domain)
        return [state for state in self._states.values() if state.domain in domains]

    def entity_ids(self, domain: str | None = None) -> list[str]:
        if domain is None:
            return list(self._states)
        return [eid for eid, state in self._states.items() if state.domain == domain]

    def __contains__(self, entity_id: str) -> bool:
        return entity_id in self._states

    def __len__(self) -> int:
        return len(self._states)

    def is_state(self, entity_id: str, state: str) -> bool:
        current = self._states.get(entity_id)
        return current is not None and current.state == state

    def set(
        self,
        entity_id: str,
        new_state: Any,
        attributes: Mapping[str, Any] | None = None,
        force_update: bool = False,
        context: Context | None = None,
    ) -> State:
        """Store a new state for `entity_id` and return the State now current."""
        new_state = new_state if type(new_state) is str else str(new_state)
        old = self._states.get(entity_id)
        if old is None and not entity_id.islower():
            entity_id = entity_id.lower()
            old = self._states.get(entity_id)
        now = time.time()
        if old is not None:
            same_state = old.state == new_state and not force_update
            attrs = old.attributes if attributes is None else attributes
            same_attributes = attrs is old.attributes or old.attributes == attrs
            if same_state and same_attributes:
                # Nothing changed: only note that the device reported it again.
                old.last_reported_ts = now
                if self._bus.has_listeners(EVENT_STATE_REPORTED):
                    self._bus.fire(
                        EVENT_STATE_REPORTED,
                        {"entity_id": entity_id, "new_state": old},
                        context=context,
                        time_fired_ts=now,
                    )
                return old
            if same_attributes:
                attrs = old.attributes
            if len(new_state) > MAX_STATE_LENGTH:
                raise InvalidStateError(
                    f"State of {entity_id} is {len(new_state)} characters long; the limit is "
                    f"{MAX_STATE_LENGTH}"
                )
            state = State(
                entity_id,
                new_state,
                attrs,
                old.last_changed_ts if same_state else now,
                now,
                context,
                validate=False,  # the id was checked when the entity first appeared
            )
        else:
            state = State(entity_id, new_state, attributes, now, now, context)
        self._states[entity_id] = state
        self._fire_changed(entity_id, old, state, now)
        return state

    def remove(self, entity_id: str, context: Context | None = None) -> bool:
        """Remove an entity's state; fires `state_changed` with `new_state: None`."""
        old = self._states.pop(entity_id.lower(), None)
        if old is None:
            return False
        self._fire_changed(old.entity_id, old, None, time.time(), context)
        return True

    def _fire_changed(
        self,
        entity_id: str,
        old: State | None,
        new: State | None,
        now: float,
        context: Context | None = None,
    ) -> None:
        bus_listeners = self._bus._listeners.get(EVENT_STATE_CHANGED)
        entity_listeners = self._entity_listeners.get(entity_id)
        if bus_listeners is None and entity_listeners is None and not self._bus._match_all:
            return
        event = Event(
            EVENT_STATE_CHANGED,
            {"entity_id": entity_id, "old_state": old, "new_state": new},
            EventOrigin.local,
            now,
            new.context if new is not None else context,
        )
        if entity_listeners is not None:
            self._bus._run(entity_listeners, event)
        self._bus.dispatch(event, bus_listeners)

    def listen(self, entity_ids: str | Iterable[str], callback: Callback) -> Unsubscribe:
        """Call `callback(event)` on `state_changed` of these entities only (indexed, so a
        change wakes only the listeners of that entity)."""
        ids = [eid.lower() for eid in ([entity_ids] if isinstance(entity_ids, str) else entity_ids)]
        listener = _Listener(callback, None)
        for eid in ids:
            self._entity_listeners[eid] = (*self._entity_listeners.get(eid, ()), listener)

        def unsubscribe() -> None:
            for eid in ids:
                remaining = tuple(
                    li for li in self._entity_listeners.get(eid, ()) if li is not listener
                )
                if remaining:
                    self._entity_listeners[eid] = remaining
                else:
                    self._entity_listeners.pop(eid, None)

        return unsubscribe


class CoreState(enum.StrEnum):
    not_running = "NOT_RUNNING"
    starting = "STARTING"
    running = "RUNNING"
    stopping = "STOPPING"
    stopped = "STOPPED"


class Hub:
    """One hub: the bus, states, services, registries and the integrations plugged into it.

    `start()` loads the configuration and sets up every configured integration in dependency
    order; `stop()` fires `hub_stop` and unloads them in reverse order.
    """

    def __init__(
        self,
        config_dir: str | os.PathLike[str],
        *,
        plugin_manager: Any = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        # Siblings import the core, so the core imports them only once it is fully defined.
        from .auth import AuthManager
        from .entity import EntityCollection
        from .notifications import Notifications
        from .registry import AreaRegistry, DeviceRegistry, EntityRegistry, resolve_target
        from .services import ServiceRegistry

        from pathlib import Path

        self.config_dir = Path(config_dir)
        self.tasks = TaskRunner()
        self.bus = EventBus(self.tasks)
        self.states = StateMachine(self.bus)
        self.services = ServiceRegistry(self.bus, functools.partial(resolve_target, self))
        self.notifications = Notifications(self.bus)
        self.state = CoreState.not_running
        self.config: dict[str, Any] = {"name": "Home", "time_zone": "UTC", "unit_system": "metric"}
        self.areas = AreaRegistry(self)
        self.devices = DeviceRegistry(self)
        self.entity_registry = EntityRegistry(self)
        self.auth = AuthManager(self)
        self.entities = EntityCollection(self)
        self.plugin_manager = plugin_manager
        # Settings given on the command line (`hub run --port`), laid over configuration.yaml.
        self.overrides = {domain: dict(values) for domain, values in (overrides or {}).items()}
        self.integrations: dict[str, Any] = {}  # domain -> plugins.IntegrationStatus
        self.urls: list[str] = []  # where users reach the hub; filled by the http integration
        # Each integration's runtime object, by domain, for its API routes and other plugins.
        self.data: dict[str, Any] = {}
        self._exit_stack: Any = None
        self._stop_requested: asyncio.Event | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._start_done: asyncio.Event | None = None
        self._stopping_early = False
        self.exit_code = 0
        # How long stop() waits for background work (listener coroutines) before cancelling it.
        self.stop_grace_seconds = 1.0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def create_task(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run `coro` in the background; the hub cancels it at stop if it is still running."""
        return self.tasks.spawn(coro, name)

    async def run_in_executor(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (file writes, CPU-heavy decoding) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    @property
    def stop_requested(self) -> bool:
        """True once stop() was called: a start still under way sets up nothing more."""
        return self.state in (CoreState.stopping, CoreState.stopped) or self._stopping_early

    async def start(self) -> None:
        """Load the config dir and set up the integrations; returns when the hub is running
        (or, if stop() was called meanwhile, when it has stopped setting things up)."""
        from contextlib import AsyncExitStack

        from .plugins import make_plugin_manager, setup_integrations

        self.state = CoreState.starting
        self._stop_requested = asyncio.Event()
        self._start_done = asyncio.Event()
        try:
            if self.plugin_manager is None:
                self.plugin_manager = make_plugin_manager()
            await self.areas.load()
            await self.devices.load()
            await self.entity_registry.load()
            await self.auth.load()
            self._exit_stack = AsyncExitStack()
            await setup_integrations(self, self._exit_stack)
        finally:
            self._start_done.set()
        if self._stopping_early:
            return  # stop() is waiting for us, then unloads what was set up
        self.bus.fire(EVENT_HUB_START)
        self.state = CoreState.running
        self.bus.fire(EVENT_HUB_STARTED)

    async def stop(self, exit_code: int = 0) -> None:
        """Fire `hub_stop`, unload integrations in reverse order, save the registries."""
        if self.state in (CoreState.stopping, CoreState.stopped):
            return
        if self.state is CoreState.starting and self._start_done is not None:
            # Ctrl-C during a slow set-up: let start() finish the integration under way and
            # set up no more, then unload everything that was set up.
            self._stopping_early = True
            await self._start_done.wait()
        self.exit_code = exit_code
        self.state = CoreState.stopping
        self.bus.fire(EVENT_HUB_STOP)
        await asyncio.sleep(0)  # let hub_stop coroutine listeners start
        if self._exit_stack is not None:
            try:
                await self._exit_stack.aclose()
            except Exception:
                _LOGGER.exception("Error while unloading integrations")
        await self.tasks.drain(timeout=self.stop_grace_seconds)
        for registry in (self.areas, self.devices, self.entity_registry):
            await registry.flush()
        await self.auth.flush()
        self.state = CoreState.stopped
        if self._stop_requested is not None:
            self._stop_requested.set()

    def request_stop(self, exit_code: int = 0) -> None:
        """Ask a running hub to stop (from a signal handler or a service)."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self.stop(exit_code))

    async def wait_stopped(self) -> int:
        assert self._stop_requested is not None, "start() first"
        await self._stop_requested.wait()
        return self.exit_code
