"""Auth over HTTP, as a Home Assistant client does it: onboarding, the login flow, the token
endpoint, bans after failed logins, and every route checked against every role."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from hub.http import HTTP_SCHEMA
from hub.http.auth_views import MAX_FIELD, AuthState
from hub.http.server import make_app

CLIENT_ID = "http://127.0.0.1/"


async def _exchange(api: Any, code: str) -> dict[str, Any]:
    status, tokens = await api.request(
        "POST", "/auth/token", None,
        data={"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID},
    )
    assert status == 200, tokens
    return tokens


async def _login(api: Any, username: str, password: str) -> dict[str, Any]:
    status, flow = await api.request(
        "POST", "/auth/login_flow", None,
        json={"client_id": CLIENT_ID, "handler": ["homeassistant", None], "redirect_uri": CLIENT_ID},
    )
    assert status == 200, flow
    status, step = await api.request(
        "POST", f"/auth/login_flow/{flow['flow_id']}", None,
        json={"client_id": CLIENT_ID, "username": username, "password": password},
    )
    assert status in (200, 403), step
    return step


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_onboarding_then_tokens_then_the_api(start_api: Any) -> None:
    api = await start_api(users=False)
    status, steps = await api.request("GET", "/api/onboarding", None)
    assert (status, steps) == (200, [{"step": "user", "done": False}, {"step": "core_config", "done": False}])

    status, body = await api.request(
        "POST", "/api/onboarding/users", None,
        json={"client_id": CLIENT_ID, "name": "Ada", "username": "ada",
              "password": "a long password", "language": "en"},
    )
    assert status == 200 and set(body) == {"auth_code"}
    tokens = await _exchange(api, body["auth_code"])
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 1800
    assert tokens["access_token"] and tokens["refresh_token"]
    owner = api.hub.auth.get_user_by_username("ada")
    assert owner.is_owner and owner.is_admin and owner.name == "Ada"

    status, body = await api.request("GET", "/api/", None, headers=_bearer(tokens["access_token"]))
    assert (status, body) == (200, {"message": "API running."})

    # The step is done: nobody else becomes the owner.
    status, body = await api.request(
        "POST", "/api/onboarding/users", None,
        json={"client_id": CLIENT_ID, "name": "Eve", "username": "eve", "password": "another password"},
    )
    assert status == 403 and body["message"]
    assert api.hub.auth.get_user_by_username("eve") is None

    # The code was single use.
    status, body = await api.request(
        "POST", "/auth/token", None,
        data={"grant_type": "authorization_code", "code": "used-or-not", "client_id": CLIENT_ID},
    )
    assert status == 400

    status, body = await api.request(
        "POST", "/api/onboarding/core_config", None, headers=_bearer(tokens["access_token"]),
        json={"location_name": "Farm", "unit_system": "us_customary"},
    )
    assert (status, body) == (200, {})
    status, config = await api.request("GET", "/api/config", None, headers=_bearer(tokens["access_token"]))
    assert config["location_name"] == "Farm" and config["unit_system"]["temperature"] == "°F"
    _, steps = await api.request("GET", "/api/onboarding", None)
    assert all(step["done"] for step in steps)


async def test_login_flow_refresh_and_revoke(api: Any) -> None:
    step = await _login(api, "user", "wrong password")
    assert step["type"] == "form" and step["errors"] == {"base": "invalid_auth"}

    step = await _login(api, "user", api.password)
    assert step["type"] == "create_entry" and step["result"]
    tokens = await _exchange(api, step["result"])
    headers = _bearer(tokens["access_token"])
    assert (await api.request("GET", "/api/states", None, headers=headers))[0] == 200

    status, refreshed = await api.request(
        "POST", "/auth/token", None,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID},
    )
    assert status == 200 and refreshed["token_type"] == "Bearer" and "refresh_token" not in refreshed
    assert (await api.request("GET", "/api/", None, headers=_bearer(refreshed["access_token"])))[0] == 200

    # Revoking the refresh token ends the session: its access tokens stop working at once.
    async with api.session.post(
        f"{api.base}/auth/token", data={"action": "revoke", "token": tokens["refresh_token"]}
    ) as resp:
        assert resp.status == 200
    assert (await api.request("GET", "/api/", None, headers=headers))[0] == 401
    assert (await api.request("GET", "/api/", None, headers=_bearer(refreshed["access_token"])))[0] == 401
    status, body = await api.request(
        "POST", "/auth/token", None,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID},
    )
    assert (status, body) == (400, {"error": "invalid_grant"})


async def test_repeated_failed_logins_ban_the_address_for_a_while(start_api: Any) -> None:
    config = """\
