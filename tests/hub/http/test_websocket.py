"""The WebSocket API, driven the way an existing Home Assistant client drives it.

A real aiohttp server on 127.0.0.1 serves `websocket_handler` for a hub running the demo
integration; a real aiohttp client speaks the protocol: auth handshake, commands with increasing
ids, results, subscriptions, coalesced arrays.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import voluptuous as vol
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from hub.core import Hub
from hub.http import websocket, ws_commands
from hub.http.keys import HUB_KEY
from hub.services import SupportsResponse
from integrations import demo

DEMO: str = "demo:\n  update_interval: 3600\n"
PASSWORD = "correct horse battery"


class Client:
    """A minimal Home Assistant WebSocket client: auto ids, understands coalesced arrays."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1
        self.inbox: deque[dict[str, Any]] = deque()
        self.frames: list[Any] = []  # every decoded frame, to see coalescing

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        while not self.inbox:
            msg = await self.ws.receive(timeout=timeout)
            assert msg.type == WSMsgType.TEXT, f"connection ended: {msg.type} {msg.data!r}"
            data = json.loads(msg.data)
            self.frames.append(data)
            self.inbox.extend(data if isinstance(data, list) else [data])
        return self.inbox.popleft()

    async def send(self, type: str, **fields: Any) -> int:
        msg_id = self.next_id
        self.next_id += 1
        await self.ws.send_json({"id": msg_id, "type": type, **fields})
        return msg_id

    async def wait_for(self, msg_id: int, kind: str | None = None) -> dict[str, Any]:
        """The next message for `msg_id` (of type `kind`); others stay queued, in order."""
        skipped: list[dict[str, Any]] = []
        try:
            while True:
                msg = await self.receive()
                if msg.get("id") == msg_id and (kind is None or msg["type"] == kind):
                    return msg
                skipped.append(msg)
        finally:
            self.inbox.extendleft(reversed(skipped))

    async def command(self, type: str, **fields: Any) -> dict[str, Any]:
        return await self.wait_for(await self.send(type, **fields), "result")

    async def result(self, type: str, **fields: Any) -> Any:
        reply = await self.command(type, **fields)
        assert reply["success"], reply
        return reply["result"]

    async def event(self, msg_id: int) -> Any:
        return (await self.wait_for(msg_id, "event"))["event"]


@dataclass
class Env:
    hub: Hub
    server: TestServer
    session: aiohttp.ClientSession
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return str(self.server.make_url("/api/websocket"))

    async def raw(self) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(self.url)

    async def connect(self, who: str = "admin", token: str | None = None) -> Client:
        ws = await self.raw()
        hello = await ws.receive_json(timeout=5)
        assert hello == {"type": "auth_required", "ha_version": websocket.HA_VERSION}
        await ws.send_json({"type": "auth", "access_token": token or self.tokens[who]})
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "auth_ok", reply
        return Client(ws)


