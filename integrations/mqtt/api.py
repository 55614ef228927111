"""MQTT's REST routes: status, per-device diagnostics, an entity's last raw messages, and the
embedded broker's device credentials."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.http.keys import HUB_KEY
from hub.http.openapi import Access, ApiRoute
from hub.http.rest import json_error, json_response, read_object

if TYPE_CHECKING:
    from . import MqttRuntime


def _runtime(request: web.Request) -> MqttRuntime:
    runtime = request.app[HUB_KEY].data.get("mqtt")
    if runtime is None:
        raise json_error(404, "The mqtt integration is not set up.")
    return runtime


def _credentials(request: web.Request) -> Any:
    runtime = _runtime(request)
    if runtime.credentials is None:
        raise json_error(404, "Device credentials belong to the embedded broker; this hub "
                              "uses an external broker, whose own users apply.")
    return runtime.credentials


async def get_status(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    discovery = runtime.discovery
    body: dict[str, Any] = {
        "connection": runtime.connection.stats(),
        "entities": len(runtime.entities()),
        "discovery": None if discovery is None else {
            "prefix": discovery.prefix, "items": len(discovery.items),
            "configs": discovery.stats.configs, "removed": discovery.stats.removed,
            "errors": discovery.stats.errors,
            "unsupported_components": discovery.stats.ignored_components,
        },
    }
    if runtime.broker is not None:
        body["clients"] = runtime.broker.clients()
    return json_response(body)


async def get_devices(request: web.Request) -> web.Response:
    """Counters per device: messages, bytes, malformed payloads, commands, last seen."""
    runtime = _runtime(request)
    hub = request.app[HUB_KEY]
    diagnostics = runtime.diagnostics
    devices = []
    for key, counters in diagnostics.devices.items():
        device = hub.devices.get(key)
        devices.append({
            "device_id": key if device is not None else None,
            "entity_id": None if device is not None else key,
            "name": (device.name_by_user or device.name) if device is not None else key,
            "entities": sorted(e.entity_id for e in runtime.entities()
                               if (e.device_id or e.entity_id) == key),
            **counters.as_dict(),
        })
    discovery_errors = [{"topic_key": key, **counters.as_dict()}
                        for key, counters in diagnostics.discovery_errors.items()]
    return json_response({"devices": devices, "discovery_errors": discovery_errors})


async def get_entity_messages(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    entity_id = request.match_info["entity_id"]
    entity = request.app[HUB_KEY].entities.get(entity_id)
    if entity is None or entity.platform != "mqtt":
        raise json_error(404, f"{entity_id} is not an MQTT entity.")
    return json_response({
        "entity_id": entity_id,
        "discovery_id": getattr(entity, "discovery_id", None),
        "topics": {key: value for key, value in entity.config.items()
                   if key.endswith("_topic") and isinstance(value, str)},
        "messages": runtime.diagnostics.entity_messages(entity_id),
    })


async def list_credentials(request: web.Request) -> web.Response:
    store = _credentials(request)
    return json_response([_credential(c) for c in await _executor(request, store.list)])


def _credential(cred: Any) -> dict[str, Any]:
    return {"name": cred.name, "publish": list(cred.publish), "subscribe": list(cred.subscribe),
            "superuser": cred.superuser, "created_at": cred.created_at}


async def _executor(request: web.Request, func: Any, *args: Any, **kwargs: Any) -> Any:
    import functools

    return await request.app[HUB_KEY].run_in_executor(functools.partial(func, *args, **kwargs))


async def create_credential(request: web.Request) -> web.Response:
    store = _credentials(request)
    data = await read_object(request)
    name = data.get("name")
    if not isinstance(name, str):
        raise json_error(400, "`name` (a string) is required.")
    kwargs: dict[str, Any] = {}
    for key in ("publish", "subscribe"):
        if key in data:
            if not isinstance(data[key], list) or not all(isinstance(t, str) for t in data[key]):
                raise json_error(400, f"`{key}` must be a list of topic filters.")
            kwargs[key] = data[key]
    if "password" in data:
        if not isinstance(data["password"], str) or not 8 <= len(data["password"]) <= 1024:
            raise json_error(400, "`password` must be a string of 8 to 1024 characters.")
        kwargs["password"] = data["password"]
    if "superuser" in data:
        if not isinstance(data["superuser"], bool):
            raise json_error(400, "`superuser` must be true or false.")
        kwargs["superuser"] = data["superuser"]
    try:
        cred, password = await _executor(request, store.add, name, **kwargs)
    except ValueError as err:
        raise json_error(400, str(err)) from None
    except OSError as err:
        raise json_error(409, f"The credentials file cannot be changed: {err}") from None
    return json_response({**_credential(cred), "password": password}, status=201)


async def delete_credential(request: web.Request) -> web.Response:
    store = _credentials(request)
    name = request.match_info["name"]
    try:
        removed = await _executor(request, store.remove, name)
    except (ValueError, OSError) as err:  # e.g. an unreadable credentials file: never a 500
        raise json_error(409, f"The credentials file cannot be changed: {err}") from None
    if not removed:
        raise json_error(404, f"No MQTT credential named {name!r}.")
    return json_response({"message": f"Removed {name}."})


_CREDENTIAL = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "publish": {"type": "array", "items": {"type": "string"}},
        "subscribe": {"type": "array", "items": {"type": "string"}},
        "superuser": {"type": "boolean"}, "created_at": {"type": "string"},
    },
}

ROUTES = (
    ApiRoute("GET", "/api/mqtt", get_status, "MQTT connection, discovery and broker status",
             Access.admin, "mqtt", returns={"type": "object"}, errors=(404,)),
    ApiRoute("GET", "/api/mqtt/devices", get_devices, "MQTT diagnostics per device",
             Access.admin, "mqtt", returns={"type": "object"}, errors=(404,),
             description="Messages, bytes, malformed payloads, commands and last seen, per "
                         "device; and discovery payloads that could not be used."),
    ApiRoute("GET", "/api/mqtt/entities/{entity_id}/messages", get_entity_messages,
             "The last raw messages of an MQTT entity", Access.admin, "mqtt",
             returns={"type": "object"}, errors=(404,)),
    ApiRoute("GET", "/api/mqtt/credentials", list_credentials, "Device credentials of the embedded broker",
             Access.admin, "mqtt", returns={"type": "array", "items": _CREDENTIAL}, errors=(404,)),
    ApiRoute("POST", "/api/mqtt/credentials", create_credential, "Create a device credential",
             Access.admin, "mqtt", body={"type": "object", "required": ["name"], "properties": {
                 "name": {"type": "string"}, "password": {"type": "string"},
                 "publish": {"type": "array", "items": {"type": "string"}},
                 "subscribe": {"type": "array", "items": {"type": "string"}},
                 "superuser": {"type": "boolean"}}},
             body_required=True, returns=_CREDENTIAL, status=201, errors=(400, 404),
             description="Answers the credential with its `password`: shown this once, stored hashed."),
    ApiRoute("DELETE", "/api/mqtt/credentials/{name}", delete_credential,
             "Remove a device credential", Access.admin, "mqtt", errors=(404,)),
)