demo:
  update_interval: 3600
http:
  server_host: 127.0.0.1
  server_port: 0
  login_attempts_threshold: 3
  ip_ban_duration: 1
"""
    api = await start_api(config)
    for _ in range(2):
        step = await _login(api, "user", "guess")
        assert step["errors"] == {"base": "invalid_auth"}
    step = await _login(api, "user", "guess")  # the third failure bans
    assert "invalid_auth" not in str(step)

    # Banned: no more guessing, not even the right password; a valid token still works, so a
    # stranger cannot lock everyone out by sending garbage.
    step = await _login(api, "user", api.password)
    assert step.get("type") != "create_entry"
    async with api.session.get(api.base + "/api/states", headers={"Authorization": "Bearer forged"}) as resp:
        assert resp.status == 403 and "banned" in (await resp.json())["message"]
    assert (await api.request("GET", "/api/states", "admin"))[0] == 200

    await asyncio.sleep(1.1)
    step = await _login(api, "user", api.password)
    assert step["type"] == "create_entry"
    assert (await api.request("GET", "/api/states", "admin"))[0] == 200


async def test_a_burst_of_guesses_checks_no_more_passwords_than_the_ban_allows(
        start_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    api = await start_api(
        "http:\n  server_host: 127.0.0.1\n  server_port: 0\n  login_attempts_threshold: 3\n")
    checked = []
    validate_login = api.hub.auth.validate_login

    async def counting(username: str, password: str) -> Any:
        checked.append(password)
        return await validate_login(username, password)

    monkeypatch.setattr(api.hub.auth, "validate_login", counting)
    flows = []
    for _ in range(31):
        status, flow = await api.request("POST", "/auth/login_flow", None, json={"client_id": CLIENT_ID})
        assert status == 200
        flows.append(flow["flow_id"])

    async def guess(flow_id: str, password: str) -> tuple[int, Any]:
        return await api.request("POST", f"/auth/login_flow/{flow_id}", None, json={
            "client_id": CLIENT_ID, "username": "user", "password": password})

    answers = await asyncio.gather(*(guess(flow_id, f"guess {i}")
                                     for i, flow_id in enumerate(flows[:30])))
    assert len(checked) <= 3
    assert sorted(status for status, _ in answers) == [200] * 2 + [403] * 28
    # Banned: the right password is refused too (and not even checked).
    status, body = await guess(flows[30], api.password)
    assert status == 403 and "banned" in body["message"] and len(checked) <= 3

    state = AuthState(api.hub)  # the per-address locks go when idle
    async with state.login_slot("192.0.2.1"):
        assert set(state.login_slots) == {"192.0.2.1"}
    assert state.login_slots == {}


async def test_an_over_long_password_is_refused_not_cut_short(api: Any) -> None:
    password = "p" * MAX_FIELD
    await api.hub.auth.create_user("Long", "long", password)
    step = await _login(api, "long", password + "and more")  # cut short, it would match
    assert step["type"] == "form" and step["errors"] == {"base": "invalid_auth"}
    step = await _login(api, "long", password)
    assert step["type"] == "create_entry"


async def test_revoking_a_token_closes_its_websockets_at_once(api: Any) -> None:
    tokens = await _exchange(api, (await _login(api, "user", api.password))["result"])
    async with api.session.ws_connect(api.base + "/api/websocket") as ws:
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": tokens["access_token"]})
        assert (await ws.receive_json())["type"] == "auth_ok"
        async with api.session.post(
            f"{api.base}/auth/token", data={"action": "revoke", "token": tokens["refresh_token"]}
        ) as resp:
            assert resp.status == 200
        msg = await ws.receive(timeout=1.5)  # well before the periodic token check
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008


async def test_pages_are_public(api: Any) -> None:
    for path in ("/", "/login", "/onboarding", "/static/app.js", "/static/style.css"):
        async with api.session.get(api.base + path) as resp:
            assert resp.status == 200, path
            assert await resp.text()
    async with api.session.get(api.base + "/") as resp:
        assert "<form" in await resp.text() and resp.headers["X-Content-Type-Options"] == "nosniff"


# --- every route against every role ---------------------------------------------------------

# The expected access level of every route. The routes themselves come from the app's router:
# a new route without an entry here fails the test, so nobody adds one without deciding this.
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/api/"): "read",
    ("GET", "/api/config"): "read",
    ("GET", "/api/components"): "read",
    ("GET", "/api/states"): "read",
    ("GET", "/api/states/{entity_id}"): "read",
    ("POST", "/api/states/{entity_id}"): "admin",
    ("DELETE", "/api/states/{entity_id}"): "admin",
    ("GET", "/api/services"): "read",
    ("POST", "/api/services/{domain}/{service}"): "write",
    ("GET", "/api/events"): "read",
    ("POST", "/api/events/{event_type}"): "admin",
    ("POST", "/api/template"): "admin",
    ("GET", "/api/error_log"): "admin",
    ("POST", "/api/config/core/check_config"): "admin",
    ("GET", "/api/persistent_notification"): "read",
    ("GET", "/api/openapi.json"): "public",
    ("GET", "/auth/providers"): "public",
    ("POST", "/auth/login_flow"): "public",
    ("POST", "/auth/login_flow/{flow_id}"): "public",
    ("DELETE", "/auth/login_flow/{flow_id}"): "public",
    ("POST", "/auth/token"): "public",
    ("POST", "/auth/revoke"): "public",
    ("GET", "/api/onboarding"): "public",
    ("POST", "/api/onboarding/users"): "public",
    ("POST", "/api/onboarding/core_config"): "owner",
    ("GET", "/api/websocket"): "public",
    ("HEAD", "/api/websocket"): "public",
    ("GET", "/"): "public",
    ("GET", "/login"): "public",
    ("GET", "/onboarding"): "public",
    ("GET", "/static"): "public",
    ("HEAD", "/static"): "public",
}
ROLES = ("anonymous", "revoked", "read_only", "user", "admin", "owner")
ALLOWED = {
    "read": {"read_only", "user", "admin", "owner"},
    "write": {"user", "admin", "owner"},
    "admin": {"admin", "owner"},
    "owner": {"owner"},
}
PATH_VALUES = {
    "entity_id": "sensor.matrix", "domain": "persistent_notification", "service": "create",
    "event_type": "matrix_event", "flow_id": "no_such_flow", "filename": "style.css",
}
BODIES = {
    "/api/states/{entity_id}": {"state": "1"},
    "/api/services/{domain}/{service}": {"message": "matrix"},
    "/api/template": {"template": "{{ 1 }}"},
    "/api/onboarding/core_config": {},
}


def _concrete(path: str) -> str:
    if path == "/static":
        return "/static/style.css"
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    return path


async def test_every_route_refuses_or_allows_each_role(api: Any) -> None:
    user = await api.hub.auth.create_user("Gone", "gone", api.password)
    api.tokens["revoked"] = api.hub.auth.create_long_lived_token(user, "tests")
    for token in api.hub.auth.refresh_tokens(user):
        api.hub.auth.revoke_refresh_token(token.id)

    app = make_app(api.hub, HTTP_SCHEMA({}))  # the factory the running server was built with
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()}
    assert routes == set(EXPECTED), "decide the access level of new routes in EXPECTED"

    wrong = []
    for (method, path), level in sorted(EXPECTED.items()):
        for role in ROLES:
            kwargs: dict[str, Any] = {}
            if method in ("POST", "DELETE") and path in BODIES:
                kwargs["json"] = BODIES[path]
            status, body = await api.request(
                method, _concrete(path), None if role == "anonymous" else role, **kwargs
            )
            if status >= 500:
                wrong.append((method, path, role, status, body))
            elif level == "public":
                if status == 401:
                    wrong.append((method, path, role, status, body))
            elif role in ("anonymous", "revoked"):
                if status != 401:
                    wrong.append((method, path, role, status, "expected 401"))
            elif role in ALLOWED[level]:
                if status in (401, 403):
                    wrong.append((method, path, role, status, body))
            elif status != 403:
                wrong.append((method, path, role, status, "expected 403"))
    assert wrong == []


@pytest.mark.parametrize("origin, allowed", [("https://dash.example", True), ("https://evil.example", False)])
async def test_cors_for_configured_origins(start_api: Any, origin: str, allowed: bool) -> None:
    api = await start_api(
        "http:\n  server_host: 127.0.0.1\n  server_port: 0\n"
        "  cors_allowed_origins: https://dash.example\n"
    )
    async with api.session.options(
        api.base + "/api/states",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    ) as resp:
        assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    async with api.session.get(api.base + "/api/states", headers={"Origin": origin, **api.headers("user")}) as resp:
        assert resp.status == 200
        assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed
