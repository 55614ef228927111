"""The recorder's APIs, driven like Home Assistant clients drive them.

A real hub runs the recorder and the HTTP API on 127.0.0.1 (port 0, a temporary config dir);
past data goes in through the engine's own write path (`Recorder.record_state`, exactly what
the bus listener queues), live data through `hub.states.set`. Clients are real aiohttp
sessions and WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
import pytest

import hub.http
import hub.recorder.integration as recorder_plugin
from hub.core import Context, Hub, ReadOnlyDict, State
from hub.entity import SensorEntity
from hub.hookspecs import hookimpl
from hub.plugins import Integration
from hub.recorder import config as recorder_config
from hub.recorder.restore import last_state

PASSWORD = "correct horse battery"
HTTP = """\
http:
  server_host: 127.0.0.1
  server_port: 0
  login_attempts_threshold: 1000
"""
RECORDER = """\
recorder:
  commit_interval: 0
  purge_keep_days: 400
"""
TEMP_ATTRS = {"unit_of_measurement": "°C", "friendly_name": "Temperature"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class Api:
    hub: Hub
    session: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def recorder(self) -> Any:
        return self.hub.data["recorder"].recorder

    async def get(self, path: str, role: str | None = "admin", **params: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        async with self.session.get(self.hub.urls[0] + path, headers=headers,
                                    params=params or None) as resp:
            return resp.status, await resp.json()

    def record(self, entity_id: str, state: str, attributes: Any, changed: float,
               updated: float | None = None, context: Context | None = None) -> None:
        """A past state, queued exactly as the bus listener queues a live one."""
        st = State(entity_id, state, attributes, changed, updated or changed, validate=False)
        assert self.recorder.record_state(entity_id, st, context=context)

    async def flush(self) -> None:
        assert await self.recorder.flush(timeout=10)


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(make_hub: Callable[..., Awaitable[Hub]]) -> AsyncIterator[StartApi]:
    sessions: list[aiohttp.ClientSession] = []

    async def start(config: str = HTTP + RECORDER, plugins: tuple[Any, ...] = (),
                    config_dir: Any = None, users: bool = True) -> Api:
        hub_ = await make_hub(config, [recorder_plugin, hub.http, *plugins], config_dir=config_dir)
        for domain in ("http", "recorder"):
            assert hub_.integrations[domain].status == "loaded", hub_.integrations[domain].error
        session = aiohttp.ClientSession()
        sessions.append(session)
        api = Api(hub_, session)
        roles = {"admin": {"admin": True}, "user": {}, "read_only": {"read_only": True}}
        for role, kwargs in roles.items() if users else ():
            user = await hub_.auth.create_user(role.title(), role, PASSWORD, **kwargs)
            api.tokens[role] = hub_.auth.create_long_lived_token(user, "tests")
        return api

    yield start
    for session in sessions:
        await session.close()


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    return await start_api()


class WsClient:
    """Just enough of a Home Assistant WebSocket client: auth, then commands with ids."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1

    @classmethod
    async def connect(cls, api: Api, role: str = "read_only") -> WsClient:
        ws = await api.session.ws_connect(api.hub.urls[0] + "/api/websocket")
        assert (await ws.receive_json(timeout=5))["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": api.tokens[role]})
        assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
        return cls(ws)

    async def command(self, type: str, **fields: Any) -> dict[str, Any]:
        msg_id = self.next_id
        self.next_id += 1
        await self.ws.send_json({"id": msg_id, "type": type, **fields})
        while True:
            msg = json.loads((await self.ws.receive(timeout=10)).data)
            if msg.get("id") == msg_id and msg["type"] == "result":
                return msg

    async def result(self, type: str, **fields: Any) -> Any:
        reply = await self.command(type, **fields)
        assert reply["success"], reply
        return reply["result"]


# --- history -------------------------------------------------------------------------------


