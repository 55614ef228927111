"""The REST API, used the way a Home Assistant REST client uses it: over real HTTP, against a
hub running the demo devices."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from hub.core import Event
from hub.http import HTTP_SCHEMA
from hub.http.server import make_app


async def test_states_list_the_demo_entities_and_need_a_token(api: Any) -> None:
    status, states = await api.request("GET", "/api/states", "user")
    assert status == 200
    ids = {s["entity_id"] for s in states}
    assert {"sensor.weather_station_temperature", "switch.heater_power"} <= ids
    sample = next(s for s in states if s["entity_id"] == "sensor.weather_station_temperature")
    assert set(sample) >= {"entity_id", "state", "attributes", "last_changed", "last_updated", "context"}
    assert sample["attributes"]["unit_of_measurement"] == "°C"

    status, body = await api.request("GET", "/api/states", None)
    assert status == 401 and "token" in body["message"]
    status, body = await api.request(
        "GET", "/api/states", None, headers={"Authorization": "Bearer not-a-token"}
    )
    assert status == 401 and body["message"]


async def test_api_root_config_and_components(api: Any) -> None:
    assert await api.request("GET", "/api/", "read_only") == (200, {"message": "API running."})
    status, config = await api.request("GET", "/api/config", "user")
    assert status == 200
    assert config["state"] == "RUNNING"
    assert config["location_name"] == "Home"
    assert config["unit_system"]["temperature"] == "°C"
    assert {"length", "mass", "volume", "pressure", "wind_speed"} <= set(config["unit_system"])
    assert {"demo", "http", "api"} <= set(config["components"])
    assert config["time_zone"] == "UTC" and config["version"]
    status, components = await api.request("GET", "/api/components", "user")
    assert status == 200 and "demo" in components


async def test_set_get_and_delete_a_state(api: Any) -> None:
    body = {"state": "21.5", "attributes": {"unit_of_measurement": "°C", "friendly_name": "Attic"}}
    async with api.session.post(
        f"{api.base}/api/states/sensor.attic", json=body, headers=api.headers("admin")
    ) as resp:
        assert resp.status == 201
        assert resp.headers["Location"] == "/api/states/sensor.attic"
        created = await resp.json()
    assert created["state"] == "21.5" and created["attributes"]["friendly_name"] == "Attic"
    assert created["context"]["user_id"] == api.hub.states.get("sensor.attic").context.user_id
    assert created["context"]["user_id"] is not None

    status, updated = await api.request("POST", "/api/states/sensor.attic", "admin", json={"state": 22})
    assert status == 200 and updated["state"] == "22"
    assert updated["attributes"] == {}  # as in HA: the body's attributes replace the old ones
    assert api.hub.states.get("sensor.attic").state == "22"

    status, got = await api.request("GET", "/api/states/sensor.attic", "read_only")
    assert status == 200 and got["state"] == "22"
    assert await api.request("DELETE", "/api/states/sensor.attic", "admin") == (
        200, {"message": "Entity removed."}
    )
    assert await api.request("GET", "/api/states/sensor.attic", "user") == (
        404, {"message": "Entity not found."}
    )


async def test_call_a_service_turns_the_heater_on_and_returns_changed_states(api: Any) -> None:
    assert api.hub.states.get("switch.heater_power").state == "off"
    status, changed = await api.request(
        "POST", "/api/services/switch/turn_on", "user", json={"entity_id": "switch.heater_power"}
    )
    assert status == 200
    assert api.hub.states.get("switch.heater_power").state == "on"
    assert [s["state"] for s in changed if s["entity_id"] == "switch.heater_power"] == ["on"]

    # Targets may also come in a `target` object.
    status, changed = await api.request(
        "POST", "/api/services/switch/turn_off", "user",
        json={"target": {"entity_id": "switch.heater_power"}},
    )
    assert status == 200 and api.hub.states.get("switch.heater_power").state == "off"


async def test_service_calls_carry_the_users_context(api: Any) -> None:
    calls: list[Event] = []
    api.hub.bus.listen("call_service", calls.append)
    await api.request("POST", "/api/services/switch/toggle", "user", json={"entity_id": "switch.heater_power"})
    user = api.hub.auth.get_user_by_username("user")
    assert calls and calls[-1].context.user_id == user.id


async def test_return_response_and_persistent_notifications(api: Any) -> None:
    status, body = await api.request(
        "POST", "/api/services/persistent_notification/create", "user",
        json={"message": "Filter needs cleaning", "title": "Heater", "notification_id": "filter"},
    )
    assert status == 200 and body == []
    status, items = await api.request("GET", "/api/persistent_notification", "read_only")
    assert status == 200
    assert {"notification_id": "filter", "title": "Heater", "message": "Filter needs cleaning"}.items() <= next(
        n for n in items if n["notification_id"] == "filter"
    ).items()
    await api.request("POST", "/api/services/persistent_notification/dismiss", "user",
                      json={"notification_id": "filter"})
    _, items = await api.request("GET", "/api/persistent_notification", "user")
    assert all(n["notification_id"] != "filter" for n in items)

    # A service that answers: `?return_response` gives changed states and the response.
    api.hub.services.register("test", "echo", lambda call: {"echo": call.data}, None,
                              supports_response="optional")
    status, body = await api.request("POST", "/api/services/test/echo?return_response", "user",
                                     json={"x": 1})
    assert status == 200
    assert body == {"changed_states": [], "service_response": {"echo": {"x": 1}}}
    # ...and one that does not answer refuses it.
    status, body = await api.request("POST", "/api/services/switch/turn_on?return_response",
                                     "user", json={"entity_id": "switch.heater_power"})
    assert status == 400 and "response" in body["message"]


async def test_services_catalogue(api: Any) -> None:
    status, domains = await api.request("GET", "/api/services", "read_only")
    assert status == 200
    by_domain = {d["domain"]: d["services"] for d in domains}
    assert {"turn_on", "turn_off", "toggle"} <= set(by_domain["switch"])
    create = by_domain["persistent_notification"]["create"]
    assert set(create) >= {"name", "description", "fields"} and "message" in create["fields"]


async def test_events_list_and_fire(api: Any) -> None:
    seen: list[Event] = []
    api.hub.bus.listen("garage_opened", seen.append)
    status, events = await api.request("GET", "/api/events", "user")
    assert status == 200
    assert {"event": "garage_opened", "listener_count": 1} in events

    status, body = await api.request("POST", "/api/events/garage_opened", "admin", json={"door": 2})
    assert (status, body) == (200, {"message": "Event garage_opened fired."})
    assert seen[0].data == {"door": 2}
    assert seen[0].origin == "REMOTE"
    assert seen[0].context.user_id == api.hub.auth.get_user_by_username("admin").id
    # No body is an event without data.
    assert (await api.request("POST", "/api/events/garage_opened", "admin"))[0] == 200
    # As in Home Assistant, firing events is for admins.
    assert (await api.request("POST", "/api/events/garage_opened", "user"))[0] == 403
    # The hub's own registry events cannot be forged: they would move live entities.
    status, body = await api.request(
        "POST", "/api/events/entity_registry_updated", "admin",
        json={"action": "update", "old_entity_id": "switch.heater_power", "entity_id": "switch.bogus"},
    )
    assert status == 400
    assert seen[1].data == {}


async def test_render_a_template(api: Any) -> None:
    api.hub.states.set("sensor.outside", "12.5", {"unit_of_measurement": "°C"})
    async with api.session.post(
        f"{api.base}/api/template",
        json={"template": "It is {{ states('sensor.outside') }} {{ unit }} outside",
              "variables": {"unit": "degrees"}},
        headers=api.headers("admin"),
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "It is 12.5 degrees outside"
    status, body = await api.request("POST", "/api/template", "admin", json={"template": "{{ 1 + }}"})
    assert status == 400 and body["message"]


async def test_error_log_is_for_admins(api: Any) -> None:
    logging.getLogger("integrations.demo").error("Something odd happened")
    assert (await api.request("GET", "/api/error_log", "user"))[0] == 403
    status, text = await api.request("GET", "/api/error_log", "admin")
    assert status == 200 and "Something odd happened" in text


async def test_check_config_reads_the_files_again(api: Any) -> None:
    assert (await api.request("POST", "/api/config/core/check_config", "user"))[0] == 403
    status, body = await api.request("POST", "/api/config/core/check_config", "admin")
    assert (status, body) == (200, {"result": "valid", "errors": None, "warnings": None})
    path = api.hub.config_dir / "configuration.yaml"
    path.write_text(path.read_text().replace("update_interval: 3600", "update_interval: soon"))
    status, body = await api.request("POST", "/api/config/core/check_config", "admin")
    assert status == 200 and body["result"] == "invalid"
    assert "configuration.yaml" in body["errors"], body


async def test_openapi_describes_every_route(api: Any) -> None:
    status, doc = await api.request("GET", "/api/openapi.json", None)  # public, for tools
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "State" in doc["components"]["schemas"]
    # The same factory the running server was built with: its router lists every route.
    app = make_app(api.hub, HTTP_SCHEMA({}))
    missing = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method in ("HEAD", "*") or path.startswith("/static") or path == "/api/websocket":
            continue
        if path in ("/", "/login", "/onboarding"):
            continue  # the pages
        if route.method.lower() not in doc["paths"].get(path, {}):
            missing.append(f"{route.method} {path}")
    assert missing == []
    post_state = doc["paths"]["/api/states/{entity_id}"]["post"]
    assert post_state["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StateWrite"
    }
    assert post_state["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/auth/login_flow"]["post"]["security"] == []


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/api/states/sensor.x", {"data": b"{not json"}, 400),
    ("POST", "/api/states/sensor.x", {"data": b"\xff\xfe\x00"}, 400),
    ("POST", "/api/states/sensor.x", {"data": b"[" * 5000 + b"]" * 5000}, 400),
    ("POST", "/api/states/sensor.x", {"json": [1, 2]}, 400),
    ("POST", "/api/states/sensor.x", {"json": None}, 400),
    ("POST", "/api/states/sensor.x", {"json": {}}, 400),
    ("POST", "/api/states/sensor.x", {"json": {"state": {"a": 1}}}, 400),
    ("POST", "/api/states/sensor.x", {"json": {"state": "x" * 300}}, 400),
    ("POST", "/api/states/sensor.x", {"json": {"state": "1", "attributes": [1]}}, 400),
    ("POST", "/api/states/sensor.x", {"json": {"state": "1", "force_update": "yes"}}, 400),
    ("POST", "/api/states/not_an_entity_id", {"json": {"state": "1"}}, 400),
    ("POST", "/api/states/Sensor.X", {"json": {"state": "1"}}, 400),
    ("GET", "/api/states/sensor.nope", {}, 404),
    ("DELETE", "/api/states/sensor.nope", {}, 404),
    ("POST", "/api/services/nope/nope", {"json": {}}, 400),
    ("POST", "/api/services/light/turn_on", {"json": {"brightness": "bright"}}, 400),
    ("POST", "/api/services/light/turn_on", {"json": []}, 400),
    ("POST", "/api/services/light/turn_on", {"json": {"target": 5}}, 400),
    ("POST", "/api/services/light/turn_on", {"json": {"entity_id": 5}}, 400),
    ("POST", "/api/services/persistent_notification/create", {"json": {}}, 400),
    ("POST", "/api/services/persistent_notification/create", {"json": {"message": [1]}}, 400),
    ("POST", "/api/services/number/set_value",
     {"json": {"entity_id": "number.heater_target_temperature", "value": "abc"}}, 400),
    ("POST", "/api/services/number/set_value",
     {"json": {"entity_id": "number.heater_target_temperature", "value": 1e9}}, 400),
    ("POST", "/api/services/select/select_option",
     {"json": {"entity_id": "select.heater_mode", "option": "volcano"}}, 400),
    ("POST", "/api/events/some_event", {"json": [1]}, 400),
    ("POST", "/api/events/state_changed", {"json": {"entity_id": "sensor.x"}}, 400),
    ("POST", "/api/events/" + "e" * 100, {"json": {}}, 400),
    ("POST", "/api/template", {"json": {}}, 400),
    ("POST", "/api/template", {"json": {"template": 5}}, 400),
    ("POST", "/api/template", {"json": {"template": "{{ x }}", "variables": 3}}, 400),
    ("POST", "/api/template", {"json": {"template": "{% for i in range(10**9) %}x{% endfor %}"}}, 400),
    ("POST", "/api/template", {"json": {"template": "{{ 'x' * 10**9 }}"}}, 400),
    ("POST", "/api/template", {"json": {"template": "{{ ''.__class__.__mro__ }}"}}, 400),
    ("POST", "/api/template", {"json": {"template": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"}}, 400),
    ("POST", "/api/template", {"json": {"template": "{{ states('sensor.x') | int }}"}}, 400),
    ("POST", "/api/states/sensor.big", {"data": b'{"state": "' + b"x" * 70_000 + b'"}'}, 413),
    ("POST", "/api/template", {"data": b"x" * 200_000}, 413),
    ("GET", "/api/nope", {}, 404),
    ("PUT", "/api/states", {}, 405),
    ("POST", "/api/onboarding/core_config", {"json": {"latitude": "north"}}, 400),
    ("POST", "/api/onboarding/core_config", {"json": {"time_zone": "Mars/Olympus"}}, 400),
    ("POST", "/api/onboarding/core_config", {"json": {"bogus": 1}}, 400),
    ("POST", "/auth/login_flow", {"json": {"client_id": 5}}, 400),
    ("POST", "/auth/login_flow", {"data": b"\xff\xfe"}, 400),
    ("POST", "/auth/login_flow", {"json": {"client_id": "http://x/", "handler": ["evil", None]}}, 400),
    ("POST", "/auth/login_flow/nope", {"json": {"client_id": "x"}}, 404),
    ("POST", "/api/onboarding/users", {"json": []}, 400),
]


@pytest.mark.parametrize("role", ["owner"])
async def test_bad_input_gets_a_4xx_with_a_message_never_a_500(api: Any, role: str) -> None:
    failures = []
    for method, path, kwargs, expected in BAD_REQUESTS:
        async with api.session.request(
            method, api.base + path, headers=api.headers(role), **kwargs
        ) as resp:
            body = await resp.json(content_type=None) if resp.content_type == "application/json" else None
            if resp.status != expected or not (body and body.get("message")):
                failures.append((method, path[:60], resp.status, body or await resp.text()))
    assert failures == []
    assert api.hub.state == "RUNNING"


async def test_bad_tokens_and_oauth_errors(api: Any) -> None:
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer " + "x" * 5000, "Bearer a.b.c"):
        status, body = await api.request("GET", "/api/states", None, headers={"Authorization": header})
        assert status == 401 and body["message"], header[:20]
    status, body = await api.request("POST", "/auth/token", None, data={"grant_type": "password"})
    assert status == 400 and body == {"error": "unsupported_grant_type"}
    status, body = await api.request(
        "POST", "/auth/token", None, data={"grant_type": "authorization_code", "code": "x", "client_id": "y"}
    )
    assert status == 400 and body["error"] == "invalid_request"


async def test_an_oversized_body_does_not_block_others(api: Any) -> None:
    # Requests are served while another client sends a body far over the limit.
    async def big() -> int:
        async with api.session.post(f"{api.base}/api/template", data=b"x" * 1_000_000,
                                    headers=api.headers("admin")) as resp:
            return resp.status

    async def small() -> int:
        return (await api.request("GET", "/api/", "user"))[0]

    results = await asyncio.gather(big(), *(small() for _ in range(20)), return_exceptions=True)
    assert results[1:] == [200] * 20
    assert results[0] == 413 or isinstance(results[0], aiohttp.ClientError)
