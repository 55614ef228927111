"""The web application, declared in one factory: routes, who may call them, and the
middlewares that turn every failure into a JSON answer.

Middlewares, outermost first:
- cors (only when `cors_allowed_origins` is set): answers preflights, adds the CORS headers;
- errors: HTTP errors and the core's named exceptions become `{"message": ...}` with a 4xx;
  an unexpected exception is logged and answered 500 (a bug to fix: bad input never gets one);
- auth: every route not declared public needs `Authorization: Bearer <access token>`; the
  route's access level (read, write, admin, owner) is checked against the user. Invalid tokens
  count towards a temporary ban of the address, which refuses further guesses (tokens and
  logins) but never a valid token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import voluptuous as vol
from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import AbstractRoute

from ..exceptions import (
    HubError,
    IntegrationError,
    InvalidEntityId,
    InvalidStateError,
    NotSupported,
    ServiceNotFound,
    ServiceValidationError,
    TemplateError,
    Unauthorized,
)
from . import auth_views, openapi, rest, websocket
from .keys import HUB_KEY, REQUEST_TOKEN, REQUEST_USER
from .openapi import Access, ApiRoute
from .rest import json_response

if TYPE_CHECKING:
    from ..core import Hub

_LOGGER = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"
# Paths whose routes, when no route matches, still answer 404 rather than 401 to strangers.
PUBLIC_PREFIXES: Final = ("/auth/", "/api/onboarding", "/api/webhook/", "/api/websocket", "/static/")
PAGES: Final = ("/", "/login", "/onboarding")  # the single page answers all three

ROUTE_ACCESS: Final = web.AppKey("route_access", dict)  # AbstractRoute -> Access
HTTP_CONFIG: Final = web.AppKey("http_config", dict)


def api_routes() -> tuple[ApiRoute, ...]:
    """Every REST route the app serves: the one table openapi.json describes."""
    return (*rest.ROUTES, *auth_views.ROUTES, *openapi.ROUTES)


# --- middlewares ---------------------------------------------------------------------------


def _message_of(exc: web.HTTPException) -> str:
    text = exc.text or ""
    # aiohttp's default text is "404: Not Found": keep just the reason then.
    return exc.reason if not text or text.startswith(f"{exc.status}:") else text


_CLIENT_ERRORS: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (Unauthorized, 403),
    (vol.Invalid, 400),
    (ServiceNotFound, 400),  # as in HA: the request named a service that is not there
    (ServiceValidationError, 400),
    (InvalidEntityId, 400),
    (InvalidStateError, 400),
    (TemplateError, 400),
    (NotSupported, 400),
    (IntegrationError, 503),  # a device or its integration is not working: not the client's fault
    (HubError, 400),
)


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like
        headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        if exc.content_type == "application/json":  # raised by a handler with its own message
            return web.Response(
                status=exc.status, body=exc.body, content_type="application/json", headers=headers
            )
        return json_response({"message": _message_of(exc)}, exc.status, headers)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the last resort: the named client errors below are 4xx
        for exc_type, status in _CLIENT_ERRORS:
            if isinstance(exc, exc_type):
                return json_response({"message": str(exc) or type(exc).__name__}, status)
        _LOGGER.exception("Error handling %s %s", request.method, request.path)
        return json_response({"message": "Internal server error."}, 500)


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def _denied(status: int, message: str) -> web.Response:
    response = json_response({"message": message}, status)
    if status == 401:
        response.headers[hdrs.WWW_AUTHENTICATE] = "Bearer"
    return response


def _route_access(request: web.Request) -> Access:
    access = request.app[ROUTE_ACCESS].get(request.match_info.route)
    if access is not None:
        return access
    # No route matched (404/405): strangers learn nothing about /api/ paths behind auth.
    path = request.path
    return Access.public if path.startswith(PUBLIC_PREFIXES) or not path.startswith("/api") else Access.read


def allowed(user: Any, access: Access) -> bool:
    """May `user` call a route of this access level? (The permission rule, in one place.)"""
    if access is Access.public or access is Access.read:
        return True
    if access is Access.write:
        return user.can_write
    if access is Access.admin:
        return user.is_admin or user.is_owner
    return user.is_owner  # Access.owner


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    auth = request.app[HUB_KEY].auth
    ip = request.remote or ""
    access = _route_access(request)
    token = _bearer_token(request)
    found = auth.validate_access_token(token, ip) if token else None
    if found is None:
        if access is Access.public:
            return await handler(request)  # a stale token in the browser must not block login
        if not token or auth.is_expired_token(token):
            return _denied(401, "Missing or expired access token: send "
                                "'Authorization: Bearer <token>' with a valid one.")
        # A ban stops guessing; it never locks out a client whose token is valid.
        if auth.is_banned(ip):
            return _denied(403, "Too many failed logins: this address is banned for a while.")
        auth.record_failed_login(ip)
        return _denied(401, "Invalid access token.")
    user, refresh_token = found
    request[REQUEST_USER] = user
    request[REQUEST_TOKEN] = refresh_token
    if not allowed(user, access):
        return _denied(403, f"This needs the {access} permission, which user {user.username} lacks.")
    return await handler(request)


def _cors_middleware(origins: Iterable[str]) -> Any:
    allowed_origins = frozenset(origins)
    allow_all = "*" in allowed_origins

    @web.middleware
    async def cors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        ok = origin is not None and (allow_all or origin in allowed_origins)
        if ok and request.method == "OPTIONS" and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "GET, POST, DELETE, OPTIONS"
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = "Authorization, Content-Type"
            response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
        else:
            # The errors middleware (inside this one) has made every 4xx/5xx a response.
            response = await handler(request)
        if ok:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin  # type: ignore[assignment]
            response.headers[hdrs.VARY] = "Origin"
        return response

    return cors_middleware


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


# --- pages ---------------------------------------------------------------------------------


async def index_page(request: web.Request) -> web.FileResponse:
    response = web.FileResponse(STATIC_DIR / "index.html")
    response.headers[hdrs.CACHE_CONTROL] = "no-cache"
    return response


def _plugin_routes(hub: Hub) -> list[ApiRoute]:
    """Routes plugins add; a plugin's routes that clash with the API's or are malformed
    disable that plugin, not the server."""
    manager = hub.plugin_manager
    if manager is None:
        return []
    taken = {(route.method, route.path) for route in api_routes()}
    found: list[ApiRoute] = []
    for plugin_name, routes in manager.call_each("register_api_routes", hub=hub):
        try:
            routes = list(routes)
            for route in routes:
                if not isinstance(route, ApiRoute) or not route.path.startswith("/api/"):
                    raise ValueError(f"not an ApiRoute under /api/: {route!r}")
                if (route.method, route.path) in taken:
                    raise ValueError(f"{route.method} {route.path} is already served")
        except (TypeError, ValueError) as err:
            manager.disable(plugin_name, f"register_api_routes: {err}")
            continue
        taken.update((route.method, route.path) for route in routes)
        found.extend(routes)
    return found


# --- the factory ---------------------------------------------------------------------------


def make_app(hub: Hub, config: dict[str, Any]) -> web.Application:
    """The whole web app: middlewares, REST and auth routes, WebSocket, pages."""
    middlewares = [errors_middleware, auth_middleware]
    if config.get("cors_allowed_origins"):
        middlewares.insert(0, _cors_middleware(config["cors_allowed_origins"]))
    app = web.Application(
        client_max_size=config.get("max_body_bytes", 1024 * 1024), middlewares=middlewares
    )
    app[HUB_KEY] = hub
    app[HTTP_CONFIG] = config
    app[rest.LOG_BUFFER] = rest.LogBuffer()
    app[auth_views.AUTH_STATE] = auth_views.AuthState(hub)
    app.cleanup_ctx.append(rest.log_buffer_ctx)
    app.cleanup_ctx.append(auth_views.auth_state_ctx)
    app.on_response_prepare.append(_security_headers)

    access: dict[AbstractRoute, Access] = {}
    routes = [*api_routes(), *_plugin_routes(hub)]
    for route in routes:
        access[app.router.add_route(route.method, route.path, route.handler)] = route.access
    openapi.install(app, routes)

    websocket.setup(app)  # public: auth happens inside the WebSocket protocol

    for path in PAGES:
        app.router.add_route("GET", path, index_page)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    # Everything that is not an ApiRoute (pages, static files, the WebSocket) is public.
    for resource_route in app.router.routes():
        access.setdefault(resource_route, Access.public)
    app[ROUTE_ACCESS] = access
    return app


__all__ = ["HTTP_CONFIG", "ROUTE_ACCESS", "allowed", "api_routes", "make_app"]
