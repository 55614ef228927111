"""MQTT switch: commands to `command_topic`, state from `state_topic` (or optimistic)."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from hub.entity import SwitchEntity

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register


@register
class MqttSwitch(MqttEntity, SwitchEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "switch"
    DEFAULT_NAME = "MQTT Switch"
    SCHEMA = mqtt.platform_schema({
        vol.Optional("command_topic"): mqtt.topic,
        vol.Optional("command_template"): mqtt.template,
        vol.Optional("state_topic"): mqtt.subscribe_topic,
        vol.Optional("value_template"): mqtt.template,
        vol.Optional("payload_on", default="ON"): mqtt.payload_str,
        vol.Optional("payload_off", default="OFF"): mqtt.payload_str,
        vol.Optional("state_on"): mqtt.payload_str,
        vol.Optional("state_off"): mqtt.payload_str,
        vol.Optional("optimistic", default=False): bool,
    })

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self._state_on = config.get("state_on", config["payload_on"])
        self._state_off = config.get("state_off", config["payload_off"])

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        value = self.render("value_template", message)
        self.is_on = self.on_off(value, self._state_on, self._state_off, ("state_on", "state_off"))
        self.state_received()

    async def turn_on(self, **kwargs: Any) -> None:
        await self.command(self.config["payload_on"], assume={"is_on": True})

    async def turn_off(self, **kwargs: Any) -> None:
        await self.command(self.config["payload_off"], assume={"is_on": False})
