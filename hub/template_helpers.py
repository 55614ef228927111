"""The functions, filters and tests of templates (Home Assistant's names and semantics), and the
per-render context they read: which hub, which entities were looked at, the time budget.
`hub/template.py` builds the sandboxed environment and the Template class from these."""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time as dt_time, timedelta, timezone, tzinfo
from functools import lru_cache, wraps
from typing import Any, Final, NoReturn
from zoneinfo import ZoneInfo

import jinja2
import orjson
from jinja2 import pass_context, pass_environment
from jinja2.filters import do_int, do_max, do_min
from jinja2.sandbox import SecurityError

from .core import STATE_UNAVAILABLE, STATE_UNKNOWN, State, valid_entity_id
from .exceptions import TemplateError
from .registry import slugify as registry_slugify

_LOGGER = logging.getLogger(__name__)

MAX_OUTPUT: Final = 256 * 1024  # characters a render may produce
MAX_RANGE: Final = 100_000  # items in one range()
MAX_RANGE_ITEMS: Final = 1_000_000  # range() items per render, all loops together
MAX_RENDER_SECONDS: Final = 5.0  # a guard against runaway loops, not a performance budget
DATE_STR_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
_SENTINEL: Final = object()
_IS_NUMERIC = re.compile(r"^[+-]?(?!0\d)\d*(?:\.\d*)?$")
_DOMAIN_RE = re.compile(r"^[a-z0-9_]+$")
# Jinja and its sandbox probe callables for these names; `states.<name>` must not answer them.
_RESERVED = frozenset(
    {"jinja_pass_arg", "unsafe_callable", "alters_data", "contextfunction", "environmentfunction"}
)


def is_template_string(value: str) -> bool:
    """True if `value` contains Jinja syntax (`{{`, `{%` or `{#`)."""
    return "{{" in value or "{%" in value or "{#" in value


@dataclass(slots=True)
class RenderInfo:
    """What one render produced and read. `all_states`: it iterated every state; `has_time`: it
    called now()/utcnow()/today_at(), so its result changes with the clock."""

    result: Any = None
    entities: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    all_states: bool = False
    has_time: bool = False
    error: str | None = None


class _Render:
    """The render in progress, kept in a ContextVar so helpers find their hub and time zone."""

    __slots__ = ("source", "strict", "info", "hub", "tz", "deadline", "max_seconds", "range_items")

    def __init__(self, source: str, strict: bool, info: RenderInfo | None, hub: Any,
                 max_seconds: float | None = None) -> None:
        self.source = source
        self.strict = strict
        self.info = info
        self.hub = hub
        self.tz: tzinfo = timezone.utc
        if hub is not None:
            self.tz = ZoneInfo(hub.config.get("time_zone") or "UTC")
        self.max_seconds = MAX_RENDER_SECONDS if max_seconds is None else max_seconds
        self.deadline = time.monotonic() + self.max_seconds
        self.range_items = 0


_RENDER: ContextVar[_Render | None] = ContextVar("hub_template_render", default=None)


def _info() -> RenderInfo | None:
    render = _RENDER.get()
    return render.info if render is not None else None


def _tz() -> tzinfo:
    render = _RENDER.get()
    return render.tz if render is not None else timezone.utc


def _no_default(name: str, value: Any) -> NoReturn:
    render = _RENDER.get()
    source = render.source if render is not None else ""
    raise TemplateError(
        f"Template error: {name} got invalid input '{value}' when rendering template "
        f"'{source}' but no default was specified"
    )


def _tick() -> None:
    render = _RENDER.get()
    if render is not None and time.monotonic() > render.deadline:
        raise TemplateError(f"Template took longer than {render.max_seconds:g} s to render")


class _HubUndefined(jinja2.Undefined):
    """HA's behaviour: an undefined variable renders empty and logs a warning; with strict=True
    it raises. A sandbox violation always raises (plain Jinja would render it empty)."""

    __slots__ = ()

    def _complain(self) -> None:
        render = _RENDER.get()
        if self._undefined_exception is SecurityError or (render is not None and render.strict):
            self._fail_with_undefined_error()
        _LOGGER.warning(
            "Template variable warning: %s when rendering '%s'",
            self._undefined_message,
            render.source if render is not None else "",
        )

    def __str__(self) -> str:
        self._complain()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._complain()
        return iter(())

    def __bool__(self) -> bool:
        self._complain()
        return False

    def __len__(self) -> int:
        self._complain()
        return 0

    def __eq__(self, other: object) -> bool:
        render = _RENDER.get()
        if render is not None and render.strict:
            self._fail_with_undefined_error()
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = jinja2.Undefined.__hash__


