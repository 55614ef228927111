"""Covers, valves, climate devices, fans, locks, text and device trackers as an HA client sees
them: the state strings, the attributes, and what each service does or refuses."""

from __future__ import annotations

from typing import Any

import pytest

from hub.core import Hub
from hub.entity import DOMAIN_SERVICES, SensorEntity
from hub.entity_domains import (
    ClimateEntity,
    ClimateEntityFeature,
    CoverEntity,
    CoverEntityFeature,
    DeviceTrackerEntity,
    FanEntity,
    FanEntityFeature,
    LockEntity,
    LockEntityFeature,
    TextEntity,
    ValveEntity,
    ValveEntityFeature,
)
from hub.exceptions import NotSupported, ServiceValidationError


def attributes(hub: Hub, entity_id: str) -> dict[str, Any]:
    return dict(hub.states.get(entity_id).attributes)


def state(hub: Hub, entity_id: str) -> str:
    return hub.states.get(entity_id).state


class Recorder:
    """Remembers the calls a service made, in order."""

    def __init__(self, name: str, **fields: Any) -> None:
        self.name = name
        self.calls: list[tuple[Any, ...]] = []
        for key, value in fields.items():
            setattr(self, key, value)

    def record(self, *call: Any) -> None:
        self.calls.append(call)
        self.write_state()  # type: ignore[attr-defined]


# --- cover ---------------------------------------------------------------------------------


class Blind(Recorder, CoverEntity):
    """A blind that moves at once and reports position and tilt."""

    async def open_cover(self) -> None:
        self.is_closed, self.current_cover_position = False, 100
        self.record("open_cover")

    async def close_cover(self) -> None:
        self.is_closed, self.current_cover_position = True, 0
        self.record("close_cover")

    async def stop_cover(self) -> None:
        self.is_opening = self.is_closing = False
        self.record("stop_cover")

    async def set_cover_position(self, position: int) -> None:
        self.is_closed, self.current_cover_position = position == 0, position
        self.record("set_cover_position", position)

    async def open_cover_tilt(self) -> None:
        self.current_cover_tilt_position = 100
        self.record("open_cover_tilt")

    async def close_cover_tilt(self) -> None:
        self.current_cover_tilt_position = 0
        self.record("close_cover_tilt")

    async def stop_cover_tilt(self) -> None:
        self.record("stop_cover_tilt")

    async def set_cover_tilt_position(self, tilt_position: int) -> None:
        self.current_cover_tilt_position = tilt_position
        self.record("set_cover_tilt_position", tilt_position)


async def test_a_cover_shows_its_movement_and_positions_as_ha_does(hub: Hub) -> None:
    blind = Blind("Blind", device_class="blind")
    entity_id = hub.entities.add(blind, "test")
    assert state(hub, entity_id) == "unknown"
    # Nothing reported yet: open, close and stop (HA's default features).
    assert attributes(hub, entity_id) == {
        "supported_features": 11,
        "device_class": "blind",
        "friendly_name": "Blind",
    }

    blind.is_closed, blind.current_cover_position, blind.current_cover_tilt_position = True, 0, 0
    blind.write_state()
    assert state(hub, entity_id) == "closed"
    assert attributes(hub, entity_id) == {
        "current_position": 0,
        "current_tilt_position": 0,
        "supported_features": 255,  # a reported position and tilt mean they can be set
        "device_class": "blind",
        "friendly_name": "Blind",
    }
    for moving, expected in (("is_opening", "opening"), ("is_closing", "closing")):
        setattr(blind, moving, True)
        blind.write_state()
        assert state(hub, entity_id) == expected
        setattr(blind, moving, False)
    blind.is_closed, blind.current_cover_position = False, 40
    blind.write_state()
    assert state(hub, entity_id) == "open"
    assert attributes(hub, entity_id)["current_position"] == 40