async def record_story(api: Api) -> int:
    """Two hours ago: a temperature, a pump and a thermostat change a few times, with one
    attribute-only change each. Returns the base time (whole seconds)."""
    base = int(time.time()) - 7200
    temp_a = ReadOnlyDict(TEMP_ATTRS)
    temp_b = ReadOnlyDict({**TEMP_ATTRS, "friendly_name": "Kitchen temperature"})
    api.record("sensor.temp", "20.5", temp_a, base)
    api.record("sensor.temp", "21.5", temp_a, base + 60)
    api.record("sensor.temp", "21.5", temp_b, base + 60, base + 120)  # attributes only
    api.record("sensor.temp", "22.5", temp_b, base + 180)
    pump_a, pump_b = ReadOnlyDict({"friendly_name": "Pump"}), ReadOnlyDict({"friendly_name": "Pump 1"})
    api.record("switch.pump", "off", pump_a, base + 10)
    api.record("switch.pump", "on", pump_a, base + 70)
    api.record("switch.pump", "on", pump_b, base + 70, base + 130)  # attributes only
    api.record("switch.pump", "off", pump_b, base + 190)
    api.record("climate.house", "heat", ReadOnlyDict({"temperature": 20}), base)
    api.record("climate.house", "heat", ReadOnlyDict({"temperature": 21}), base, base + 120)
    await api.flush()
    return base


def full(entity_id: str, state: str, attributes: dict[str, Any], changed: float,
         updated: float | None = None) -> dict[str, Any]:
    return {"entity_id": entity_id, "state": state, "attributes": attributes,
            "last_changed": iso(changed), "last_updated": iso(updated or changed)}


async def test_history_answers_home_assistants_shape_with_the_state_at_the_start(api: Api) -> None:
    base = await record_story(api)
    start = base + 30
    kitchen = {**TEMP_ATTRS, "friendly_name": "Kitchen temperature"}
    status, body = await api.get(f"/api/history/period/{iso(start)}", role="read_only",
                                 filter_entity_id="switch.pump,sensor.temp,sensor.never_seen",
                                 end_time=iso(base + 3600))
    assert status == 200
    # One list per entity, in the order asked; an entity without history is left out. The
    # state in effect at the start comes first, its times moved to the start; the
    # attribute-only changes are not significant.
    assert body == [
        [full("switch.pump", "off", {"friendly_name": "Pump"}, start),
         full("switch.pump", "on", {"friendly_name": "Pump"}, base + 70),
         full("switch.pump", "off", {"friendly_name": "Pump 1"}, base + 190)],
        [full("sensor.temp", "20.5", TEMP_ATTRS, start),
         full("sensor.temp", "21.5", TEMP_ATTRS, base + 60),
         full("sensor.temp", "22.5", kitchen, base + 180)],
    ]

    # Every change, attribute-only ones with their own last_changed.
    _, body = await api.get(f"/api/history/period/{iso(start)}", filter_entity_id="sensor.temp",
                            end_time=iso(base + 3600), significant_changes_only="0")
    assert body == [[
        full("sensor.temp", "20.5", TEMP_ATTRS, start),
        full("sensor.temp", "21.5", TEMP_ATTRS, base + 60),
        full("sensor.temp", "21.5", kitchen, base + 60, base + 120),
        full("sensor.temp", "22.5", kitchen, base + 180),
    ]]


async def test_history_minimal_no_attributes_and_skip_initial_state(api: Api) -> None:
    base = await record_story(api)
    start = base + 30
    path = f"/api/history/period/{iso(start)}"
    end = iso(base + 3600)

    _, body = await api.get(path, filter_entity_id="sensor.temp,climate.house", end_time=end,
                            minimal_response="")
    assert body[0] == [
        full("sensor.temp", "20.5", TEMP_ATTRS, start),
        {"state": "21.5", "last_changed": iso(base + 60)},
        {"state": "22.5", "last_changed": iso(base + 180)},
    ]
    # A thermostat keeps every state in full, and its attribute changes are significant.
    assert body[1] == [
        full("climate.house", "heat", {"temperature": 20}, start),
        full("climate.house", "heat", {"temperature": 21}, base + 120),
    ]

    _, body = await api.get(path, filter_entity_id="sensor.temp", end_time=end,
                            no_attributes="", skip_initial_state="")
    assert body == [[full("sensor.temp", "21.5", {}, base + 60),
                     full("sensor.temp", "22.5", {}, base + 180)]]

    # The default end is a day after the start; the default start a day ago.
    _, body = await api.get(path, filter_entity_id="switch.pump")
    assert [row["state"] for row in body[0]] == ["off", "on", "off"]
    _, body = await api.get("/api/history/period", filter_entity_id="switch.pump")
    assert [row["state"] for row in body[0]] == ["off", "on", "off"]