# --- States -------------------------------------------------------------------------------------


def _hub_states() -> Any:
    render = _RENDER.get()
    if render is None or render.hub is None:
        raise TemplateError("State helpers need a hub: create the Template with one")
    return render.hub.states


def _get_state(entity_id: str, validate: bool = False) -> State | None:
    info = _info()
    if info is not None:
        info.entities.add(entity_id)
    state = _hub_states().get(entity_id)
    if state is None and validate and not valid_entity_id(entity_id):
        raise TemplateError(f"Invalid entity ID '{entity_id}'")
    return state


def _resolve(entity: Any) -> State | None:
    """An entity id, a State or a TemplateState -> the State (or None)."""
    if isinstance(entity, TemplateState):
        entity = entity._state
    if isinstance(entity, State):
        if (info := _info()) is not None:
            info.entities.add(entity.entity_id)
        return entity
    return _get_state(entity) if isinstance(entity, str) else None


class TemplateState:
    """What templates see of a State: read-only, no way back to the hub."""

    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    entity_id = property(lambda self: self._state.entity_id)
    state = property(lambda self: self._state.state)
    attributes = property(lambda self: self._state.attributes)
    domain = property(lambda self: self._state.domain)
    object_id = property(lambda self: self._state.object_id)
    name = property(lambda self: self._state.name)
    last_changed = property(lambda self: self._state.last_changed)
    last_updated = property(lambda self: self._state.last_updated)
    last_reported = property(lambda self: self._state.last_reported)
    context = property(lambda self: self._state.context)

    @property
    def state_with_unit(self) -> str:
        unit = self._state.attributes.get("unit_of_measurement")
        return f"{self._state.state} {unit}" if unit else self._state.state

    def as_dict(self) -> dict[str, Any]:
        return self._state.as_dict()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TemplateState):
            other = other._state
        return self._state == other

    def __hash__(self) -> int:
        return hash(self._state.entity_id)

    def __repr__(self) -> str:
        return f"<template TemplateState({self._state!r})>"


def _wrap_sorted(states: Iterable[State]) -> list[TemplateState]:
    return [TemplateState(s) for s in sorted(states, key=lambda s: s.entity_id)]


class DomainStates:
    """`states.sensor`: `.temp` is one entity; iterating gives the domain's states."""

    __slots__ = ("_domain",)

    def __init__(self, domain: str) -> None:
        self._domain = domain

    def __getattr__(self, name: str) -> TemplateState | None:
        if name.startswith("_") or name in _RESERVED:
            raise AttributeError(name)
        state = _get_state(f"{self._domain}.{name}", validate=True)
        return TemplateState(state) if state is not None else None

    def _collect(self) -> None:
        if (info := _info()) is not None:
            info.domains.add(self._domain)

    def __iter__(self) -> Iterator[TemplateState]:
        self._collect()
        return iter(_wrap_sorted(_hub_states().all(self._domain)))

    def __len__(self) -> int:
        self._collect()
        return len(_hub_states().entity_ids(self._domain))

    def __repr__(self) -> str:
        return f"<template DomainStates('{self._domain}')>"


class AllStates:
    """The `states` global: `states('x.y')`, `states.x.y`, `states['x.y']`, and iteration."""

    __slots__ = ()

    def __call__(self, entity_id: Any, rounded: bool = False, with_unit: bool = False) -> str:
        # `rounded` is accepted for compatibility: there is no display precision to apply yet.
        state = _resolve(entity_id)
        if state is None:
            return STATE_UNKNOWN
        return TemplateState(state).state_with_unit if with_unit else state.state

    def __getattr__(self, name: str) -> DomainStates | TemplateState | None:
        if name.startswith("_") or name in _RESERVED:
            raise AttributeError(name)
        if "." in name:  # states['sensor.temp']: Jinja falls back from [] to attribute access
            state = _get_state(name, validate=True)
            return TemplateState(state) if state is not None else None
        if not _DOMAIN_RE.match(name):
            raise TemplateError(f"Invalid domain name '{name}'")
        return DomainStates(name)

    def _collect(self) -> None:
        if (info := _info()) is not None:
            info.all_states = True

    def __iter__(self) -> Iterator[TemplateState]:
        self._collect()
        return iter(_wrap_sorted(_hub_states().all()))

    def __len__(self) -> int:
        self._collect()
        return len(_hub_states())

    def __repr__(self) -> str:
        return "<template AllStates>"


def is_state(entity_id: Any, state: Any) -> bool:
    obj = _resolve(entity_id)
    return obj is not None and (
        obj.state == state or (isinstance(state, (list, tuple)) and obj.state in state)
    )


