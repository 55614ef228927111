"""MQTT select: one of `options`, chosen by the user (`command_topic`) or reported by the device."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from hub.entity import SelectEntity

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register


@register
class MqttSelect(MqttEntity, SelectEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "select"
    DEFAULT_NAME = "MQTT Select"
    SCHEMA = mqtt.platform_schema({
        vol.Required("command_topic"): mqtt.topic,
        vol.Optional("command_template"): mqtt.template,
        vol.Optional("state_topic"): mqtt.subscribe_topic,
        vol.Optional("value_template"): mqtt.template,
        vol.Required("options"): vol.All(lambda v: v if isinstance(v, list) else [v],
                                         [mqtt.payload_str], vol.Length(min=1)),
        vol.Optional("optimistic", default=False): bool,
    })

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.options = list(config["options"])

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        value = str(self.render("value_template", message))
        if not value.strip():
            return  # HA ignores an empty value
        if value.lower() == "none":
            self.current_option = None
        elif value in self.options:
            self.current_option = value
        else:
            raise ValueError(f"{value!r} is not one of the options {self.options}")
        self.state_received()

    async def select_option(self, option: str) -> None:
        await self.command(option, assume={"current_option": option})
