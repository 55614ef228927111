"""MQTT fan: on/off on `command_topic`/`state_topic`; speed, preset mode, oscillation and
direction each on their own command/state topics. The device's speed range
(`speed_range_min`..`speed_range_max`) is shown as 0-100 %."""

from __future__ import annotations

import math
from typing import Any

import voluptuous as vol

from hub.entity_domains import (
    DIRECTION_FORWARD,
    DIRECTION_REVERSE,
    FanEntity,
    FanEntityFeature,
)

from .. import entity as mqtt
from ..entity import PAYLOAD_NONE, MqttEntity, from_percentage, to_percentage
from ..models import Message
from . import register


def _check(config: dict[str, Any]) -> dict[str, Any]:
    if config["speed_range_min"] >= config["speed_range_max"]:
        raise vol.Invalid("speed_range_max must be > speed_range_min")
    if config["payload_reset_preset_mode"] in config["preset_modes"]:
        raise vol.Invalid("preset_modes must not contain payload_reset_preset_mode")
    return config


def _options() -> dict[Any, Any]:
    options: dict[Any, Any] = {
        vol.Required("command_topic"): mqtt.topic,
        vol.Optional("command_template"): mqtt.template,
        vol.Optional("state_topic"): mqtt.subscribe_topic,
        vol.Optional("state_value_template"): mqtt.template,
        vol.Optional("payload_on", default="ON"): mqtt.payload_str,
        vol.Optional("payload_off", default="OFF"): mqtt.payload_str,
        vol.Optional("speed_range_min", default=1): vol.All(vol.Coerce(int), vol.Range(min=1)),
        vol.Optional("speed_range_max", default=100): vol.All(vol.Coerce(int), vol.Range(min=1)),
        vol.Optional("payload_reset_percentage", default=PAYLOAD_NONE): mqtt.payload_str,
        vol.Inclusive("preset_mode_command_topic", "preset_modes"): mqtt.topic,
        vol.Inclusive("preset_modes", "preset_modes", default=list): vol.All(
            lambda v: v if isinstance(v, list) else [v], [vol.Coerce(str)]),
        vol.Optional("payload_reset_preset_mode", default=PAYLOAD_NONE): mqtt.payload_str,
        vol.Optional("payload_oscillation_on", default="oscillate_on"): mqtt.payload_str,
        vol.Optional("payload_oscillation_off", default="oscillate_off"): mqtt.payload_str,
        vol.Optional("optimistic", default=False): bool,
    }
    for name in ("percentage", "preset_mode", "oscillation", "direction"):
        options.setdefault(vol.Optional(f"{name}_command_topic"), mqtt.topic)  # (markers equal by key)
        options[vol.Optional(f"{name}_command_template")] = mqtt.template
        options[vol.Optional(f"{name}_state_topic")] = mqtt.subscribe_topic
        options[vol.Optional(f"{name}_value_template")] = mqtt.template
    return options


