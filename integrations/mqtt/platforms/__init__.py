"""MQTT entity platforms, one module per component, each registering its class here.

`PLATFORMS[component]` is the entity class for a discovery component or a YAML key under
`mqtt:`. Importing this package imports every platform module.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..entity import MqttEntity

_LOGGER = logging.getLogger(__name__)

PLATFORMS: dict[str, type[MqttEntity]] = {}

_MODULES = (
    "sensor", "binary_sensor", "switch", "light", "number", "select", "button", "event",
    "update", "text", "device_tracker", "cover", "climate", "fan", "valve", "lock",
)


def register(cls: type[MqttEntity]) -> type[MqttEntity]:
    """Class decorator: make `cls` the entity class of its component."""
    PLATFORMS[cls.PLATFORM] = cls
    return cls


def load_platforms() -> dict[str, type[MqttEntity]]:
    for name in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            _LOGGER.debug("MQTT platform %s is not available", name)
    return PLATFORMS
