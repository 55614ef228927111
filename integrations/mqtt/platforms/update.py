"""MQTT update: the installed version (and more, as JSON) from `state_topic`, the latest version
from the same JSON or `latest_version_topic`; installing publishes `payload_install`."""

from __future__ import annotations

from typing import Any

import orjson
import voluptuous as vol

from hub.entity import UpdateEntity
from hub.exceptions import NotSupported

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register

INSTALL = 1  # UpdateEntityFeature.INSTALL

_text = vol.All(vol.Any(str, int, float), vol.Coerce(str))
# HA's MQTT_JSON_UPDATE_SCHEMA: an unknown key or a wrong type discards the whole message.
_STATE = vol.Schema({
    vol.Optional("installed_version"): _text,
    vol.Optional("latest_version"): _text,
    vol.Optional("title"): _text,
    vol.Optional("release_summary"): _text,
    vol.Optional("release_url"): _text,
    vol.Optional("entity_picture"): _text,
    vol.Optional("in_progress"): vol.Boolean(),
    vol.Optional("update_percentage"): vol.Any(None, vol.All(vol.Any(int, float), vol.Range(min=0, max=100))),
})


@register
class MqttUpdate(MqttEntity, UpdateEntity):
    PLATFORM = "update"
    DEFAULT_NAME = "MQTT Update"
    SCHEMA = mqtt.platform_schema({
        vol.Optional("state_topic"): mqtt.subscribe_topic,
        vol.Optional("value_template"): mqtt.template,
        vol.Optional("latest_version_topic"): mqtt.subscribe_topic,
        vol.Optional("latest_version_template"): mqtt.template,
        vol.Optional("command_topic"): mqtt.topic,
        # HA has no default (installing without one fails there); "install" is ours.
        vol.Optional("payload_install", default="install"): mqtt.payload_str,
        vol.Optional("title"): vol.Coerce(str),
        vol.Optional("release_summary"): vol.Coerce(str),
        vol.Optional("release_url"): vol.Coerce(str),
        vol.Optional("display_precision", default=0): vol.All(vol.Coerce(int), vol.Range(min=0)),
    })

    update_percentage: float | None = None
    entity_picture: str | None = None

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.title = config.get("title")
        self.release_summary = config.get("release_summary")
        self.release_url = config.get("release_url")
        self.entity_picture = config.get("entity_picture")

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state, "latest_version_topic": self._on_latest_version}

    def _on_state(self, message: Message) -> None:
        value = self.render("value_template", message)
        if isinstance(value, dict):  # a template that picked an object out of a JSON message
            data: Any = value
        else:
            value = str(value)
            if not value or value == "{}":
                return
            try:
                data = orjson.loads(value)
            except orjson.JSONDecodeError:
                data = None
        state = _STATE(data) if isinstance(data, dict) else {"installed_version": value}
        for key in ("installed_version", "latest_version", "title", "release_url", "entity_picture"):
            if key in state:
                setattr(self, key, state[key])
        if "release_summary" in state:
            self.release_summary = state["release_summary"][:255]  # HA's limit
        if "update_percentage" in state:
            self.update_percentage = state["update_percentage"]
            self.in_progress = self.update_percentage is not None
        if "in_progress" in state:
            self.in_progress = state["in_progress"]
        self.state_received()

    def _on_latest_version(self, message: Message) -> None:
        value = str(self.render("latest_version_template", message))
        if value:
            self.latest_version = value
            self.state_received()

    async def install(self, version: str | None, backup: bool) -> None:
        if version is not None:
            raise NotSupported(f"{self.entity_id} cannot install a chosen version, only the latest")
        await self.publish_command(self.config["payload_install"])
        self.write_state()

    def state_attributes(self) -> dict[str, Any] | None:
        return {**(super().state_attributes() or {}), "auto_update": False,
                "display_precision": self.config["display_precision"],
                "update_percentage": self.update_percentage}

    def attributes(self) -> dict[str, Any]:
        attrs = super().attributes()
        attrs["supported_features"] = INSTALL if self.config.get("command_topic") else 0
        if self.entity_picture:
            attrs["entity_picture"] = self.entity_picture
        return attrs