async def test_every_cover_service_reaches_the_cover(hub: Hub) -> None:
    blind = Blind("Blind", is_closed=True, current_cover_position=0, current_cover_tilt_position=0)
    entity_id = hub.entities.add(blind, "test")
    target = {"entity_id": entity_id}

    await hub.services.call("cover", "open_cover", target)
    assert state(hub, entity_id) == "open"
    await hub.services.call("cover", "set_cover_position", {**target, "position": "30"})
    assert attributes(hub, entity_id)["current_position"] == 30
    await hub.services.call("cover", "stop_cover", target)
    await hub.services.call("cover", "close_cover", target)
    assert state(hub, entity_id) == "closed"
    await hub.services.call("cover", "open_cover_tilt", target)
    await hub.services.call("cover", "stop_cover_tilt", target)
    await hub.services.call("cover", "close_cover_tilt", target)
    await hub.services.call("cover", "toggle_cover_tilt", target)  # tilt closed: opens it
    await hub.services.call("cover", "toggle_cover_tilt", target)  # then closes it
    await hub.services.call("cover", "set_cover_tilt_position", {**target, "tilt_position": 55})
    assert attributes(hub, entity_id)["current_tilt_position"] == 55
    assert blind.calls == [
        ("open_cover",),
        ("set_cover_position", 30),
        ("stop_cover",),
        ("close_cover",),
        ("open_cover_tilt",),
        ("stop_cover_tilt",),
        ("close_cover_tilt",),
        ("open_cover_tilt",),
        ("close_cover_tilt",),
        ("set_cover_tilt_position", 55),
    ]

    with pytest.raises(ServiceValidationError, match="position"):
        await hub.services.call("cover", "set_cover_position", {**target, "position": 101})
    with pytest.raises(ServiceValidationError, match="tilt_position"):
        await hub.services.call("cover", "set_cover_tilt_position", {**target, "tilt_position": -1})


async def test_cover_toggle_stops_a_moving_cover_and_otherwise_reverses_it(hub: Hub) -> None:
    blind = Blind("Blind", is_closed=True, current_cover_position=0)
    entity_id = hub.entities.add(blind, "test")

    async def toggle() -> str:
        blind.calls.clear()
        await hub.services.call("cover", "toggle", {"entity_id": entity_id})
        return blind.calls[0][0]

    assert await toggle() == "open_cover"  # closed
    assert await toggle() == "close_cover"  # fully open
    blind.is_closing = True
    blind.write_state()
    assert await toggle() == "stop_cover"  # moving, and it can stop
    # Stopped half-way while closing: the toggle goes the other way, as HA's does.
    blind.is_closed, blind.current_cover_position = False, 50
    blind.write_state()
    assert await toggle() == "open_cover"
    blind.is_opening = True
    blind.write_state()
    blind.is_opening, blind.current_cover_position = False, 60
    blind.write_state()
    assert await toggle() == "close_cover"

    blind.supported_features = CoverEntityFeature.OPEN | CoverEntityFeature.CLOSE
    blind.is_closing = True
    blind.write_state()
    assert await toggle() == "open_cover"  # closing, and it cannot stop


async def test_a_cover_refuses_what_it_does_not_support(hub: Hub) -> None:
    class GarageDoor(CoverEntity):
        name = "Garage door"
        supported_features = (
            CoverEntityFeature.OPEN | CoverEntityFeature.CLOSE | CoverEntityFeature.STOP
        )
        is_closed = True

    entity_id = hub.entities.add(GarageDoor(), "test")
    assert attributes(hub, entity_id)["supported_features"] == 11
    with pytest.raises(
        NotSupported, match=r"cover.garage_door does not support action cover.set_cover_position"
    ):
        await hub.services.call(
            "cover", "set_cover_position", {"entity_id": entity_id, "position": 50}
        )
    # Declared but not implemented: the default method says so.
    with pytest.raises(NotSupported, match="cover.garage_door cannot open"):
        await hub.services.call("cover", "open_cover", {"entity_id": entity_id})


# --- valve ---------------------------------------------------------------------------------


class Valve(Recorder, ValveEntity):
    async def open_valve(self) -> None:
        self.is_closed = False
        self.record("open_valve")

    async def close_valve(self) -> None:
        self.is_closed = True
        self.record("close_valve")

    async def stop_valve(self) -> None:
        self.is_opening = self.is_closing = False
        self.record("stop_valve")

    async def set_valve_position(self, position: int) -> None:
        self.current_valve_position = position
        self.record("set_valve_position", position)


async def test_a_valve_that_reports_its_position(hub: Hub) -> None:
    features = (
        ValveEntityFeature.OPEN
        | ValveEntityFeature.CLOSE
        | ValveEntityFeature.SET_POSITION
        | ValveEntityFeature.STOP
    )
    valve = Valve(
        "Irrigation", reports_position=True, supported_features=features, device_class="water"
    )
    entity_id = hub.entities.add(valve, "test")
    assert state(hub, entity_id) == "unknown"
    assert attributes(hub, entity_id) == {
        "current_position": None,
        "supported_features": 15,
        "device_class": "water",
        "friendly_name": "Irrigation",
    }
    target = {"entity_id": entity_id}
    # The position decides, and open/close send a valve that takes a position to 100 or 0.
    await hub.services.call("valve", "open_valve", target)
    assert state(hub, entity_id) == "open"
    await hub.services.call("valve", "close_valve", target)
    assert state(hub, entity_id) == "closed"
    await hub.services.call("valve", "set_valve_position", {**target, "position": 25})
    assert state(hub, entity_id) == "open"
    assert attributes(hub, entity_id)["current_position"] == 25
    valve.is_opening = True
    valve.write_state()
    assert state(hub, entity_id) == "opening"
    await hub.services.call("valve", "toggle", target)  # moving: stops
    await hub.services.call("valve", "toggle", target)  # last moved opening: closes
    await hub.services.call("valve", "toggle", target)  # closed: opens
    await hub.services.call("valve", "stop_valve", target)
    assert valve.calls == [
        ("set_valve_position", 100),
        ("set_valve_position", 0),
        ("set_valve_position", 25),
        ("stop_valve",),
        ("set_valve_position", 0),
        ("set_valve_position", 100),
        ("stop_valve",),
    ]
    with pytest.raises(ServiceValidationError, match="position"):
        await hub.services.call("valve", "set_valve_position", {**target, "position": 150})