def state_attr(entity_id: Any, name: str) -> Any:
    obj = _resolve(entity_id)
    return obj.attributes.get(name) if obj is not None else None


def is_state_attr(entity_id: Any, name: str, value: Any) -> bool:
    attr = state_attr(entity_id, name)
    return attr is not None and attr == value


def has_value(entity_id: Any) -> bool:
    obj = _resolve(entity_id)
    return obj is not None and obj.state not in (STATE_UNKNOWN, STATE_UNAVAILABLE)


def expand(*args: Any) -> list[TemplateState]:
    """Entity ids, states or lists of them -> their states, sorted, once each. A `group.*` state
    with an `entity_id` attribute expands to its members."""
    search, found = list(args), {}
    while search:
        item = search.pop()
        if isinstance(item, (str, State, TemplateState)):
            state = _resolve(item)
            if state is None or state.entity_id in found:
                continue
            members = state.attributes.get("entity_id") if state.domain == "group" else None
            if members:
                found[state.entity_id] = None  # visited: stops cycles between groups
                search.extend([members] if isinstance(members, str) else members)
            else:
                found[state.entity_id] = state
        elif isinstance(item, Iterable):
            search.extend(item)
    return _wrap_sorted(s for s in found.values() if s is not None)


# --- Time ---------------------------------------------------------------------------------------


def _mark_time() -> None:
    if (info := _info()) is not None:
        info.has_time = True


def now() -> datetime:
    _mark_time()
    return datetime.now(_tz())


def utcnow() -> datetime:
    _mark_time()
    return datetime.now(timezone.utc)


def _parse_time(text: str) -> dt_time | None:
    parts = text.split(":")
    if not 2 <= len(parts) <= 3:
        return None
    try:
        return dt_time(*(int(part) for part in parts))
    except ValueError:
        return None


def today_at(time_str: str = "") -> datetime:
    """Today (in the hub's time zone) at `HH:MM[:SS]`, or at midnight."""
    today = now().date()
    parsed = _parse_time(time_str) if time_str else dt_time()
    if parsed is None:
        raise TemplateError(f"today_at could not convert '{time_str}' to a time (use HH:MM)")
    return datetime.combine(today, parsed, tzinfo=_tz())


