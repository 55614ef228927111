"""The built-in WebSocket commands, in Home Assistant's shapes.

Each is registered with `websocket_command`; plugins add theirs the same way. A handler's return
value is the result; subscriptions keep their remover with `connection.subscribe(id, remove)`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import voluptuous as vol

from ..core import (
    EVENT_SERVICE_REGISTERED,
    EVENT_SERVICE_REMOVED,
    EVENT_STATE_CHANGED,
    MATCH_ALL,
    Event,
    State,
)
from ..exceptions import HubError, ServiceNotFound, TemplateError, Unauthorized
from ..registry import (
    EVENT_AREA_REGISTRY_UPDATED,
    EVENT_DEVICE_REGISTRY_UPDATED,
    EVENT_ENTITY_REGISTRY_UPDATED,
)
from ..services import SupportsResponse
from ..template import RenderInfo, Template
from .rest import API_RENDER_SECONDS, PROTECTED_EVENTS, config_dict
from .websocket import (
    ERR_HOME_ASSISTANT_ERROR,
    ERR_NOT_FOUND,
    ERR_TEMPLATE_ERROR,
    FEATURE_COALESCE_MESSAGES,
    RESPONDED,
    ActiveConnection,
    close_token_connections,
    dumps,
    websocket_command,
)

if TYPE_CHECKING:
    from ..core import Hub

_LOGGER = logging.getLogger(__name__)

# Event types any user may subscribe to (admins may subscribe to every type). Like Home
# Assistant's SUBSCRIBE_ALLOWLIST: events that carry no secrets. `call_service` is not on it
# (its service_data may hold passwords or codes), nor is `*`.
SUBSCRIBE_ALLOWLIST: Final = frozenset({
    EVENT_STATE_CHANGED,
    EVENT_SERVICE_REGISTERED,
    EVENT_SERVICE_REMOVED,
    EVENT_AREA_REGISTRY_UPDATED,
    EVENT_DEVICE_REGISTRY_UPDATED,
    EVENT_ENTITY_REGISTRY_UPDATED,
    "persistent_notifications_updated",
    "component_loaded",
    "core_config_updated",
    "panels_updated",
    "themes_updated",
    "lovelace_updated",
    "label_registry_updated",
    "floor_registry_updated",
})

_str_or_list = vol.Any(str, [str])


# --- basics --------------------------------------------------------------------------------


@websocket_command("ping")
def handle_ping(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    connection.send_message({"id": msg["id"], "type": "pong"})
    return RESPONDED


@websocket_command("supported_features", {vol.Required("features"): {str: vol.Coerce(int)}})
def handle_supported_features(connection: ActiveConnection, msg: dict[str, Any]) -> None:
    connection.supported_features = msg["features"]
    connection._coalesce = msg["features"].get(FEATURE_COALESCE_MESSAGES) == 1


@websocket_command("get_states")
def handle_get_states(connection: ActiveConnection, msg: dict[str, Any]) -> list[Any]:
    return [state.as_dict() for state in connection.hub.states.all()]


@websocket_command("get_config")
def handle_get_config(connection: ActiveConnection, msg: dict[str, Any]) -> dict[str, Any]:
    return config_dict(connection.hub)  # the same body as GET /api/config


def services_as_dict(hub: Hub) -> dict[str, dict[str, Any]]:
    """Home Assistant's service descriptions: {domain: {service: {name, description, fields}}}."""
    from ..entity import DOMAIN_SERVICES

    result: dict[str, dict[str, Any]] = {}
    for domain, services in sorted(hub.services.services().items()):
        described = result[domain] = {}
        for name, service in sorted(services.items()):
            entry: dict[str, Any] = {
                "name": name.replace("_", " ").capitalize(),
                "description": service.description,
                "fields": service.fields,
            }
            if name in DOMAIN_SERVICES.get(domain, {}):
                entry["target"] = {"entity": [{"domain": [domain]}]}
            if service.supports_response is not SupportsResponse.none:
                entry["response"] = {
                    "optional": service.supports_response is SupportsResponse.optional
                }
            described[name] = entry
    return result


