"""MQTT event: a device reports that something happened (a remote's button was pressed) as JSON
`{"event_type": "press", ...}`; the entity's state is when, its attributes say what."""

from __future__ import annotations

from typing import Any

import orjson
import voluptuous as vol

from hub.entity import EventEntity

from .. import entity as mqtt
from ..entity import PAYLOAD_NONE, MqttEntity
from ..models import Message
from . import register


@register
class MqttEvent(MqttEntity, EventEntity):
    PLATFORM = "event"
    DEFAULT_NAME = "MQTT Event"
    SCHEMA = mqtt.platform_schema({
        vol.Required("state_topic"): mqtt.subscribe_topic,
        vol.Optional("value_template"): mqtt.template,
        vol.Required("event_types"): vol.All(lambda v: v if isinstance(v, list) else [v],
                                             [mqtt.payload_str], vol.Length(min=1)),
    })

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.event_types = list(config["event_types"])

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_event}

    def _on_event(self, message: Message) -> None:
        if message.retain:
            return  # HA: a retained event is an old one replayed at subscription, not news
        value = self.render("value_template", message)
        if not value or value in (PAYLOAD_NONE, "{}"):
            return
        data = value if isinstance(value, dict) else orjson.loads(str(value))
        if not isinstance(data, dict) or "event_type" not in data:
            raise ValueError('an event must be a JSON object with an "event_type"')
        self.trigger_event(str(data.pop("event_type")), data)
