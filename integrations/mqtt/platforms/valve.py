"""MQTT valve: open/close/stop (or a position) on `command_topic`, the state from `state_topic`:
open/opening/closed/closing, or with `reports_position` a position in the device's range (plain,
or JSON `{"state": "opening", "position": 40}`)."""

from __future__ import annotations

from typing import Any

import orjson
import voluptuous as vol

from hub.entity_domains import ValveEntity, ValveEntityFeature

from .. import entity as mqtt
from ..entity import MqttEntity, finite_number, from_percentage, to_percentage
from ..models import Message
from . import register

_NO_POSITION_KEYS = ("payload_open", "payload_close", "state_open", "state_closed")
_DEFAULTS = {"payload_open": "OPEN", "payload_close": "CLOSE", "state_open": "open", "state_closed": "closed"}


def _defaults(config: dict[str, Any]) -> dict[str, Any]:
    if config["reports_position"] and any(key in config for key in _NO_POSITION_KEYS):
        raise vol.Invalid("payload_open, payload_close, state_open and state_closed are not "
                          "allowed when the valve reports a position")
    return {**_DEFAULTS, **config}


@register
class MqttValve(MqttEntity, ValveEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "valve"
    DEFAULT_NAME = "MQTT Valve"
    SCHEMA = mqtt.platform_schema(
        {
            vol.Optional("command_topic"): mqtt.topic,
            vol.Optional("command_template"): mqtt.template,
            vol.Optional("state_topic"): mqtt.subscribe_topic,
            vol.Optional("value_template"): mqtt.template,
            vol.Optional("payload_open"): vol.Any(None, mqtt.payload_str),
            vol.Optional("payload_close"): vol.Any(None, mqtt.payload_str),
            vol.Optional("payload_stop"): vol.Any(None, mqtt.payload_str),
            vol.Optional("state_open"): mqtt.payload_str,
            vol.Optional("state_closed"): mqtt.payload_str,
            vol.Optional("state_opening", default="opening"): mqtt.payload_str,
            vol.Optional("state_closing", default="closing"): mqtt.payload_str,
            vol.Optional("reports_position", default=False): bool,
            vol.Optional("position_open", default=100): vol.Coerce(int),
            vol.Optional("position_closed", default=0): vol.Coerce(int),
            vol.Optional("optimistic", default=False): bool,
        },
        _defaults,
    )

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.reports_position = config["reports_position"]
        self._range = (config["position_closed"] + 1, config["position_open"])
        features = 0
        if config.get("command_topic") is not None:
            if config["payload_open"] is not None:
                features |= ValveEntityFeature.OPEN
            if config["payload_close"] is not None:
                features |= ValveEntityFeature.CLOSE
        if self.reports_position:
            features |= ValveEntityFeature.SET_POSITION
        if config.get("payload_stop") is not None:
            features |= ValveEntityFeature.STOP
        self.supported_features = int(features)

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _update_state(self, state: str) -> None:
        self.is_opening = state == "opening"
        self.is_closing = state == "closing"
        if not self.reports_position:
            self.is_closed = state == "closed"

    def _on_state(self, message: Message) -> None:
        config = self.config
        value = self.render("value_template", message, position_open=config["position_open"],
                            position_closed=config["position_closed"])
        if not value:
            return  # HA ignores an empty state
        position: Any = value
        state: Any = value
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            needed = "position" if self.reports_position else "state"
            if needed not in data:
                raise ValueError(f"the JSON state has no {needed}")
            position, state = data.get("position"), data.get("state")
        moving = {config["state_opening"]: "opening", config["state_closing"]: "closing"}
        if not self.reports_position:
            states = {**moving, config["state_open"]: "open", config["state_closed"]: "closed"}
            if state not in states:
                raise ValueError(f"{state!r} is none of the states {list(states)}")
            self._update_state(states[state])
        else:
            new_state = moving.get(state) if isinstance(state, str) else None
            if new_state is None or position != state:
                percentage = min(100, max(0, to_percentage(self._range, finite_number(position))))
                self.current_valve_position = percentage
                if new_state is None and percentage in (0, 100):
                    new_state = "stopped"  # fully open or closed: no longer moving
            if new_state is not None:
                self._update_state(new_state)
        self.state_received()

    # --- commands -------------------------------------------------------------------------

    async def _command(self, payload_key: str, state: str) -> None:
        await self.command(self.config[payload_key], assume=lambda: self._update_state(state))

    async def open_valve(self) -> None:
        await self._command("payload_open", "open")

    async def close_valve(self) -> None:
        await self._command("payload_close", "closed")

    async def stop_valve(self) -> None:
        await self.publish_command(self.config["payload_stop"])

    async def set_valve_position(self, position: int) -> None:
        config = self.config
        ranged = round(from_percentage(self._range, position))
        await self.publish_command(ranged, position=position, position_open=config["position_open"],
                                   position_closed=config["position_closed"])
        if self.optimistic:
            self._update_state("closed" if position == 0 else "open")
            self.current_valve_position = position
            self.write_state()
