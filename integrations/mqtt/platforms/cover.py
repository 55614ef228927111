"""MQTT cover: open/close/stop on `command_topic`, the state from `state_topic`, the position
from `position_topic` (set through `set_position_topic`) and the tilt from `tilt_status_topic`
(set through `tilt_command_topic`), each in the device's own range, shown as 0-100 %."""

from __future__ import annotations

from typing import Any

import orjson
import voluptuous as vol

from hub.entity_domains import CoverEntity, CoverEntityFeature

from .. import entity as mqtt
from ..entity import (
    PAYLOAD_NONE,
    MqttEntity,
    finite_number,
    from_percentage,
    to_percentage,
)
from ..models import Message
from . import register

_TILT_FEATURES = (CoverEntityFeature.OPEN_TILT | CoverEntityFeature.CLOSE_TILT
                  | CoverEntityFeature.SET_TILT_POSITION)


def _with_topic(template: str, topic: str) -> Any:
    def check(config: dict[str, Any]) -> dict[str, Any]:
        if template in config and topic not in config:
            raise vol.Invalid(f"'{template}' must be set together with '{topic}'")
        return config

    return check


@register
class MqttCover(MqttEntity, CoverEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "cover"
    DEFAULT_NAME = "MQTT Cover"
    SCHEMA = mqtt.platform_schema(
        {
            vol.Optional("command_topic"): mqtt.topic,
            vol.Optional("state_topic"): mqtt.subscribe_topic,
            vol.Optional("value_template"): mqtt.template,
            vol.Optional("payload_open", default="OPEN"): vol.Any(None, mqtt.payload_str),
            vol.Optional("payload_close", default="CLOSE"): vol.Any(None, mqtt.payload_str),
            vol.Optional("payload_stop", default="STOP"): vol.Any(None, mqtt.payload_str),
            vol.Optional("state_open", default="open"): mqtt.payload_str,
            vol.Optional("state_opening", default="opening"): mqtt.payload_str,
            vol.Optional("state_closed", default="closed"): mqtt.payload_str,
            vol.Optional("state_closing", default="closing"): mqtt.payload_str,
            vol.Optional("state_stopped", default="stopped"): mqtt.payload_str,
            vol.Optional("position_topic"): mqtt.subscribe_topic,
            vol.Optional("position_template"): mqtt.template,
            vol.Optional("position_open", default=100): vol.Coerce(int),
            vol.Optional("position_closed", default=0): vol.Coerce(int),
            vol.Optional("set_position_topic"): mqtt.topic,
            vol.Optional("set_position_template"): mqtt.template,
            vol.Optional("tilt_command_topic"): mqtt.topic,
            vol.Optional("tilt_command_template"): mqtt.template,
            vol.Optional("tilt_status_topic"): mqtt.subscribe_topic,
            vol.Optional("tilt_status_template"): mqtt.template,
            vol.Optional("tilt_min", default=0): vol.Coerce(int),
            vol.Optional("tilt_max", default=100): vol.Coerce(int),
            vol.Optional("tilt_opened_value", default=100): vol.Coerce(int),
            vol.Optional("tilt_closed_value", default=0): vol.Coerce(int),
            vol.Optional("payload_stop_tilt", default="STOP"): vol.Any(None, mqtt.payload_str),
            vol.Optional("tilt_optimistic", default=False): bool,
            vol.Optional("optimistic", default=False): bool,
        },
        _with_topic("set_position_topic", "position_topic"),
        _with_topic("value_template", "state_topic"),
        _with_topic("position_template", "position_topic"),
        _with_topic("set_position_template", "set_position_topic"),
        _with_topic("tilt_command_template", "tilt_command_topic"),
        _with_topic("tilt_status_template", "tilt_status_topic"),
    )

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self._pos_range = (config["position_closed"] + 1, config["position_open"])
        self._tilt_range = (config["tilt_min"] + 1, config["tilt_max"])
        self._tilt_optimistic = config["tilt_optimistic"] or config.get("tilt_status_topic") is None
        self._range_variables = {key: config[key] for key in
                                 ("position_open", "position_closed", "tilt_min", "tilt_max")}
        features = 0
        if config.get("command_topic") is not None:
            for key, feature in (("payload_open", CoverEntityFeature.OPEN),
                                 ("payload_close", CoverEntityFeature.CLOSE),
                                 ("payload_stop", CoverEntityFeature.STOP)):
                if config[key] is not None:
                    features |= feature
        if config.get("set_position_topic") is not None:
            features |= CoverEntityFeature.SET_POSITION
        if config.get("tilt_command_topic") is not None:
            features |= _TILT_FEATURES
            if config["payload_stop_tilt"] is not None:
                features |= CoverEntityFeature.STOP_TILT
        self.supported_features = int(features)

    @property
    def optimistic(self) -> bool:
        """HA's rule: optimistic unless the cover reports something (its state, position or
        tilt)."""
        config = self.config
        return config["optimistic"] or all(
            config.get(key) is None for key in ("state_topic", "position_topic", "tilt_status_topic"))

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state, "position_topic": self._on_position,
                "tilt_status_topic": self._on_tilt}

    def _update_state(self, state: str | None) -> None:
        self.is_closed = None if state is None else state == "closed"
        self.is_opening = state == "opening"
        self.is_closing = state == "closing"

    def _on_state(self, message: Message) -> None:
        value = self.render("value_template", message)
        if not value:
            return  # HA ignores an empty state
        config = self.config
        if value == config["state_stopped"]:  # stopped: open or closed, from what we know
            if config.get("position_topic") is not None:
                state = "closed" if self.current_cover_position == 0 else "open"
            else:
                state = "closed" if self.is_closing or self.is_closed else "open"
        elif value == PAYLOAD_NONE:
            state = None
        else:
            states = {config[f"state_{name}"]: name for name in ("closed", "open", "closing", "opening")}
            if value not in states:
                raise ValueError(f"{value!r} is none of the states {list(states)} "
                                 f"nor state_stopped {config['state_stopped']!r}")
            state = states[value]
        self._update_state(state)
        self.state_received()

    def _on_position(self, message: Message) -> None:
        value = self.render("position_template", message, **self._range_variables)
        if value == "":
            return
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):  # {"position": .., "tilt_position": ..} from the template
            if "position" not in data:
                raise ValueError("the position JSON has no position")
            if "tilt_position" in data:
                if not self.config["tilt_optimistic"]:
                    self._tilt_optimistic = False
                self.current_cover_tilt_position = self._tilt_percentage(data["tilt_position"])
            value = data["position"]
        position = to_percentage(self._pos_range, finite_number(value))
        self.current_cover_position = min(100, max(0, position))  # HA clamps
        if self.config.get("state_topic") is None:
            self._update_state("closed" if self.current_cover_position == 0 else "open")
        self.state_received()

    def _on_tilt(self, message: Message) -> None:
        value = self.render("tilt_status_template", message, **self._range_variables)
        if value == "":
            return
        self.current_cover_tilt_position = self._tilt_percentage(value)
        self.state_received()

    def _tilt_percentage(self, value: Any) -> int:
        tilt = round(finite_number(value))
        low, high = sorted((self.config["tilt_min"], self.config["tilt_max"]))
        if not low <= tilt <= high:
            raise ValueError(f"tilt {tilt} is outside {low}..{high}")
        return to_percentage(self._tilt_range, tilt)

    # --- commands -------------------------------------------------------------------------

    async def _move(self, payload_key: str, state: str, position: int) -> None:
        await self.publish_command(self.config[payload_key])
        if self.optimistic:
            self._update_state(state)
            if self.config.get("position_topic") is not None:
                self.current_cover_position = position
            self.write_state()

    async def open_cover(self) -> None:
        await self._move("payload_open", "open", 100)

    async def close_cover(self) -> None:
        await self._move("payload_close", "closed", 0)

    async def stop_cover(self) -> None:
        await self.publish_command(self.config["payload_stop"])

    async def set_cover_position(self, position: int) -> None:
        ranged = round(from_percentage(self._pos_range, position))
        await self.publish_command(ranged, topic_key="set_position_topic",
                                   template_key="set_position_template", position=position,
                                   **self._range_variables)
        if self.optimistic:
            self._update_state("closed" if position == 0 else "open")
            self.current_cover_position = position
            self.write_state()

    async def _tilt(self, value: int, percentage: int) -> None:
        await self.publish_command(value, topic_key="tilt_command_topic",
                                   template_key="tilt_command_template",
                                   **{**self._range_variables, "tilt_position": value})
        if self._tilt_optimistic:
            self.current_cover_tilt_position = percentage
            self.write_state()

    async def open_cover_tilt(self) -> None:
        value = self.config["tilt_opened_value"]
        await self._tilt(value, to_percentage(self._tilt_range, value))

    async def close_cover_tilt(self) -> None:
        value = self.config["tilt_closed_value"]
        await self._tilt(value, to_percentage(self._tilt_range, value))

    async def stop_cover_tilt(self) -> None:
        await self.publish_command(self.config["payload_stop_tilt"], topic_key="tilt_command_topic",
                                   template_key="")  # sent as is, not through the tilt template

    async def set_cover_tilt_position(self, tilt_position: int) -> None:
        ranged = round(from_percentage(self._tilt_range, tilt_position))
        await self.publish_command(ranged, topic_key="tilt_command_topic",
                                   template_key="tilt_command_template",
                                   **{**self._range_variables, "tilt_position": tilt_position})
        if self._tilt_optimistic:
            self.current_cover_tilt_position = tilt_position
            self.write_state()

    async def toggle_tilt(self) -> None:
        closed = to_percentage(self._tilt_range, self.config["tilt_closed_value"])
        tilt = self.current_cover_tilt_position
        if tilt is not None and tilt <= closed:
            await self.open_cover_tilt()
        else:
            await self.close_cover_tilt()