@register
class MqttFan(MqttEntity, FanEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "fan"
    DEFAULT_NAME = "MQTT Fan"
    SCHEMA = mqtt.platform_schema(_options(), _check)

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self._speed_range = (config["speed_range_min"], config["speed_range_max"])
        has = config.__contains__
        self.speed_count = min(self._speed_range[1] - self._speed_range[0] + 1, 100) \
            if has("percentage_command_topic") else 100
        self.preset_modes = list(config["preset_modes"]) if has("preset_mode_command_topic") else []
        if has("oscillation_state_topic"):
            self.oscillating = False  # HA: off until the device says
        features = FanEntityFeature.TURN_ON | FanEntityFeature.TURN_OFF
        for key, feature in (("percentage_command_topic", FanEntityFeature.SET_SPEED),
                             ("preset_mode_command_topic", FanEntityFeature.PRESET_MODE),
                             ("oscillation_command_topic", FanEntityFeature.OSCILLATE),
                             ("direction_command_topic", FanEntityFeature.DIRECTION)):
            if has(key):
                features |= feature
        self.supported_features = int(features)

    def _optimistic_for(self, name: str) -> bool:
        return self.config["optimistic"] or self.config.get(f"{name}_state_topic") is None

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state, "percentage_state_topic": self._on_percentage,
                "preset_mode_state_topic": self._on_preset_mode,
                "oscillation_state_topic": self._on_oscillation,
                "direction_state_topic": self._on_direction}

    def _on_state(self, message: Message) -> None:
        value = self.render("state_value_template", message)
        config = self.config
        if value == "":
            return  # HA ignores an empty state
        if value not in (config["payload_on"], config["payload_off"], PAYLOAD_NONE):
            raise ValueError(f"{value!r} is neither payload_on {config['payload_on']!r} "
                             f"nor payload_off {config['payload_off']!r}")
        self.is_on = None if value == PAYLOAD_NONE else value == config["payload_on"]
        self.state_received()

    def _on_percentage(self, message: Message) -> None:
        value = self.render("percentage_value_template", message)
        if value == "":
            return
        if value == self.config["payload_reset_percentage"]:
            self.percentage = None
        else:
            percentage = to_percentage(self._speed_range, int(value))
            if not 0 <= percentage <= 100:
                raise ValueError(f"speed {value} is outside the speed range {self._speed_range}")
            self.percentage = percentage
        self.state_received()

    def _on_preset_mode(self, message: Message) -> None:
        value = self.render("preset_mode_value_template", message)
        if value == self.config["payload_reset_preset_mode"]:
            self.preset_mode = None
        elif value == "":
            return
        elif value not in self.preset_modes:
            raise ValueError(f"{value!r} is not one of the preset_modes {self.preset_modes}")
        else:
            self.preset_mode = value
        self.state_received()

    def _on_oscillation(self, message: Message) -> None:
        value = self.render("oscillation_value_template", message)
        config = self.config
        if value == "":
            return
        if value not in (config["payload_oscillation_on"], config["payload_oscillation_off"]):
            raise ValueError(f"{value!r} is neither payload_oscillation_on nor payload_oscillation_off")
        self.oscillating = value == config["payload_oscillation_on"]
        self.state_received()

    def _on_direction(self, message: Message) -> None:
        value = self.render("direction_value_template", message)
        if value == "":
            return
        if value not in (DIRECTION_FORWARD, DIRECTION_REVERSE):
            raise ValueError(f"{value!r} is neither {DIRECTION_FORWARD} nor {DIRECTION_REVERSE}")
        self.current_direction = value
        self.state_received()

    # --- commands -------------------------------------------------------------------------

    async def turn_on(self, percentage: int | None = None, preset_mode: str | None = None,
                      **kwargs: Any) -> None:
        await self.publish_command(self.config["payload_on"])
        if percentage:
            await self.set_percentage(percentage)
        if preset_mode:
            await self.set_preset_mode(preset_mode)
        if self.optimistic:
            self.is_on = True
            self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        await self.command(self.config["payload_off"], assume={"is_on": False})

    async def _send(self, name: str, payload: Any, attr: str, value: Any) -> None:
        await self.publish_command(payload, topic_key=f"{name}_command_topic",
                                   template_key=f"{name}_command_template")
        if self._optimistic_for(name):
            setattr(self, attr, value)
            self.write_state()

    async def set_percentage(self, percentage: int) -> None:
        speed = math.ceil(from_percentage(self._speed_range, percentage))
        await self._send("percentage", speed, "percentage", percentage)

    async def set_preset_mode(self, preset_mode: str) -> None:
        await self._send("preset_mode", preset_mode, "preset_mode", preset_mode)

    async def oscillate(self, oscillating: bool) -> None:
        payload = self.config["payload_oscillation_on" if oscillating else "payload_oscillation_off"]
        await self._send("oscillation", payload, "oscillating", oscillating)

    async def set_direction(self, direction: str) -> None:
        await self._send("direction", direction, "current_direction", direction)