@websocket_command("get_services")
def handle_get_services(connection: ActiveConnection, msg: dict[str, Any]) -> dict[str, Any]:
    return services_as_dict(connection.hub)


# --- events --------------------------------------------------------------------------------


@websocket_command("subscribe_events", {vol.Optional("event_type", default=MATCH_ALL): str})
def handle_subscribe_events(connection: ActiveConnection, msg: dict[str, Any]) -> None:
    from .websocket import cached_event_message

    event_type = msg["event_type"]
    if event_type not in SUBSCRIBE_ALLOWLIST and not connection.user.is_admin:
        _LOGGER.warning("Refusing %s a subscription to %s events", connection.user.name,
                        event_type)
        raise Unauthorized("Unauthorized")
    id_bytes = connection.id_bytes(msg["id"])
    send = connection.send_message

    def forward_events(event: Event) -> None:
        send(cached_event_message(id_bytes, event))

    connection.subscribe(msg["id"], connection.hub.bus.listen(event_type, forward_events))


@websocket_command("unsubscribe_events", {vol.Required("subscription"): int})
def handle_unsubscribe_events(connection: ActiveConnection, msg: dict[str, Any]) -> None:
    unsubscribe = connection.subscriptions.pop(msg["subscription"], None)
    if unsubscribe is None:
        connection.send_error(msg["id"], ERR_NOT_FOUND, "Subscription not found.")
        return
    unsubscribe()
    return


@websocket_command(
    "fire_event",
    {vol.Required("event_type"): str, vol.Optional("event_data"): dict},
    admin_only=True,  # as in Home Assistant: any event type, so admins only
    write=True,
)
def handle_fire_event(connection: ActiveConnection, msg: dict[str, Any]) -> dict[str, Any]:
    event_type = msg["event_type"]
    if event_type in PROTECTED_EVENTS:  # the core's own: listeners trust their data
        raise vol.Invalid(f"{event_type} events are fired by the hub only", path=["event_type"])
    context = connection.context()
    connection.hub.bus.fire(event_type, msg.get("event_data"), context=context)
    return {"context": context.as_dict()}


# --- services ------------------------------------------------------------------------------

_TARGET: Final = vol.Schema({
    vol.Optional("entity_id"): _str_or_list,
    vol.Optional("device_id"): _str_or_list,
    vol.Optional("area_id"): _str_or_list,
    vol.Optional("floor_id"): _str_or_list,
    vol.Optional("label_id"): _str_or_list,
})