def _parse_datetime(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None


def as_timestamp(value: Any, default: Any = _SENTINEL) -> Any:
    """A datetime or ISO string -> UNIX timestamp; naive times are in the hub's time zone."""
    parsed = value if isinstance(value, datetime) else _parse_datetime(value)
    if parsed is None:
        return default if default is not _SENTINEL else _no_default("as_timestamp", value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_tz())
    return parsed.timestamp()


def as_datetime(value: Any, default: Any = _SENTINEL) -> Any:
    """A UNIX timestamp or ISO string -> datetime (HA: a bad string gives None without default)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, dt_time())
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except (ValueError, TypeError, OverflowError, OSError):
        pass
    if (parsed := _parse_datetime(value)) is not None:
        return parsed
    if default is not _SENTINEL:
        return default
    return None if isinstance(value, str) else _no_default("as_datetime", value)


def as_local(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=_tz())
    return value.astimezone(_tz())


def _from_timestamp(name: str, value: Any, default: Any, local: bool) -> Any:
    try:
        result = datetime.fromtimestamp(float(value), timezone.utc)
    except (ValueError, TypeError, OverflowError, OSError):
        return default if default is not _SENTINEL else _no_default(name, value)
    return result.astimezone(_tz()) if local else result


def timestamp_custom(
    value: Any, format_string: str = DATE_STR_FORMAT, local: bool = True, default: Any = _SENTINEL
) -> Any:
    result = _from_timestamp("timestamp_custom", value, default, local)
    return result.strftime(format_string) if isinstance(result, datetime) else result


def timestamp_local(value: Any, default: Any = _SENTINEL) -> Any:
    result = _from_timestamp("timestamp_local", value, default, True)
    return result.isoformat() if isinstance(result, datetime) else result


def timestamp_utc(value: Any, default: Any = _SENTINEL) -> Any:
    result = _from_timestamp("timestamp_utc", value, default, False)
    return result.isoformat() if isinstance(result, datetime) else result


# --- Numbers and conversions --------------------------------------------------------------------


def forgiving_float(value: Any, default: Any = _SENTINEL) -> Any:
    try:
        return float(value)
    except (ValueError, TypeError):
        return default if default is not _SENTINEL else _no_default("float", value)


def forgiving_int(value: Any, default: Any = _SENTINEL, base: int = 10) -> Any:
    result = do_int(value, default=_SENTINEL, base=base)  # type: ignore[arg-type]
    if result is _SENTINEL:
        return default if default is not _SENTINEL else _no_default("int", value)
    return result


def forgiving_bool(value: Any, default: Any = _SENTINEL) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in ("1", "true", "yes", "on", "enable"):
        return True
    if text in ("0", "false", "no", "off", "disable"):
        return False
    return default if default is not _SENTINEL else _no_default("bool", value)


def is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (ValueError, TypeError):
        return False
    return math.isfinite(number)


def forgiving_round(
    value: Any, precision: int = 0, method: str = "common", default: Any = _SENTINEL
) -> Any:
    try:
        multiplier = float(10**precision)
        if method == "ceil":
            value = math.ceil(float(value) * multiplier) / multiplier
        elif method == "floor":
            value = math.floor(float(value) * multiplier) / multiplier
        elif method == "half":
            value = round(float(value) * 2) / 2
        else:
            value = round(float(value), precision)
        # HA truncates "half" too at precision 0 (2.3 -> 2); we keep the 2.5 asked for.
        return int(value) if precision == 0 and method != "half" else value
    except (ValueError, TypeError, OverflowError):
        return default if default is not _SENTINEL else _no_default("round", value)


def multiply(value: Any, amount: Any, default: Any = _SENTINEL) -> Any:
    try:
        return float(value) * amount
    except (ValueError, TypeError):
        return default if default is not _SENTINEL else _no_default("multiply", value)


def logarithm(value: Any, base: Any = math.e, default: Any = _SENTINEL) -> Any:
    try:
        return math.log(float(value), float(base))
    except (ValueError, TypeError, ZeroDivisionError):
        return default if default is not _SENTINEL else _no_default("log", value)


def square_root(value: Any, default: Any = _SENTINEL) -> Any:
    try:
        return math.sqrt(float(value))
    except (ValueError, TypeError):
        return default if default is not _SENTINEL else _no_default("sqrt", value)


def _statistic(name: str, func: Callable[[Any], Any]) -> Callable[..., Any]:
    """average/median: of one iterable (a 2nd argument is the default) or of the arguments."""

    def wrapper(*args: Any, default: Any = _SENTINEL) -> Any:
        if not args:
            raise TypeError(f"{name} expected at least 1 argument, got 0")
        if isinstance(args[0], Iterable):
            values = args[0]
            if len(args) > 1 and default is _SENTINEL:
                default = args[1]
        elif len(args) == 1:
            raise TypeError(f"'{type(args[0]).__name__}' object is not iterable")
        else:
            values = args
        try:
            return func(values)
        except (TypeError, ValueError, statistics.StatisticsError):
            return default if default is not _SENTINEL else _no_default(name, args)

    wrapper.__name__ = name
    return wrapper


def _min_max(name: str, jinja_filter: Callable[..., Any]) -> Callable[..., Any]:
    """`min(1, 2)` and `min([1, 2])` as globals, on top of Jinja's filters."""

    @pass_environment
    def wrapper(environment: Any, *args: Any, **kwargs: Any) -> Any:
        if not args:
            raise TypeError(f"{name} expected at least 1 argument, got 0")
        if len(args) == 1:
            if isinstance(args[0], Iterable):
                return jinja_filter(environment, args[0], **kwargs)
            raise TypeError(f"'{type(args[0]).__name__}' object is not iterable")
        return jinja_filter(environment, args, **kwargs)

    return wrapper


def iif(value: Any, if_true: Any = True, if_false: Any = False, if_none: Any = _SENTINEL) -> Any:
    if value is None and if_none is not _SENTINEL:
        return if_none
    return if_true if value else if_false


# --- Strings, JSON, regex -----------------------------------------------------------------------


def from_json(value: Any, default: Any = _SENTINEL) -> Any:
    try:
        return orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return default if default is not _SENTINEL else _no_default("from_json", value)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (TemplateState, State)):
        return obj.as_dict()
    if isinstance(obj, (datetime, date, dt_time)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "as_dict") and callable(obj.as_dict):  # Context
        return obj.as_dict()
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def to_json(
    value: Any, ensure_ascii: bool = False, pretty_print: bool = False, sort_keys: bool = False
) -> str:
    if ensure_ascii:  # orjson always writes UTF-8
        indent = 2 if pretty_print else None
        return json.dumps(
            value, ensure_ascii=True, indent=indent, sort_keys=sort_keys, default=_json_default
        )
    option = orjson.OPT_NON_STR_KEYS
    option |= orjson.OPT_INDENT_2 if pretty_print else 0
    option |= orjson.OPT_SORT_KEYS if sort_keys else 0
    return orjson.dumps(value, option=option, default=_json_default).decode()


