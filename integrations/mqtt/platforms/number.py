"""MQTT number: a value the user sets (`command_topic`) and the device reports (`state_topic`)."""

from __future__ import annotations

import math
from typing import Any

import voluptuous as vol

from hub.entity import NumberEntity

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register


def _check_range(config: dict[str, Any]) -> dict[str, Any]:
    if config["min"] >= config["max"]:
        raise vol.Invalid("'max' must be greater than 'min'")
    return config


@register
class MqttNumber(MqttEntity, NumberEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "number"
    DEFAULT_NAME = "MQTT Number"
    SCHEMA = mqtt.platform_schema(
        {
            vol.Required("command_topic"): mqtt.topic,
            vol.Optional("command_template"): mqtt.template,
            vol.Optional("state_topic"): mqtt.subscribe_topic,
            vol.Optional("value_template"): mqtt.template,
            # HA's code defaults `min` to 0 (its documentation says 1).
            vol.Optional("min", default=0.0): vol.Coerce(float),
            vol.Optional("max", default=100.0): vol.Coerce(float),
            vol.Optional("step", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=1e-3)),
            vol.Optional("mode", default="auto"): vol.All(vol.Lower, vol.In(("auto", "box", "slider"))),
            vol.Optional("unit_of_measurement"): vol.Any(None, vol.Coerce(str)),
            vol.Optional("payload_reset", default="None"): mqtt.payload_str,
            vol.Optional("optimistic", default=False): bool,
        },
        _check_range,
    )

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.native_min_value = config["min"]
        self.native_max_value = config["max"]
        self.native_step = config["step"]
        self.mode = config["mode"]
        self.unit_of_measurement = config.get("unit_of_measurement")

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        value = str(self.render("value_template", message)).strip()
        if not value:
            return  # HA ignores an empty value
        if value == self.config["payload_reset"]:
            self.native_value = None
            self.state_received()
            return
        number = int(value) if value.isnumeric() else float(value)
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        if not self.native_min_value <= number <= self.native_max_value:
            raise ValueError(f"{value} is outside the range {self.native_min_value}..{self.native_max_value}")
        self.native_value = number
        self.state_received()

    async def set_native_value(self, value: float) -> None:
        number = int(value) if float(value).is_integer() else value  # HA sends 5, not 5.0
        await self.command(number, assume={"native_value": number})