async def test_an_open_close_valve(hub: Hub) -> None:
    valve = Valve(
        "Gas", supported_features=ValveEntityFeature.OPEN | ValveEntityFeature.CLOSE, is_closed=True
    )
    entity_id = hub.entities.add(valve, "test")
    assert state(hub, entity_id) == "closed"
    assert attributes(hub, entity_id) == {"supported_features": 3, "friendly_name": "Gas"}
    await hub.services.call("valve", "toggle", {"entity_id": entity_id})
    assert state(hub, entity_id) == "open"
    valve.is_closing = True
    valve.write_state()
    assert state(hub, entity_id) == "closing"
    await hub.services.call("valve", "close_valve", {"entity_id": entity_id})
    assert valve.calls == [("open_valve",), ("close_valve",)]
    for service, data in (("stop_valve", {}), ("set_valve_position", {"position": 10})):
        with pytest.raises(NotSupported, match=f"does not support action valve.{service}"):
            await hub.services.call("valve", service, {"entity_id": entity_id, **data})


# --- climate -------------------------------------------------------------------------------

ALL_CLIMATE = (
    ClimateEntityFeature.TARGET_TEMPERATURE
    | ClimateEntityFeature.TARGET_TEMPERATURE_RANGE
    | ClimateEntityFeature.TARGET_HUMIDITY
    | ClimateEntityFeature.FAN_MODE
    | ClimateEntityFeature.PRESET_MODE
    | ClimateEntityFeature.SWING_MODE
    | ClimateEntityFeature.TURN_OFF
    | ClimateEntityFeature.TURN_ON
)


class Thermostat(Recorder, ClimateEntity):
    async def set_hvac_mode(self, hvac_mode: str) -> None:
        self.hvac_mode = hvac_mode
        self.record("set_hvac_mode", hvac_mode)

    async def set_temperature(self, **kwargs: Any) -> None:
        self.target_temperature = kwargs.get("temperature", self.target_temperature)
        self.target_temperature_low = kwargs.get("target_temp_low", self.target_temperature_low)
        self.target_temperature_high = kwargs.get("target_temp_high", self.target_temperature_high)
        self.hvac_mode = kwargs.get("hvac_mode", self.hvac_mode)
        self.record("set_temperature", kwargs)

    async def set_humidity(self, humidity: int) -> None:
        self.target_humidity = humidity
        self.record("set_humidity", humidity)

    async def set_fan_mode(self, fan_mode: str) -> None:
        self.fan_mode = fan_mode
        self.record("set_fan_mode", fan_mode)

    async def set_preset_mode(self, preset_mode: str) -> None:
        self.preset_mode = preset_mode
        self.record("set_preset_mode", preset_mode)

    async def set_swing_mode(self, swing_mode: str) -> None:
        self.swing_mode = swing_mode
        self.record("set_swing_mode", swing_mode)


def thermostat(**fields: Any) -> Thermostat:
    return Thermostat(
        "Living room",
        **{
            "supported_features": ALL_CLIMATE,
            "hvac_modes": ["off", "heat", "cool", "heat_cool"],
            "hvac_mode": "heat",
            "hvac_action": "heating",
            "current_temperature": 19.46,
            "target_temperature": 21,
            "target_temperature_step": 0.5,
            "current_humidity": 48,
            "target_humidity": 45,
            "fan_mode": "auto",
            "fan_modes": ["auto", "low", "high"],
            "preset_mode": "home",
            "preset_modes": ["home", "away", "eco"],
            "swing_mode": "off",
            "swing_modes": ["off", "vertical"],
            **fields,
        },
    )


