"""The route table and the OpenAPI document built from it.

Every REST route is declared once, as an `ApiRoute` (method, path, handler, who may call it, what
it takes and returns). `server.make_app` registers the routes and enforces their access level
from that table, and `GET /api/openapi.json` describes the same table, so the document cannot
drift from what the server does.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(enum.StrEnum):
    """Who may call a route."""

    public = "public"  # anyone, no token (login flow, onboarding, static pages)
    read = "read"  # any user with a valid token
    write = "write"  # a user who may change things (not read-only)
    admin = "admin"  # administrators (the owner is one)
    owner = "owner"  # the owner only


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One REST route and its description."""

    method: str
    path: str
    handler: Handler
    summary: str
    access: Access
    tag: str
    body: dict[str, Any] | None = None  # JSON schema of the request body
    form_body: bool = False  # the body is form-encoded (OAuth's token endpoint)
    body_required: bool = False
    returns: dict[str, Any] | None = None  # JSON schema of the success response
    returns_text: bool = False  # text/plain success response
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[tuple[str, str], ...] = ()  # (name, description) of optional query flags
    description: str = ""


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def array_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


_NULLABLE_STRING: Final = {"type": ["string", "null"]}

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Message": {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    },
    "Context": {
        "type": "object",
        "description": "Who or what caused a change.",
        "properties": {"id": {"type": "string"}, "parent_id": _NULLABLE_STRING, "user_id": _NULLABLE_STRING},
        "required": ["id", "parent_id", "user_id"],
    },
    "State": {
        "type": "object",
        "properties": {
            "entity_id": {"type": "string", "examples": ["sensor.temperature"]},
            "state": {"type": "string", "maxLength": 255},
            "attributes": {"type": "object"},
            "last_changed": {"type": "string", "format": "date-time"},
            "last_reported": {"type": "string", "format": "date-time"},
            "last_updated": {"type": "string", "format": "date-time"},
            "context": ref("Context"),
        },
        "required": ["entity_id", "state", "attributes", "last_changed", "last_updated", "context"],
    },
    "StateWrite": {
        "type": "object",
        "properties": {
            "state": {"type": ["string", "number", "boolean"], "description": "At most 255 characters."},
            "attributes": {"type": "object", "description": "Replaces all attributes."},
            "force_update": {"type": "boolean", "default": False},
        },
        "required": ["state"],
    },
    "Config": {
        "type": "object",
        "properties": {
            "location_name": {"type": "string"},
            "latitude": {"type": "number"},
            "longitude": {"type": "number"},
            "elevation": {"type": "number"},
            "radius": {"type": "number"},
            "unit_system": {"type": "object", "additionalProperties": {"type": "string"}},
            "time_zone": {"type": "string"},
            "components": array_of({"type": "string"}),
            "config_dir": {"type": "string"},
            "version": {"type": "string"},
            "state": {"type": "string", "examples": ["RUNNING"]},
            "language": {"type": "string"},
            "currency": {"type": "string"},
            "country": _NULLABLE_STRING,
            "internal_url": _NULLABLE_STRING,
            "external_url": _NULLABLE_STRING,
        },
        "required": ["location_name", "unit_system", "time_zone", "components", "version", "state"],
    },
    "ServiceDomain": {
        "type": "object",
        "properties": {
            "domain": {"type": "string"},
            "services": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "fields": {"type": "object"},
                        "response": {"type": "object", "properties": {"optional": {"type": "boolean"}}},
                    },
                },
            },
        },
        "required": ["domain", "services"],
    },
    "ServiceData": {
        "type": "object",
        "description": "The service's data; target keys (entity_id, device_id, area_id) may be "
        "given here or in a `target` object.",
        "properties": {
            "entity_id": {"type": ["string", "array"]},
            "device_id": {"type": ["string", "array"]},
            "area_id": {"type": ["string", "array"]},
            "target": {"type": "object"},
        },
        "additionalProperties": True,
    },
    "ServiceResult": {
        "oneOf": [
            array_of(ref("State")),
            {
                "type": "object",
                "properties": {"changed_states": array_of(ref("State")), "service_response": {}},
                "required": ["changed_states", "service_response"],
            },
        ],
    },
    "EventListeners": {
        "type": "object",
        "properties": {"event": {"type": "string"}, "listener_count": {"type": "integer"}},
        "required": ["event", "listener_count"],
    },
    "TemplateRequest": {
        "type": "object",
        "properties": {"template": {"type": "string"}, "variables": {"type": "object"}},
        "required": ["template"],
    },
    "Notification": {
        "type": "object",
        "properties": {
            "notification_id": {"type": "string"},
            "title": _NULLABLE_STRING,
            "message": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
        },
        "required": ["notification_id", "message", "created_at"],
    },
    "LoginFlowStart": {
        "type": "object",
        "properties": {
            "client_id": {"type": "string", "examples": ["http://localhost:8123/"]},
            "handler": {"type": "array", "examples": [["homeassistant", None]]},
            "redirect_uri": {"type": "string"},
        },
        "required": ["client_id"],
    },
    "LoginFlowStep": {
        "type": "object",
        "properties": {
            "client_id": {"type": "string"},
            "username": {"type": "string"},
            "password": {"type": "string"},
        },
        "required": ["client_id", "username", "password"],
    },
    "LoginFlowResult": {
        "type": "object",
        "description": "`form` (again, with `errors.base = invalid_auth` after a wrong password) "
        "or `create_entry` with the authorization code in `result`.",
        "properties": {
            "type": {"enum": ["form", "create_entry"]},
            "flow_id": {"type": "string"},
            "handler": {"type": "array"},
            "step_id": {"type": "string"},
            "data_schema": array_of({"type": "object"}),
            "errors": {"type": "object"},
            "result": {"type": "string"},
        },
        "required": ["type", "flow_id"],
    },
    "TokenRequest": {
        "type": "object",
        "properties": {
            "grant_type": {"enum": ["authorization_code", "refresh_token"]},
            "code": {"type": "string"},
            "refresh_token": {"type": "string"},
            "client_id": {"type": "string"},
            "action": {"enum": ["revoke"]},
            "token": {"type": "string", "description": "The refresh token to revoke."},
        },
    },
    "TokenResponse": {
        "type": "object",
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"const": "Bearer"},
            "refresh_token": {"type": "string", "description": "Only for authorization_code."},
            "expires_in": {"type": "integer"},
        },
        "required": ["access_token", "token_type", "expires_in"],
    },
    "OAuthError": {
        "type": "object",
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
        "required": ["error"],
    },
    "OnboardingStep": {
        "type": "object",
        "properties": {"step": {"type": "string"}, "done": {"type": "boolean"}},
        "required": ["step", "done"],
    },
    "OnboardingUser": {
        "type": "object",
        "properties": {
            "client_id": {"type": "string"},
            "name": {"type": "string"},
            "username": {"type": "string"},
            "password": {"type": "string", "minLength": 8},
            "language": {"type": "string"},
        },
        "required": ["client_id", "name", "username", "password"],
    },
    "CoreConfigUpdate": {
        "type": "object",
        "properties": {
            "location_name": {"type": "string"},
            "latitude": {"type": "number"},
            "longitude": {"type": "number"},
            "elevation": {"type": "number"},
            "unit_system": {"enum": ["metric", "us_customary"]},
            "time_zone": {"type": "string"},
            "currency": {"type": "string"},
            "country": {"type": "string"},
            "language": {"type": "string"},
        },
        "additionalProperties": False,
    },
}

