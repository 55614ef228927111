"""Home Assistant's login flow, token endpoint and onboarding, so HA-style clients (and our
browser page) can get tokens the way they do from Home Assistant.

    POST /auth/login_flow            -> a form asking for username and password
    POST /auth/login_flow/<flow_id>  -> {"type": "create_entry", "result": <authorization code>}
    POST /auth/token                 -> access + refresh token for the code (form-encoded, OAuth2)
    GET  /api/onboarding             -> which onboarding steps are done
    POST /api/onboarding/users       -> the owner, while no user exists; answers an auth code

Passwords, tokens and bans live in `hub.auth`; this module only speaks HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zoneinfo
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import voluptuous as vol
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..core import new_id
from ..registry import Store
from .keys import HUB_KEY, REQUEST_USER
from .openapi import Access, ApiRoute, array_of, ref
from .rest import json_error, json_message, json_response, read_object
from .websocket import close_token_connections

if TYPE_CHECKING:
    from ..core import Hub

_LOGGER = logging.getLogger(__name__)

HANDLER: Final = ["homeassistant", None]  # HA's only local auth provider
FLOW_LIFETIME: Final = 600.0  # seconds to finish a login flow
MAX_FLOWS: Final = 1000  # pending flows kept; anonymous clients must not grow memory
MAX_FIELD: Final = 1024  # characters in a username, password, client id...
MAX_LOGIN_SLOTS: Final = 10_000  # addresses with a password check running or waiting
BANNED: Final = "Too many failed logins: this address is banned for a while."
DATA_SCHEMA: Final = [
    {"type": "string", "name": "username", "required": True},
    {"type": "string", "name": "password", "required": True},
]


@dataclass(slots=True)
class _Flow:
    client_id: str
    redirect_uri: str | None
    ip: str
    expires: float


@dataclass(slots=True)
class _LoginSlot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # requests holding or waiting for the lock


class AuthState:
    """Per-app state of the auth views: pending login flows and onboarding progress."""

    def __init__(self, hub: Hub) -> None:
        self.flows: OrderedDict[str, _Flow] = OrderedDict()
        self.login_slots: dict[str, _LoginSlot] = {}  # by address; dropped when idle
        self.onboarding_done: set[str] = set()
        self.onboarding_lock = asyncio.Lock()
        self.store = Store(hub, "onboarding", 1, lambda: {"done": sorted(self.onboarding_done)})

    def add_flow(self, flow: _Flow) -> str:
        now = time.monotonic()
        while self.flows and (
            len(self.flows) >= MAX_FLOWS or next(iter(self.flows.values())).expires < now
        ):
            self.flows.popitem(last=False)  # oldest first: they expire in creation order
        flow_id = new_id()
        self.flows[flow_id] = flow
        return flow_id

    def get_flow(self, flow_id: str) -> _Flow | None:
        flow = self.flows.get(flow_id)
        if flow is not None and flow.expires < time.monotonic():
            del self.flows[flow_id]
            return None
        return flow

    @contextlib.asynccontextmanager
    async def login_slot(self, ip: str) -> AsyncIterator[None]:
        """At most one password check in flight per address: a burst of guesses is checked
        one by one, so the ban stops it after `ban_threshold` of them."""
        slot = self.login_slots.get(ip)
        if slot is None:
            if len(self.login_slots) >= MAX_LOGIN_SLOTS:
                raise json_error(503, "Too many logins in progress; try again later.")
            slot = self.login_slots[ip] = _LoginSlot()
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0 and self.login_slots.get(ip) is slot:
                del self.login_slots[ip]


AUTH_STATE: Final = web.AppKey("auth_state", AuthState)


async def auth_state_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the onboarding progress at start-up, save it at shutdown."""
    state = app[AUTH_STATE]
    data = await state.store.load()
    if data and isinstance(data.get("done"), list):
        state.onboarding_done = {str(step) for step in data["done"]}
    yield
    await state.store.flush()


def _hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


def _ip(request: web.Request) -> str:
    return request.remote or ""


