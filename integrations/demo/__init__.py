"""Demo devices: a weather station, two lights, a switched heater and a power meter.

Off unless `demo:` is in configuration.yaml (the default configuration turns it on), so a
newcomer sees live data at once. Values drift every `update_interval` seconds; turning the
heater or a light on raises the power meter's reading, so actions have visible effects.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import voluptuous as vol

from hub.core import Hub
from hub.entity import (
    ButtonEntity,
    Entity,
    LightEntity,
    NumberEntity,
    SelectEntity,
    SensorEntity,
    StateClass,
    SwitchEntity,
)
from hub.hookspecs import hookimpl
from hub.plugins import Integration

_LOGGER = logging.getLogger(__name__)
DOMAIN = "demo"

CONFIG_SCHEMA = vol.Any(
    None,
    vol.Schema(
        {
            vol.Optional("update_interval", default=5.0): vol.All(
                vol.Coerce(float), vol.Range(min=0.05, max=3600)
            ),
            vol.Optional("seed"): int,
        }
    ),
)


def _device(key: str, name: str, model: str) -> dict[str, Any]:
    return {
        "identifiers": {(DOMAIN, key)},
        "name": name,
        "manufacturer": "Demo Devices Ltd",
        "model": model,
        "sw_version": "1.0.0",
    }


class DemoSensor(SensorEntity):
    def __init__(self, device: dict[str, Any], key: str, name: str, value: float,
                 device_class: str | None, unit: str | None, spread: float,
                 state_class: str = StateClass.measurement, low: float = -1e9,
                 high: float = 1e9) -> None:
        self.device_info = device
        self.unique_id = f"{next(iter(device['identifiers']))[1]}_{key}"
        self.name = name
        self.native_value = value
        self.device_class = device_class
        self.unit_of_measurement = unit
        self.state_class = state_class
        self.spread = spread
        self.low, self.high = low, high
        self.suggested_display_precision = 1

    def drift(self, rng: random.Random) -> None:
        value = self.native_value + rng.uniform(-self.spread, self.spread)
        self.native_value = round(min(self.high, max(self.low, value)), 2)


class DemoSwitch(SwitchEntity):
    def __init__(self, device: dict[str, Any], key: str, name: str) -> None:
        self.device_info = device
        self.unique_id = key
        self.name = name
        self.is_on = False

    async def turn_on(self, **kwargs: Any) -> None:
        self.is_on = True
        self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        self.is_on = False
        self.write_state()


class DemoLight(LightEntity):
    def __init__(self, key: str, name: str, color: bool) -> None:
        self.device_info = _device(key, name, "RGB bulb" if color else "Dimmable bulb")
        self.unique_id = key
        self.name = None  # the light is the device's main entity: it takes the device's name
        self.is_on = False
        self.brightness = 180
        self.supported_color_modes = {"hs", "color_temp"} if color else {"brightness"}
        self.color_mode = "color_temp" if color else "brightness"
        self.color_temp_kelvin = 2700 if color else None

    async def turn_on(self, **kwargs: Any) -> None:
        self.is_on = True
        if "brightness" in kwargs:
            self.brightness = kwargs["brightness"]
        if "hs_color" in kwargs and "hs" in (self.supported_color_modes or ()):
            self.hs_color, self.color_mode, self.color_temp_kelvin = kwargs["hs_color"], "hs", None
        if "color_temp_kelvin" in kwargs and "color_temp" in (self.supported_color_modes or ()):
            self.color_temp_kelvin, self.color_mode, self.hs_color = kwargs["color_temp_kelvin"], "color_temp", None
        self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        self.is_on = False
        self.write_state()


class DemoNumber(NumberEntity):
    def __init__(self, device: dict[str, Any]) -> None:
        self.device_info = device
        self.unique_id = "heater_target"
        self.name = "Target temperature"
        self.native_value = 20.0
        self.native_min_value, self.native_max_value, self.native_step = 5.0, 30.0, 0.5
        self.unit_of_measurement = "°C"
        self.mode = "slider"

    async def set_native_value(self, value: float) -> None:
        self.native_value = value
        self.write_state()


class DemoSelect(SelectEntity):
    def __init__(self, device: dict[str, Any]) -> None:
        self.device_info = device
        self.unique_id = "heater_mode"
        self.name = "Mode"
        self.options = ["eco", "comfort", "boost"]
        self.current_option = "eco"

    async def select_option(self, option: str) -> None:
        self.current_option = option
        self.write_state()


class DemoResetButton(ButtonEntity):
    def __init__(self, device: dict[str, Any], energy: DemoSensor) -> None:
        self.device_info = device
        self.unique_id = "power_meter_reset"
        self.name = "Reset energy"
        self.energy = energy

    async def press(self) -> None:
        self.last_pressed = datetime.now(timezone.utc)
        self.energy.native_value = 0.0
        self.energy.write_state()
        self.write_state()


class DemoSite:
    """All demo devices and the loop that moves their values."""

    def __init__(self, hub: Hub, interval: float, seed: int | None) -> None:
        self.hub = hub
        self.interval = interval
        self.rng = random.Random(seed)
        weather = _device("weather_station", "Weather station", "WS-2000")
        meter = _device("power_meter", "Power meter", "PM-1")
        heater = _device("heater", "Heater", "Smart plug + heater")
        self.weather = [
            DemoSensor(weather, "temperature", "Temperature", 18.5, "temperature", "°C", 0.3, low=-30, high=45),
            DemoSensor(weather, "humidity", "Humidity", 55.0, "humidity", "%", 1.0, low=0, high=100),
            DemoSensor(weather, "pressure", "Pressure", 1013.0, "atmospheric_pressure", "hPa", 0.5, low=950, high=1060),
            DemoSensor(weather, "wind_speed", "Wind speed", 12.0, "wind_speed", "km/h", 2.0, low=0, high=150),
        ]
        self.power = DemoSensor(meter, "power", "Power", 150.0, "power", "W", 10.0, low=0, high=10000)
        self.energy = DemoSensor(meter, "energy", "Energy", 1234.5, "energy", "kWh", 0.0, StateClass.total_increasing)
        self.voltage = DemoSensor(meter, "voltage", "Voltage", 230.0, "voltage", "V", 1.0, low=207, high=253)
        self.heater = DemoSwitch(heater, "heater", "Power")
        self.lights = [DemoLight("living_room_light", "Living room light", True),
                       DemoLight("kitchen_light", "Kitchen light", False)]
        self.entities: list[Entity] = [
            *self.weather, self.power, self.energy, self.voltage, self.heater, *self.lights,
            DemoNumber(heater), DemoSelect(heater), DemoResetButton(meter, self.energy),
        ]

    def load_watts(self) -> float:
        lights = sum(8.0 * (light.brightness or 0) / 255 for light in self.lights if light.is_on)
        return (2000.0 if self.heater.is_on else 0.0) + lights

    def step(self) -> None:
        for sensor in (*self.weather, self.voltage):
            sensor.drift(self.rng)
            sensor.write_state()
        base = max(0.0, 150.0 + self.rng.uniform(-20, 20))
        self.power.native_value = round(base + self.load_watts(), 1)
        self.energy.native_value = round(
            self.energy.native_value + self.power.native_value * self.interval / 3_600_000, 4
        )
        self.power.write_state()
        self.energy.write_state()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.step()
            except Exception:
                _LOGGER.exception("Demo update failed")


@asynccontextmanager
async def setup(hub: Hub, config: dict[str, Any] | None) -> AsyncIterator[DemoSite]:
    config = config or {}
    site = DemoSite(hub, config.get("update_interval", 5.0), config.get("seed"))
    for entity in site.entities:
        hub.entities.add(entity, DOMAIN)
    task = hub.create_task(site.run(), "demo updates")
    try:
        yield site
    finally:
        task.cancel()
        for entity in site.entities:
            await hub.entities.remove(entity)


@hookimpl
def register_integrations() -> list[Integration]:
    return [Integration(DOMAIN, "Demo devices", setup, CONFIG_SCHEMA)]