async def test_a_thermostat_shows_ha_climate_attributes(hub: Hub) -> None:
    entity_id = hub.entities.add(thermostat(), "test")
    assert state(hub, entity_id) == "heat"
    assert attributes(hub, entity_id) == {
        "hvac_modes": ["off", "heat", "cool", "heat_cool"],
        "min_temp": 7,
        "max_temp": 35,
        "target_temp_step": 0.5,
        "min_humidity": 30,
        "max_humidity": 99,
        "fan_modes": ["auto", "low", "high"],
        "preset_modes": ["home", "away", "eco"],
        "swing_modes": ["off", "vertical"],
        "current_temperature": 19.5,  # °C: tenths, as HA shows them
        "temperature": 21,
        "target_temp_high": None,
        "target_temp_low": None,
        "current_humidity": 48,
        "humidity": 45,
        "fan_mode": "auto",
        "hvac_action": "heating",
        "preset_mode": "home",
        "swing_mode": "off",
        "supported_features": 447,
        "friendly_name": "Living room",
    }


async def test_a_simple_heater_shows_only_what_it_supports(hub: Hub) -> None:
    heater = thermostat(
        supported_features=ClimateEntityFeature.TARGET_TEMPERATURE,
        temperature_unit="°F",
        min_temp=45,
        max_temp=86,
        target_temperature_step=None,
        current_temperature=67.6,
        target_temperature=68.2,
        current_humidity=None,
        hvac_action=None,
        hvac_mode=None,
    )
    entity_id = hub.entities.add(heater, "test")
    assert state(hub, entity_id) == "unknown"
    assert attributes(hub, entity_id) == {
        "hvac_modes": ["off", "heat", "cool", "heat_cool"],
        "min_temp": 45,
        "max_temp": 86,
        "current_temperature": 68,  # not converted; whole degrees outside °C
        "temperature": 68,
        "supported_features": 1,
        "friendly_name": "Living room",
    }
    heater.precision = 0.5
    heater.write_state()
    assert attributes(hub, entity_id)["temperature"] == 68.0
    assert attributes(hub, entity_id)["current_temperature"] == 67.5


async def test_every_climate_service_reaches_the_thermostat(hub: Hub) -> None:
    device = thermostat()
    entity_id = hub.entities.add(device, "test")
    target = {"entity_id": entity_id}

    await hub.services.call("climate", "set_hvac_mode", {**target, "hvac_mode": "cool"})
    assert state(hub, entity_id) == "cool"
    await hub.services.call("climate", "set_temperature", {**target, "temperature": "22.5"})
    assert attributes(hub, entity_id)["temperature"] == 22.5
    await hub.services.call(
        "climate",
        "set_temperature",
        {**target, "target_temp_low": 18, "target_temp_high": 24, "hvac_mode": "heat_cool"},
    )
    assert state(hub, entity_id) == "heat_cool"
    assert attributes(hub, entity_id)["target_temp_low"] == 18.0
    assert attributes(hub, entity_id)["target_temp_high"] == 24.0
    await hub.services.call("climate", "set_humidity", {**target, "humidity": 55})
    await hub.services.call("climate", "set_fan_mode", {**target, "fan_mode": "low"})
    await hub.services.call("climate", "set_preset_mode", {**target, "preset_mode": "eco"})
    await hub.services.call("climate", "set_swing_mode", {**target, "swing_mode": "vertical"})
    await hub.services.call("climate", "turn_off", target)
    assert state(hub, entity_id) == "off"
    await hub.services.call("climate", "turn_on", target)  # HA's default: heat_cool first
    assert state(hub, entity_id) == "heat_cool"
    await hub.services.call("climate", "toggle", target)
    await hub.services.call("climate", "toggle", target)
    assert device.calls == [
        ("set_hvac_mode", "cool"),
        ("set_temperature", {"temperature": 22.5}),
        (
            "set_temperature",
            {"target_temp_low": 18.0, "target_temp_high": 24.0, "hvac_mode": "heat_cool"},
        ),
        ("set_humidity", 55),
        ("set_fan_mode", "low"),
        ("set_preset_mode", "eco"),
        ("set_swing_mode", "vertical"),
        ("set_hvac_mode", "off"),
        ("set_hvac_mode", "heat_cool"),
        ("set_hvac_mode", "off"),
        ("set_hvac_mode", "heat_cool"),
    ]
    attrs = attributes(hub, entity_id)
    assert (attrs["humidity"], attrs["fan_mode"], attrs["preset_mode"], attrs["swing_mode"]) == (
        55,
        "low",
        "eco",
        "vertical",
    )


async def test_turning_a_heat_only_thermostat_on_picks_its_one_mode(hub: Hub) -> None:
    device = thermostat(hvac_modes=["off", "auto"], hvac_mode="off")
    entity_id = hub.entities.add(device, "test")
    await hub.services.call("climate", "turn_on", {"entity_id": entity_id})
    assert state(hub, entity_id) == "auto"