def _string(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise json_error(400, f"{key} should be a non-empty string.")
    return value


# --- login flow ----------------------------------------------------------------------------


async def get_providers(request: web.Request) -> web.Response:
    return json_response(
        {
            "providers": [{"name": "Home Assistant Local", "id": None, "type": "homeassistant"}],
            "preselect_remember_me": False,
        }
    )


def _form(flow_id: str, errors: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "form",
        "flow_id": flow_id,
        "handler": HANDLER,
        "step_id": "init",
        "data_schema": DATA_SCHEMA,
        "errors": errors,
        "description_placeholders": None,
        "last_step": None,
        "preview": None,
    }


async def start_login_flow(request: web.Request) -> web.Response:
    data = await read_object(request)
    client_id = _string(data, "client_id")
    handler = data.get("handler", HANDLER)
    if not (isinstance(handler, list) and handler and handler[0] == "homeassistant"):
        raise json_error(400, "Invalid handler specified: only [\"homeassistant\", null].")
    redirect_uri = _string(data, "redirect_uri", required=False)
    state = request.app[AUTH_STATE]
    flow_id = state.add_flow(
        _Flow(client_id, redirect_uri, _ip(request), time.monotonic() + FLOW_LIFETIME)
    )
    return json_response(_form(flow_id, {}))


async def login_flow_step(request: web.Request) -> web.Response:
    hub = _hub(request)
    state = request.app[AUTH_STATE]
    flow_id = request.match_info["flow_id"]
    flow = state.get_flow(flow_id)
    if flow is None:
        raise json_error(404, "Invalid flow specified.")
    data = await read_object(request)
    if _string(data, "client_id") != flow.client_id:
        raise json_error(400, "Invalid client id.")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise json_error(400, "username and password should be strings.")
    ip = _ip(request)

    def refuse_if_banned() -> None:
        if hub.auth.is_banned(ip):
            state.flows.pop(flow_id, None)
            raise json_error(403, BANNED)

    async with state.login_slot(ip):
        refuse_if_banned()
        if state.get_flow(flow_id) is not flow:  # finished or aborted while we waited
            raise json_error(404, "Invalid flow specified.")
        user = None
        if len(username) <= MAX_FIELD and len(password) <= MAX_FIELD:
            # Longer ones are refused, not cut short: a cut password would never match.
            user = await hub.auth.validate_login(username, password)
        refuse_if_banned()  # banned meanwhile (e.g. by token guesses): even a right password
        if user is None:
            hub.auth.record_failed_login(ip)  # logs the address, never the password
            refuse_if_banned()
            return json_response(_form(flow_id, {"base": "invalid_auth"}))
    hub.auth.clear_failed_logins(ip)
    state.flows.pop(flow_id, None)
    code = hub.auth.create_auth_code(flow.client_id, user)
    return json_response(
        {
            "version": 1,
            "type": "create_entry",
            "flow_id": flow_id,
            "handler": HANDLER,
            "title": user.name,
            "result": code,
            "description": None,
            "description_placeholders": None,
            "context": {"ip_address": ip, "redirect_uri": flow.redirect_uri},
        }
    )


async def abort_login_flow(request: web.Request) -> web.Response:
    if request.app[AUTH_STATE].flows.pop(request.match_info["flow_id"], None) is None:
        raise json_error(404, "Invalid flow specified.")
    return json_message("Flow aborted")


# --- token endpoint (OAuth2, form-encoded like HA's) ------------------------------------------


def _oauth_error(error: str, description: str | None = None, status: int = 400) -> web.Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, status)


