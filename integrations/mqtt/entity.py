"""The base of every MQTT entity, discovered or configured in YAML.

An MQTT entity is a hub entity (`hub.entity.SensorEntity`, ...) plus `MqttEntity`: it reads
its options from one validated config dict (the same shape for discovery payloads and YAML),
subscribes to its topics when added, turns messages into state with its templates, follows
availability and `expire_after`, and publishes commands with `command_template`. Platforms
subclass it, declare their `SCHEMA`, list the topics they read in `subscriptions()`, and
implement the domain methods (`turn_on`, ...) with `publish_command`.

Whatever a device sends, an entity never raises out of a message handler: a payload it cannot
use is counted and logged (once per device) through `MqttRuntime.diagnostics`, and the last
good state stays.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
import voluptuous as vol

from hub.entity import Entity
from hub.exceptions import TemplateError
from hub.template import Template

from .models import Message, validate_filter, validate_topic

if TYPE_CHECKING:
    from . import MqttRuntime

_LOGGER = logging.getLogger(__name__)

PAYLOAD_NONE = "None"  # HA: a template rendering "None" resets the state to unknown
# Templates come from devices and run for every message on the event loop: a slow one (from a
# broken or hostile discovery payload) is cut off quickly and counted as a bad message.
DEVICE_TEMPLATE_SECONDS = 0.05

# --- option validators shared by every platform -------------------------------------------------


def _template(value: Any) -> Template:
    if isinstance(value, Template):
        return value
    if not isinstance(value, str):
        raise vol.Invalid("a template must be a string")
    template = Template(value)
    try:
        template.ensure_valid()
    except TemplateError as err:
        raise vol.Invalid(f"invalid template: {err}") from None
    return template


def _topic(value: Any) -> str:
    try:
        return validate_topic(str(value))
    except ValueError as err:
        raise vol.Invalid(str(err)) from None


def _subscribe_topic(value: Any) -> str:
    try:
        return validate_filter(str(value))
    except ValueError as err:
        raise vol.Invalid(str(err)) from None


def finite_number(value: Any) -> float:
    """A finite number from a payload (ValueError or TypeError otherwise: nan and inf too)."""
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is not a finite number")
    return result


def to_percentage(low_high: tuple[int, int], value: float) -> int:
    """`value` in a device's range `low_high` (low may be above high: inverted) as 0-100, with
    HA's rounding."""
    offset = low_high[0] - 1
    return int((value - offset) * 100 // (low_high[1] - low_high[0] + 1))


def from_percentage(low_high: tuple[int, int], percentage: float) -> float:
    offset = low_high[0] - 1
    return (low_high[1] - low_high[0] + 1) * percentage / 100 + offset


def _entity_id_suggestion(value: Any) -> str:
    value = str(value)
    return value.split(".", 1)[1] if "." in value else value


template = _template
topic = _topic
subscribe_topic = _subscribe_topic
qos = vol.All(vol.Coerce(int), vol.In((0, 1, 2)))
payload = vol.Any(str, int, float, bool)  # devices send ON, 1, true...


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


payload_str = vol.All(payload, _to_str)

_DEVICE = vol.Schema(
    {
        vol.Optional("identifiers"): vol.Any([vol.Coerce(str)], vol.All(
            vol.Any(str, int), vol.Coerce(str), lambda v: [v])),  # one id or a list of them
        vol.Optional("connections"): [vol.All(vol.ExactSequence((vol.Coerce(str), vol.Coerce(str))), vol.Coerce(tuple))],
        vol.Optional("name"): vol.Any(None, vol.Coerce(str)),
        vol.Optional("manufacturer"): vol.Coerce(str),
        vol.Optional("model"): vol.Coerce(str),
        vol.Optional("model_id"): vol.Coerce(str),
        vol.Optional("serial_number"): vol.Coerce(str),
        vol.Optional("hw_version"): vol.Coerce(str),
        vol.Optional("sw_version"): vol.Coerce(str),
        vol.Optional("suggested_area"): vol.Coerce(str),
        vol.Optional("configuration_url"): vol.Coerce(str),
        vol.Optional("via_device"): vol.Coerce(str),
    },
    extra=vol.REMOVE_EXTRA,
)

_AVAILABILITY_ITEM = vol.Schema(
    {
        vol.Required("topic"): _subscribe_topic,
        vol.Optional("payload_available", default="online"): payload_str,
        vol.Optional("payload_not_available", default="offline"): payload_str,
        vol.Optional("value_template"): _template,
    },
    extra=vol.REMOVE_EXTRA,
)

# Options every MQTT entity understands (HA's MQTT_ENTITY_COMMON_SCHEMA and availability).
COMMON_SCHEMA: dict[Any, Any] = {
    vol.Optional("name"): vol.Any(None, vol.Coerce(str)),
    vol.Optional("unique_id"): vol.Coerce(str),
    vol.Optional("default_entity_id"): _entity_id_suggestion,
    vol.Optional("object_id"): vol.Coerce(str),
    vol.Optional("device"): _DEVICE,
    vol.Optional("device_class"): vol.Any(None, vol.Coerce(str)),
    vol.Optional("entity_category"): vol.Any(None, vol.In(("config", "diagnostic"))),
    vol.Optional("enabled_by_default", default=True): bool,
    vol.Optional("icon"): vol.Coerce(str),
    vol.Optional("entity_picture"): vol.Coerce(str),
    vol.Optional("encoding", default="utf-8"): vol.Any("", vol.Coerce(str)),
    vol.Optional("qos", default=0): qos,
    vol.Optional("retain", default=False): bool,
    vol.Optional("availability_topic"): _subscribe_topic,
    vol.Optional("availability"): [_AVAILABILITY_ITEM],
    vol.Optional("availability_mode", default="latest"): vol.In(("latest", "all", "any")),
    vol.Optional("availability_template"): _template,
    vol.Optional("payload_available", default="online"): payload_str,
    vol.Optional("payload_not_available", default="offline"): payload_str,
    vol.Optional("json_attributes_topic"): _subscribe_topic,
    vol.Optional("json_attributes_template"): _template,
    vol.Optional("origin"): dict,
    vol.Optional("platform"): str,
}


def platform_schema(options: Mapping[Any, Any], *validators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A platform's full schema: the common options plus its own; unknown keys are dropped
    (HA's forward compatibility), then cross-field `validators` run on the result."""
    schema = vol.Schema({**COMMON_SCHEMA, **options}, extra=vol.REMOVE_EXTRA)
    return vol.All(schema, _exclusive("availability_topic", "availability"), *validators)


def _exclusive(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(config: dict[str, Any]) -> dict[str, Any]:
        given = [key for key in keys if key in config]
        if len(given) > 1:
            raise vol.Invalid(f"{' and '.join(given)} cannot be used together")
        return config

    return check


# Attributes a device's JSON attributes may not override.
RESERVED_ATTRIBUTES = frozenset({
    "assumed_state", "available", "context_recent_time", "device_class", "device_info",
    "entity_category", "entity_picture", "friendly_name", "icon", "supported_features",
    "unit_of_measurement", "state_class",
})


class MqttEntity(Entity):
    """Mixed into a domain entity class: `class MqttSensor(MqttEntity, SensorEntity)`."""

    PLATFORM: ClassVar[str] = ""
    SCHEMA: ClassVar[Callable[[Any], Any]]
    DEFAULT_NAME: ClassVar[str | None] = None
    # Actuators whose state follows their own commands when optimistic show `assumed_state`
    # (HA's UI then offers both on and off buttons).
    ASSUMED_WHEN_OPTIMISTIC: ClassVar[bool] = False

    def __init__(self, runtime: MqttRuntime, config: dict[str, Any],
                 discovery_id: tuple[str, ...] | None = None) -> None:
        self.runtime = runtime
        self.discovery_id = discovery_id
        self.config: dict[str, Any] = {}
        self._unsubscribes: list[Callable[[], None]] = []
        self._availability: dict[str, bool] = {}
        self._availability_latest: bool | None = None
        self._expired = False
        self._expire_timer: asyncio.TimerHandle | None = None
        self._json_attributes: dict[str, Any] = {}
        self.apply_config(config)

    # --- configuration ---------------------------------------------------------------------

    def apply_config(self, config: dict[str, Any]) -> None:
        """Take the (validated) options; the platform reads its own in `setup_from_config`."""
        self.config = config
        self.unique_id = config.get("unique_id")
        self.device_class = config.get("device_class")
        self.icon = config.get("icon")
        self.entity_category = config.get("entity_category")
        self.enabled_by_default = config["enabled_by_default"]
        self.force_update = bool(config.get("force_update", False))
        self.suggested_object_id = config.get("default_entity_id") or config.get("object_id")
        self.device_info = self._device_info(config.get("device"))
        self.name = self._name(config)
        self._templates: dict[str, Template] = {}
        for key, value in config.items():
            if isinstance(value, Template):
                value.hub = self.runtime.hub
                self._templates[key] = value
        self.setup_from_config(config)

    def setup_from_config(self, config: dict[str, Any]) -> None:
        """Read the platform's own options from `config`."""

    def _name(self, config: dict[str, Any]) -> str | None:
        if "name" in config:  # `name: null`: the device's main feature, named after the device
            name = config["name"]
        elif self.device_class:
            name = str(self.device_class).replace("_", " ").capitalize()
        else:
            name = self.DEFAULT_NAME
        device_name = (self.device_info or {}).get("name")
        if name is not None and device_name and name == device_name:
            return None  # HA drops an entity name equal to its device's
        return name

    def _device_info(self, device: dict[str, Any] | None) -> dict[str, Any] | None:
        if not device or not (device.get("identifiers") or device.get("connections")):
            return None
        info: dict[str, Any] = {
            "identifiers": {("mqtt", ident) for ident in device.get("identifiers", ())},
            "connections": set(device.get("connections", ())),
        }
        for key in ("name", "manufacturer", "model", "model_id", "serial_number", "hw_version",
                    "sw_version", "configuration_url", "suggested_area"):
            if device.get(key) is not None:
                info[key] = device[key]
        if device.get("via_device"):
            info["via_device"] = ("mqtt", device["via_device"])
        return info

    # --- life cycle -------------------------------------------------------------------------

    def subscriptions(self) -> dict[str, Callable[[Message], None]]:
        """Config key of a topic -> handler, for each topic the platform reads state from."""
        return {}

    async def added(self) -> None:
        if not self._unsubscribes:  # re-enabled by the user: subscribe again
            self._subscribe()

    def subscribe_now(self) -> None:
        """Subscribe as soon as the entity is on the hub, not in the `added` task: a message
        the device sends right after the hub starts must not find nobody listening."""
        if self.hub is not None and not self._unsubscribes:
            self._subscribe()

    async def removing(self) -> None:
        self._unsubscribe()

    def _subscribe(self) -> None:
        config = self.config
        connection = self.runtime.connection
        owner = self.entity_id
        # Before subscribing: a retained state may arrive inside subscribe() and must find
        # the entity waiting for it (and a config without expire_after never expires).
        self._expired = bool(config.get("expire_after"))
        handlers = dict(self.subscriptions())
        if config.get("json_attributes_topic"):
            handlers["json_attributes_topic"] = self._on_json_attributes
        for key, handler in handlers.items():
            if (topic_filter := config.get(key)) is not None:
                self._unsubscribes.append(connection.subscribe(
                    topic_filter, self._guard(handler, key), config["qos"], owner))
        for item in self._availability_topics():
            self._unsubscribes.append(connection.subscribe(
                item["topic"], self._guard(self._availability_handler(item), "availability"),
                config["qos"], owner))
        self._unsubscribes.append(self.runtime.connection.add_connection_listener(self._on_connection))
        self.update_available()

    def _unsubscribe(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()
        if self._expire_timer is not None:
            self._expire_timer.cancel()
            self._expire_timer = None

    async def update_discovery(self, config: dict[str, Any]) -> None:
        """A later discovery payload for this entity: take the new options at once."""
        await self.removing()  # subscriptions and the platform's timers
        self._availability.clear()
        self._availability_latest = None
        old_device = self.device_id
        self.apply_config(config)
        if self.hub is not None:
            if self.device_info:
                self.device_id = self.hub.devices.get_or_create(integration="mqtt", **self.device_info).id
            self._subscribe()
            self.write_state()
            if old_device and old_device != self.device_id:
                self.runtime.forget_device_if_unused(old_device)

    def _guard(self, handler: Callable[[Message], None], key: str) -> Callable[[Message], None]:
        """Every message is recorded for diagnostics; a handler that raises counts as a
        malformed payload of this device, never as an error of the hub."""
        diagnostics = self.runtime.diagnostics

        def handle(message: Message) -> None:
            if self.hub is None:
                return
            diagnostics.record(self, message)
            if len(message.payload) > self.runtime.max_payload_bytes:
                diagnostics.malformed(self, message, f"payload of {len(message.payload)} bytes is over "
                                      f"the limit of {self.runtime.max_payload_bytes}")
                return
            try:
                handler(message)
            except (ValueError, TypeError, KeyError, LookupError, TemplateError, vol.Invalid) as err:
                diagnostics.malformed(self, message, f"{key}: {err}")
            except Exception as err:  # a device must never take the hub down
                # Counted and logged once per device like any bad payload; the trace for debugging.
                _LOGGER.debug("%s: handling %s failed", self.entity_id, message.topic, exc_info=True)
                diagnostics.malformed(self, message, f"{key}: {type(err).__name__}: {err}")

        return handle

    # --- templates and payloads -------------------------------------------------------------

    def payload_text(self, message: Message) -> str:
        return message.payload.decode(self.config.get("encoding") or "utf-8", errors="strict")

    def render(self, key: str, message: Message | None, value: Any = None,
               **variables: Any) -> Any:
        """The config template `key` rendered for a message (with `value` and `value_json`) or
        for a value; without that template: the payload text (or the value) unchanged.
        Raises TemplateError."""
        text = self.payload_text(message) if message is not None else value
        template = self._templates.get(key)
        if template is None:
            return text
        variables["value"] = text
        if message is not None and "value_json" not in variables:
            try:
                variables["value_json"] = orjson.loads(message.payload)
            except orjson.JSONDecodeError:
                pass  # not JSON: `value_json` stays undefined, as in HA
        variables["entity_id"] = self.entity_id
        return template.render(variables, parse_result=False, max_seconds=DEVICE_TEMPLATE_SECONDS)

    def has_template(self, key: str) -> bool:
        return key in self._templates

    async def publish_command(self, value: Any, *, topic_key: str = "command_topic",
                              template_key: str = "command_template", **variables: Any) -> None:
        """Publish a command: `value` through the command template, to the topic, with the
        entity's QoS and retain. Raises NotConnected/TemplateError for the caller (a service
        call) to report."""
        topic = self.config.get(topic_key)
        if topic is None:
            from hub.exceptions import NotSupported

            raise NotSupported(f"{self.entity_id} has no {topic_key}")
        payload = self.render(template_key, None, value, name=self.name, **variables) \
            if template_key in self._templates else value
        if isinstance(payload, bool):
            payload = "true" if payload else "false"
        await self.runtime.connection.publish(topic, "" if payload is None else str(payload),
                                              self.config["qos"], self.config["retain"])
        self.runtime.diagnostics.command(self, topic)

    async def command(self, value: Any, *, assume: Mapping[str, Any] | Callable[[], Any] | None = None,
                      **kwargs: Any) -> None:
        """`publish_command(value, **kwargs)`; then, when optimistic, take on the state the command
        asks for (`assume`: attribute values, or a function setting them) and write it."""
        await self.publish_command(value, **kwargs)
        if assume is not None and self.optimistic:
            if callable(assume):
                assume()
            else:
                for name, new in assume.items():
                    setattr(self, name, new)
            self.write_state()

    @staticmethod
    def on_off(value: Any, on: str, off: str, names: tuple[str, str] = ("payload_on", "payload_off")
               ) -> bool | None:
        """True for `on`, False for `off`, None for HA's "None" (unknown); ValueError otherwise."""
        if value == on:
            return True
        if value == off:
            return False
        if value == PAYLOAD_NONE:
            return None
        raise ValueError(f"{value!r} matches neither {names[0]} {on!r} nor {names[1]} {off!r}")

    @property
    def optimistic(self) -> bool:
        """No state topic (or `optimistic: true`): the state follows the commands sent."""
        return bool(self.config.get("optimistic")) or self.config.get("state_topic") is None

    def state_received(self) -> None:
        """A platform handler got a valid state: restart `expire_after`, write the state."""
        expire_after = self.config.get("expire_after")
        if expire_after:
            if self._expire_timer is not None:
                self._expire_timer.cancel()
            loop = asyncio.get_running_loop()
            self._expire_timer = loop.call_later(expire_after, self._expire)
            if self._expired:
                self._expired = False
                self.available = self._compute_available()
        self.write_state()

    def _expire(self) -> None:
        self._expire_timer = None
        self._expired = True
        self.update_available()

    # --- availability -----------------------------------------------------------------------

    def _availability_topics(self) -> list[dict[str, Any]]:
        config = self.config
        if config.get("availability"):
            items = config["availability"]
        elif config.get("availability_topic"):
            item = {"topic": config["availability_topic"],
                    "payload_available": config["payload_available"],
                    "payload_not_available": config["payload_not_available"]}
            if "availability_template" in config:
                item["value_template"] = config["availability_template"]
            items = [item]
        else:
            return []
        for item in items:
            if isinstance(item.get("value_template"), Template):
                item["value_template"].hub = self.runtime.hub
        return items

    def _availability_handler(self, item: dict[str, Any]) -> Callable[[Message], None]:
        def handle(message: Message) -> None:
            text = self.payload_text(message)
            template = item.get("value_template")
            if template is not None:
                variables: dict[str, Any] = {"value": text, "entity_id": self.entity_id}
                try:
                    variables["value_json"] = orjson.loads(message.payload)
                except orjson.JSONDecodeError:
                    pass
                text = str(template.render(variables, parse_result=False,
                                           max_seconds=DEVICE_TEMPLATE_SECONDS))
            if text == item["payload_available"]:
                available = True
            elif text == item["payload_not_available"]:
                available = False
            else:
                return  # neither: HA ignores it
            self._availability[item["topic"]] = available
            self._availability_latest = available
            self.update_available()

        return handle

    def _on_connection(self, connected: bool) -> None:
        self.update_available()

    def _compute_available(self) -> bool:
        if not self.runtime.connection.connected or self._expired:
            return False
        topics = self._availability_topics()
        if not topics:
            return True
        mode = self.config["availability_mode"]
        if mode == "all":
            return len(self._availability) == len(topics) and all(self._availability.values())
        if mode == "any":
            return any(self._availability.values())
        return bool(self._availability_latest)

    def update_available(self) -> None:
        self.set_available(self._compute_available())

    # --- JSON attributes ----------------------------------------------------------------------

    def _on_json_attributes(self, message: Message) -> None:
        rendered = self.render("json_attributes_template", message)
        data = orjson.loads(rendered) if isinstance(rendered, (str, bytes)) else rendered
        if not isinstance(data, dict):
            raise TypeError("JSON attributes must be a JSON object")
        self.json_attributes_received(data)

    def json_attributes_received(self, data: dict[str, Any],
                                 reserved: frozenset[str] = RESERVED_ATTRIBUTES) -> None:
        """Take a device's JSON attributes (all but `reserved` names) and write the state;
        platforms that read values out of them (a tracker's coordinates) override this."""
        self._json_attributes = {k: v for k, v in data.items() if k not in reserved}
        self.write_state()

    def extra_state_attributes(self) -> dict[str, Any] | None:
        return self._json_attributes or None

    def attributes(self) -> dict[str, Any]:
        attrs = super().attributes()
        if self.ASSUMED_WHEN_OPTIMISTIC and self.optimistic:
            attrs["assumed_state"] = True
        return attrs