_STATUS_TEXT: Final = {
    200: "OK",
    201: "Created",
    400: "Bad request",
    401: "No or invalid access token",
    403: "Forbidden (role, read-only user or banned address)",
    404: "Not found",
    413: "Body too large",
}


def _operation(route: ApiRoute) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__.strip("_"),
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        op["description"] = route.description
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_params(route.path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "description": text,
         "schema": {"type": "string"}, "allowEmptyValue": True}
        for name, text in route.query
    ]
    if params:
        op["parameters"] = params
    if route.body is not None:
        media = "application/x-www-form-urlencoded" if route.form_body else "application/json"
        op["requestBody"] = {"required": route.body_required, "content": {media: {"schema": route.body}}}
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(route.status, "OK")}
    if route.returns_text:
        success["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif route.returns is not None:
        success["content"] = {"application/json": {"schema": route.returns}}
    responses: dict[str, Any] = {str(route.status): success}
    codes = set(route.errors)
    if route.body is not None:
        codes |= {400, 413}
    if route.access is not Access.public:
        codes |= {401, 403}
    for code in sorted(codes):
        error_schema = ref("OAuthError") if route.form_body and code == 400 else ref("Message")
        responses[str(code)] = {
            "description": _STATUS_TEXT.get(code, "Error"),
            "content": {"application/json": {"schema": error_schema}},
        }
    op["responses"] = responses
    op["security"] = [] if route.access is Access.public else [{"bearerAuth": []}]
    op["x-access"] = str(route.access)
    return op


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def build_openapi(routes: Iterable[ApiRoute], version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hub REST API",
            "version": version,
            "description": "Home Assistant-compatible REST API of the hub. Authenticate with "
            "`Authorization: Bearer <access token>`; see docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearerAuth": []}],
    }


API_ROUTES: Final = web.AppKey("api_routes", tuple)  # every ApiRoute the app serves
_DOCUMENT: Final = web.AppKey("openapi_document", dict)


def install(app: web.Application, routes: Iterable[ApiRoute]) -> None:
    """Remember the app's route table (before the app starts: it is frozen then)."""
    app[API_ROUTES] = tuple(routes)
    app[_DOCUMENT] = {}


async def openapi_json(request: web.Request) -> web.Response:
    cache = request.app[_DOCUMENT]
    if "body" not in cache:  # built once: the route table does not change while running
        from .. import __version__

        cache["body"] = orjson.dumps(build_openapi(request.app[API_ROUTES], __version__))
    return web.Response(body=cache["body"], content_type="application/json")


ROUTES: Final = (
    ApiRoute(
        "GET", "/api/openapi.json", openapi_json, "This document (OpenAPI 3.1)", Access.public,
        "meta", returns={"type": "object"},
    ),
)