async def test_climate_services_refuse_bad_values_naming_what_is_allowed(hub: Hub) -> None:
    device = thermostat()
    entity_id = hub.entities.add(device, "test")

    async def call(service: str, **data: Any) -> None:
        await hub.services.call("climate", service, {"entity_id": entity_id, **data})

    with pytest.raises(
        ServiceValidationError,
        match=r"HVAC mode 'dry' is not valid for climate.living_room. Valid HVAC modes are: off, heat, cool, heat_cool",
    ):
        await call("set_hvac_mode", hvac_mode="dry")
    with pytest.raises(ServiceValidationError, match="hvac_mode"):
        await call("set_hvac_mode", hvac_mode="warm")  # not an HVAC mode at all
    with pytest.raises(
        ServiceValidationError,
        match="Fan mode 'turbo' is not valid .* Valid fan modes are: auto, low, high",
    ):
        await call("set_fan_mode", fan_mode="turbo")
    with pytest.raises(
        ServiceValidationError,
        match="Preset mode 'party' .* Valid preset modes are: home, away, eco",
    ):
        await call("set_preset_mode", preset_mode="party")
    with pytest.raises(
        ServiceValidationError, match="Swing mode 'both' .* Valid swing modes are: off, vertical"
    ):
        await call("set_swing_mode", swing_mode="both")
    with pytest.raises(
        ServiceValidationError,
        match="Provided temperature 40.0 is not valid .* Accepted range is 7 to 35",
    ):
        await call("set_temperature", temperature=40)
    with pytest.raises(ServiceValidationError, match="Provided temperature 5.0 is not valid"):
        await call("set_temperature", target_temp_low=5, target_temp_high=20)
    with pytest.raises(
        ServiceValidationError, match="target_temp_low can not be higher than target_temp_high"
    ):
        await call("set_temperature", target_temp_low=25, target_temp_high=20)
    with pytest.raises(ServiceValidationError, match="not both"):
        await call("set_temperature", temperature=20, target_temp_low=18, target_temp_high=24)
    with pytest.raises(ServiceValidationError, match="give temperature, or both"):
        await call("set_temperature", target_temp_low=18)
    with pytest.raises(ServiceValidationError, match="HVAC mode 'auto' is not valid"):
        await call("set_temperature", temperature=20, hvac_mode="auto")
    with pytest.raises(
        ServiceValidationError,
        match="Provided humidity 20 is not valid .* Accepted range is 30 to 99",
    ):
        await call("set_humidity", humidity=20)
    assert device.calls == []


async def test_climate_services_refuse_missing_features(hub: Hub) -> None:
    device = thermostat(
        supported_features=ClimateEntityFeature.TARGET_TEMPERATURE, hvac_modes=["heat"]
    )
    entity_id = hub.entities.add(device, "test")

    async def call(service: str, **data: Any) -> None:
        await hub.services.call("climate", service, {"entity_id": entity_id, **data})

    with pytest.raises(
        NotSupported, match="climate.living_room cannot set a target temperature range"
    ):
        await call("set_temperature", target_temp_low=18, target_temp_high=24)
    for service, data in (
        ("set_humidity", {"humidity": 50}),
        ("set_fan_mode", {"fan_mode": "low"}),
        ("set_preset_mode", {"preset_mode": "eco"}),
        ("set_swing_mode", {"swing_mode": "off"}),
        ("turn_on", {}),
        ("turn_off", {}),
        ("toggle", {}),
    ):
        with pytest.raises(NotSupported, match=f"does not support action climate.{service}"):
            await call(service, **data)
    # It claims TURN_OFF but has no off mode: the default turn_off cannot help.
    device.supported_features |= ClimateEntityFeature.TURN_OFF
    with pytest.raises(NotSupported, match="cannot be turned off"):
        await call("turn_off")
    assert device.calls == []


# --- fan -----------------------------------------------------------------------------------


class Fan(Recorder, FanEntity):
    async def turn_on(
        self, percentage: int | None = None, preset_mode: str | None = None, **kwargs: Any
    ) -> None:
        self.is_on = True
        self.percentage = percentage if percentage is not None else self.percentage
        self.preset_mode = preset_mode
        self.record("turn_on", percentage, preset_mode)

    async def turn_off(self, **kwargs: Any) -> None:
        self.is_on = False
        self.record("turn_off")

    async def set_percentage(self, percentage: int) -> None:
        self.is_on, self.percentage = True, percentage
        self.record("set_percentage", percentage)

    async def set_preset_mode(self, preset_mode: str) -> None:
        self.preset_mode = preset_mode
        self.record("set_preset_mode", preset_mode)

    async def oscillate(self, oscillating: bool) -> None:
        self.oscillating = oscillating
        self.record("oscillate", oscillating)

    async def set_direction(self, direction: str) -> None:
        self.current_direction = direction
        self.record("set_direction", direction)