async def test_history_of_live_states(api: Api) -> None:
    """Given a device reports through the state machine, the history holds what it said."""
    before = time.time()
    api.hub.states.set("sensor.live", "1.5", {"unit_of_measurement": "W"})
    api.hub.states.set("sensor.live", "2.5", {"unit_of_measurement": "W"})
    api.hub.states.set("binary_sensor.door", "on")
    await api.flush()
    _, body = await api.get(f"/api/history/period/{iso(before - 1)}",
                            filter_entity_id="sensor.live,binary_sensor.door")
    assert [[row["state"] for row in rows] for rows in body] == [["1.5", "2.5"], ["on"]]
    assert body[0][1]["attributes"] == {"unit_of_measurement": "W"}


async def test_history_refuses_bad_input_with_a_reason(api: Api) -> None:
    path = "/api/history/period"
    cases = [
        (f"{path}/not-a-time", {"filter_entity_id": "sensor.temp"}, "Invalid datetime"),
        (path, {}, "filter_entity_id is missing"),
        (path, {"filter_entity_id": "sensor.temp,li-ght.x"}, "Invalid filter_entity_id"),
        (path, {"filter_entity_id": "sensor.temp", "end_time": "soon"}, "Invalid end_time"),
    ]
    for url, params, message in cases:
        assert await api.get(url, **params) == (400, {"message": message})
    status, body = await api.get(path, filter_entity_id=",".join(f"sensor.s{i}" for i in range(101)))
    assert status == 400 and "Too many entities" in body["message"]
    # A start in the future: an empty list, as in HA.
    assert await api.get(f"{path}/2999-01-01T00:00:00+00:00", filter_entity_id="sensor.t") == (200, [])
    # An offset whose + arrived as a space (an unencoded query string) is still understood.
    status, _ = await api.get(path, filter_entity_id="sensor.t", end_time="2030-01-01T00:00:00 00:00")
    assert status == 200
    # No token: 401.
    status, _ = await api.get(path, role=None, filter_entity_id="sensor.t")
    assert status == 401


async def test_history_too_large_is_refused_before_reading(api: Api, monkeypatch: Any) -> None:
    from hub.recorder import api as recorder_api

    base = await record_story(api)
    monkeypatch.setattr(recorder_api, "MAX_STATES", 3)
    status, body = await api.get(f"/api/history/period/{iso(base - 10)}",
                                 filter_entity_id="sensor.temp,switch.pump")
    assert status == 400 and "narrow the range" in body["message"]


# --- logbook -------------------------------------------------------------------------------