@lru_cache(maxsize=256)
def _regex(pattern: str, ignorecase: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if ignorecase else 0)


def regex_match(value: Any, find: str = "", ignorecase: bool = False) -> bool:
    return bool(_regex(find, ignorecase).match(str(value)))


def regex_search(value: Any, find: str = "", ignorecase: bool = False) -> bool:
    return bool(_regex(find, ignorecase).search(str(value)))


def regex_replace(value: Any, find: str = "", replace: str = "", ignorecase: bool = False) -> str:
    return _regex(find, ignorecase).sub(replace, str(value))


def regex_findall(value: Any, find: str = "", ignorecase: bool = False) -> list[Any]:
    return _regex(find, ignorecase).findall(str(value))


def regex_findall_index(
    value: Any, find: str = "", index: int = 0, ignorecase: bool = False
) -> Any:
    return regex_findall(value, find, ignorecase)[index]


def slugify(value: Any, separator: str = "_") -> str:
    # The registry's slug; an empty one is "unknown", as in Home Assistant's filter.
    return registry_slugify(value, separator, empty="unknown")


def base64_encode(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def base64_decode(value: str | bytes, encoding: str | None = "utf-8") -> str | bytes:
    decoded = base64.b64decode(value)
    return decoded.decode(encoding) if encoding else decoded


def ordinal(value: Any) -> str:
    number = int(value)
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    if number % 100 in (11, 12, 13):
        suffix = "th"
    return f"{value}{suffix}"


def _safe_range(*args: int) -> range:
    rng = range(*args)
    try:
        size = len(rng)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise TemplateError(f"range() of more than {MAX_RANGE} items is not allowed in templates")
    render = _RENDER.get()
    if render is not None:
        render.range_items += size
        if render.range_items > MAX_RANGE_ITEMS:
            raise TemplateError(f"Template loops over more than {MAX_RANGE_ITEMS} range() items")
    return rng


def _dynamic(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test reading states or the clock: `pass_context` stops Jinja from folding it
    into a constant at compile time."""

    @pass_context
    @wraps(func)
    def wrapper(_context: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


_STATES: Final = AllStates()
_average = _statistic("average", statistics.fmean)
_median = _statistic("median", statistics.median)
_BOTH: Final[dict[str, Callable[..., Any]]] = {  # the same function as global and filter
    "float": forgiving_float, "int": forgiving_int, "bool": forgiving_bool, "is_number": is_number,
    "iif": iif, "log": logarithm, "sqrt": square_root, "average": _average, "median": _median,
    "as_datetime": as_datetime, "slugify": slugify,
}  # fmt: skip
_GLOBALS: Final[dict[str, Any]] = {
    **_BOTH, "states": _STATES, "is_state": is_state, "state_attr": state_attr,
    "is_state_attr": is_state_attr, "has_value": has_value, "expand": expand, "now": now,
    "utcnow": utcnow, "today_at": today_at, "as_timestamp": as_timestamp, "as_local": as_local,
    "timedelta": timedelta, "timestamp_custom": timestamp_custom,
    "timestamp_local": timestamp_local, "timestamp_utc": timestamp_utc,
    "min": _min_max("min", do_min), "max": _min_max("max", do_max),
    "pi": math.pi, "e": math.e, "tau": math.tau, "range": _safe_range,
}  # fmt: skip
_FILTERS: Final[dict[str, Callable[..., Any]]] = {
    **_BOTH, "round": forgiving_round, "multiply": multiply, "from_json": from_json,
    "to_json": to_json, "regex_match": regex_match, "regex_search": regex_search,
    "regex_replace": regex_replace, "regex_findall": regex_findall,
    "regex_findall_index": regex_findall_index, "base64_encode": base64_encode,
    "base64_decode": base64_decode, "ordinal": ordinal,
    **{name: _dynamic(func) for name, func in {
        "is_state": is_state, "state_attr": state_attr,
        "is_state_attr": is_state_attr, "has_value": has_value, "expand": expand,
        "today_at": today_at, "as_timestamp": as_timestamp, "as_local": as_local,
        "timestamp_custom": timestamp_custom,
        "timestamp_local": timestamp_local, "timestamp_utc": timestamp_utc,
    }.items()},
}  # fmt: skip
_TESTS: Final[dict[str, Callable[..., Any]]] = {
    "is_number": is_number, "match": regex_match, "search": regex_search,
    "contains": lambda seq, value: value in seq,
    "is_state": _dynamic(is_state), "is_state_attr": _dynamic(is_state_attr),
    "has_value": _dynamic(has_value),
}  # fmt: skip