def ceiling_fan(**fields: Any) -> Fan:
    return Fan(
        "Ceiling fan", **{"supported_features": sum(FanEntityFeature), "is_on": False, **fields}
    )


async def test_a_fan_shows_ha_fan_attributes(hub: Hub) -> None:
    fan = ceiling_fan(
        speed_count=3,
        percentage=33,
        preset_modes=["breeze"],
        oscillating=False,
        current_direction="forward",
    )
    entity_id = hub.entities.add(fan, "test")
    assert state(hub, entity_id) == "off"
    assert attributes(hub, entity_id) == {
        "preset_modes": ["breeze"],
        "direction": "forward",
        "oscillating": False,
        "percentage": 33,
        "percentage_step": 100 / 3,
        "preset_mode": None,
        "supported_features": 63,
        "friendly_name": "Ceiling fan",
    }
    basic = Fan(
        "Desk fan",
        supported_features=FanEntityFeature.TURN_ON | FanEntityFeature.TURN_OFF,
        is_on=True,
    )
    basic_id = hub.entities.add(basic, "test")
    assert state(hub, basic_id) == "on"
    assert attributes(hub, basic_id) == {"supported_features": 48, "friendly_name": "Desk fan"}


async def test_every_fan_service_reaches_the_fan(hub: Hub) -> None:
    fan = ceiling_fan(speed_count=3, percentage=0, preset_modes=["breeze"])
    entity_id = hub.entities.add(fan, "test")
    target = {"entity_id": entity_id}

    await hub.services.call("fan", "turn_on", {**target, "percentage": 66})
    assert state(hub, entity_id) == "on"
    await hub.services.call("fan", "increase_speed", target)  # to the next of 3 speeds
    assert attributes(hub, entity_id)["percentage"] == 100
    await hub.services.call("fan", "decrease_speed", {**target, "percentage_step": 10})
    await hub.services.call("fan", "decrease_speed", target)
    assert attributes(hub, entity_id)["percentage"] == 66
    await hub.services.call("fan", "set_percentage", {**target, "percentage": 33})
    await hub.services.call("fan", "set_preset_mode", {**target, "preset_mode": "breeze"})
    assert attributes(hub, entity_id)["preset_mode"] == "breeze"
    await hub.services.call("fan", "oscillate", {**target, "oscillating": "on"})
    assert attributes(hub, entity_id)["oscillating"] is True
    await hub.services.call("fan", "set_direction", {**target, "direction": "reverse"})
    assert attributes(hub, entity_id)["direction"] == "reverse"
    await hub.services.call("fan", "set_percentage", {**target, "percentage": 0})  # 0 %: off
    assert state(hub, entity_id) == "off"
    await hub.services.call("fan", "toggle", target)
    await hub.services.call("fan", "turn_off", target)
    await hub.services.call("fan", "turn_on", {**target, "preset_mode": "breeze"})
    assert fan.calls == [
        ("turn_on", 66, None),
        ("set_percentage", 100),
        ("set_percentage", 90),
        ("set_percentage", 66),
        ("set_percentage", 33),
        ("set_preset_mode", "breeze"),
        ("oscillate", True),
        ("set_direction", "reverse"),
        ("turn_off",),
        ("turn_on", None, None),
        ("turn_off",),
        ("turn_on", None, "breeze"),
    ]


async def test_fan_services_refuse_bad_values_and_missing_features(hub: Hub) -> None:
    fan = ceiling_fan(preset_modes=["breeze"])
    entity_id = hub.entities.add(fan, "test")
    target = {"entity_id": entity_id}
    with pytest.raises(
        ServiceValidationError,
        match="Preset mode 'storm' is not valid .* Valid preset modes are: breeze",
    ):
        await hub.services.call("fan", "turn_on", {**target, "preset_mode": "storm"})
    with pytest.raises(ServiceValidationError, match="Preset mode 'storm'"):
        await hub.services.call("fan", "set_preset_mode", {**target, "preset_mode": "storm"})
    with pytest.raises(ServiceValidationError, match="percentage"):
        await hub.services.call("fan", "set_percentage", {**target, "percentage": 120})
    with pytest.raises(ServiceValidationError, match="direction"):
        await hub.services.call("fan", "set_direction", {**target, "direction": "sideways"})
    assert fan.calls == []

    basic = Fan("Desk fan", supported_features=FanEntityFeature.TURN_ON)
    basic_id = hub.entities.add(basic, "test")
    for service, data in (
        ("turn_off", {}),
        ("set_percentage", {"percentage": 50}),
        ("increase_speed", {}),
        ("set_preset_mode", {"preset_mode": "breeze"}),
        ("oscillate", {"oscillating": True}),
        ("set_direction", {"direction": "forward"}),
    ):
        with pytest.raises(
            NotSupported, match=f"fan.desk_fan does not support action fan.{service}"
        ):
            await hub.services.call("fan", service, {"entity_id": basic_id, **data})
    await hub.services.call("fan", "toggle", {"entity_id": basic_id})  # TURN_ON alone allows it
    assert basic.calls == [("turn_on", None, None)]