@pytest.fixture
async def env(make_hub: Any) -> AsyncIterator[Env]:
    hub = await make_hub(DEMO, [demo])
    admin = await hub.auth.create_user("Admin", "admin", PASSWORD, admin=True, owner=True)
    user = await hub.auth.create_user("Ursula", "ursula", PASSWORD)
    viewer = await hub.auth.create_user("Viewer", "viewer", PASSWORD, read_only=True)
    tokens = {
        u.username: hub.auth.create_long_lived_token(u, "tests", 1)
        for u in (admin, user, viewer)
    }
    app = web.Application()
    app[HUB_KEY] = hub
    websocket.setup(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    yield Env(hub, server, session, tokens)
    await session.close()
    await server.close()


async def _until(condition: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


def _apply(view: dict[str, dict[str, Any]], event: dict[str, Any]) -> None:
    """What Home Assistant's frontend does with a subscribe_entities event."""
    for entity_id, compressed in event.get("a", {}).items():
        view[entity_id] = {**compressed, "a": dict(compressed["a"])}
    for entity_id in event.get("r", []):
        view.pop(entity_id, None)
    for entity_id, diff in event.get("c", {}).items():
        entity = view[entity_id]
        plus = diff.get("+", {})
        for key, value in plus.items():
            if key == "a":
                entity["a"].update(value)
            else:
                entity[key] = value
        for name in diff.get("-", {}).get("a", []):
            entity["a"].pop(name, None)


# --- what a Home Assistant client does ----------------------------------------------------


async def test_a_home_assistant_client_reads_states_and_switches_the_heater_on(env: Env) -> None:
    client = await env.connect()
    pong = await client.wait_for(await client.send("ping"))
    assert pong == {"id": pong["id"], "type": "pong"}

    states = await client.result("get_states")
    by_id = {state["entity_id"]: state for state in states}
    assert by_id["switch.heater_power"]["state"] == "off"
    assert set(by_id["switch.heater_power"]) >= {
        "entity_id", "state", "attributes", "last_changed", "last_updated", "context"}

    config = await client.result("get_config")
    assert config["location_name"] and config["unit_system"]["temperature"] == "°C"
    services = await client.result("get_services")
    assert services["switch"]["turn_on"]["target"] == {"entity": [{"domain": ["switch"]}]}

    sub = await client.send("subscribe_entities")
    assert (await client.wait_for(sub, "result"))["success"]
    initial = await client.event(sub)
    heater = initial["a"]["switch.heater_power"]
    assert heater["s"] == "off" and isinstance(heater["lc"], float) and "a" in heater
    assert "lu" not in heater or heater["lu"] != heater["lc"]

    reply = await client.command(
        "call_service", domain="switch", service="turn_on",
        target={"entity_id": "switch.heater_power"},
    )
    assert reply["success"], reply
    assert reply["result"]["context"]["user_id"] == env.hub.auth.get_user_by_username("admin").id
    assert "response" not in reply["result"]
    assert env.hub.states.get("switch.heater_power").state == "on"

    while True:  # the power meter may change too; wait for the heater's diff
        change = await client.event(sub)
        if "switch.heater_power" in change.get("c", {}):
            break
    diff = change["c"]["switch.heater_power"]
    assert diff["+"]["s"] == "on" and isinstance(diff["+"]["lc"], float)


async def test_subscribe_entities_with_ids_sends_adds_changes_and_removals(env: Env) -> None:
    hub = env.hub
    client = await env.connect()
    sub = await client.send("subscribe_entities", entity_ids=["sensor.extra", "switch.heater_power"])
    await client.wait_for(sub, "result")
    assert set((await client.event(sub))["a"]) == {"switch.heater_power"}

    hub.states.set("sensor.extra", "1", {"unit_of_measurement": "W", "old": True})
    assert (await client.event(sub))["a"]["sensor.extra"]["s"] == "1"
    hub.states.set("sensor.extra", "1", {"unit_of_measurement": "kW"})
    diff = (await client.event(sub))["c"]["sensor.extra"]
    assert diff["+"]["a"] == {"unit_of_measurement": "kW"} and "lu" in diff["+"]
    assert diff["-"] == {"a": ["old"]} and "s" not in diff["+"]
    hub.states.remove("sensor.extra")
    assert await client.event(sub) == {"r": ["sensor.extra"]}


async def test_render_template_renders_again_when_the_entity_changes(env: Env) -> None:
    client = await env.connect()
    sub = await client.send("render_template", template="Heater is {{ states('switch.heater_power') }}")
    assert (await client.wait_for(sub, "result"))["success"]
    first = await client.event(sub)
    assert first["result"] == "Heater is off"
    assert first["listeners"] == {
        "all": False, "entities": ["switch.heater_power"], "domains": [], "time": False}

    await env.hub.services.call("switch", "turn_on", target={"entity_id": "switch.heater_power"})
    assert (await client.event(sub))["result"] == "Heater is on"

    await client.result("unsubscribe_events", subscription=sub)
    bad = await client.command("render_template", template="{{ states('x' }}")
    assert bad["error"]["code"] == "template_error"
    strict = await client.command("render_template", template="{{ nope }}", strict=True)
    assert strict["error"]["code"] == "template_error"
    reported = await client.send("render_template", template="{{ nope }}", strict=True,
                                 report_errors=True)
    assert (await client.wait_for(reported, "result"))["success"]
    assert (await client.event(reported))["level"] == "ERROR"
    variables = await client.send("render_template", template="{{ x * 2 }}", variables={"x": 21},
                                  timeout=3)
    assert (await client.event(variables))["result"] == 42


async def test_events_subscription_unsubscription_and_fire_event(env: Env) -> None:
    client = await env.connect()
    sub = await client.send("subscribe_events", event_type="test_event")
    assert (await client.wait_for(sub, "result"))["success"]
    fired = await client.result("fire_event", event_type="test_event", event_data={"n": 1})
    assert fired["context"]["id"]
    event = await client.event(sub)
    assert event["event_type"] == "test_event" and event["data"] == {"n": 1}
    assert event["context"]["user_id"] is not None and event["time_fired"]

    state_sub = await client.send("subscribe_events", event_type="state_changed")
    await client.wait_for(state_sub, "result")
    env.hub.states.set("sensor.probe", "5")
    event = await client.event(state_sub)
    assert event["data"]["new_state"]["state"] == "5" and event["data"]["old_state"] is None

    await client.result("unsubscribe_events", subscription=sub)
    missing = await client.command("unsubscribe_events", subscription=sub)
    assert missing["error"]["code"] == "not_found"
    forged = await client.command("fire_event", event_type="state_changed")
    assert forged["error"]["code"] == "invalid_format"


async def test_call_service_errors_and_responses(env: Env) -> None:
    env.hub.services.register(
        "test", "echo", lambda call: {"echo": call.data.get("text")},
        supports_response=SupportsResponse.only,
    )
    client = await env.connect()
    missing = await client.command("call_service", domain="nope", service="nothing")
    assert missing["error"] == {"code": "not_found", "message": "Service nope.nothing not found."}
    echo = await client.result("call_service", domain="test", service="echo",
                               service_data={"text": "hi"}, return_response=True)
    assert echo["response"] == {"echo": "hi"} and echo["context"]["id"]
    needs_flag = await client.command("call_service", domain="test", service="echo")
    assert needs_flag["error"]["code"] == "service_validation_error"
    no_domain = await client.command("call_service", service="turn_on")
    assert no_domain["error"]["code"] == "invalid_format"


# --- permissions and auth ------------------------------------------------------------------


async def test_a_read_only_user_reads_but_may_not_change_anything(env: Env) -> None:
    client = await env.connect("viewer")
    assert await client.result("get_states")
    denied = await client.command("call_service", domain="switch", service="turn_on",
                                  target={"entity_id": "switch.heater_power"})
    assert denied["error"]["code"] == "unauthorized"
    assert env.hub.states.get("switch.heater_power").state == "off"
    assert (await client.command("fire_event", event_type="x"))["error"]["code"] == "unauthorized"

    user = await env.connect("ursula")
    everything = await user.command("subscribe_events")
    assert everything["error"]["code"] == "unauthorized"
    assert (await user.command("subscribe_events", event_type="state_changed"))["success"]
    assert (await user.command("fire_event", event_type="x"))["error"]["code"] == "unauthorized"


async def test_a_bad_token_gets_auth_invalid_and_repeated_failures_ban_the_address(env: Env) -> None:
    env.hub.auth.ban_threshold = 3
    for _ in range(3):
        ws = await env.raw()
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": "not-a-token"})
        reply = await ws.receive_json()
        assert reply == {"type": "auth_invalid", "message": "Invalid access token or password"}
        assert (await ws.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    # Banned: a further guess is refused even before its token is checked...
    ws = await env.raw()
    await ws.receive_json()
    await ws.send_json({"type": "auth", "access_token": "still-not-a-token"})
    assert "Too many failed logins" in (await ws.receive_json())["message"]
    # ...but a client with a valid token is never locked out by someone else's garbage.
    client = await env.connect("ursula")
    assert (await client.result("auth/current_user"))["name"] == "Ursula"


async def test_malformed_or_missing_auth_message_ends_the_connection(env: Env, monkeypatch) -> None:
    ws = await env.raw()
    await ws.receive_json()
    await ws.send_json({"type": "auth"})
    reply = await ws.receive_json()
    assert reply["type"] == "auth_invalid" and "incorrectly formatted" in reply["message"]

    monkeypatch.setattr(websocket, "AUTH_TIMEOUT", 0.1)
    silent = await env.raw()
    await silent.receive_json()
    assert (await silent.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)


async def test_long_lived_token_commands(env: Env) -> None:
    client = await env.connect("ursula")
    me = await client.result("auth/current_user")
    assert me["name"] == "Ursula" and me["is_admin"] is False and me["is_owner"] is False
    assert me["credentials"] == [] and me["mfa_modules"] == []

    token = await client.result("auth/long_lived_access_token", client_name="Node-RED", lifespan=30)
    assert isinstance(token, str)
    duplicate = await client.command("auth/long_lived_access_token", client_name="Node-RED",
                                     lifespan=30)
    assert not duplicate["success"]
    other = await env.connect(token=token)
    assert await other.result("get_states")

    listed = await client.result("auth/refresh_tokens")
    mine = {entry["client_name"]: entry for entry in listed}
    assert mine["Node-RED"]["type"] == "long_lived_access_token"
    assert mine["Node-RED"]["is_current"] is False and mine["tests"]["is_current"] is True

    admins_token = env.hub.auth.refresh_tokens(env.hub.auth.get_user_by_username("admin"))[0]
    foreign = await client.command("auth/delete_refresh_token", refresh_token_id=admins_token.id)
    assert foreign["error"]["code"] == "invalid_token_id"
    assert await client.result("auth/delete_refresh_token",
                               refresh_token_id=mine["Node-RED"]["id"]) == {}
    # The revoked token's own connection ends at once, and it cannot log in again.
    assert (await other.ws.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    ws = await env.raw()
    await ws.receive_json()
    await ws.send_json({"type": "auth", "access_token": token})
    assert (await ws.receive_json())["type"] == "auth_invalid"


async def _closed(client: Client, timeout: float) -> int:
    """The close code the server sends within `timeout` seconds (events before it skipped)."""
    async with asyncio.timeout(timeout):
        while (msg := await client.ws.receive()).type == WSMsgType.TEXT:
            pass
    assert msg.type == WSMsgType.CLOSE, msg
    return msg.data


async def test_revoking_a_token_closes_its_other_connections_at_once(env: Env) -> None:
    ursula = env.hub.auth.get_user_by_username("ursula")
    (revoked,) = env.hub.auth.refresh_tokens(ursula)
    first, second = await env.connect("ursula"), await env.connect("ursula")
    await first.result("subscribe_entities")  # a client that only listens
    manager = await env.connect(token=env.hub.auth.create_long_lived_token(ursula, "manager", 1))
    assert await manager.result("auth/delete_refresh_token", refresh_token_id=revoked.id) == {}
    # Well before the periodic token check (TOKEN_CHECK_INTERVAL).
    assert await _closed(first, 1.5) == 1008 and await _closed(second, 1.5) == 1008
    assert await manager.wait_for(await manager.send("ping"))
    assert len(websocket.active_connections(env.hub)) == 1


async def test_tokens_and_users_removed_by_the_cli_close_their_connections(env: Env) -> None:
    hub = env.hub
    ursula, viewer = await env.connect("ursula"), await env.connect("viewer")
    admin = await env.connect("admin")
    await hub.auth.flush()
    # `hub token revoke` and `hub user remove`: another process on the same config dir.
    cli = Hub(hub.config_dir)
    await cli.auth.load()
    (token,) = cli.auth.refresh_tokens(cli.auth.get_user_by_username("ursula"))
    assert cli.auth.revoke_refresh_token(token.id)
    await cli.auth.remove_user(cli.auth.get_user_by_username("viewer").id)
    await cli.auth.flush()
    assert websocket.TOKEN_CHECK_INTERVAL <= 5
    assert await _closed(ursula, 7) == 1008 and await _closed(viewer, 7) == 1008
    assert await admin.wait_for(await admin.send("ping"))


async def test_render_template_subscriptions_per_connection_are_capped(env: Env) -> None:
    limit = ws_commands.MAX_TEMPLATE_SUBSCRIPTIONS
    client = await env.connect()
    # All in one frame: they start side by side, and still only `limit` of them get through.
    first = client.next_id
    await client.ws.send_json([{"id": first + i, "type": "render_template",
                                "template": f"{{{{ 1 + {i} }}}}"} for i in range(limit + 1)])
    client.next_id += limit + 1
    results = [await client.wait_for(first + i, "result") for i in range(limit + 1)]
    refused = [r for r in results if not r["success"]]
    assert len(refused) == 1 and refused[0]["error"] == {
        "code": "home_assistant_error",
        "message": f"too many template subscriptions (at most {limit} per connection)"}

    await client.result("unsubscribe_events",
                        subscription=next(r["id"] for r in results if r["success"]))
    bad = await client.command("render_template", template="{{ states('x' }}")
    assert bad["error"]["code"] == "template_error"  # a refused one holds no place
    assert (await client.command("render_template", template="{{ 2 }}"))["success"]
    again = await client.command("render_template", template="{{ 3 }}")
    assert again["error"]["code"] == "home_assistant_error"
    other = await env.connect()  # the cap is per connection
    assert (await other.command("render_template", template="{{ 4 }}"))["success"]


# --- every command against every role -------------------------------------------------------

# Fields that let a command get past its schema, so the admin's run does something real.
# Commands not listed are sent with no fields (the admin then gets invalid_format at worst).
SAMPLE_FIELDS: dict[str, dict[str, Any]] = {
    "call_service": {"domain": "persistent_notification", "service": "create",
                     "service_data": {"message": "matrix"}},
    "fire_event": {"event_type": "matrix_event"},
    "render_template": {"template": "{{ 1 }}"},
    "subscribe_events": {"event_type": "state_changed"},
    "supported_features": {"features": {}},
    "unsubscribe_events": {"subscription": 1},
    "config/entity_registry/get": {"entity_id": "switch.heater_power"},
    "auth/delete_refresh_token": {"refresh_token_id": "no-such-token"},
}


async def test_every_command_refuses_or_allows_each_role(env: Env) -> None:
    assert {"call_service", "fire_event"} <= set(websocket.COMMANDS)
    clients = {role: await env.connect(role) for role in ("viewer", "ursula", "admin")}
    wrong = []
    for command in sorted(websocket.COMMANDS.values(), key=lambda c: c.type):
        fields = dict(SAMPLE_FIELDS.get(command.type, {}))
        if command.type == "auth/long_lived_access_token":
            fields = {"client_name": "matrix", "lifespan": 1}
        for role, client in clients.items():
            reply = await client.wait_for(await client.send(command.type, **fields))
            code = None if reply.get("success", True) else reply["error"]["code"]
            if role == "viewer":
                refused = command.admin_only or command.write
            elif role == "ursula":
                refused = command.admin_only
            else:
                refused = False
            if refused and code != "unauthorized":
                wrong.append((command.type, role, reply, "expected unauthorized"))
            elif not refused and (code == "unknown_error"
                                  or (code == "unauthorized" and role == "admin")):
                # Non-admins may still be refused inside a handler (e.g. subscribe_events of
                # an event type off the allow-list); the admin never, and nobody crashes it.
                wrong.append((command.type, role, reply, "expected success or a non-auth error"))
    assert wrong == []
    assert env.hub.states.get("switch.heater_power").state == "off"


# --- bad input -----------------------------------------------------------------------------


async def test_garbage_gets_error_results_and_the_connection_survives(env: Env) -> None:
    client = await env.connect()
    await client.ws.send_str("this is not json")
    reply = await client.receive()
    assert reply["error"]["code"] == "invalid_format" and reply["id"] is None
    for bad in (7, [1], {"type": "ping"}, {"id": "x", "type": "ping"}, {"id": 5, "type": 7}):
        await client.ws.send_json(bad)
        reply = await client.receive()
        assert reply["success"] is False and reply["error"]["code"] == "invalid_format", bad
    unknown = await client.command("no_such_command")
    assert unknown["error"] == {"code": "unknown_command", "message": "Unknown command."}
    await client.ws.send_json({"id": 20, "type": "ping"})
    assert (await client.receive())["type"] == "pong"
    await client.ws.send_json({"id": 20, "type": "ping"})
    assert (await client.receive())["error"]["code"] == "id_reuse"
    await client.ws.send_json({"id": "21", "type": "ping"})  # HA coerces numeric strings
    assert await client.receive() == {"id": 21, "type": "pong"}


async def test_ids_that_only_look_numeric_are_invalid_format(env: Env) -> None:
    client = await env.connect()
    # Unicode digits int() refuses, more digits than int() takes, more than MAX_ID_DIGITS.
    for bad in ("²", "٣", "9" * 5000, "1" * 16, " 7", "+7"):
        await client.ws.send_json({"id": bad, "type": "ping"})
        reply = await client.receive()
        assert reply == {"id": None, "type": "result", "success": False, "error": {
            "code": "invalid_format", "message": "Message incorrectly formatted."}}, bad
    await client.ws.send_json({"id": "9" * 15, "type": "ping"})
    assert await client.receive() == {"id": 999_999_999_999_999, "type": "pong"}


async def test_a_client_that_keeps_sending_garbage_is_disconnected(env: Env) -> None:
    client = await env.connect()
    for _ in range(websocket.MAX_BAD_MESSAGES):
        await client.ws.send_str("{")
    for _ in range(websocket.MAX_BAD_MESSAGES):  # an invalid_format error for each
        assert (await client.receive())["error"]["code"] == "invalid_format"
    msg = await client.ws.receive(timeout=5)
    assert msg.type == WSMsgType.CLOSE and msg.data == 1008  # policy violation


@pytest.mark.parametrize(("frame", "code"), [("binary", 1003), ("oversized", 1009)])
async def test_binary_and_oversized_frames_close_the_connection(env: Env, frame: str,
                                                                code: int) -> None:
    client = await env.connect()
    if frame == "binary":
        await client.ws.send_bytes(b'{"id": 1, "type": "ping"}')
    else:
        await client.ws.send_str('{"id": 1, "type": "ping", "pad": "' + "x" * (1 << 20) + '"}')
    msg = await client.ws.receive(timeout=5)
    assert msg.type == WSMsgType.CLOSE and msg.data == code


async def test_clients_that_ask_for_it_get_coalesced_arrays(env: Env) -> None:
    client = await env.connect()
    assert (await client.command("supported_features", features={"coalesce_messages": 1}))["success"]
    # A batch of commands in one frame (HA accepts arrays too): the pongs go out as one array.
    await client.ws.send_json([{"id": 10 + i, "type": "ping"} for i in range(50)])
    pongs = [await client.receive() for _ in range(50)]
    assert [p["id"] for p in pongs] == list(range(10, 60))
    assert any(isinstance(frame, list) and len(frame) > 1 for frame in client.frames)


# --- lifecycle and slow consumers ----------------------------------------------------------


async def test_closing_a_connection_removes_every_listener(env: Env) -> None:
    hub = env.hub
    before = hub.bus.listener_counts()
    entity_listeners_before = {k: len(v) for k, v in hub.states._entity_listeners.items()}
    client = await env.connect()
    for command, fields in (
        ("subscribe_events", {"event_type": "state_changed"}),
        ("subscribe_events", {}),
        ("subscribe_entities", {}),
        ("subscribe_entities", {"entity_ids": ["switch.heater_power"]}),
        ("render_template", {"template": "{{ states('switch.heater_power') }}"}),
        ("render_template", {"template": "{{ states.switch | count }}"}),
        ("persistent_notification/subscribe", {}),
    ):
        assert (await client.command(command, **fields))["success"], command
    assert hub.bus.listener_counts() != before
    assert len(websocket.active_connections(hub)) == 1

    await client.ws.close()
    await _until(lambda: not websocket.active_connections(hub))
    assert hub.bus.listener_counts() == before
    assert {k: len(v) for k, v in hub.states._entity_listeners.items()} == entity_listeners_before


async def test_stopping_the_hub_closes_its_connections(env: Env) -> None:
    client = await env.connect()
    await client.result("subscribe_entities")
    await env.hub.stop()
    while (msg := await client.ws.receive(timeout=5)).type == WSMsgType.TEXT:
        pass
    assert msg.type == WSMsgType.CLOSE and msg.data == 1001  # going away
    assert not websocket.active_connections(env.hub)


async def test_notifications_and_registries(env: Env) -> None:
    hub = env.hub
    client = await env.connect()
    devices = await client.result("config/device_registry/list")
    assert {"Heater", "Power meter"} <= {device["name"] for device in devices}
    entities = await client.result("config/entity_registry/list")
    assert "switch.heater_power" in {entry["entity_id"] for entry in entities}
    assert isinstance(await client.result("config/area_registry/list"), list)

    hub.notifications.create("Hello", "Greeting", "greeting")
    assert [n["notification_id"] for n in await client.result("persistent_notification/get")] == [
        "greeting"]
    sub = await client.send("persistent_notification/subscribe")
    await client.wait_for(sub, "result")
    current = await client.event(sub)
    assert current["type"] == "current" and current["notifications"]["greeting"]["message"] == "Hello"
    hub.notifications.create("Disk almost full", notification_id="disk")
    added = await client.event(sub)
    assert added["type"] == "added" and added["notifications"]["disk"]["message"] == "Disk almost full"
    hub.notifications.dismiss("greeting")
    removed = await client.event(sub)
    assert removed["type"] == "removed" and list(removed["notifications"]) == ["greeting"]


async def test_plugins_register_their_own_commands(env: Env) -> None:
    async def handle(connection: websocket.ActiveConnection, msg: dict[str, Any]) -> Any:
        return {"echo": msg["text"], "user": connection.user.name}

    remove = websocket.register_command(
        "test/echo", handle, {vol.Required("text"): str}, admin_only=True)
    try:
        client = await env.connect()
        assert await client.result("test/echo", text="hi") == {"echo": "hi", "user": "Admin"}
        assert (await client.command("test/echo"))["error"]["code"] == "invalid_format"
        user = await env.connect("ursula")
        assert (await user.command("test/echo", text="hi"))["error"]["code"] == "unauthorized"
    finally:
        remove()
    assert "test/echo" not in websocket.COMMANDS


async def _flood(hub: Hub, changes: int, entities: int) -> None:
    """Many changes with 2 kB attributes that change each time (so every diff is large)."""
    padding = "x" * 2000
    for i in range(changes):
        hub.states.set(f"sensor.flood_{i % entities}", str(i), {"payload": f"{i}{padding}"})
        if i % 200 == 199:
            await asyncio.sleep(0)  # let the writers run, as real device traffic would


async def test_a_client_that_stops_reading_events_is_cut_off(env: Env) -> None:
    hub = env.hub
    before = hub.bus.listener_counts()
    client = await env.connect()
    await client.result("subscribe_events", event_type="state_changed")
    (connection,) = websocket.active_connections(hub)
    # The client reads nothing from here on; the hub keeps producing.
    await _flood(hub, 40_000, 100)
    await _until(lambda: not websocket.active_connections(hub))
    assert connection._overflowed
    assert connection.max_queue_seen <= websocket.MAX_PENDING_MESSAGES + 1
    assert connection.queued_bytes == 0 and not connection.queue
    assert hub.bus.listener_counts() == before


async def test_a_lagging_entities_subscriber_gets_coalesced_changes(env: Env) -> None:
    hub = env.hub
    client = await env.connect()
    await client.result("supported_features", features={"coalesce_messages": 1})
    sub = await client.send("subscribe_entities")
    await client.wait_for(sub, "result")
    view: dict[str, dict[str, Any]] = {}
    _apply(view, await client.event(sub))
    (connection,) = websocket.active_connections(hub)

    # Not reading while 40k changes of 100 entities happen: the queue stays short because
    # changes are folded per entity instead of queued one by one.
    await _flood(hub, 40_000, 100)
    hub.states.remove("sensor.flood_0")
    assert websocket.active_connections(hub) == [connection] and not connection._overflowed
    assert websocket.COALESCE_THRESHOLD <= connection.max_queue_seen <= websocket.COALESCE_THRESHOLD + 2

    # Catching up, the client ends with exactly the hub's states.
    hub.states.set("sensor.flood_done", "yes")
    received = 0
    while "sensor.flood_done" not in view:
        _apply(view, await client.event(sub))
        received += 1
    assert received < 40_000 // 4  # folded, not one message per change
    assert "sensor.flood_0" not in view
    for state in hub.states.all():
        assert view[state.entity_id]["s"] == state.state, state.entity_id
        assert view[state.entity_id]["a"] == json.loads(json.dumps(dict(state.attributes)))
