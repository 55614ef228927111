"""Home Assistant's REST API (`/api/...`): same paths, same JSON shapes, so HA clients work.

Handlers stay thin: parse and check the input, call the core, shape the answer. Errors are
raised (HTTP exceptions, or the core's named exceptions) and turned into JSON by the error
middleware in `server.py`. Who may call what is declared in `ROUTES`, not checked here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..core import (
    EVENT_CALL_SERVICE,
    EVENT_HUB_START,
    EVENT_HUB_STARTED,
    EVENT_HUB_STOP,
    EVENT_SERVICE_REGISTERED,
    EVENT_SERVICE_REMOVED,
    EVENT_STATE_CHANGED,
    EVENT_STATE_REPORTED,
    Context,
    Event,
    EventOrigin,
    State,
    valid_entity_id,
)
from ..plugins import Status
from ..services import SupportsResponse
from ..template import Template
from .keys import HUB_KEY, REQUEST_USER
from .openapi import Access, ApiRoute, array_of, ref

if TYPE_CHECKING:
    from ..core import Hub

_LOGGER = logging.getLogger(__name__)

# Renders asked for over the API run on the event loop: keep each short.
API_RENDER_SECONDS: Final = 1.0

# Events only the core may fire: their listeners trust the shape of their data.
PROTECTED_EVENTS: Final = frozenset(
    {
        EVENT_STATE_CHANGED,
        EVENT_STATE_REPORTED,
        EVENT_CALL_SERVICE,
        EVENT_SERVICE_REGISTERED,
        EVENT_SERVICE_REMOVED,
        EVENT_HUB_START,
        EVENT_HUB_STARTED,
        EVENT_HUB_STOP,
        # Registries and notifications: the hub acts on these (an entity follows its registry
        # entry), so a client must not be able to forge them.
        "entity_registry_updated",
        "device_registry_updated",
        "area_registry_updated",
        "persistent_notifications_updated",
    }
)
MAX_EVENT_TYPE_LENGTH: Final = 64  # as in Home Assistant
TARGET_KEYS: Final = ("entity_id", "device_id", "area_id")

UNIT_SYSTEMS: Final = {
    "metric": {
        "length": "km",
        "accumulated_precipitation": "mm",
        "area": "m²",
        "mass": "g",
        "pressure": "Pa",
        "temperature": "°C",
        "volume": "L",
        "wind_speed": "m/s",
    },
    "us_customary": {
        "length": "mi",
        "accumulated_precipitation": "in",
        "area": "ft²",
        "mass": "lb",
        "pressure": "psi",
        "temperature": "°F",
        "volume": "gal",
        "wind_speed": "mph",
    },
}


# --- helpers shared by the HTTP modules ---------------------------------------------------


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)  # attributes may hold anything an integration put there


_DUMP_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_json_default, option=_DUMP_OPTIONS)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response serialised by orjson (several times faster than json.dumps)."""
    return web.Response(
        body=dumps(data), status=status, content_type="application/json", headers=headers
    )


def json_message(message: str, status: int = 200) -> web.Response:
    return json_response({"message": message}, status)


