"""MQTT text: a value the user sets (sent to `command_topic`), read back from `state_topic`;
`min`/`max` characters and a `pattern` apply to what the device reports too."""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from hub.entity_domains import TextEntity

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register
from .lock import regex

MAX_LENGTH = 255  # the longest state there is


def _check_lengths(config: dict[str, Any]) -> dict[str, Any]:
    if config["min"] >= config["max"]:
        raise vol.Invalid("text length min must be below max")
    if config["max"] > MAX_LENGTH:
        raise vol.Invalid(f"max text length must be <= {MAX_LENGTH}")
    return config


@register
class MqttText(MqttEntity, TextEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "text"
    DEFAULT_NAME = "MQTT Text"
    SCHEMA = mqtt.platform_schema(
        {
            vol.Required("command_topic"): mqtt.topic,
            vol.Optional("command_template"): mqtt.template,
            vol.Optional("state_topic"): mqtt.subscribe_topic,
            vol.Optional("value_template"): mqtt.template,
            vol.Optional("min", default=0): vol.All(vol.Coerce(int), vol.Range(min=0)),
            vol.Optional("max", default=MAX_LENGTH): vol.All(vol.Coerce(int), vol.Range(min=0)),
            vol.Optional("mode", default="text"): vol.In(("text", "password")),
            vol.Optional("pattern"): regex,
            vol.Optional("optimistic", default=False): bool,
        },
        _check_lengths,
    )

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.native_min, self.native_max = config["min"], config["max"]
        self.mode = config["mode"]
        self.pattern = config.get("pattern")
        self._pattern = re.compile(self.pattern) if self.pattern is not None else None

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        value = str(self.render("value_template", message))
        # The value itself stays out of the messages: it may be a password.
        if not self.native_min <= len(value) <= self.native_max:
            raise ValueError(f"a value of {len(value)} characters is outside "
                             f"{self.native_min}..{self.native_max}")
        if self._pattern is not None and not self._pattern.fullmatch(value):
            raise ValueError(f"the value does not match the pattern {self.pattern}")
        self.native_value = value
        self.state_received()

    async def set_value(self, value: str) -> None:
        await self.command(value, assume={"native_value": value})