@websocket_command(
    "call_service",
    {
        vol.Required("domain"): str,
        vol.Required("service"): str,
        vol.Optional("service_data"): vol.Any(None, dict),
        vol.Optional("target"): vol.Any(None, _TARGET),
        vol.Optional("return_response", default=False): bool,
    },
    write=True,
)
async def handle_call_service(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    context = connection.context()
    try:
        response = await connection.hub.services.call(
            msg["domain"], msg["service"], msg.get("service_data"),
            target=msg.get("target"), context=context, return_response=msg["return_response"],
        )
    except ServiceNotFound as err:
        if (err.domain, err.service) != (msg["domain"].lower(), msg["service"].lower()):
            # The service exists; one it called in turn does not.
            connection.send_error(
                msg["id"], ERR_HOME_ASSISTANT_ERROR,
                f"Service {msg['domain']}.{msg['service']} called service "
                f"{err.domain}.{err.service} which was not found.",
            )
            return RESPONDED
        raise
    result: dict[str, Any] = {"context": context.as_dict()}
    if msg["return_response"]:
        result["response"] = response
    return result


# --- subscribe_entities: compressed states and diffs ----------------------------------------


def compressed_state(state: State) -> dict[str, Any]:
    """Home Assistant's compressed state: s, a, c (id, or a dict with user/parent), lc, lu."""
    ctx = state.context
    context: Any = ctx.id if ctx.parent_id is None and ctx.user_id is None else ctx.as_dict()
    compressed = {"s": state.state, "a": state.attributes, "c": context,
                  "lc": state.last_changed_ts}
    if state.last_updated_ts != state.last_changed_ts:
        compressed["lu"] = state.last_updated_ts
    return compressed


def state_diff(old: State, new: State) -> dict[str, Any]:
    """`{"+": {changed keys}, "-": {"a": [removed attributes]}}` as Home Assistant builds it."""
    additions: dict[str, Any] = {}
    diff: dict[str, Any] = {"+": additions}
    if old.state != new.state:
        additions["s"] = new.state
    if old.last_changed_ts != new.last_changed_ts:
        additions["lc"] = new.last_changed_ts
    elif old.last_updated_ts != new.last_updated_ts:
        additions["lu"] = new.last_updated_ts
    old_ctx, new_ctx = old.context, new.context
    if old_ctx.parent_id != new_ctx.parent_id:
        additions["c"] = {"parent_id": new_ctx.parent_id}
    if old_ctx.user_id != new_ctx.user_id:
        if "c" in additions:
            additions["c"]["user_id"] = new_ctx.user_id
        else:
            additions["c"] = {"user_id": new_ctx.user_id}
    if old_ctx.id != new_ctx.id:
        if "c" in additions:
            additions["c"]["id"] = new_ctx.id
        else:
            additions["c"] = new_ctx.id
    old_attrs, new_attrs = old.attributes, new.attributes
    if old_attrs is not new_attrs and old_attrs != new_attrs:
        added = {k: v for k, v in new_attrs.items() if k not in old_attrs or old_attrs[k] != v}
        if added:
            additions["a"] = added
        removed = old_attrs.keys() - new_attrs.keys()
        if removed:
            diff["-"] = {"a": sorted(removed)}
    return diff


def state_change_event(entity_id: str, old: State | None, new: State | None) -> dict[str, Any]:
    if new is None:
        return {"r": [entity_id]}
    if old is None:
        return {"a": {entity_id: compressed_state(new)}}
    return {"c": {entity_id: state_diff(old, new)}}


@lru_cache(maxsize=256)
def _diff_fragment(event: Event) -> bytes:
    # Serialized once per state change for all subscribed connections (as for events).
    data = event.data
    body = state_change_event(data["entity_id"], data["old_state"], data["new_state"])
    return dumps({"type": "event", "event": body})[:-1]


class _EntitySubscription:
    """Forwards state changes as diffs; while the client lags, folds them per entity into one
    message built when the writer gets to it, so the queue holds one entry, not thousands."""

    __slots__ = ("__weakref__", "connection", "id_bytes", "msg_id", "pending")

    def __init__(self, connection: ActiveConnection, msg_id: int) -> None:
        self.connection = connection
        self.msg_id = msg_id
        self.id_bytes = connection.id_bytes(msg_id)
        self.pending: dict[str, tuple[State | None, State | None]] | None = None

    def __call__(self, event: Event) -> None:
        if self.pending is not None:
            self._fold(event)
        elif self.connection.backlogged:
            self.pending = {}
            self._fold(event)
            self.connection.send_message(self._flush)
        else:
            self.connection.send_message(
                b"".join((_diff_fragment(event), b',"id":', self.id_bytes, b"}"))
            )

    def _fold(self, event: Event) -> None:
        data = event.data
        entity_id = data["entity_id"]
        assert self.pending is not None
        before = self.pending.get(entity_id)
        # Keep the state the client last saw and the newest one: their diff is all it needs.
        first_old = data["old_state"] if before is None else before[0]
        self.pending[entity_id] = (first_old, data["new_state"])

    def _flush(self) -> bytes | None:
        pending, self.pending = self.pending or {}, None
        body: dict[str, Any] = {}
        for entity_id, (old, new) in pending.items():
            if old is None and new is None:
                continue  # appeared and went while folded: the client never knew it
            for key, value in state_change_event(entity_id, old, new).items():
                if key == "r":
                    body.setdefault("r", []).extend(value)
                else:
                    body.setdefault(key, {}).update(value)
        if not body:
            return None
        return dumps({"id": self.msg_id, "type": "event", "event": body})


@websocket_command("subscribe_entities", {vol.Optional("entity_ids"): _str_or_list})
def handle_subscribe_entities(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    hub = connection.hub
    entity_ids = msg.get("entity_ids")
    if isinstance(entity_ids, str):
        entity_ids = [eid.strip() for eid in entity_ids.split(",") if eid.strip()]
    subscription = _EntitySubscription(connection, msg["id"])
    # No await between reading the states and listening, so no change falls in between.
    if entity_ids:
        wanted = set(entity_ids)
        states = [state for eid in wanted if (state := hub.states.get(eid)) is not None]
        unsubscribe = hub.states.listen(wanted, subscription)  # indexed by entity id
    else:
        states = hub.states.all()
        unsubscribe = hub.bus.listen(EVENT_STATE_CHANGED, subscription)
    connection.subscribe(msg["id"], unsubscribe)
    connection.send_result(msg["id"])
    connection.send_event(
        msg["id"], {"a": {state.entity_id: compressed_state(state) for state in states}}
    )
    return RESPONDED


# --- render_template -----------------------------------------------------------------------

_RATE_LIMIT_ALL: Final = 1.0  # seconds between re-renders of templates reading all states
# Each render runs on the event loop: a client must not make it render without bound.
MAX_TEMPLATE_SUBSCRIPTIONS: Final = 100  # per connection


class _TemplateSubscription:
    """Re-renders a template when what it read changes; sends the result when it differs."""

    def __init__(self, connection: ActiveConnection, msg: dict[str, Any],
                 template: Template) -> None:
        self.connection = connection
        self.msg_id: int = msg["id"]
        self.template = template
        self.variables = msg.get("variables")
        self.strict: bool = msg["strict"]
        self.report_errors: bool = msg["report_errors"]
        self.last_result: Any = _NOTHING
        self.last_render = 0.0
        self.key: tuple[Any, ...] | None = None
        self.has_time = False
        self._unsubscribe: Any = None
        self._scheduled: asyncio.Handle | None = None
        self._minute: asyncio.TimerHandle | None = None
        self._removed = False

    def render(self) -> RenderInfo:
        self._scheduled = None
        self.last_render = time.monotonic()
        info = self.template.render_info(
            self.variables, strict=self.strict, max_seconds=API_RENDER_SECONDS
        )
        self._track(info)
        return info

    def send(self, info: RenderInfo) -> None:
        if info.error is not None:
            if self.report_errors:
                self.connection.send_event(self.msg_id, {"error": info.error, "level": "ERROR"})
            self.last_result = _NOTHING
            return
        if info.result == self.last_result and type(info.result) is type(self.last_result):
            return  # Home Assistant sends a render only when its result changed
        self.last_result = info.result
        self.connection.send_event(self.msg_id, {
            "result": info.result,
            "listeners": {
                "all": info.all_states,
                "entities": sorted(info.entities),
                "domains": sorted(info.domains),
                "time": info.has_time,
            },
        })

    def _rerender(self) -> None:
        if not self._removed:
            self.send(self.render())

    def _changed(self, event: Event) -> None:
        if self._scheduled is not None or self._removed:
            return
        loop = asyncio.get_running_loop()
        if self.key is not None and (self.key[0] or self.key[2]):
            delay = max(0.0, self.last_render + _RATE_LIMIT_ALL - time.monotonic())
            self._scheduled = loop.call_later(delay, self._rerender)
        else:  # a burst of changes in one loop iteration renders once
            self._scheduled = loop.call_soon(self._rerender)

    def _track(self, info: RenderInfo) -> None:
        key = (info.all_states, frozenset(info.entities), frozenset(info.domains))
        if key != self.key:
            self._untrack_states()
            self.key = key
            all_states, entities, domains = key
            hub = self.connection.hub
            if all_states or domains:

                def wanted(event: Event) -> bool:
                    entity_id = event.data["entity_id"]
                    return all_states or entity_id in entities or (
                        entity_id.partition(".")[0] in domains
                    )

                self._unsubscribe = hub.bus.listen(EVENT_STATE_CHANGED, self._changed, wanted)
            elif entities:
                self._unsubscribe = hub.states.listen(entities, self._changed)
        if info.has_time != self.has_time:
            self.has_time = info.has_time
            if self._minute is not None:
                self._minute.cancel()
                self._minute = None
            if info.has_time:
                self._schedule_minute()

    def _schedule_minute(self) -> None:
        # now() in a template: render again at the start of every minute.
        def tick() -> None:
            self._minute = None
            if not self._removed and self.has_time:
                self._rerender()
                if self.has_time and self._minute is None:
                    self._schedule_minute()

        loop = asyncio.get_running_loop()
        self._minute = loop.call_later(60.0 - time.time() % 60.0, tick)

    def _untrack_states(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def remove(self) -> None:
        self._removed = True
        self._untrack_states()
        for handle in (self._scheduled, self._minute):
            if handle is not None:
                handle.cancel()
        self._scheduled = self._minute = None


_NOTHING: Final = object()


@websocket_command(
    "render_template",
    {
        vol.Required("template"): str,
        vol.Optional("entity_ids"): _str_or_list,  # accepted, as Home Assistant does; unused
        vol.Optional("variables"): dict,
        vol.Optional("timeout"): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("strict", default=False): bool,
        vol.Optional("report_errors", default=False): bool,
    },
    admin_only=True,  # as in Home Assistant: templates can read everything and cost CPU
)
async def handle_render_template(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    hub = connection.hub
    if connection.template_subscriptions >= MAX_TEMPLATE_SUBSCRIPTIONS:
        raise HubError(f"too many template subscriptions (at most {MAX_TEMPLATE_SUBSCRIPTIONS} "
                       "per connection)")
    connection.template_subscriptions += 1  # taken now, so concurrent requests count too
    reserved = True
    try:
        template = Template(msg["template"], hub)
        template.ensure_valid()  # a syntax error is a template_error result
        timeout = msg.get("timeout")
        if timeout:
            # Like Home Assistant: try it once off the loop; a slow template is refused.
            def render() -> RenderInfo:
                return template.render_info(
                    msg.get("variables"), strict=msg["strict"], max_seconds=API_RENDER_SECONDS
                )

            try:
                await asyncio.wait_for(hub.run_in_executor(render), timeout)
            except TimeoutError:
                connection.send_error(msg["id"], ERR_TEMPLATE_ERROR,
                                      f"Exceeded maximum execution time of {timeout}s")
                return RESPONDED
        subscription = _TemplateSubscription(connection, msg, template)
        info = subscription.render()
        if info.error is not None and not msg["report_errors"]:
            subscription.remove()
            raise TemplateError(info.error)

        def unsubscribe() -> None:
            subscription.remove()
            connection.template_subscriptions -= 1

        reserved = False  # the subscription holds the place from here on
        connection.subscribe(msg["id"], unsubscribe)
    finally:
        if reserved:
            connection.template_subscriptions -= 1
    connection.send_result(msg["id"])
    subscription.send(info)
    return RESPONDED


# --- registries and notifications ----------------------------------------------------------


@websocket_command("config/device_registry/list")
def handle_device_list(connection: ActiveConnection, msg: dict[str, Any]) -> list[Any]:
    return [entry.as_dict() for entry in connection.hub.devices.all()]


@websocket_command("config/entity_registry/list")
def handle_entity_list(connection: ActiveConnection, msg: dict[str, Any]) -> list[Any]:
    return [entry.as_dict() for entry in connection.hub.entity_registry.all()]


@websocket_command("config/entity_registry/get", {vol.Required("entity_id"): str})
def handle_entity_get(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    """One entry, in Home Assistant's extended shape (the list entry plus aliases and
    capabilities); hass-client's `get_entity_registry_entry` calls it."""
    entry = connection.hub.entity_registry.get(msg["entity_id"])
    if entry is None:
        connection.send_error(msg["id"], ERR_NOT_FOUND, "Entity not found")
        return RESPONDED
    return {**entry.as_dict(), "aliases": [], "capabilities": None}


@websocket_command("config/area_registry/list")
def handle_area_list(connection: ActiveConnection, msg: dict[str, Any]) -> list[Any]:
    return [entry.as_dict() for entry in connection.hub.areas.all()]


@websocket_command("persistent_notification/get")
def handle_notifications_get(connection: ActiveConnection, msg: dict[str, Any]) -> list[Any]:
    return connection.hub.notifications.all()


@websocket_command("persistent_notification/subscribe")
def handle_notifications_subscribe(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    """Events `{"type": "current" | "added" | "updated" | "removed", "notifications": {...}}`."""
    notifications = connection.hub.notifications
    known = {item["notification_id"]: item for item in notifications.all()}
    msg_id = msg["id"]

    def changed(event: Event) -> None:
        notification_id = event.data.get("notification_id")
        item = notifications.get(notification_id)
        if item is None:
            gone = known.pop(notification_id, None) or {"notification_id": notification_id}
            connection.send_event(msg_id, {"type": "removed",
                                           "notifications": {notification_id: gone}})
            return
        kind = "updated" if notification_id in known else "added"
        known[notification_id] = item
        connection.send_event(msg_id, {"type": kind, "notifications": {notification_id: item}})

    connection.subscribe(msg_id, connection.hub.bus.listen(notifications.EVENT, changed))
    connection.send_result(msg_id)
    connection.send_event(msg_id, {"type": "current", "notifications": dict(known)})
    return RESPONDED


# --- auth ----------------------------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@websocket_command("auth/current_user")
def handle_current_user(connection: ActiveConnection, msg: dict[str, Any]) -> dict[str, Any]:
    user = connection.user
    return {
        "id": user.id,
        "name": user.name,
        "is_owner": user.is_owner,
        "is_admin": user.is_admin,
        "credentials": [],
        "mfa_modules": [],
    }


@websocket_command(
    "auth/long_lived_access_token",
    {
        vol.Required("client_name"): vol.All(str, vol.Length(min=1, max=100)),
        vol.Required("lifespan"): vol.All(vol.Coerce(int), vol.Range(min=1, max=36500)),
        vol.Optional("client_icon"): vol.Any(None, str),
    },
)
def handle_long_lived_token(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    try:
        return connection.hub.auth.create_long_lived_token(
            connection.user, msg["client_name"], msg["lifespan"]
        )
    except ValueError as err:  # e.g. the user already has a token of that name
        connection.send_error(msg["id"], ERR_HOME_ASSISTANT_ERROR, str(err))
        return RESPONDED


@websocket_command("auth/refresh_tokens")
def handle_refresh_tokens(connection: ActiveConnection, msg: dict[str, Any]) -> list[Any]:
    current = connection.refresh_token.id
    return [
        {
            "id": token.id,
            "client_id": token.client_id,
            "client_name": token.client_name,
            "client_icon": None,
            "type": token.token_type,
            "created_at": _iso(token.created_at),
            "is_current": token.id == current,
            "last_used_at": _iso(token.last_used_at),
            "last_used_ip": token.last_used_ip,
            "auth_provider_type": "homeassistant",
        }
        for token in connection.hub.auth.refresh_tokens(connection.user)
    ]


@websocket_command("auth/delete_refresh_token", {vol.Required("refresh_token_id"): str})
def handle_delete_refresh_token(connection: ActiveConnection, msg: dict[str, Any]) -> Any:
    auth = connection.hub.auth
    token = auth.get_refresh_token(msg["refresh_token_id"])
    if token is None or token.user_id != connection.user.id:
        connection.send_error(msg["id"], "invalid_token_id", "Received invalid token")
        return RESPONDED
    auth.revoke_refresh_token(token.id)
    connection.send_result(msg["id"], {})
    # Every other connection using the token ends now, not at its next token check.
    close_token_connections(connection.hub, token.id, keep=connection)
    if token.id == connection.refresh_token.id:
        # This connection's own token: it ends too, once the result is out.
        asyncio.get_running_loop().call_soon(connection.cancel)
    return RESPONDED