async def test_logbook_tells_who_caused_a_change(api: Api) -> None:
    hub_ = api.hub
    start = time.time() - 1
    hub_.states.set("switch.pump", "off", {"friendly_name": "Pump"})

    def flip(call: Any) -> None:
        hub_.states.set("switch.pump", "on", {"friendly_name": "Pump"}, context=call.context)

    hub_.services.register("garden", "flip", flip)
    await hub_.services.call("garden", "flip", context=Context(user_id="user-1"))
    hub_.states.set("sensor.power", "12", {"unit_of_measurement": "W"})  # continuous: left out
    hub_.bus.fire("logbook_entry", {"name": "Garden", "message": "was watered",
                                    "entity_id": "switch.pump"})
    await api.flush()

    status, body = await api.get(f"/api/logbook/{iso(start)}", role="read_only",
                                 entity="switch.pump", end_time=iso(time.time() + 1))
    assert status == 200
    for entry in body:
        datetime.fromisoformat(entry.pop("when"))
    assert body == [
        {"state": "off", "entity_id": "switch.pump", "name": "Pump"},
        {"state": "on", "entity_id": "switch.pump", "name": "Pump", "context_user_id": "user-1",
         "context_domain": "garden", "context_service": "flip",
         "context_event_type": "call_service"},
        {"name": "Garden", "message": "was watered", "domain": "switch",
         "entity_id": "switch.pump"},
    ]

    # Without a filter: today's logbook, the hub's start included, the sensor left out.
    status, body = await api.get("/api/logbook")
    assert status == 200
    assert body[0]["message"] == "started"
    assert "sensor.power" not in {entry.get("entity_id") for entry in body}
    assert [e["state"] for e in body if e.get("entity_id") == "switch.pump" and "state" in e] == [
        "off", "on"]

    for params, message in (({"period": "x"}, "Invalid period"),
                            ({"entity": "not an id"}, "Invalid entity id"),
                            ({"end_time": "later"}, "Invalid end_time")):
        status, body = await api.get("/api/logbook", **params)
        assert status == 400 and body["message"].startswith(message), body
    assert (await api.get("/api/logbook/yesterday"))[0] == 400


# --- statistics ----------------------------------------------------------------------------


