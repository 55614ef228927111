"""MQTT device tracker: where a phone, tag or car is, as a location name from `state_topic`
(`payload_home`, `payload_not_home` or a zone's name) or as GPS coordinates from the JSON
attributes (`latitude`, `longitude`, `gps_accuracy`): home when inside the home zone."""

from __future__ import annotations

import math
from typing import Any

import voluptuous as vol

from hub.entity_domains import (
    STATE_HOME,
    STATE_NOT_HOME,
    DeviceTrackerEntity,
    SourceType,
)

from .. import entity as mqtt
from ..entity import RESERVED_ATTRIBUTES, MqttEntity
from ..models import Message
from . import register

HOME_RADIUS = 100.0  # metres: HA's default home zone
_LOCATION = ("latitude", "longitude", "gps_accuracy")


def _needs_a_topic(config: dict[str, Any]) -> dict[str, Any]:
    if "state_topic" not in config and "json_attributes_topic" not in config:
        raise vol.Invalid("a device tracker needs a state_topic or a json_attributes_topic")
    return config


def distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two points (haversine, on HA's earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371008.8 * math.asin(math.sqrt(a))


@register
class MqttDeviceTracker(MqttEntity, DeviceTrackerEntity):
    PLATFORM = "device_tracker"
    DEFAULT_NAME = None
    SCHEMA = mqtt.platform_schema(
        {
            vol.Optional("state_topic"): mqtt.subscribe_topic,
            vol.Optional("value_template"): mqtt.template,
            vol.Optional("payload_home", default=STATE_HOME): mqtt.payload_str,
            vol.Optional("payload_not_home", default=STATE_NOT_HOME): mqtt.payload_str,
            vol.Optional("payload_reset", default="None"): mqtt.payload_str,
            vol.Optional("source_type", default="gps"): vol.In([str(s) for s in SourceType]),
        },
        _needs_a_topic,
    )

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.source_type = config["source_type"]
        self.force_update = True  # HA: every report of a tracker is recorded
        # entity_category stays as configured (None by default), not the domain's diagnostic.

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        value = self.render("value_template", message)
        if not value.strip():
            return  # HA ignores an empty state
        config = self.config
        if value == config["payload_reset"]:
            self.location_name = None
        else:
            self.location_name = {config["payload_home"]: STATE_HOME,
                                  config["payload_not_home"]: STATE_NOT_HOME}.get(value, value)
        self.state_received()

    def json_attributes_received(self, data: dict[str, Any],
                                 reserved: frozenset[str] = frozenset()) -> None:
        """The JSON attributes, with the coordinates taken out as the tracker's location."""
        error = None
        if "latitude" in data or "longitude" in data:
            self.location_name = None  # a new position: the zone follows from it
            latitude, longitude = data.get("latitude"), data.get("longitude")
            if _is_number(latitude) and _is_number(longitude):
                self.latitude, self.longitude = float(latitude), float(longitude)
            else:
                self.latitude = self.longitude = None
                error = f"invalid or incomplete coordinates {latitude!r}, {longitude!r}"
            accuracy = data.get("gps_accuracy", 0)
            self.gps_accuracy = accuracy if _is_number(accuracy) else 0
        super().json_attributes_received(data, _RESERVED)
        if error:
            raise ValueError(error)

    @property
    def state(self) -> Any:
        if self.location_name is None and self.latitude is not None and self.longitude is not None:
            config = self.runtime.hub.config
            away = distance(self.latitude, self.longitude, config.get("latitude", 0.0),
                            config.get("longitude", 0.0)) - self.gps_accuracy
            return STATE_HOME if away < HOME_RADIUS else STATE_NOT_HOME
        return super().state


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Attributes a device's JSON may not set (as for every MQTT entity), and the tracker's own.
_RESERVED = RESERVED_ATTRIBUTES | {"source_type", "battery_level", *_LOCATION}