# --- lock ----------------------------------------------------------------------------------


class LockDoor(Recorder, LockEntity):
    async def lock(self, code: str | None = None) -> None:
        self.is_locked = True
        self.record("lock", code)

    async def unlock(self, code: str | None = None) -> None:
        self.is_locked = False
        self.record("unlock", code)

    async def open(self, code: str | None = None) -> None:
        self.is_open = True
        self.record("open", code)


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ({}, "unknown"),
        ({"is_locked": True}, "locked"),
        ({"is_locked": False}, "unlocked"),
        ({"is_locked": True, "is_unlocking": True}, "unlocking"),
        ({"is_locked": False, "is_open": True, "is_unlocking": True}, "open"),
        ({"is_locked": False, "is_locking": True, "is_open": True}, "locking"),
        ({"is_locked": False, "is_opening": True, "is_locking": True}, "opening"),
        ({"is_locked": True, "is_jammed": True, "is_opening": True}, "jammed"),
    ],
)
async def test_lock_state_follows_ha_priority(
    hub: Hub, reported: dict[str, bool], expected: str
) -> None:
    entity_id = hub.entities.add(LockDoor("Door", **reported), "test")
    assert state(hub, entity_id) == expected


async def test_lock_services_check_the_code_format(hub: Hub) -> None:
    door = LockDoor(
        "Front door",
        is_locked=True,
        code_format=r"^\d{4}$",
        supported_features=LockEntityFeature.OPEN,
    )
    entity_id = hub.entities.add(door, "test")
    assert attributes(hub, entity_id) == {
        "code_format": r"^\d{4}$",
        "supported_features": 1,
        "friendly_name": "Front door",
    }
    target = {"entity_id": entity_id}
    await hub.services.call(
        "lock", "unlock", {**target, "code": 1234}
    )  # a number, as YAML gives it
    assert state(hub, entity_id) == "unlocked"
    await hub.services.call("lock", "lock", {**target, "code": "1234"})
    await hub.services.call("lock", "open", {**target, "code": "1234"})
    assert state(hub, entity_id) == "open"
    for code in ("12345", "", None):
        with pytest.raises(
            ServiceValidationError,
            match=r"The code for lock.front_door doesn't match pattern \^\\d\{4\}\$",
        ):
            await hub.services.call("lock", "unlock", {**target, "code": code})
    assert door.calls == [("unlock", "1234"), ("lock", "1234"), ("open", "1234")]


async def test_a_lock_without_code_or_latch(hub: Hub) -> None:
    door = LockDoor("Shed", is_locked=False, changed_by="keypad")
    entity_id = hub.entities.add(door, "test")
    assert attributes(hub, entity_id) == {
        "changed_by": "keypad",
        "supported_features": 0,
        "friendly_name": "Shed",
    }
    await hub.services.call("lock", "lock", {"entity_id": entity_id})
    assert state(hub, entity_id) == "locked"
    assert door.calls == [("lock", None)]
    with pytest.raises(NotSupported, match="does not support action lock.open"):
        await hub.services.call("lock", "open", {"entity_id": entity_id})

    door.code_format = "[0-9"  # a broken pattern from the device's configuration
    with pytest.raises(ServiceValidationError, match=r"lock.shed has an invalid pattern '\[0-9'"):
        await hub.services.call("lock", "unlock", {"entity_id": entity_id, "code": "1"})


# --- text ----------------------------------------------------------------------------------


class Display(Recorder, TextEntity):
    async def set_value(self, value: str) -> None:
        self.native_value = value
        self.record("set_value", value)


async def test_a_text_entity_validates_what_it_is_given(hub: Hub) -> None:
    display = Display("Message", native_value="hi", native_min=2, native_max=8, pattern="[a-z ]*")
    entity_id = hub.entities.add(display, "test")
    assert state(hub, entity_id) == "hi"
    assert attributes(hub, entity_id) == {
        "min": 2,
        "max": 8,
        "pattern": "[a-z ]*",
        "mode": "text",
        "friendly_name": "Message",
    }
    target = {"entity_id": entity_id}
    await hub.services.call("text", "set_value", {**target, "value": "good bye"})
    assert state(hub, entity_id) == "good bye"
    with pytest.raises(
        ServiceValidationError,
        match=r"Value for text.message is too short \(1 characters; minimum length 2\)",
    ):
        await hub.services.call("text", "set_value", {**target, "value": "a"})
    with pytest.raises(
        ServiceValidationError, match=r"too long \(9 characters; maximum length 8\)"
    ):
        await hub.services.call("text", "set_value", {**target, "value": "good byes"})
    # The whole value must match, not just its start.
    with pytest.raises(ServiceValidationError, match=r"doesn't match pattern \[a-z \]\*"):
        await hub.services.call("text", "set_value", {**target, "value": "hi!"})
    display.pattern = "(unclosed"
    with pytest.raises(
        ServiceValidationError, match="text.message has an invalid pattern '\\(unclosed'"
    ):
        await hub.services.call("text", "set_value", {**target, "value": "hello"})
    assert display.calls == [("set_value", "good bye")]