async def _form_data(request: web.Request) -> dict[str, Any]:
    """The token endpoint's parameters: form-encoded as OAuth2 wants; JSON accepted too."""
    if request.content_type == "application/json":
        return await read_object(request)
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError) as err:  # bad multipart or charset
        raise json_error(400, f"Invalid form data: {err}") from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def token(request: web.Request) -> web.Response:
    hub = _hub(request)
    data = await _form_data(request)
    if data.get("action") == "revoke":
        return _revoke(hub, data)
    grant_type = data.get("grant_type")
    ip = _ip(request)
    client_id = data.get("client_id")
    if grant_type == "authorization_code":
        if not isinstance(client_id, str) or not client_id:
            return _oauth_error("invalid_request", "Invalid client id")
        user = hub.auth.redeem_auth_code(client_id, data.get("code") or "")
        if user is None:
            hub.auth.record_failed_login(ip)  # guessing codes is guessing passwords
            return _oauth_error("invalid_request", "Invalid code")
        hub.auth.clear_failed_logins(ip)
        try:
            refresh = hub.auth.create_refresh_token(user, client_id)
        except ValueError as err:
            return _oauth_error("access_denied", str(err), 403)
        return json_response(
            {
                "access_token": hub.auth.create_access_token(refresh, ip),
                "token_type": "Bearer",
                "refresh_token": refresh.token,
                "expires_in": int(refresh.access_token_expiration),
                "ha_auth_provider": "homeassistant",
            }
        )
    if grant_type == "refresh_token":
        refresh = hub.auth.get_refresh_token_by_secret(data.get("refresh_token") or "")
        if refresh is None:
            hub.auth.record_failed_login(ip)
            return _oauth_error("invalid_grant")
        if refresh.client_id is not None and refresh.client_id != client_id:
            return _oauth_error("invalid_request", "Invalid client id")
        try:
            access_token = hub.auth.create_access_token(refresh, ip)
        except ValueError as err:
            return _oauth_error("access_denied", str(err), 403)
        return json_response(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": int(refresh.access_token_expiration),
                "ha_auth_provider": "homeassistant",
            }
        )
    return _oauth_error("unsupported_grant_type")


def _revoke(hub: Hub, data: dict[str, Any]) -> web.Response:
    # Like HA (and RFC 7009): 200 whether or not the token existed, so it leaks nothing.
    refresh = hub.auth.get_refresh_token_by_secret(data.get("token") or "")
    if refresh is not None:
        hub.auth.revoke_refresh_token(refresh.id)
        close_token_connections(hub, refresh.id)  # its WebSockets end now too
    return web.Response(status=200)


async def revoke(request: web.Request) -> web.Response:
    """`POST /auth/revoke` (HA's older spelling of `action=revoke`)."""
    return _revoke(_hub(request), await _form_data(request))


# --- onboarding --------------------------------------------------------------------------------


def _onboarding_steps(hub: Hub, state: AuthState) -> list[dict[str, Any]]:
    user_done = hub.auth.onboarded
    # Users made with `hub user add` skipped onboarding: nothing is left to ask them.
    core_done = "core_config" in state.onboarding_done or (
        user_done and "user" not in state.onboarding_done
    )
    return [{"step": "user", "done": user_done}, {"step": "core_config", "done": core_done}]


async def get_onboarding(request: web.Request) -> web.Response:
    return json_response(_onboarding_steps(_hub(request), request.app[AUTH_STATE]))


async def onboard_user(request: web.Request) -> web.Response:
    hub = _hub(request)
    state = request.app[AUTH_STATE]
    data = await read_object(request)
    client_id = _string(data, "client_id")
    username = _string(data, "username")
    password = _string(data, "password")
    name = _string(data, "name", required=False) or username
    language = _string(data, "language", required=False)
    async with state.onboarding_lock:  # two browsers racing must not make two owners
        if hub.auth.onboarded:
            raise json_error(403, "User step already done.")
        try:
            user = await hub.auth.create_user(name, username, password, owner=True, admin=True)
        except ValueError as err:
            raise json_error(400, str(err)) from None
    if language:
        hub.config["language"] = language
    state.onboarding_done.add("user")
    state.store.schedule_save()
    _LOGGER.info("Onboarding: created the owner %s", user.username)
    return json_response({"auth_code": hub.auth.create_auth_code(client_id, user)})


def _time_zone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise vol.Invalid("unknown time zone") from None
    return str(value)


