"""Third-party Home Assistant clients, unmodified, against a real hub.

The hub runs the demo devices and the HTTP API on 127.0.0.1 (the HTTP tests' fixtures). Each
test drives it with a client library written for Home Assistant, through that library's ordinary
public API, and checks what the client saw and what happened in the hub:

- home-assistant-js-websocket (npm; Home Assistant's own frontend uses it), run by node on
  `ha_js_client.mjs`;
- homeassistant-api (PyPI): its REST `Client` and its `WebsocketClient`;
- hass-client (PyPI): a WebSocket client on aiohttp.

When node or these packages are missing the tests skip with the reason, except under CI
(the `CI` environment variable set), where they fail: `make test` installs them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hub.core import EVENT_STATE_CHANGED
from tests.support import missing_part

COMPAT = Path(__file__).parent
JS_CLIENT = COMPAT / "ha_js_client.mjs"
SWITCH = "switch.heater_power"
DEMO_ENTITIES = {"sensor.weather_station_temperature", SWITCH}


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        missing_part("node is not installed: the JavaScript client cannot run")
    if not (COMPAT / "node_modules" / "home-assistant-js-websocket" / "package.json").is_file():
        missing_part("tests/compat/node_modules is missing: run `npm ci` there (`make test` does)")
    return node  # type: ignore[return-value]


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        missing_part(f"{name} is not installed ({err}): pip install -e '.[test]' (`make test` does)")
        raise  # unreachable


# --- home-assistant-js-websocket ---------------------------------------------------------


async def test_home_assistant_js_websocket(api: Any) -> None:
    node = _node()
    hub = api.hub
    assert hub.states.get(SWITCH).state == "off"
    proc = await asyncio.create_subprocess_exec(
        node, str(JS_CLIENT), api.base, api.tokens["user"],
        cwd=COMPAT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 40)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    lines = stdout.decode().strip().splitlines()
    assert lines, f"no output; stderr: {stderr.decode()}"
    seen = json.loads(lines[-1])
    assert proc.returncode == 0, f"{seen}; stderr: {stderr.decode()}"

    # The handshake: the library gates features on ha_version.
    assert seen["ha_version"].count(".") == 2
    assert seen["user"] == {"name": "User", "is_admin": False, "is_owner": False}
    # getStates, getConfig, getServices, subscribeConfig, subscribeServices.
    assert DEMO_ENTITIES <= set(seen["states"])
    assert seen["switch_before"] == "off"
    assert "websocket_api" in seen["config"]["components"]
    assert seen["config"]["unit_system"]["temperature"] == "°C"
    assert {"switch", "light"} <= set(seen["service_domains"])
    assert {"turn_on", "turn_off", "toggle"} <= set(seen["switch_services"])
    assert seen["subscribed_config_version"] == seen["config"]["version"]
    assert seen["subscribed_service_domains"] == len(seen["service_domains"])
    # subscribeEntities: every entity first, then the switch turning on, as a diff.
    assert set(seen["subscribed_initial"]) == set(seen["states"])
    assert seen["subscribed_switch_initial"] == "off"
    assert seen["subscribed_switch"]["state"] == "on"
    assert seen["subscribed_switch"]["attributes"]["friendly_name"]
    user_id = seen["subscribed_switch"]["context"]["user_id"]
    assert user_id is not None and user_id == seen["call_service_result"]["context"]["user_id"]
    assert seen["subscribed_switch"]["context"]["id"] == seen["call_service_result"]["context"]["id"]
    # callService reached the hub.
    assert hub.states.get(SWITCH).state == "on"
    assert hub.states.get(SWITCH).context.user_id == user_id
    # A failing call rejects with Home Assistant's error shape.
    assert seen["unknown_service_error"]["code"] == "not_found"
    assert seen["ping"] is True


# --- homeassistant-api (REST) -------------------------------------------------------------


def _homeassistant_api_session(base: str, token: str) -> dict[str, Any]:
    """Everything a script does with homeassistant-api's sync Client; runs in a thread."""
    ha_api = _module("homeassistant_api")
    seen: dict[str, Any] = {}
    with ha_api.Client(f"{base}/api/", token) as client:  # entering checks GET /api/
        seen["running"] = client.check_api_running()
        seen["config_valid"] = client.check_api_config()  # POST /api/config/core/check_config
        seen["config"] = client.get_config()
        seen["components"] = client.get_components()
        seen["states"] = {state.entity_id: state for state in client.get_states()}
        seen["groups"] = client.get_entities()

        # One entity; change its representation and post it back (POST /api/states/<id>).
        entity = client.get_entity(entity_id="sensor.weather_station_temperature")
        seen["entity_before"] = entity.state.model_copy()
        entity.state.state = "42.5"
        entity.state.attributes["source"] = "homeassistant-api"
        seen["entity_after"] = entity.update_state()
        seen["entity_fetched"] = entity.get_state()

        # A new entity: set_state on a State the client builds itself.
        state_model = ha_api.State(entity_id="sensor.from_client", state="7",
                                   attributes={"unit_of_measurement": "W"})
        seen["new_state"] = client.set_state(state_model)

        # Services: the catalogue, then switch.turn_on through the Domain/Service objects.
        domains = client.get_domains()
        seen["domains"] = domains
        seen["turn_on"] = domains["switch"].turn_on(entity_id=SWITCH)
        seen["trigger_service"] = client.trigger_service("switch", "toggle", entity_id=SWITCH)

        seen["template"] = client.get_rendered_template(
            "{{ states('switch.heater_power') }} {{ states.sensor | count > 3 }}"
        )
        try:
            client.get_rendered_template("{{ states(")
        except _module("homeassistant_api.errors").BadTemplateError as err:
            seen["bad_template"] = err
        seen["events"] = client.get_events()
        seen["fire_event"] = client.fire_event("compat_test", answer=42)
    return seen


async def test_homeassistant_api_rest_client(api: Any) -> None:
    _module("homeassistant_api")
    hub = api.hub
    fired: list[Any] = []
    hub.bus.listen("compat_test", fired.append)
    assert hub.states.get(SWITCH).state == "off"
    toggles: list[str] = []
    hub.bus.listen(EVENT_STATE_CHANGED, lambda e: toggles.append(e.data["new_state"].state)
                   if e.data["entity_id"] == SWITCH and e.data["new_state"] else None)

    seen = await asyncio.to_thread(_homeassistant_api_session, api.base, api.tokens["admin"])

    assert seen["running"] is True and seen["config_valid"] is True
    assert seen["config"]["location_name"] == "Home"
    assert "api" in seen["components"]
    assert DEMO_ENTITIES <= set(seen["states"])
    heater = seen["states"][SWITCH]
    assert heater.state == "off" and heater.context is not None and heater.last_changed.tzinfo
    assert SWITCH.partition(".")[2] in seen["groups"]["switch"].entities

    # POST /api/states/<id>: the representation changed in the hub, attributes replaced.
    assert seen["entity_after"].state == "42.5"
    assert seen["entity_fetched"].state == "42.5"
    stored = hub.states.get("sensor.weather_station_temperature")
    assert stored.state == "42.5" and stored.attributes["source"] == "homeassistant-api"
    assert seen["new_state"].entity_id == "sensor.from_client"
    assert hub.states.get("sensor.from_client").attributes == {"unit_of_measurement": "W"}

    # Services: turn_on then toggle reached the demo heater.
    assert {"turn_on", "turn_off", "toggle"} <= set(seen["domains"]["switch"].services)
    assert toggles == ["on", "off"]
    assert hub.states.get(SWITCH).state == "off"
    changed = seen["turn_on"]
    if isinstance(changed, tuple) and len(changed) == 2 and isinstance(changed[1], dict):
        changed = changed[0]  # (changed_states, service_response) when it asked for one
    assert [state.entity_id for state in changed if state.entity_id == SWITCH] == [SWITCH]
    assert [s.state for s in seen["trigger_service"] if s.entity_id == SWITCH] == ["off"]

    assert seen["template"] == "off True"
    assert "bad_template" in seen
    assert any(event.event == EVENT_STATE_CHANGED for event in seen["events"])
    assert seen["fire_event"] == "Event compat_test fired."
    assert [event.data for event in fired] == [{"answer": 42}]


def _homeassistant_api_websocket_session(base: str, token: str) -> dict[str, Any]:
    """homeassistant-api's sync WebsocketClient; runs in a thread."""
    ha_api = _module("homeassistant_api")
    seen: dict[str, Any] = {}
    url = base.replace("http://", "ws://") + "/api/websocket"
    with ha_api.WebsocketClient(url, token) as client:  # auth, then supported_features
        seen["latency_ms"] = client.ping_latency()
        seen["config"] = client.get_config()
        seen["states"] = {state.entity_id: state for state in client.get_states()}
        seen["heater"] = client.get_entity(entity_id=SWITCH)
        seen["domains"] = client.get_domains()
        seen["template"] = client.get_rendered_template("{{ is_state('switch.heater_power', 'off') }}")
        seen["registry"] = client.list_entity_registry()
        seen["registry_entry"] = client.get_entity_registry_entry(SWITCH)
        with client.listen_events(EVENT_STATE_CHANGED) as events:
            client.trigger_service("switch", "turn_on", entity_id=SWITCH)
            seen["state_changed"] = next(e for e in events if e.data["entity_id"] == SWITCH)
        with client.listen_events("compat_ws_test") as events:
            seen["fired_context"] = client.fire_event("compat_ws_test", answer=42)
            seen["fired"] = next(iter(events))
    return seen