async def test_a_password_never_appears_in_an_error(hub: Hub) -> None:
    wifi = Display("Wifi key", mode="password", native_min=8)
    entity_id = hub.entities.add(wifi, "test")
    assert state(hub, entity_id) == "unknown"
    assert attributes(hub, entity_id)["mode"] == "password"
    with pytest.raises(ServiceValidationError) as caught:
        await hub.services.call("text", "set_value", {"entity_id": entity_id, "value": "hunter2"})
    assert "hunter2" not in str(caught.value)


# --- device tracker ------------------------------------------------------------------------


async def test_a_device_tracker_shows_where_it_is(hub: Hub) -> None:
    phone = DeviceTrackerEntity()
    phone.name, phone.unique_id = "Phone", "phone"
    entity_id = hub.entities.add(phone, "test")
    assert state(hub, entity_id) == "unknown"
    assert attributes(hub, entity_id) == {"source_type": "gps", "friendly_name": "Phone"}
    assert hub.entity_registry.get(entity_id).entity_category == "diagnostic"  # as in HA

    phone.is_home = True
    phone.write_state()
    assert state(hub, entity_id) == "home"
    phone.is_home, phone.battery_level = False, 80
    phone.latitude, phone.longitude, phone.gps_accuracy = 52.37, 4.89, 12
    phone.write_state()
    assert state(hub, entity_id) == "not_home"
    assert attributes(hub, entity_id) == {
        "source_type": "gps",
        "battery_level": 80,
        "latitude": 52.37,
        "longitude": 4.89,
        "gps_accuracy": 12,
        "friendly_name": "Phone",
    }
    phone.location_name = "Work"
    phone.write_state()
    assert state(hub, entity_id) == "Work"
    before = hub.states.get(entity_id)
    phone.write_state()  # the same report again is still recorded
    assert hub.states.get(entity_id) is not before


# --- shared --------------------------------------------------------------------------------


async def test_an_enum_sensor_lists_its_options(hub: Hub) -> None:
    washer, plain = SensorEntity(), SensorEntity()
    washer.name, washer.device_class, washer.native_value = "Washer", "enum", "washing"
    washer.options = ["idle", "washing", "spinning"]
    plain.name, plain.options = "Plain", ["a"]  # only an enum sensor shows them
    hub.entities.add(washer, "test")
    hub.entities.add(plain, "test")
    assert attributes(hub, "sensor.washer") == {
        "options": ["idle", "washing", "spinning"],
        "device_class": "enum",
        "friendly_name": "Washer",
    }
    assert "options" not in attributes(hub, "sensor.plain")


async def test_each_domain_registers_ha_services_when_its_first_entity_arrives(hub: Hub) -> None:
    expected = {
        "cover": {
            "open_cover",
            "close_cover",
            "stop_cover",
            "toggle",
            "set_cover_position",
            "open_cover_tilt",
            "close_cover_tilt",
            "stop_cover_tilt",
            "set_cover_tilt_position",
            "toggle_cover_tilt",
        },
        "valve": {"open_valve", "close_valve", "stop_valve", "set_valve_position", "toggle"},
        "climate": {
            "set_hvac_mode",
            "set_temperature",
            "set_humidity",
            "set_fan_mode",
            "set_preset_mode",
            "set_swing_mode",
            "turn_on",
            "turn_off",
            "toggle",
        },
        "fan": {
            "turn_on",
            "turn_off",
            "toggle",
            "set_percentage",
            "increase_speed",
            "decrease_speed",
            "set_preset_mode",
            "oscillate",
            "set_direction",
        },
        "lock": {"lock", "unlock", "open"},
        "text": {"set_value"},
    }
    assert {domain: set(DOMAIN_SERVICES[domain]) for domain in expected} == expected
    assert "device_tracker" not in DOMAIN_SERVICES
    assert not hub.services.has("cover", "open_cover")
    hub.entities.add(Blind("Blind"), "test")
    assert set(hub.services.services()["cover"]) == expected["cover"]
