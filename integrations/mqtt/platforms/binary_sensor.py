"""MQTT binary sensor: on/off from a topic (`payload_on`/`payload_off`), with `off_delay`."""

from __future__ import annotations

import asyncio
from typing import Any

import voluptuous as vol

from hub.entity import BinarySensorEntity

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register


@register
class MqttBinarySensor(MqttEntity, BinarySensorEntity):
    PLATFORM = "binary_sensor"
    DEFAULT_NAME = "MQTT Binary sensor"
    SCHEMA = mqtt.platform_schema({
        vol.Optional("state_topic"): mqtt.subscribe_topic,
        vol.Optional("value_template"): mqtt.template,
        vol.Optional("payload_on", default="ON"): mqtt.payload_str,
        vol.Optional("payload_off", default="OFF"): mqtt.payload_str,
        vol.Optional("off_delay"): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("expire_after"): vol.All(vol.Coerce(int), vol.Range(min=0)),
        vol.Optional("force_update", default=False): bool,
    })

    _off_timer: asyncio.TimerHandle | None = None

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        value = self.render("value_template", message)
        config = self.config
        if value == "" and self.has_template("value_template"):
            return  # HA ignores an empty rendered value (a JSON message for another entity)
        self.is_on = self.on_off(value, config["payload_on"], config["payload_off"])
        if self._off_timer is not None:
            self._off_timer.cancel()
            self._off_timer = None
        if self.is_on and config.get("off_delay"):
            self._off_timer = asyncio.get_running_loop().call_later(config["off_delay"], self._turn_off_later)
        self.state_received()

    def _turn_off_later(self) -> None:
        self._off_timer = None
        self.is_on = False
        self.write_state()

    async def removing(self) -> None:
        if self._off_timer is not None:
            self._off_timer.cancel()
        await super().removing()
