"""MQTT button: pressing it publishes `payload_press`; its state is the time of the last press."""

from __future__ import annotations

from datetime import UTC, datetime

import voluptuous as vol

from hub.entity import ButtonEntity

from .. import entity as mqtt
from ..entity import MqttEntity
from . import register


@register
class MqttButton(MqttEntity, ButtonEntity):
    PLATFORM = "button"
    DEFAULT_NAME = "MQTT Button"
    SCHEMA = mqtt.platform_schema({
        vol.Required("command_topic"): mqtt.topic,
        vol.Optional("command_template"): mqtt.template,
        vol.Optional("payload_press", default="PRESS"): mqtt.payload_str,
    })

    async def press(self) -> None:
        await self.publish_command(self.config["payload_press"])
        self.last_pressed = datetime.now(UTC)  # only a press that was sent
        self.write_state()