async def test_homeassistant_api_websocket_client(api: Any) -> None:
    _module("homeassistant_api")
    hub = api.hub
    seen = await asyncio.to_thread(
        _homeassistant_api_websocket_session, api.base, api.tokens["admin"]
    )
    assert seen["latency_ms"] >= 0
    assert seen["config"]["state"] == "RUNNING"
    assert DEMO_ENTITIES <= set(seen["states"])
    assert seen["heater"].state.state == "off"
    assert "turn_on" in seen["domains"]["switch"].services
    assert seen["template"] == "True"
    assert SWITCH in {entry.entity_id for entry in seen["registry"]}
    assert seen["registry_entry"].entity_id == SWITCH and seen["registry_entry"].aliases == []
    assert hub.states.get(SWITCH).state == "on"
    changed = seen["state_changed"]
    assert changed.data["old_state"]["state"] == "off" and changed.data["new_state"]["state"] == "on"
    assert changed.context.user_id == hub.states.get(SWITCH).context.user_id
    assert seen["fired"].data == {"answer": 42}
    assert seen["fired"].context.id == seen["fired_context"].id


# --- hass-client (WebSocket) --------------------------------------------------------------


async def test_hass_client_websocket(api: Any) -> None:
    hass_client = _module("hass_client")
    exceptions = _module("hass_client.exceptions")
    hub = api.hub
    url = api.base.replace("http://", "ws://") + "/api/websocket"
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    entity_updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async with hass_client.HomeAssistantClient(url, api.tokens["user"]) as client:
        assert client.connected and client.version
        states = await client.get_states()
        assert DEMO_ENTITIES <= {state["entity_id"] for state in states}
        config = await client.get_config()
        assert config["state"] == "RUNNING"
        services = await client.get_services()
        assert "turn_on" in services["switch"]
        devices = await client.get_device_registry()
        entities = await client.get_entity_registry()
        assert any(entry["entity_id"] == SWITCH for entry in entities)
        assert {device["id"] for device in devices} >= {
            entry["device_id"] for entry in entities if entry["device_id"]
        }
        await client.get_area_registry()
        entry = await client.get_entity_registry_entry(SWITCH)
        assert entry["entity_id"] == SWITCH and entry["aliases"] == []
        with pytest.raises(exceptions.FailedCommand, match="Entity not found"):
            await client.get_entity_registry_entry("switch.no_such_switch")

        def listeners() -> int:
            return hub.bus.listener_counts().get(EVENT_STATE_CHANGED, 0)

        before = listeners()
        unsubscribe = await client.subscribe_events(events.put_nowait, EVENT_STATE_CHANGED)
        assert listeners() == before + 1
        await client.subscribe_entities(entity_updates.put_nowait, [SWITCH])
        initial = await asyncio.wait_for(entity_updates.get(), 5)
        assert initial["a"][SWITCH]["s"] == "off"

        result = await client.call_service("switch", "turn_on", target={"entity_id": SWITCH})
        assert result["context"]["user_id"]
        assert hub.states.get(SWITCH).state == "on"

        event = await asyncio.wait_for(events.get(), 5)
        while event["data"]["entity_id"] != SWITCH:
            event = await asyncio.wait_for(events.get(), 5)
        assert event["event_type"] == EVENT_STATE_CHANGED
        assert event["data"]["new_state"]["state"] == "on"
        assert event["context"]["id"] == result["context"]["id"]
        diff = await asyncio.wait_for(entity_updates.get(), 5)
        assert diff["c"][SWITCH]["+"]["s"] == "on"

        # service_data too (the older call style), and an unknown service as an error.
        await client.call_service("switch", "turn_off", service_data={"entity_id": SWITCH})
        assert hub.states.get(SWITCH).state == "off"
        with pytest.raises(exceptions.FailedCommand):
            await client.call_service("switch", "no_such_service", target={"entity_id": SWITCH})

        unsubscribe()  # sends unsubscribe_events; the hub drops its listener
        for _ in range(100):
            if listeners() == before:
                break
            await asyncio.sleep(0.02)
        assert listeners() == before
