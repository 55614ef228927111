"""MQTT sensor: a value read from a topic, numeric or text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import voluptuous as vol

from hub.entity import SensorEntity

from .. import entity as mqtt
from ..entity import PAYLOAD_NONE, MqttEntity, finite_number
from ..models import Message
from . import register

# Device classes whose state HA parses as a date/time rather than a number.
_DATETIME_CLASSES = frozenset({"timestamp", "date"})


def _numeric_expected(config: dict[str, Any]) -> bool:
    device_class = config.get("device_class")
    if device_class in _DATETIME_CLASSES or device_class == "enum":
        return False
    return bool(config.get("state_class") or config.get("unit_of_measurement")
                or config.get("suggested_display_precision") is not None)


def _check_options(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("options") is not None and config.get("device_class") != "enum":
        raise vol.Invalid("options need device_class: enum")
    if config.get("options") and (config.get("state_class") or config.get("unit_of_measurement")):
        raise vol.Invalid("an enum sensor cannot have a state_class or unit_of_measurement")
    return config


@register
class MqttSensor(MqttEntity, SensorEntity):
    PLATFORM = "sensor"
    DEFAULT_NAME = "MQTT Sensor"
    SCHEMA = mqtt.platform_schema(
        {
            vol.Optional("state_topic"): mqtt.subscribe_topic,
            vol.Optional("value_template"): mqtt.template,
            vol.Optional("unit_of_measurement"): vol.Any(None, vol.Coerce(str)),
            vol.Optional("state_class"): vol.Any(None, vol.In(
                ("measurement", "measurement_angle", "total", "total_increasing"))),
            vol.Optional("suggested_display_precision"): vol.All(vol.Coerce(int), vol.Range(min=0, max=12)),
            vol.Optional("expire_after"): vol.All(vol.Coerce(int), vol.Range(min=0)),
            vol.Optional("force_update", default=False): bool,
            vol.Optional("options"): [vol.Coerce(str)],
            vol.Optional("last_reset_value_template"): mqtt.template,
        },
        _check_options,
    )

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.unit_of_measurement = config.get("unit_of_measurement")
        self.state_class = config.get("state_class")
        self.suggested_display_precision = config.get("suggested_display_precision")
        self.options = config.get("options")
        self._numeric = _numeric_expected(config)

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        value = self.render("value_template", message)
        if value == PAYLOAD_NONE:  # HA: a rendered "None" means unknown
            self.native_value = None
            self.state_received()
            return
        if value == "" and self.has_template("value_template"):
            return  # HA ignores an empty rendered value (a JSON message for another sensor)
        self.native_value = self._parse(value)
        self.state_received()

    def _parse(self, value: Any) -> Any:
        device_class = self.device_class
        if device_class in _DATETIME_CLASSES:
            parsed = datetime.fromisoformat(str(value))
            if device_class == "date":
                return parsed.date().isoformat()
            if parsed.tzinfo is None:
                raise ValueError(f"timestamp {value!r} has no time zone")
            return parsed
        if self.options is not None and value not in self.options:
            raise ValueError(f"{value!r} is not one of the options {self.options}")
        if not self._numeric:
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{value!r} is not numeric, but the sensor has a unit, state class or device "
                f"class that says it is") from None
        number = finite_number(number)
        return int(number) if number.is_integer() and "." not in str(value) and "e" not in str(value).lower() else number