async def record_series(api: Api, now: int) -> None:
    """A day of a sensor every 10 s (alternating 20 and 21), a month every 5 minutes (its UTC
    day number mod 7), a year every 30 minutes (0 to 3 in turn), six hours of a meter."""
    attrs = ReadOnlyDict({"unit_of_measurement": "°C", "state_class": "measurement"})
    energy = ReadOnlyDict({"unit_of_measurement": "kWh", "state_class": "total_increasing"})

    def feed(entity_id: str, span: int, step: int, value: Callable[[int, int], float],
             attributes: Any = attrs) -> None:
        for i in range(span // step):
            t = now - span + i * step
            api.record(entity_id, str(value(i, t)), attributes, t)

    feed("sensor.day", 86_400, 10, lambda i, t: 20 + i % 2)
    feed("sensor.month", 30 * 86_400, 300, lambda i, t: (t // 86_400) % 7)
    feed("sensor.year", 365 * 86_400, 1800, lambda i, t: i % 4)
    feed("sensor.energy", 6 * 3600, 60, lambda i, t: float(i), energy)  # one kWh a minute
    api.hub.states.set("sensor.energy", "360", energy)
    await api.flush()
    assert await api.recorder.run_maintenance(timeout=60)


async def test_statistics_pick_the_tier_by_range(api: Api) -> None:
    """Given a day, a month and a year of data, `auto` answers raw, 5-minute, hourly or daily
    rows, never more than about 2,000 per series, with correct means."""
    now = int(time.time()) // 3600 * 3600
    await record_series(api, now)

    async def stats(statistic_id: str, seconds: int, **params: str) -> dict[str, Any]:
        status, body = await api.get("/api/recorder/statistics", role="read_only",
                                     statistic_id=statistic_id, start=iso(now - seconds),
                                     end=iso(now), **params)
        assert status == 200, body
        return body

    body = await stats("sensor.day", 3600)  # an hour: 360 raw samples
    assert body["period"] == "raw"
    rows = body["statistics"]["sensor.day"]
    assert len(rows) == 360 and rows[0] == {
        "start": (now - 3600) * 1000, "end": (now - 3600) * 1000, "mean": 20.0, "min": 20.0,
        "max": 20.0, "last": 20.0, "count": 1}

    body = await stats("sensor.day", 86_400)  # a day: 8,640 samples, 288 five-minute rows
    assert body["period"] == "5minute"
    rows = body["statistics"]["sensor.day"]
    assert 285 <= len(rows) <= 289
    assert rows[10] == {"start": rows[10]["start"], "end": rows[10]["start"] + 300_000,
                        "mean": 20.5, "min": 20.0, "max": 21.0, "last": 21.0, "count": 30}

    body = await stats("sensor.month", 30 * 86_400, types="mean,count")
    assert body["period"] == "hour"
    rows = body["statistics"]["sensor.month"]
    assert 715 <= len(rows) <= 721 and set(rows[5]) == {"start", "end", "mean", "count"}
    assert rows[5]["count"] == 12

    body = await stats("sensor.year", 365 * 86_400)
    assert body["period"] == "day"
    rows = body["statistics"]["sensor.year"]
    assert 360 <= len(rows) <= 366
    assert rows[100]["mean"] == pytest.approx(1.5) and rows[100]["count"] == 48
    assert (rows[100]["min"], rows[100]["max"]) == (0, 3)

    # Several series share one resolution: the coarsest any of them needs.
    body = await stats("sensor.day,sensor.month", 30 * 86_400, period="auto")
    assert body["period"] == "hour" and set(body["statistics"]) == {"sensor.day", "sensor.month"}

    # Days aggregate hourly rows: a month's daily means are each day's value.
    body = await stats("sensor.month", 10 * 86_400, period="day")
    for row in body["statistics"]["sensor.month"][1:-1]:
        assert row["mean"] == row["min"] == row["max"] == (row["start"] // 86_400_000) % 7

    # Bounded: an explicit period that would answer too many points is refused.
    status, body = await api.get("/api/recorder/statistics", statistic_id="sensor.year",
                                 start=iso(now - 365 * 86_400), end=iso(now), period="5minute")
    assert status == 400 and "coarser period" in body["message"]
    for params, message in (({}, "statistic_id is missing"),
                            ({"statistic_id": "sensor.year", "period": "fortnight"}, "Invalid period"),
                            ({"statistic_id": "sensor.year", "types": "median"}, "Invalid types"),
                            ({"statistic_id": "sensor.year", "start": "x"}, "Invalid start"),
                            ({"statistic_id": "sensor.year", "start": iso(now), "end": iso(now - 1)},
                             "end must be after start")):
        status, body = await api.get("/api/recorder/statistics", **params)
        assert status == 400 and body["message"].startswith(message), body

    # WebSocket: HA's statistics_during_period and list_statistic_ids, for any user.
    ws = await WsClient.connect(api)
    result = await ws.result("recorder/statistics_during_period",
                             start_time=iso(now - 5 * 86_400), end_time=iso(now),
                             statistic_ids=["sensor.month", "sensor.unknown"], period="day",
                             types=["mean", "min", "max"])
    assert list(result) == ["sensor.month"]
    rows = result["sensor.month"]  # the day the range starts in, to the one it ends in
    assert len(rows) == (now - 1) // 86_400 - (now - 5 * 86_400) // 86_400 + 1
    assert rows[0] == {"start": (now - 5 * 86_400) // 86_400 * 86_400_000,
                       "end": ((now - 5 * 86_400) // 86_400 + 1) * 86_400_000,
                       "mean": rows[0]["min"], "min": rows[0]["min"], "max": rows[0]["min"]}
    result = await ws.result("recorder/statistics_during_period",
                             start_time=iso(now - 3 * 3600), end_time=iso(now),
                             statistic_ids=["sensor.energy"], period="hour")
    assert [set(row) for row in result["sensor.energy"]] == [
        {"start", "end", "change", "last_reset", "max", "mean", "min", "state", "sum"}] * 3
    assert [row["change"] for row in result["sensor.energy"]] == [60.0, 60.0, 60.0]
    assert result["sensor.energy"][-1]["state"] == 359.0
    reply = await ws.command("recorder/statistics_during_period", start_time="then",
                             statistic_ids=["sensor.energy"], period="hour")
    assert reply["error"]["code"] == "invalid_start_time"
    reply = await ws.command("recorder/statistics_during_period", start_time=iso(now),
                             statistic_ids=["sensor.energy"], period="decade")
    assert reply["error"]["code"] == "invalid_format"

    ids = await ws.result("recorder/list_statistic_ids")
    by_id = {item["statistic_id"]: item for item in ids}
    assert set(by_id) >= {"sensor.day", "sensor.month", "sensor.year", "sensor.energy"}
    assert by_id["sensor.energy"] == {
        "statistic_id": "sensor.energy", "display_unit_of_measurement": "kWh",
        "has_mean": True, "mean_type": 1, "has_sum": False, "name": "energy",
        "source": "recorder", "statistics_unit_of_measurement": "kWh", "unit_class": None}
    await ws.ws.close()


async def test_websocket_history_in_the_compressed_shape(api: Api) -> None:
    base = await record_story(api)
    start = base + 30
    ws = await WsClient.connect(api)
    result = await ws.result("history/history_during_period", start_time=iso(start),
                             end_time=iso(base + 3600), entity_ids=["sensor.temp", "sensor.none"])
    assert result == {"sensor.temp": [
        {"s": "20.5", "a": TEMP_ATTRS, "lu": start},
        {"s": "21.5", "a": TEMP_ATTRS, "lu": base + 60},
        {"s": "22.5", "a": {**TEMP_ATTRS, "friendly_name": "Kitchen temperature"}, "lu": base + 180},
    ]}
    result = await ws.result("history/history_during_period", start_time=iso(start),
                             end_time=iso(base + 3600), entity_ids=["sensor.temp"],
                             minimal_response=True, no_attributes=True,
                             significant_changes_only=False)
    assert result == {"sensor.temp": [
        {"s": "20.5", "lu": start}, {"s": "21.5", "lu": base + 60}, {"s": "22.5", "lu": base + 180},
    ]}
    result = await ws.result("history/history_during_period", start_time=iso(start),
                             end_time=iso(base + 3600), entity_ids=["sensor.temp"],
                             significant_changes_only=False, include_start_time_state=False)
    assert result["sensor.temp"][1] == {
        "s": "21.5", "a": {**TEMP_ATTRS, "friendly_name": "Kitchen temperature"},
        "lu": base + 120, "lc": base + 60}
    reply = await ws.command("history/history_during_period", start_time="x", entity_ids=["a.b"])
    assert reply["error"] == {"code": "invalid_start_time", "message": "Invalid start_time"}
    reply = await ws.command("history/history_during_period", start_time=iso(start))
    assert reply["error"]["code"] == "invalid_format"  # entity_ids is required
    assert await ws.result("history/history_during_period", start_time="2999-01-01T00:00:00",
                           entity_ids=["sensor.temp"]) == {}
    await ws.ws.close()


# --- database statistics and auth ----------------------------------------------------------


async def test_database_stats_are_for_admins(api: Api) -> None:
    api.hub.states.set("sensor.live", "1.5", {"unit_of_measurement": "W"})
    await api.flush()
    status, body = await api.get("/api/recorder/stats")
    assert status == 200
    assert body["running"] is True and body["dropped"] == 0
    assert body["database"]["tables"]["samples"]["rows"] >= 1
    assert body["database"]["entities"]["sensor.live"]["samples"] == 1
    status, body = await api.get("/api/recorder/stats", per_entity="0")
    assert status == 200 and "entities" not in body["database"]
    assert (await api.get("/api/recorder/stats", role="user"))[0] == 403
    assert (await api.get("/api/recorder/stats", role=None))[0] == 401


# --- restore -------------------------------------------------------------------------------


class Counter(SensorEntity):
    """A test entity that opts in to restore: it counts on from its last value."""

    restore_state: ClassVar[bool] = True
    unique_id = "counter_1"
    name = "Counter"
    unit_of_measurement = "pulses"

    def __init__(self) -> None:
        self.value = 0
        self.restored_from: State | None = None

    @property
    def state(self) -> Any:
        return self.value

    def restored(self, state: State) -> None:
        self.restored_from = state
        self.value = int(float(state.state))
        self.write_state()


class CounterPlugin:
    """An integration set up before the recorder ("counter" < "recorder"): restore must find
    its entity anyway. Another, "zz_puller", reads the last state itself in `added()`."""

    def __init__(self) -> None:
        self.entity = Counter()
        self.pulled: list[Any] = []

    @hookimpl
    def register_integrations(self) -> list[Integration]:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def counter(hub_: Hub, config: Any) -> AsyncIterator[None]:
            hub_.entities.add(self.entity, "counter")
            yield
            await hub_.entities.remove_all("counter")

        @asynccontextmanager
        async def puller(hub_: Hub, config: Any) -> AsyncIterator[None]:
            self.pulled.append(await last_state(hub_, "sensor.counter"))
            yield

        return [Integration("counter", "Counter", counter, always=True),
                Integration("zz_puller", "Puller", puller, after=("recorder",), always=True)]


async def test_restore_gives_an_entity_its_last_state_after_a_restart(
        start_api: StartApi, tmp_path: Any) -> None:
    config_dir = tmp_path / "restore"
    first = CounterPlugin()
    api1 = await start_api(plugins=(first,), config_dir=config_dir)
    assert first.entity.entity_id == "sensor.counter"
    assert first.pulled == [None]  # nothing recorded yet
    # Its first state, written before the recorder was set up, is in the history all the same.
    await api1.flush()
    rows = api1.recorder.states(["sensor.counter"], 0, time.time() + 1)["sensor.counter"]
    assert [row.state for row in rows] == ["0"]
    await asyncio.sleep(0.05)
    assert first.entity.restored_from is None
    first.entity.value = 41
    first.entity.write_state()
    first.entity.value = 42
    first.entity.write_state()
    await api1.hub.stop()

    second = CounterPlugin()
    api2 = await start_api(plugins=(second,), config_dir=config_dir, users=False)
    for _ in range(100):  # the restore runs in a task of its own
        if second.entity.restored_from is not None:
            break
        await asyncio.sleep(0.02)
    restored = second.entity.restored_from
    assert restored is not None and restored.state == "42"
    assert restored.attributes["unit_of_measurement"] == "pulses"
    assert api2.hub.states.get("sensor.counter").state == "42"
    assert second.pulled[0].state == "42"  # the pull API, from an integration set up after
    assert (await last_state(api2.hub, "sensor.nothing")) is None


# --- configuration -------------------------------------------------------------------------


def test_configuration_in_home_assistants_shape() -> None:
    from pathlib import Path

    config = recorder_config.CONFIG_SCHEMA({
        "db_url": "sqlite:///history.db", "purge_keep_days": 30, "keep_days_hourly": 3650,
        "exclude": {"domains": "automation", "entity_globs": ["sensor.*_rssi"],
                    "event_types": ["call_service"]},
        "tiers": {"sensor.outdoor": {"purge_keep_days": 90}},
    })
    settings = recorder_config.settings_from_config(config, Path("/config"))
    assert settings.db_path == Path("/config/history.db")
    assert settings.raw_keep_days == 30 and settings.rollup_1h_keep_days == 3650
    assert settings.retention("sensor.outdoor").raw == 90
    assert settings.retention("sensor.other").raw == 30
    assert not settings.records_entity("automation.x")
    assert not settings.records_entity("sensor.wifi_rssi")
    assert "call_service" in settings.exclude_event_types
    assert "state_reported" in settings.exclude_event_types  # the engine's defaults stay
    forever = recorder_config.settings_from_config(
        recorder_config.CONFIG_SCHEMA({"auto_purge": False}), Path("/config"))
    assert (forever.raw_keep_days, forever.rollup_5m_keep_days) == (None, None)
    for bad in ({"db_url": "mysql://x"}, {"purge_keep_days": 0}, {"tiers": {"not-an-id": {}}},
                {"commit_interval": -1}, {"db_path": "a.db", "db_url": "sqlite:///b.db"}):
        with pytest.raises(Exception):  # noqa: B017 - voluptuous raises several kinds
            recorder_config.CONFIG_SCHEMA(bad)