CORE_CONFIG_SCHEMA: Final = vol.Schema(
    {
        vol.Optional("location_name"): vol.All(str, vol.Length(min=1, max=255)),
        vol.Optional("latitude"): vol.All(vol.Coerce(float), vol.Range(-90, 90)),
        vol.Optional("longitude"): vol.All(vol.Coerce(float), vol.Range(-180, 180)),
        vol.Optional("elevation"): vol.All(vol.Coerce(int), vol.Range(-10_000, 100_000)),
        vol.Optional("unit_system"): vol.In(["metric", "us_customary"]),
        vol.Optional("time_zone"): _time_zone,
        vol.Optional("currency"): vol.All(str, vol.Match(r"^[A-Z]{3}$")),
        vol.Optional("country"): vol.All(str, vol.Match(r"^[A-Z]{2}$")),
        vol.Optional("language"): vol.All(str, vol.Length(min=1, max=35)),
    }
)


async def onboard_core_config(request: web.Request) -> web.Response:
    """Finish onboarding; optional settings update the running configuration (in memory: they
    last until restart; configuration.yaml stays the place to keep them)."""
    state = request.app[AUTH_STATE]
    data = CORE_CONFIG_SCHEMA(await read_object(request))  # vol.Invalid -> 400
    config = _hub(request).config
    if "location_name" in data:
        config["name"] = data.pop("location_name")
    config.update(data)
    state.onboarding_done.add("core_config")
    state.store.schedule_save()
    user = request[REQUEST_USER]
    _LOGGER.info("Onboarding: core configuration done by %s", user.username)
    return json_response({})


ROUTES: Final = (
    ApiRoute("GET", "/auth/providers", get_providers, "Login providers", Access.public, "auth",
             returns={"type": "object"}),
    ApiRoute("POST", "/auth/login_flow", start_login_flow, "Start a login flow", Access.public,
             "auth", body=ref("LoginFlowStart"), body_required=True,
             returns=ref("LoginFlowResult"), errors=(400,)),
    ApiRoute("POST", "/auth/login_flow/{flow_id}", login_flow_step,
             "Log in with username and password", Access.public, "auth",
             body=ref("LoginFlowStep"), body_required=True, returns=ref("LoginFlowResult"),
             errors=(400, 403, 404),
             description="A wrong password answers the form again with "
             "`errors.base = invalid_auth` and counts towards a ban of the address."),
    ApiRoute("DELETE", "/auth/login_flow/{flow_id}", abort_login_flow, "Abort a login flow",
             Access.public, "auth", returns=ref("Message"), errors=(404,)),
    ApiRoute("POST", "/auth/token", token, "Get, refresh or revoke tokens", Access.public,
             "auth", body=ref("TokenRequest"), form_body=True, body_required=True,
             returns=ref("TokenResponse"), errors=(400, 403),
             description="`grant_type=authorization_code` (code, client_id), "
             "`grant_type=refresh_token` (refresh_token, client_id) or `action=revoke` (token)."),
    ApiRoute("POST", "/auth/revoke", revoke, "Revoke a refresh token", Access.public, "auth",
             body=ref("TokenRequest"), form_body=True),
    ApiRoute("GET", "/api/onboarding", get_onboarding, "Onboarding progress", Access.public,
             "onboarding", returns=array_of(ref("OnboardingStep"))),
    ApiRoute("POST", "/api/onboarding/users", onboard_user, "Create the owner (first user)",
             Access.public, "onboarding", body=ref("OnboardingUser"), body_required=True,
             returns={"type": "object", "properties": {"auth_code": {"type": "string"}}},
             errors=(400, 403),
             description="Only while the hub has no user; answers an authorization code for "
             "`/auth/token`."),
    ApiRoute("POST", "/api/onboarding/core_config", onboard_core_config,
             "Finish onboarding (site name, location, units)", Access.owner, "onboarding",
             body=ref("CoreConfigUpdate"), returns={"type": "object"}, errors=(400,)),
)
