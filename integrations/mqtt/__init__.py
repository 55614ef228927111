"""The `mqtt` integration: an embedded broker (or an external one), Home Assistant MQTT
discovery, MQTT entities in YAML, commands, the `mqtt.publish` service, the `mqtt` trigger,
per-device credentials and diagnostics.

```yaml
mqtt:                       # embedded broker on 1883, discovery on, anonymous access off
  broker: mqtt://user:pass@192.168.1.5:1883   # optional: use this broker, start none
  sensor:
    - name: Outside
      state_topic: garden/temp
      unit_of_measurement: "°C"
```
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import voluptuous as vol

from hub.config import atomic_write, humanize_error, location
from hub.exceptions import IntegrationError
from hub.hookspecs import hookimpl
from hub.plugins import Integration

from .diagnostics import Diagnostics
from .models import Connection

if TYPE_CHECKING:
    from hub.core import Hub

    from .discovery import Discovery
    from .entity import MqttEntity

_LOGGER = logging.getLogger(__name__)

DOMAIN: Final = "mqtt"
DEFAULT_PREFIX: Final = "homeassistant"


def _broker(value: Any) -> str:
    value = str(value)
    if value == "embedded":
        return value
    from .connection import parse_broker_url

    try:
        parse_broker_url(value)
    except ValueError as err:
        raise vol.Invalid(str(err)) from None
    return value


def _message(default_payload: str) -> vol.Schema:
    return vol.Schema({
        vol.Optional("topic"): str,
        vol.Optional("payload", default=default_payload): vol.Coerce(str),
        vol.Optional("qos", default=0): vol.All(vol.Coerce(int), vol.In((0, 1, 2))),
        vol.Optional("retain", default=False): bool,
    })


def _entity_lists(value: Any) -> Any:
    """HA accepts `mqtt: sensor: [...]` and the older `mqtt: [{sensor: [...]}, ...]`."""
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict):
                raise vol.Invalid("each item of a list under mqtt: must be a mapping")
            for key, entries in item.items():
                merged.setdefault(key, []).extend(entries if isinstance(entries, list) else [entries])
        return merged
    return {} if value is None else value


def _config_schema(value: Any) -> dict[str, Any]:
    from .platforms import load_platforms

    platforms = load_platforms()
    schema = vol.Schema({
        vol.Optional("broker", default="embedded"): _broker,
        vol.Optional("client_id"): vol.All(str, vol.Length(min=1, max=128)),
        vol.Optional("keepalive", default=60): vol.All(vol.Coerce(int), vol.Range(min=5, max=3600)),
        vol.Optional("clean_session", default=False): bool,
        vol.Optional("certificate"): str,
        vol.Inclusive("client_cert", "client certificate"): str,
        vol.Inclusive("client_key", "client certificate"): str,
        vol.Optional("tls_insecure", default=False): bool,
        vol.Optional("embedded_broker", default=dict): vol.Any(None, dict),
        vol.Optional("discovery", default=True): bool,
        vol.Optional("discovery_prefix", default=DEFAULT_PREFIX): vol.All(
            str, vol.Match(r"^[^#+\x00]+$", msg="a discovery prefix cannot contain # or +")),
        vol.Optional("birth_message", default=dict): _message("online"),
        vol.Optional("will_message", default=dict): _message("offline"),
        vol.Optional("max_payload_bytes", default=262144): vol.All(vol.Coerce(int), vol.Range(min=16)),
        vol.Optional("diagnostics_messages", default=10): vol.All(vol.Coerce(int), vol.Range(min=0, max=1000)),
        # Entities in YAML: validated one by one at set-up, so one bad entry loses only itself.
        **{vol.Optional(name): vol.All(lambda v: v if isinstance(v, list) else [v], [dict])
           for name in platforms},
    })
    config = schema(_entity_lists(value))
    if config["broker"] == "embedded":  # amqtt is imported only when it is used
        from .broker import BROKER_SCHEMA

        try:
            config["embedded_broker"] = BROKER_SCHEMA(config["embedded_broker"] or {})
        except vol.Invalid as err:
            raise vol.Invalid(err.msg, path=["embedded_broker", *err.path]) from None
    return config


CONFIG_SCHEMA = _config_schema


class MqttRuntime:
    """Everything the integration runs, in `hub.data["mqtt"]`."""

    def __init__(self, hub: Hub, config: dict[str, Any], connection: Connection) -> None:
        from .platforms import load_platforms

        self.hub = hub
        self.config = config
        self.connection = connection
        self.platforms = load_platforms()
        self.diagnostics = Diagnostics(config["diagnostics_messages"])
        self.max_payload_bytes: int = config["max_payload_bytes"]
        self.discovery: Discovery | None = None
        self.broker: Any = None  # the EmbeddedBroker, when embedded
        self.credentials: Any = None
        self.yaml_entities: list[MqttEntity] = []

    def add_entity(self, entity: MqttEntity) -> bool:
        """Put the entity on the hub (or aside, when the user disabled it). False when it could
        not be added: its id belongs to another live entity (another discovery topic or a YAML
        entry with the same unique_id), which it must never touch."""
        try:
            self.hub.entities.add(entity, DOMAIN)
        except ValueError as err:
            _LOGGER.error("MQTT entity %s not added: %s", entity.name or entity.unique_id, err)
            entity.hub, entity.entity_id, entity.device_id = None, "", None
            return False
        entity.subscribe_now()
        return True

    async def remove_entity(self, entity: MqttEntity, *, forget: bool) -> None:
        """Take the entity off the hub; `forget` (its discovery config was removed) also drops
        its registry entry and its device once the device has no entities left."""
        live = self.hub.entities.get(entity.entity_id)
        if live is not None and live is not entity:
            return  # that id is another entity's: not ours to remove
        await self.hub.entities.remove(entity)
        self.diagnostics.forget(entity)
        if not forget:
            return
        registry = self.hub.entity_registry
        entry = registry.get(entity.entity_id)
        if entity.unique_id is not None and entry is not None and entry.unique_id == entity.unique_id:
            registry.remove(entity.entity_id)
        if entity.device_id:
            self.forget_device_if_unused(entity.device_id)

    def forget_device_if_unused(self, device_id: str) -> None:
        """Remove an MQTT device once no entity (live, or in the registry) belongs to it."""
        device = self.hub.devices.get(device_id)
        if device is None or device.integration != DOMAIN:
            return
        if self.hub.entity_registry.entries_for_device(device_id):
            return
        if any(e.device_id == device_id for e in self.hub.entities.all()):
            return
        self.hub.devices.remove(device_id)

    def entities(self) -> list[MqttEntity]:
        return [e for e in self.hub.entities.all(DOMAIN)]  # type: ignore[misc]


CLIENT_ID_FILE: Final = "mqtt_client_id"


def _client_id(hub: Hub, config: dict[str, Any]) -> str:
    """The configured id, or one made up once and kept in .storage: stable, so the broker keeps
    our persistent session across restarts, and unique, so two hubs on one broker (say, both
    in containers with /config) do not keep kicking each other off."""
    if config.get("client_id"):
        return config["client_id"]
    path = Path(hub.config_dir) / ".storage" / CLIENT_ID_FILE
    try:
        stored = path.read_text().strip()
        if stored:
            return stored
    except OSError:
        pass
    made = f"iot-hub-{secrets.token_hex(6)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, made + "\n")
    return made


def _make_connection(hub: Hub, config: dict[str, Any], runtime_box: dict[str, Any],
                     client_id: str | None) -> Connection:
    prefix = config["discovery_prefix"]
    will = config["will_message"]
    will_topic = will.get("topic") or f"{prefix}/status"
    if config["broker"] == "embedded":
        from .broker import EmbeddedBroker
        from .connection import EmbeddedConnection
        from .credentials import CredentialStore

        credentials = CredentialStore(Path(hub.config_dir), prefix)
        runtime_box["credentials"] = credentials
        return EmbeddedConnection(lambda on_message: EmbeddedBroker(
            config_dir=Path(hub.config_dir), options=config["embedded_broker"],
            credentials=credentials, on_message=on_message, discovery_prefix=prefix))
    from .connection import ClientOptions, ExternalConnection, parse_broker_url

    return ExternalConnection(ClientOptions(
        address=parse_broker_url(config["broker"]), client_id=client_id or _client_id(hub, config),
        keepalive=config["keepalive"], clean_session=config["clean_session"],
        certificate=config.get("certificate"), client_cert=config.get("client_cert"),
        client_key=config.get("client_key"), tls_insecure=config["tls_insecure"],
        will=(will_topic, will["payload"].encode(), will["qos"], will["retain"]),
    ))


def _add_yaml_entities(runtime: MqttRuntime, config: dict[str, Any]) -> None:
    hub = runtime.hub
    for platform, cls in runtime.platforms.items():
        for index, item in enumerate(config.get(platform) or ()):
            try:
                entity_config = cls.SCHEMA(item)
            except vol.Invalid as err:
                file, line = location(item)
                for issue in humanize_error(err, item, f"mqtt {platform}[{index}]",
                                            file or "configuration.yaml", line):
                    _LOGGER.error("%s", issue)
                    hub.notifications.create(str(issue), "Invalid MQTT entity", f"mqtt_yaml_{platform}_{index}")
                continue
            entity = cls(runtime, entity_config)
            if runtime.add_entity(entity):
                runtime.yaml_entities.append(entity)


@asynccontextmanager
async def setup(hub: Hub, config: dict[str, Any] | None) -> AsyncIterator[MqttRuntime]:
    from . import services
    from .discovery import Discovery

    config = CONFIG_SCHEMA(config)
    box: dict[str, Any] = {}
    client_id = None if config["broker"] == "embedded" else await hub.run_in_executor(_client_id, hub, config)
    connection = _make_connection(hub, config, box, client_id)
    runtime = MqttRuntime(hub, config, connection)
    runtime.credentials = box.get("credentials")
    runtime.broker = getattr(connection, "broker", None)
    prefix = config["discovery_prefix"]
    birth = config["birth_message"]
    birth_topic = birth.get("topic") or f"{prefix}/status"

    async def publish_birth() -> None:
        try:
            await connection.publish(birth_topic, birth["payload"], birth["qos"], birth["retain"])
        except Exception as err:  # noqa: BLE001 - a lost connection retries on reconnect
            _LOGGER.warning("Could not publish the birth message: %s", err)

    def on_connection(connected: bool) -> None:
        if connected:  # devices watch the birth message to re-announce themselves
            hub.create_task(publish_birth(), "mqtt birth message")

    try:
        await connection.start()
    except Exception as err:
        raise IntegrationError(f"MQTT: {err}") from err
    hub.data[DOMAIN] = runtime
    remove_listener = connection.add_connection_listener(on_connection)
    unregister = services.register(hub, runtime)
    try:
        if config["discovery"]:
            runtime.discovery = Discovery(runtime, prefix)
            runtime.discovery.start()
        _add_yaml_entities(runtime, config)
        if connection.connected:
            await publish_birth()
        else:
            _LOGGER.warning("MQTT broker %s not reachable yet; retrying in the background",
                            getattr(connection, "options", None) and connection.options.address)
        yield runtime
    finally:
        remove_listener()
        if connection.connected and config["broker"] == "embedded":
            # An embedded broker has no client whose will the broker could send: say it ourselves.
            will = config["will_message"]
            try:
                await connection.publish(will.get("topic") or f"{prefix}/status", will["payload"],
                                         will["qos"], will["retain"])
            except Exception as err:  # noqa: BLE001 - stopping goes on regardless
                _LOGGER.debug("Could not publish the will message: %s", err)
        if runtime.discovery is not None:
            await runtime.discovery.stop()
        for entity in runtime.entities():
            await runtime.remove_entity(entity, forget=False)
        unregister()
        hub.data.pop(DOMAIN, None)
        await connection.stop()


@hookimpl
def register_integrations() -> list[Integration]:
    return [Integration(DOMAIN, "MQTT", setup, CONFIG_SCHEMA, documentation="docs/mqtt.md")]


@hookimpl
def register_commands(subparsers: Any) -> None:
    from .cli import add_commands

    add_commands(subparsers)


@hookimpl
def register_api_routes(hub: Hub) -> list[Any]:
    from .api import ROUTES

    return list(ROUTES)


@hookimpl
def register_trigger_types(hub: Hub) -> dict[str, Any]:
    from .trigger import TRIGGER

    return {"mqtt": TRIGGER}


def now() -> float:
    return time.time()