def json_error(status: int, message: str) -> web.HTTPException:
    """An HTTP error carrying `{"message": ...}`, to raise from a handler."""
    cls = web.HTTPException
    for candidate in (
        web.HTTPBadRequest, web.HTTPUnauthorized, web.HTTPForbidden, web.HTTPNotFound,
        web.HTTPConflict,
    ):
        if candidate.status_code == status:
            cls = candidate
            break
    return cls(text=dumps({"message": message}).decode(), content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (None when empty); 400 with a message when it is not JSON."""
    try:
        body = await request.read()  # raises 413 past client_max_size
    except (RequestPayloadError, HttpProcessingError) as err:  # e.g. a broken gzip body
        raise json_error(400, f"Cannot read the request body: {err}") from None
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise json_error(400, "Invalid JSON.") from None


async def read_object(request: web.Request, what: str = "Body") -> dict[str, Any]:
    """The JSON body as an object ({} when empty); 400 for anything else."""
    data = await read_json(request)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise json_error(400, f"{what} should be a JSON object.")
    return data


def request_context(request: web.Request) -> Context:
    """A Context for whatever this request causes, carrying the user's id."""
    user = request.get(REQUEST_USER)
    return Context(user_id=user.id if user is not None else None)


# --- the error log: the last log lines, kept in memory ----------------------------------


class LogBuffer(logging.Handler):
    """A ring buffer of formatted log records for `GET /api/error_log`."""

    def __init__(self, size: int = 1000) -> None:
        super().__init__(logging.NOTSET)
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s (%(threadName)s) [%(name)s] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


LOG_BUFFER: Final = web.AppKey("log_buffer", LogBuffer)


async def log_buffer_ctx(app: web.Application) -> AsyncIterator[None]:
    """Collect log lines while the app runs (attached to the root logger, removed after)."""
    handler = app[LOG_BUFFER]
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


# --- handlers ------------------------------------------------------------------------------


def _hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


async def api_status(request: web.Request) -> web.Response:
    return json_message("API running.")


def loaded_components(hub: Hub) -> list[str]:
    loaded = {d for d, s in hub.integrations.items() if s.status is Status.loaded}
    if "http" in loaded:  # what HA clients look for; this integration provides them
        loaded |= {"api", "auth", "onboarding", "persistent_notification", "websocket_api"}
    return sorted(loaded)


def config_dict(hub: Hub) -> dict[str, Any]:
    """The hub's configuration in the shape of Home Assistant's `/api/config`."""
    from .. import __version__

    cfg = hub.config
    return {
        "location_name": cfg.get("name", "Home"),
        "latitude": cfg.get("latitude", 0.0),
        "longitude": cfg.get("longitude", 0.0),
        "elevation": cfg.get("elevation", 0),
        "radius": cfg.get("radius", 100),
        "unit_system": UNIT_SYSTEMS.get(cfg.get("unit_system", "metric"), UNIT_SYSTEMS["metric"]),
        "time_zone": cfg.get("time_zone", "UTC"),
        "components": loaded_components(hub),
        "config_dir": str(hub.config_dir),
        "allowlist_external_dirs": [],
        "allowlist_external_urls": [],
        "version": __version__,
        "config_source": "yaml",
        "recovery_mode": False,
        "safe_mode": False,
        "state": str(hub.state),
        "external_url": cfg.get("external_url"),
        "internal_url": cfg.get("internal_url"),
        "currency": cfg.get("currency", "EUR"),
        "country": cfg.get("country"),
        "language": cfg.get("language", "en"),
        "debug": False,
    }


async def get_config(request: web.Request) -> web.Response:
    return json_response(config_dict(_hub(request)))


async def get_components(request: web.Request) -> web.Response:
    return json_response(loaded_components(_hub(request)))


async def get_states(request: web.Request) -> web.Response:
    return json_response([state.as_dict() for state in _hub(request).states.all()])


def _entity_id(request: web.Request) -> str:
    entity_id = request.match_info["entity_id"]
    if not valid_entity_id(entity_id):
        raise json_error(400, "Invalid entity ID specified.")
    return entity_id


async def get_state(request: web.Request) -> web.Response:
    state = _hub(request).states.get(request.match_info["entity_id"])
    if state is None:
        raise json_error(404, "Entity not found.")
    return json_response(state.as_dict())


async def post_state(request: web.Request) -> web.Response:
    """Set an entity's state representation (it does not talk to the device, as in HA)."""
    hub = _hub(request)
    entity_id = _entity_id(request)
    data = await read_object(request)
    new_state = data.get("state")
    if new_state is None:
        raise json_error(400, "No state specified.")
    if not isinstance(new_state, (str, int, float, bool)):
        raise json_error(400, "Invalid state specified: expected a string or a number.")
    attributes = data.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise json_error(400, "Invalid attributes specified: expected a JSON object.")
    force_update = data.get("force_update", False)
    if not isinstance(force_update, bool):
        raise json_error(400, "Invalid force_update specified: expected true or false.")
    is_new = hub.states.get(entity_id) is None
    # Like HA, the body's attributes replace the old ones (none given: none kept).
    state = hub.states.set(
        entity_id, new_state, attributes or {}, force_update, context=request_context(request)
    )
    return json_response(
        state.as_dict(),
        201 if is_new else 200,
        headers={"Location": f"/api/states/{state.entity_id}"},
    )


async def delete_state(request: web.Request) -> web.Response:
    if _hub(request).states.remove(request.match_info["entity_id"], request_context(request)):
        return json_message("Entity removed.")
    raise json_error(404, "Entity not found.")


def _service_description(service: Any) -> dict[str, Any]:
    description: dict[str, Any] = {
        "name": service.name.replace("_", " ").capitalize(),
        "description": service.description,
        "fields": service.fields,
    }
    if service.supports_response is not SupportsResponse.none:
        description["response"] = {"optional": service.supports_response is SupportsResponse.optional}
    return description


async def get_services(request: web.Request) -> web.Response:
    return json_response(
        [
            {"domain": domain, "services": {name: _service_description(s) for name, s in services.items()}}
            for domain, services in _hub(request).services.services().items()
        ]
    )


async def call_service(request: web.Request) -> web.Response:
    """Call a service; answer the states that changed while it ran (HA's shape)."""
    hub = _hub(request)
    domain, service = request.match_info["domain"], request.match_info["service"]
    data = await read_object(request, "Service data")
    target = data.pop("target", None)
    if target is not None and not isinstance(target, dict):
        raise json_error(400, "target should be a JSON object.")
    for where in (data, target or {}):
        for key in TARGET_KEYS:
            if key in where and not _is_id_list(where[key]):
                raise json_error(400, f"{key} should be a string or a list of strings.")
    return_response = "return_response" in request.query
    context = request_context(request)
    changes: list[Event] = []
    unsubscribe = hub.bus.listen(EVENT_STATE_CHANGED, changes.append)
    try:
        response = await hub.services.call(
            domain, service, data, target=target, context=context, return_response=return_response
        )
    finally:
        unsubscribe()
    changed = _changed_states(changes, context)
    if return_response:
        return json_response({"changed_states": changed, "service_response": response})
    return json_response(changed)


def _is_id_list(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _changed_states(changes: list[Event], context: Context) -> list[dict[str, Any]]:
    """The new states of entities changed during a call. When entities carry the call's
    context (or a child of it) only those count; otherwise every change seen while the call
    ran counts, as in HA's classic `AsyncTrackStates`."""
    ours = [
        e for e in changes if e.context is context or e.context.parent_id == context.id
    ]
    latest: dict[str, State] = {}
    for event in ours or changes:
        new_state = event.data.get("new_state")
        if new_state is not None:
            latest[event.data["entity_id"]] = new_state
    return [state.as_dict() for state in latest.values()]


async def get_events(request: web.Request) -> web.Response:
    counts = _hub(request).bus.listener_counts()
    return json_response([{"event": etype, "listener_count": n} for etype, n in counts.items()])


async def fire_event(request: web.Request) -> web.Response:
    event_type = request.match_info["event_type"]
    if len(event_type) > MAX_EVENT_TYPE_LENGTH:
        raise json_error(400, f"Event type is longer than {MAX_EVENT_TYPE_LENGTH} characters.")
    if event_type in PROTECTED_EVENTS:
        raise json_error(400, f"Event {event_type} can only be fired by the hub itself.")
    data = await read_object(request, "Event data")
    _hub(request).bus.fire(event_type, data, EventOrigin.remote, request_context(request))
    return json_message(f"Event {event_type} fired.")


async def render_template(request: web.Request) -> web.Response:
    data = await read_object(request)
    source = data.get("template")
    if not isinstance(source, str):
        raise json_error(400, "template should be a string.")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise json_error(400, "variables should be a JSON object.")
    # TemplateError (syntax, runtime, size or time limits) becomes a 400 in the middleware.
    result = Template(source, _hub(request)).render(
        variables, parse_result=False, max_seconds=API_RENDER_SECONDS
    )
    return web.Response(text=str(result), content_type="text/plain")


async def get_error_log(request: web.Request) -> web.Response:
    lines = request.app[LOG_BUFFER].lines
    return web.Response(text="\n".join(lines) + ("\n" if lines else ""), content_type="text/plain")


async def check_config(request: web.Request) -> web.Response:
    """Validate configuration.yaml as `hub check-config` does (HA's shape: result, errors)."""
    from ..plugins import check_configuration

    hub = _hub(request)
    issues = await hub.run_in_executor(check_configuration, hub.config_dir, hub.plugin_manager)
    errors = "\n".join(str(issue) for issue in issues) or None
    return json_response(
        {"result": "invalid" if issues else "valid", "errors": errors, "warnings": None}
    )


async def get_notifications(request: web.Request) -> web.Response:
    return json_response(_hub(request).notifications.all())


_STATE: Final = ref("State")

ROUTES: Final = (
    ApiRoute("GET", "/api/", api_status, "Check that the API runs", Access.read, "core",
             returns=ref("Message")),
    ApiRoute("GET", "/api/config", get_config, "The hub's configuration", Access.read, "core",
             returns=ref("Config")),
    ApiRoute("GET", "/api/components", get_components, "Loaded integrations", Access.read,
             "core", returns=array_of({"type": "string"})),
    ApiRoute("GET", "/api/states", get_states, "Every entity's state", Access.read, "states",
             returns=array_of(_STATE)),
    ApiRoute("GET", "/api/states/{entity_id}", get_state, "One entity's state", Access.read,
             "states", returns=_STATE, errors=(404,)),
    ApiRoute("POST", "/api/states/{entity_id}", post_state,
             "Set an entity's state representation", Access.admin, "states",
             body=ref("StateWrite"), body_required=True, returns=_STATE, errors=(400,),
             description="201 with a Location header when the entity is new, 200 when it "
             "existed. Only the representation changes; no device is told."),
    ApiRoute("DELETE", "/api/states/{entity_id}", delete_state, "Remove an entity's state",
             Access.admin, "states", returns=ref("Message"), errors=(404,)),
    ApiRoute("GET", "/api/services", get_services, "The service catalogue", Access.read,
             "services", returns=array_of(ref("ServiceDomain"))),
    ApiRoute("POST", "/api/services/{domain}/{service}", call_service, "Call a service",
             Access.write, "services", body=ref("ServiceData"), returns=ref("ServiceResult"),
             errors=(400,),
             query=(("return_response", "Also return the service's response"),),
             description="Answers the states changed while the service ran; with "
             "`?return_response`, `{changed_states, service_response}`."),
    ApiRoute("GET", "/api/events", get_events, "Event types with listeners", Access.read,
             "events", returns=array_of(ref("EventListeners"))),
    ApiRoute("POST", "/api/events/{event_type}", fire_event, "Fire an event", Access.admin,
             "events", body={"type": "object"}, returns=ref("Message"), errors=(400,)),
    ApiRoute("POST", "/api/template", render_template, "Render a template", Access.admin,
             "templates", body=ref("TemplateRequest"), body_required=True, returns_text=True,
             errors=(400,)),
    ApiRoute("GET", "/api/error_log", get_error_log, "The latest log lines", Access.admin,
             "core", returns_text=True),
    ApiRoute("POST", "/api/config/core/check_config", check_config,
             "Validate the configuration files", Access.admin, "core",
             returns={"type": "object", "properties": {
                 "result": {"enum": ["valid", "invalid"]},
                 "errors": {"type": ["string", "null"]},
                 "warnings": {"type": ["string", "null"]}}},
             description="Reads configuration.yaml again and checks it as `hub check-config` "
             "does; `errors` has one `file:line: message` per line."),
    ApiRoute("GET", "/api/persistent_notification", get_notifications,
             "Persistent notifications", Access.read, "notifications",
             returns=array_of(ref("Notification"))),
)
