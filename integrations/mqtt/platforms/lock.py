"""MQTT lock: lock/unlock/open on `command_topic` (the code given reaches `command_template` as
`code`), the state from `state_topic`: locked, unlocked, locking, unlocking, jammed, open or
opening."""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from hub.entity_domains import LockEntity, LockEntityFeature

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register

_STATES = ("locked", "unlocked", "locking", "unlocking", "jammed", "open", "opening")


def regex(value: Any) -> str:
    try:
        re.compile(str(value))
    except re.error as err:
        raise vol.Invalid(f"invalid regular expression: {err}") from None
    return str(value)


@register
class MqttLock(MqttEntity, LockEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "lock"
    DEFAULT_NAME = "MQTT Lock"
    SCHEMA = mqtt.platform_schema({
        vol.Required("command_topic"): mqtt.topic,
        vol.Optional("command_template"): mqtt.template,
        vol.Optional("state_topic"): mqtt.subscribe_topic,
        vol.Optional("value_template"): mqtt.template,
        vol.Optional("code_format"): regex,
        vol.Optional("payload_lock", default="LOCK"): mqtt.payload_str,
        vol.Optional("payload_unlock", default="UNLOCK"): mqtt.payload_str,
        vol.Optional("payload_open"): mqtt.payload_str,
        vol.Optional("payload_reset", default="None"): mqtt.payload_str,
        **{vol.Optional(f"state_{state}", default=state.upper()): mqtt.payload_str for state in _STATES},
        vol.Optional("optimistic", default=False): bool,
    })

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.code_format = config.get("code_format")
        self.supported_features = int(LockEntityFeature.OPEN) if "payload_open" in config else 0
        self._states = {config[f"state_{state}"]: state for state in _STATES}

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _show(self, state: str | None) -> None:
        self.is_locked = None if state is None else state == "locked"
        for name in ("locking", "unlocking", "jammed", "open", "opening"):
            setattr(self, f"is_{name}", state == name)

    def _on_state(self, message: Message) -> None:
        value = self.render("value_template", message)
        if not value.strip():
            return  # HA ignores an empty state
        if value == self.config["payload_reset"]:
            self._show(None)
        elif value in self._states:
            self._show(self._states[value])
        else:
            raise ValueError(f"{value!r} is none of the states {list(self._states)}")
        self.state_received()

    async def _command(self, payload_key: str, state: str, code: str | None) -> None:
        await self.command(self.config[payload_key], assume=lambda: self._show(state), code=code)

    async def lock(self, code: str | None = None) -> None:
        await self._command("payload_lock", "locked", code)

    async def unlock(self, code: str | None = None) -> None:
        await self._command("payload_unlock", "unlocked", code)

    async def open(self, code: str | None = None) -> None:
        await self._command("payload_open", "open", code)
