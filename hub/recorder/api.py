"""History, logbook and statistics over REST and WebSocket, in Home Assistant's shapes.

REST: `GET /api/history/period[/<start>]` and `GET /api/logbook[/<start>]` as in HA;
`GET /api/recorder/statistics` (resolution picked by range) and `GET /api/recorder/stats`
(admin) are ours. WebSocket: `history/history_during_period`,
`recorder/statistics_during_period`, `recorder/list_statistic_ids`.

Every read runs in the executor, is bounded (entities per request, states per answer, points
per series) and answers bad input with a 4xx and its reason, never a 500.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import voluptuous as vol
from aiohttp import web

from ..core import valid_entity_id
from ..exceptions import HubError, IntegrationError
from ..http.keys import HUB_KEY
from ..http.openapi import Access, ApiRoute
from ..http.rest import dumps, json_error
from ..http.websocket import RESPONDED, register_command, result_message
from ..http.websocket import dumps as ws_dumps
from .store import StateRow

if TYPE_CHECKING:
    from ..core import Hub
    from ..http.websocket import ActiveConnection
    from .integration import RecorderRuntime

MAX_ENTITIES: Final = 100  # entities (or statistic ids) per request
MAX_STATES: Final = 200_000  # states one history answer may hold
AUTO_POINTS: Final = 2_000  # `period=auto` keeps each series at most about this long
MAX_POINTS: Final = 20_000  # points per series for an explicit period
MAX_LOGBOOK_ROWS: Final = 200_000  # recorded rows a logbook request may read
MAX_LOGBOOK_DAYS: Final = 366
ONE_DAY: Final = 86_400.0
LATEST: Final = 32_503_680_000.0  # 3000-01-01

# Home Assistant's recorder/history/const.py: domains whose attribute-only changes count as
# significant, and those whose every state keeps its attributes in a minimal response.
SIGNIFICANT_DOMAINS: Final = frozenset(
    {"climate", "device_tracker", "humidifier", "thermostat", "water_heater"})
NEED_ATTRIBUTE_DOMAINS: Final = frozenset(
    {"climate", "humidifier", "input_datetime", "thermostat", "water_heater"})

PERIODS: Final = ("raw", "5minute", "hour", "day", "week", "month")
_PERIOD_SECONDS: Final = {"5minute": 300, "hour": 3600, "day": 86_400, "week": 604_800,
                          "month": 2_629_746}
REST_TYPES: Final = ("mean", "min", "max", "last", "count")
WS_TYPES: Final = ("change", "last_reset", "max", "mean", "min", "state", "sum")


class TooLarge(Exception):
    """The answer would pass a bound; the message says how to narrow the request."""


# --- input ---------------------------------------------------------------------------------


def time_zone(hub: Hub) -> tzinfo:
    try:
        return ZoneInfo(str(hub.config.get("time_zone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def parse_time(text: str, tz: tzinfo) -> float | None:
    """An ISO 8601 time as epoch seconds (naive: in the hub's time zone), or None; clamped to
    1970..3000, where every calendar computation stays valid.

    A `+` of an offset that reached us as a space (an unencoded query string) is put back."""
    text = text.strip()
    for candidate in (text, text[:-6] + "+" + text[-5:] if text[-6:-5] == " " else None):
        if not candidate:
            continue
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        try:
            return min(max(value.timestamp(), 0.0), LATEST)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _runtime(hub: Hub) -> RecorderRuntime:
    runtime = hub.data.get("recorder")
    if runtime is None:
        raise json_error(404, "The recorder integration is not set up.")
    return runtime


def _entity_list(hub: Hub, text: str, what: str) -> list[str]:
    """A comma list of entity ids, as HA checks them: known to the state machine or well formed."""
    ids = [part.strip() for part in text.strip().lower().split(",")]
    for entity_id in ids:
        if hub.states.get(entity_id) is None and not valid_entity_id(entity_id):
            raise json_error(400, f"Invalid {what}")
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_ENTITIES:
        raise json_error(400, f"Too many entities: {len(ids)}; at most {MAX_ENTITIES} per request.")
    return ids


async def _read(hub: Hub, build: Callable[[], Any]) -> web.Response:
    """Run a read in the executor and answer its JSON: a bound it passes is the client's 400,
    a database that cannot be read (not created yet, locked, corrupt) a 503."""
    try:
        body = await hub.run_in_executor(lambda: dumps(build()))
    except TooLarge as err:
        raise json_error(400, str(err)) from None
    except sqlite3.Error as err:
        raise IntegrationError(f"The recorder's database cannot be read: {err}") from None
    return _json(body)


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


# --- reading (executor) --------------------------------------------------------------------


def _entity_keys(conn: Any, entity_ids: Iterable[str]) -> dict[str, int]:
    ids = list(entity_ids)
    found: dict[str, int] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        found.update(conn.execute(
            f"SELECT entity_id, id FROM entities WHERE entity_id IN ({marks})", chunk))
    return found


def _estimate_rows(runtime: RecorderRuntime, entity_ids: Iterable[str], start: float,
                   end: float, *, states: bool = True) -> dict[str, int]:
    """Recorded rows per entity in [start, end): text states (with `states`) plus numeric
    samples, whether raw or in blocks (blocks cut by the range counted pro rata)."""
    out: dict[str, int] = {}
    start_us, end_us = round(start * 1e6), round(end * 1e6)
    with runtime.db.read() as conn:
        if conn is None:
            return out
        for entity_id, eid in _entity_keys(conn, entity_ids).items():
            total = conn.execute(
                "SELECT count(*) FROM samples WHERE entity = ? AND ts_us >= ? AND ts_us < ?",
                (eid, start_us, end_us)).fetchone()[0]
            for b_start, b_end, count in conn.execute(
                    "SELECT start_us, end_us, count FROM blocks WHERE entity = ?"
                    " AND end_us >= ? AND start_us < ?", (eid, start_us, end_us)):
                if b_start >= start_us and b_end < end_us:
                    total += count
                else:
                    span = max(b_end - b_start, 1)
                    inside = min(b_end, end_us) - max(b_start, start_us)
                    total += math.ceil(count * max(inside, 0) / span)
            if states:
                total += conn.execute(
                    "SELECT count(*) FROM states WHERE entity = ? AND ts >= ? AND ts < ?",
                    (eid, start, end)).fetchone()[0]
            out[entity_id] = total
    return out


def read_states(runtime: RecorderRuntime, entity_ids: list[str], start: float, end: float,
                *, with_attributes: bool, limit: int | None = None) -> dict[str, list[StateRow]]:
    """Each entity's states in [start, end), the one in effect at `start` first; TooLarge
    before anything is read when the answer would pass `limit` (default MAX_STATES)."""
    limit = MAX_STATES if limit is None else limit
    total = sum(_estimate_rows(runtime, entity_ids, start, end).values())
    if total > limit:
        raise TooLarge(f"About {total} states in this range, more than the {limit} one answer "
                       "may hold: narrow the range or the entities, or read statistics.")
    return runtime.recorder.states(entity_ids, start, max(start, end),
                                   with_attributes=with_attributes, include_start=True)


# --- history -------------------------------------------------------------------------------

# (state, attributes, last_changed, last_updated) of one history entry.
Entry = tuple[str, dict[str, Any] | None, float, float]


def history_entries(entity_id: str, rows: list[StateRow], start: float, *,
                    include_start: bool, significant_only: bool) -> list[Entry]:
    """HA's rules: the state in effect at `start` comes first with both times moved to `start`;
    with `significant_only`, attribute-only changes are left out (except in SIGNIFICANT_DOMAINS)
    and last_changed is reported as last_updated."""
    keep_all = entity_id.partition(".")[0] in SIGNIFICANT_DOMAINS
    out: list[Entry] = []
    for row in rows:
        if row.last_updated < start:
            if include_start:
                out.append((row.state, row.attributes, start, start))
            continue
        if significant_only:
            if not keep_all and row.last_changed != row.last_updated:
                continue
            out.append((row.state, row.attributes, row.last_updated, row.last_updated))
        else:
            out.append((row.state, row.attributes, row.last_changed, row.last_updated))
    return out


def rest_history(entity_id: str, entries: list[Entry], *, minimal: bool,
                 no_attributes: bool) -> list[dict[str, Any]]:
    def full(entry: Entry) -> dict[str, Any]:
        state, attrs, changed, updated = entry
        return {"entity_id": entity_id, "state": state,
                "attributes": {} if no_attributes or attrs is None else attrs,
                "last_changed": iso(changed), "last_updated": iso(updated)}

    if not minimal or entity_id.partition(".")[0] in NEED_ATTRIBUTE_DOMAINS:
        return [full(entry) for entry in entries]
    out = [full(entries[0])]
    previous = entries[0][0]
    for state, _, _, updated in entries[1:]:
        if state != previous:
            out.append({"state": state, "last_changed": iso(updated)})
            previous = state
    return out


def compressed_history(entity_id: str, entries: list[Entry], *, minimal: bool,
                       no_attributes: bool) -> list[dict[str, Any]]:
    def full(entry: Entry) -> dict[str, Any]:
        state, attrs, changed, updated = entry
        item: dict[str, Any] = {"s": state}
        if not no_attributes:
            item["a"] = attrs or {}
        item["lu"] = updated
        if changed != updated:
            item["lc"] = changed
        return item

    if not minimal or entity_id.partition(".")[0] in NEED_ATTRIBUTE_DOMAINS:
        return [full(entry) for entry in entries]
    out = [full(entries[0])]
    previous = entries[0][0]
    for state, _, _, updated in entries[1:]:
        if state != previous:
            out.append({"s": state, "lu": updated})
            previous = state
    return out


def history(runtime: RecorderRuntime, entity_ids: list[str], start: float, end: float, *,
            include_start: bool, significant_only: bool, minimal: bool, no_attributes: bool,
            compressed: bool) -> dict[str, list[dict[str, Any]]]:
    rows = read_states(runtime, entity_ids, start, end, with_attributes=not no_attributes)
    shape = compressed_history if compressed else rest_history
    out = {}
    for entity_id in entity_ids:
        entries = history_entries(entity_id, rows.get(entity_id) or [], start,
                                  include_start=include_start, significant_only=significant_only)
        if entries:
            out[entity_id] = shape(entity_id, entries, minimal=minimal, no_attributes=no_attributes)
    return out


async def get_history(request: web.Request) -> web.Response:
    """HA's HistoryPeriodView: one list of states per entity, in the order asked."""
    hub: Hub = request.app[HUB_KEY]
    runtime = _runtime(hub)
    query = request.query
    tz = time_zone(hub)
    start_text = request.match_info.get("start")
    start = None
    if start_text and (start := parse_time(start_text, tz)) is None:
        raise json_error(400, "Invalid datetime")
    if not (ids_text := query.get("filter_entity_id", "")).strip():
        raise json_error(400, "filter_entity_id is missing")
    entity_ids = _entity_list(hub, ids_text, "filter_entity_id")
    now = time.time()
    if start is None:
        start = now - ONE_DAY
    if start > now:
        return _json(b"[]")
    if end_text := query.get("end_time"):
        if (end := parse_time(end_text, tz)) is None:
            raise json_error(400, "Invalid end_time")
    else:
        end = start + ONE_DAY
    return await _read(hub, lambda: list(history(
        runtime, entity_ids, start, end, include_start="skip_initial_state" not in query,
        significant_only=query.get("significant_changes_only", "1") != "0",
        minimal="minimal_response" in query, no_attributes="no_attributes" in query,
        compressed=False).values()))


async def get_history_from(request: web.Request) -> web.Response:
    return await get_history(request)  # its own name: a distinct OpenAPI operationId


# --- statistics ----------------------------------------------------------------------------


def _bucket_start(ts: float, period: str, tz: tzinfo) -> float:
    if period in ("5minute", "hour"):
        seconds = _PERIOD_SECONDS[period]
        return ts // seconds * seconds
    day = datetime.fromtimestamp(ts, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.timestamp()


def _bucket_end(start: float, period: str, tz: tzinfo) -> float:
    if period in ("5minute", "hour"):
        return start + _PERIOD_SECONDS[period]
    day = datetime.fromtimestamp(start, tz)
    if period == "day":
        nxt = day + timedelta(days=1)
    elif period == "week":
        nxt = day + timedelta(days=7)
    else:
        nxt = day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
    # Wall-clock arithmetic, then the offset of the new day (a DST change in between).
    return nxt.replace(tzinfo=None).replace(tzinfo=tz).timestamp()


def _combine(rows: list[dict[str, Any]], period: str, tz: tzinfo) -> list[dict[str, Any]]:
    """Day, week or month rows from hourly ones: means weighted by the time each covered."""
    groups: dict[float, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_bucket_start(row["start"], period, tz), []).append(row)
    out = []
    for start, group in groups.items():
        duration = sum(r.get("duration") or 0.0 for r in group)
        if duration:
            mean = sum(r["mean"] * (r.get("duration") or 0.0) for r in group) / duration
        else:
            mean = sum(r["mean"] for r in group) / len(group)
        out.append({"start": start, "end": _bucket_end(start, period, tz), "mean": mean,
                    "min": min(r["min"] for r in group), "max": max(r["max"] for r in group),
                    "last": group[-1]["last"], "count": sum(r["count"] for r in group),
                    "duration": duration})
    return out


def _kept(days: float | None, start: float, now: float) -> bool:
    return days is None or start >= now - days * ONE_DAY


def choose_period(runtime: RecorderRuntime, statistic_ids: list[str], start: float,
                  end: float) -> str:
    """The finest resolution keeping every series within AUTO_POINTS: raw samples when few
    enough and still kept, else 5-minute or hourly rollups while their retention covers the
    range, else days, weeks or months of hourly rollups. One resolution for all the series."""
    now = time.time()
    span = max(end - start, 1.0)
    raw_counts = _estimate_rows(runtime, statistic_ids, start, end, states=False)
    choice = 0
    for statistic_id in statistic_ids:
        retention = runtime.settings.retention(statistic_id)
        if _kept(retention.raw, start, now) and raw_counts.get(statistic_id, 0) <= AUTO_POINTS:
            pick = "raw"
        elif _kept(retention.rollup_5m, start, now) and span / 300 <= AUTO_POINTS:
            pick = "5minute"
        elif span / 3600 <= AUTO_POINTS:
            pick = "hour"
        elif span / 86_400 <= AUTO_POINTS:
            pick = "day"
        elif span / 604_800 <= AUTO_POINTS:
            pick = "week"
        else:
            pick = "month"
        choice = max(choice, PERIODS.index(pick))
    return PERIODS[choice]


def check_points(runtime: RecorderRuntime, statistic_ids: list[str], start: float, end: float,
                 period: str) -> None:
    if period == "raw":
        counts = _estimate_rows(runtime, statistic_ids, start, end, states=False)
        points = max(counts.values(), default=0)
    else:
        points = math.ceil(max(end - start, 0) / _PERIOD_SECONDS[period])
    if points > MAX_POINTS:
        raise TooLarge(f"About {points} points per series at period {period}, more than "
                       f"{MAX_POINTS}: use a coarser period (or auto) or a shorter range.")


def series(runtime: RecorderRuntime, statistic_id: str, start: float, end: float, period: str,
           tz: tzinfo) -> list[dict[str, Any]]:
    """Rows with start, end (epoch s), mean, min, max, last, count of the periods starting in
    [start floored to the period, end)."""
    recorder = runtime.recorder
    if period == "raw":
        return [{"start": t, "end": t, "mean": v, "min": v, "max": v, "last": v, "count": 1}
                for t, v in recorder.samples(statistic_id, start, end)]
    if period in ("5minute", "hour"):
        return recorder.rollups(statistic_id, start, end, period)  # type: ignore[arg-type]
    first = _bucket_start(start, period, tz)
    return _combine(recorder.rollups(statistic_id, first, end, "hour"), period, tz)


def rest_statistics(runtime: RecorderRuntime, statistic_ids: list[str], start: float,
                    end: float, period: str, types: list[str], tz: tzinfo) -> dict[str, Any]:
    if period == "auto":
        period = choose_period(runtime, statistic_ids, start, end)
    check_points(runtime, statistic_ids, start, end, period)
    result: dict[str, list[dict[str, Any]]] = {}
    for statistic_id in statistic_ids:
        rows = series(runtime, statistic_id, start, end, period, tz)
        result[statistic_id] = [
            {"start": round(row["start"] * 1000), "end": round(row["end"] * 1000),
             **{key: row[key] for key in types}}
            for row in rows
        ]
    return {"period": period, "start": iso(start), "end": iso(end), "statistics": result}


async def get_statistics(request: web.Request) -> web.Response:
    """Our statistics: `statistic_id` (comma list), `start`, `end`, `period`, `types`."""
    hub: Hub = request.app[HUB_KEY]
    runtime = _runtime(hub)
    query = request.query
    tz = time_zone(hub)
    if not (ids_text := query.get("statistic_id", "")).strip():
        raise json_error(400, "statistic_id is missing")
    statistic_ids = _entity_list(hub, ids_text, "statistic_id")
    now = time.time()
    end = now
    if (end_text := query.get("end")) and (end := parse_time(end_text, tz)) is None:
        raise json_error(400, "Invalid end")
    start = end - ONE_DAY
    if (start_text := query.get("start")) and (start := parse_time(start_text, tz)) is None:
        raise json_error(400, "Invalid start")
    if end <= start:
        raise json_error(400, "end must be after start")
    period = query.get("period", "auto")
    if period != "auto" and period not in PERIODS:
        raise json_error(400, f"Invalid period {period!r}: use auto or one of {', '.join(PERIODS)}")
    types = [t.strip() for t in query.get("types", ",".join(REST_TYPES)).split(",") if t.strip()]
    if not types or any(t not in REST_TYPES for t in types):
        raise json_error(400, f"Invalid types: use some of {', '.join(REST_TYPES)}")
    return await _read(hub, lambda: rest_statistics(
        runtime, statistic_ids, start, end, period, types, tz))


def _accumulates(hub_state: Any) -> tuple[bool, bool]:
    """(a total: report `change`, total_increasing: a drop is a meter reset)."""
    state_class = hub_state.attributes.get("state_class") if hub_state is not None else None
    return state_class in ("total", "total_increasing"), state_class == "total_increasing"


def ws_statistics(runtime: RecorderRuntime, statistic_ids: list[str], start: float,
                  end: float, period: str, types: set[str], tz: tzinfo,
                  classes: dict[str, tuple[bool, bool]]) -> dict[str, list[dict[str, Any]]]:
    """HA's statistics_during_period result: times in ms, `state` is the period's last value,
    `change` (totals only) the difference of last values; `sum` and `last_reset` are not kept
    (None)."""
    check_points(runtime, statistic_ids, start, end, period)
    first = _bucket_start(start, period, tz)
    before = _bucket_start(first - 1, period, tz)  # for the first row's change
    result: dict[str, list[dict[str, Any]]] = {}
    for statistic_id in statistic_ids:
        total, increasing = classes.get(statistic_id, (False, False))
        rows = series(runtime, statistic_id, before if total else start, end, period, tz)
        previous: float | None = None
        out = []
        for row in rows:
            change = None
            if total and previous is not None:
                change = row["last"] - previous
                if increasing and change < 0:
                    change = row["last"]  # the meter was reset: count from zero
            previous = row["last"]
            if row["start"] < first:
                continue
            values = {"mean": row["mean"], "min": row["min"], "max": row["max"],
                      "state": row["last"], "sum": None, "last_reset": None, "change": change}
            out.append({"start": round(row["start"] * 1000), "end": round(row["end"] * 1000),
                        **{key: values[key] for key in WS_TYPES if key in types}})
        if out:
            result[statistic_id] = out
    return result


def list_statistic_ids(runtime: RecorderRuntime) -> list[str]:
    """Entities with numeric data: rollups, raw samples or blocks."""
    with runtime.db.read() as conn:
        if conn is None:
            return []
        return [row[0] for row in conn.execute(
            "SELECT entity_id FROM entities e WHERE"
            " EXISTS (SELECT 1 FROM rollup_1h r WHERE r.entity = e.id)"
            " OR EXISTS (SELECT 1 FROM rollup_5m r WHERE r.entity = e.id)"
            " OR EXISTS (SELECT 1 FROM samples s WHERE s.entity = e.id)"
            " OR EXISTS (SELECT 1 FROM blocks b WHERE b.entity = e.id)"
            " ORDER BY entity_id")]


# --- logbook -------------------------------------------------------------------------------

# Events the logbook shows (besides state changes), and how it words them.
_DESCRIBE: Final[dict[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "logbook_entry": lambda d: {
        "name": d.get("name"), "message": d.get("message"),
        "domain": d.get("domain") or (str(d["entity_id"]).partition(".")[0]
                                      if d.get("entity_id") else None),
        "entity_id": d.get("entity_id")},
    "automation_triggered": lambda d: {
        "name": d.get("name"),
        "message": f"triggered by {d['source']}" if d.get("source") else "triggered",
        "source": d.get("source"), "entity_id": d.get("entity_id"), "domain": "automation"},
    "script_started": lambda d: {
        "name": d.get("name"), "message": "started", "entity_id": d.get("entity_id"),
        "domain": "script"},
    "hub_start": lambda d: {"name": "Hub", "message": "started", "domain": "hub"},
    "hub_stop": lambda d: {"name": "Hub", "message": "stopped", "domain": "hub"},
}
_CONTEXT_EVENTS: Final = ("call_service", *_DESCRIBE)


def keep_context_ids(hub: Hub) -> Callable[[], None]:
    """Give the contexts of the events the logbook links to (service calls, automations) an id
    before the engine queues them. Contexts make their id lazily and the engine stores only ids
    already made; type listeners run before the engine's `*` listener, so the id is there when
    the writer reads it, and the state changes the call causes share the same context."""
    def touch(event: Any) -> None:
        event.context.id  # noqa: B018 - reading it makes it

    removers = [hub.bus.listen(event_type, touch) for event_type in _CONTEXT_EVENTS]
    return lambda: [remove() for remove in removers] and None


def _continuous(entity_id: str, attrs: dict[str, Any] | None) -> bool:
    """HA leaves sensors with a unit or a state class out of the logbook."""
    return entity_id.startswith("sensor.") and bool(attrs) and (
        "unit_of_measurement" in attrs or "state_class" in attrs)


def logbook(runtime: RecorderRuntime, start: float, end: float, entity_ids: list[str] | None,
            names: dict[str, str]) -> list[dict[str, Any]]:
    """Entries in time order: text state changes of non-continuous entities and the events
    above, each with HA's context fields where the cause was recorded."""
    items: list[tuple[float, int, dict[str, Any], tuple[Any, ...], dict[str, Any] | None]] = []
    # (ts, order, entry, (context_id, user_id, parent_id), context source for others)
    wanted = set(entity_ids) if entity_ids else None
    with runtime.db.read() as conn:
        if conn is None:
            return []
        marks = ",".join("?" * len(_CONTEXT_EVENTS))
        events = conn.execute(
            "SELECT e.ts, t.type, d.shared, e.context_id, e.context_user_id, e.context_parent_id"
            " FROM events e JOIN event_types t ON t.id = e.type"
            " LEFT JOIN event_data d ON d.id = e.data"
            f" WHERE e.ts >= ? AND e.ts < ? AND t.type IN ({marks}) ORDER BY e.ts LIMIT ?",
            (start, end, *_CONTEXT_EVENTS, MAX_LOGBOOK_ROWS + 1)).fetchall()
        if len(events) > MAX_LOGBOOK_ROWS:
            raise TooLarge("Too many logbook events in this range: narrow it.")
        if entity_ids:
            candidates = entity_ids
        else:  # every entity but the numeric sensors (continuous: never in the logbook)
            candidates = [row[0] for row in conn.execute(
                "SELECT entity_id FROM entities e WHERE NOT (entity_id LIKE 'sensor.%' AND ("
                " EXISTS (SELECT 1 FROM samples s WHERE s.entity = e.id)"
                " OR EXISTS (SELECT 1 FROM blocks b WHERE b.entity = e.id)))")]
    order = 0
    for ts, event_type, shared, *context in events:
        data = orjson.loads(shared) if shared else {}
        if event_type == "call_service":
            source = {"context_domain": data.get("domain"), "context_service": data.get("service"),
                      "context_event_type": event_type}
            items.append((ts, order, {}, tuple(context), source))
        else:
            entry = _DESCRIBE[event_type](data)
            if wanted is not None and entry.get("entity_id") not in wanted:
                continue
            source = {"context_event_type": event_type, "context_domain": entry.get("domain")}
            if entry.get("name"):
                source["context_name"] = entry["name"]
            if entry.get("message"):
                source["context_message"] = entry["message"]
            items.append((ts, order, {"when": ts, **entry}, tuple(context), source))
        order += 1
    rows = read_states(runtime, candidates, start, end, with_attributes=True,
                       limit=MAX_LOGBOOK_ROWS)
    for entity_id in candidates:
        previous: str | None = None
        for row in rows.get(entity_id) or ():
            state, attrs = row.state, row.attributes
            if row.last_updated < start or state == previous or state == "" or _continuous(
                    entity_id, attrs):
                previous = state
                continue
            previous = state
            name = (attrs or {}).get("friendly_name") or names.get(entity_id) or \
                entity_id.partition(".")[2].replace("_", " ")
            entry = {"when": row.last_updated, "state": state, "entity_id": entity_id,
                     "name": name}
            if attrs and attrs.get("icon"):
                entry["icon"] = attrs["icon"]
            source = {"context_state": state, "context_entity_id": entity_id,
                      "context_entity_id_name": name}
            items.append((row.last_updated, order, entry,
                          (row.context_id, row.context_user_id, row.context_parent_id), source))
            order += 1
    items.sort(key=lambda item: (item[0], item[1]))
    first_of: dict[str, int] = {}
    for index, (_, _, _, (context_id, _, _), _) in enumerate(items):
        if context_id:
            first_of.setdefault(context_id, index)
    out = []
    for index, (_, _, entry, (context_id, user_id, parent_id), _) in enumerate(items):
        if not entry:
            continue  # a call_service: only ever the cause of others
        entry = dict(entry, when=iso(entry["when"]))
        if user_id:
            entry["context_user_id"] = user_id
        origin = first_of.get(context_id) if context_id else None
        if origin == index and parent_id:  # the first of its context: its parent's cause
            origin = first_of.get(parent_id)
        if origin is not None and origin != index and items[origin][4]:
            entry.update(items[origin][4])
        out.append(entry)
    return out


async def get_logbook(request: web.Request) -> web.Response:
    """HA's LogbookView: `entity` (comma list; `entity_id` too), `period` (days) or
    `end_time`; the start defaults to the start of today in the hub's time zone."""
    hub: Hub = request.app[HUB_KEY]
    runtime = _runtime(hub)
    query = request.query
    tz = time_zone(hub)
    if start_text := request.match_info.get("start"):
        if (start := parse_time(start_text, tz)) is None:
            raise json_error(400, "Invalid datetime")
    else:
        start = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    try:
        period = int(query.get("period", "1"))
    except ValueError:
        period = 0
    if not 1 <= period <= MAX_LOGBOOK_DAYS:
        raise json_error(400, f"Invalid period: a number of days from 1 to {MAX_LOGBOOK_DAYS}")
    entity_ids = None
    if ids_text := query.get("entity") or query.get("entity_id"):
        entity_ids = _entity_list(hub, ids_text, "entity id(s); format: <domain>.<object_id>")
    if end_text := query.get("end_time"):
        if (end := parse_time(end_text, tz)) is None:
            raise json_error(400, "Invalid end_time")
    else:
        start = start - (period - 1) * ONE_DAY
        end = start + period * ONE_DAY
    if end - start > MAX_LOGBOOK_DAYS * ONE_DAY:
        raise json_error(400, f"The range is longer than {MAX_LOGBOOK_DAYS} days.")
    names = {state.entity_id: state.name for state in hub.states.all()}
    return await _read(hub, lambda: logbook(runtime, start, end, entity_ids, names))


async def get_logbook_from(request: web.Request) -> web.Response:
    return await get_logbook(request)  # its own name: a distinct OpenAPI operationId


# --- database statistics -------------------------------------------------------------------


async def get_stats(request: web.Request) -> web.Response:
    """The engine's figures: queue, writes, faults; rows and bytes per table and per entity."""
    hub: Hub = request.app[HUB_KEY]
    runtime = _runtime(hub)
    per_entity = request.query.get("per_entity", "1") != "0"
    return await _read(hub, lambda: runtime.recorder.stats(per_entity))


# --- WebSocket -----------------------------------------------------------------------------


def _ws_runtime(connection: ActiveConnection) -> RecorderRuntime:
    runtime = connection.hub.data.get("recorder")
    if runtime is None:
        raise HubError("The recorder integration is not set up.")
    return runtime


async def _send_from_executor(connection: ActiveConnection, msg_id: int,
                              build: Callable[[], Any]) -> Any:
    """Build the result and serialize the whole message off the loop (answers can be large)."""
    try:
        payload = await connection.hub.run_in_executor(
            lambda: ws_dumps(result_message(msg_id, build())))
    except TooLarge as err:
        connection.send_error(msg_id, "too_large", str(err))
        return RESPONDED
    except sqlite3.Error as err:
        raise HubError(f"The recorder's database cannot be read: {err}") from None
    connection.send_message(payload)
    return RESPONDED


def _ws_times(connection: ActiveConnection, msg: dict[str, Any]) -> tuple[float, float] | None:
    tz = time_zone(connection.hub)
    if (start := parse_time(msg["start_time"], tz)) is None:
        connection.send_error(msg["id"], "invalid_start_time", "Invalid start_time")
        return None
    end = time.time()
    if msg.get("end_time") and (end := parse_time(msg["end_time"], tz)) is None:
        connection.send_error(msg["id"], "invalid_end_time", "Invalid end_time")
        return None
    return start, end


def _ws_ids(connection: ActiveConnection, msg_id: int, ids: list[str], what: str) -> list[str] | None:
    ids = list(dict.fromkeys(entity_id.strip().lower() for entity_id in ids))
    if len(ids) > MAX_ENTITIES:
        connection.send_error(msg_id, "invalid_format",
                              f"Too many {what}: {len(ids)}; at most {MAX_ENTITIES}")
        return None
    return ids


async def ws_history_during_period(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    runtime = _ws_runtime(connection)
    times = _ws_times(connection, msg)
    if times is None:
        return RESPONDED
    start, end = times
    if start > time.time():
        return {}
    if (ids := _ws_ids(connection, msg["id"], msg["entity_ids"], "entity_ids")) is None:
        return RESPONDED
    return await _send_from_executor(connection, msg["id"], lambda: history(
        runtime, ids, start, end, include_start=msg["include_start_time_state"],
        significant_only=msg["significant_changes_only"], minimal=msg["minimal_response"],
        no_attributes=msg["no_attributes"], compressed=True))


async def ws_statistics_during_period(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    runtime = _ws_runtime(connection)
    times = _ws_times(connection, msg)
    if times is None:
        return RESPONDED
    start, end = times
    if (ids := _ws_ids(connection, msg["id"], msg["statistic_ids"], "statistic_ids")) is None:
        return RESPONDED
    types = msg.get("types") or set(WS_TYPES)
    tz = time_zone(connection.hub)
    classes = {sid: _accumulates(connection.hub.states.get(sid)) for sid in ids}
    return await _send_from_executor(connection, msg["id"], lambda: ws_statistics(
        runtime, ids, start, end, msg["period"], types, tz, classes))


async def ws_list_statistic_ids(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    runtime = _ws_runtime(connection)
    if msg.get("statistic_type") == "sum":
        return []  # only means are kept (no sums)
    try:
        ids = await connection.hub.run_in_executor(list_statistic_ids, runtime)
    except sqlite3.Error as err:
        raise HubError(f"The recorder's database cannot be read: {err}") from None
    out = []
    for statistic_id in ids:
        state = connection.hub.states.get(statistic_id)
        unit = state.attributes.get("unit_of_measurement") if state is not None else None
        out.append({
            "statistic_id": statistic_id, "display_unit_of_measurement": unit,
            "has_mean": True, "mean_type": 1, "has_sum": False,
            "name": state.name if state is not None else None, "source": "recorder",
            "statistics_unit_of_measurement": unit, "unit_class": None,
        })
    return out


_WS_COMMANDS: Final = (
    ("history/history_during_period", ws_history_during_period, {
        vol.Required("start_time"): str,
        vol.Optional("end_time"): str,
        vol.Required("entity_ids"): vol.All([str], vol.Length(min=1)),
        vol.Optional("include_start_time_state", default=True): bool,
        vol.Optional("significant_changes_only", default=True): bool,
        vol.Optional("minimal_response", default=False): bool,
        vol.Optional("no_attributes", default=False): bool,
    }),
    ("recorder/statistics_during_period", ws_statistics_during_period, {
        vol.Required("start_time"): str,
        vol.Optional("end_time"): str,
        vol.Required("statistic_ids"): vol.All([str], vol.Length(min=1)),
        vol.Required("period"): vol.In(("5minute", "hour", "day", "week", "month")),
        vol.Optional("units"): dict,
        vol.Optional("types"): vol.All([vol.In(WS_TYPES)], vol.Coerce(set)),
    }),
    ("recorder/list_statistic_ids", ws_list_statistic_ids, {
        vol.Optional("statistic_type"): vol.In(("sum", "mean")),
    }),
)

_ws_users = 0
_ws_removers: list[Callable[[], None]] = []


def register_websocket_commands() -> Callable[[], None]:
    """Add the commands (read-only: any user); the returned function takes them away again.
    Counted, so that several hubs in one process (tests) share the one command registry;
    a handler serves the hub of its connection."""
    global _ws_users
    if _ws_users == 0:
        _ws_removers[:] = [register_command(name, handler, schema)
                           for name, handler, schema in _WS_COMMANDS]
    _ws_users += 1
    removed = False

    def remove() -> None:
        global _ws_users
        nonlocal removed
        if removed:
            return
        removed = True
        _ws_users -= 1
        if _ws_users == 0:
            for remover in _ws_removers:
                remover()
            _ws_removers.clear()

    return remove


# --- routes --------------------------------------------------------------------------------

_STATE_LIST: Final = {"type": "array", "items": {"type": "array", "items": {"type": "object"}}}
_HISTORY_QUERY: Final = (
    ("filter_entity_id", "Required: comma-separated entity ids"),
    ("end_time", "ISO time; default: a day after the start"),
    ("minimal_response", "The first state in full, the others only state and last_changed"),
    ("no_attributes", "Leave attributes out"),
    ("significant_changes_only", "1 (default): leave attribute-only changes out; 0: keep them"),
    ("skip_initial_state", "Leave out the state in effect at the start"),
)
_LOGBOOK_QUERY: Final = (
    ("entity", "Comma-separated entity ids (entity_id works too)"),
    ("end_time", "ISO time"),
    ("period", "Days, when there is no end_time (default 1)"),
)
_HISTORY_DOC: Final = ("Home Assistant's history: one list per entity, oldest first, the "
                       "state in effect at the start first (its times moved to the start).")
_LOGBOOK_DOC: Final = "Home Assistant's logbook entries: state changes and events, oldest first."

ROUTES: Final = (
    ApiRoute("GET", "/api/history/period", get_history, "History of entities over the last day",
             Access.read, "recorder", returns=_STATE_LIST, errors=(400, 404),
             query=_HISTORY_QUERY, description=_HISTORY_DOC),
    ApiRoute("GET", "/api/history/period/{start}", get_history_from,
             "History of entities from a time", Access.read, "recorder", returns=_STATE_LIST,
             errors=(400, 404), query=_HISTORY_QUERY, description=_HISTORY_DOC),
    ApiRoute("GET", "/api/logbook", get_logbook, "Logbook of today", Access.read, "recorder",
             returns={"type": "array"}, errors=(400, 404), query=_LOGBOOK_QUERY,
             description=_LOGBOOK_DOC),
    ApiRoute("GET", "/api/logbook/{start}", get_logbook_from, "Logbook from a time", Access.read,
             "recorder", returns={"type": "array"}, errors=(400, 404), query=_LOGBOOK_QUERY,
             description=_LOGBOOK_DOC),
    ApiRoute("GET", "/api/recorder/statistics", get_statistics,
             "Mean, min, max, last and count per period", Access.read, "recorder",
             returns={"type": "object"}, errors=(400, 404), query=(
                 ("statistic_id", "Required: comma-separated entity ids"),
                 ("start", "ISO time; default: a day before the end"),
                 ("end", "ISO time; default: now"),
                 ("period", "auto (default), raw, 5minute, hour, day, week or month"),
                 ("types", "Comma-separated: mean, min, max, last, count (default: all)"),
             ), description="`auto` picks raw samples, 5-minute or hourly rollups (or days, "
                            "weeks, months of them) so a series has at most about 2,000 points."),
    ApiRoute("GET", "/api/recorder/stats", get_stats, "Recorder database statistics",
             Access.admin, "recorder", returns={"type": "object"}, errors=(404,),
             query=(("per_entity", "0 leaves out the per-entity figures"),),
             description="Queue, writes and faults; rows and bytes per table and per entity."),
)
