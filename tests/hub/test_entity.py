"""Entities as a user sees them: states, attributes, services, stable ids, renames."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.core import Context, Hub
from hub.entity import (
    BinarySensorEntity,
    ButtonEntity,
    EventEntity,
    LightEntity,
    NumberEntity,
    SelectEntity,
    SensorEntity,
    SwitchEntity,
    UpdateEntity,
)
from hub.exceptions import ServiceValidationError

DEVICE = {"identifiers": {("test", "dev1")}, "name": "Garden", "manufacturer": "Acme", "model": "G1"}


class Thermometer(SensorEntity):
    def __init__(self, value: float | None = 21.5) -> None:
        self.unique_id = "thermo"
        self.name = "Temperature"
        self.device_info = DEVICE
        self.native_value = value
        self.device_class = "temperature"
        self.unit_of_measurement = "°C"
        self.state_class = "measurement"


class Pump(SwitchEntity):
    def __init__(self) -> None:
        self.unique_id = "pump"
        self.name = "Pump"
        self.device_info = DEVICE
        self.is_on = False

    async def turn_on(self, **kwargs: Any) -> None:
        self.is_on = True
        self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        self.is_on = False
        self.write_state()


class Lamp(LightEntity):
    def __init__(self) -> None:
        self.unique_id = "lamp"
        self.name = "Lamp"
        self.is_on = False
        self.supported_color_modes = {"brightness"}
        self.color_mode = "brightness"
        self.received: dict[str, Any] = {}

    async def turn_on(self, **kwargs: Any) -> None:
        self.received = kwargs
        self.is_on = True
        self.brightness = kwargs.get("brightness", 255)
        self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        self.is_on = False
        self.write_state()


async def test_sensor_state_and_attributes(hub: Hub) -> None:
    entity_id = hub.entities.add(Thermometer(), "test")
    assert entity_id == "sensor.garden_temperature"
    state = hub.states.get(entity_id)
    assert state.state == "21.5"
    assert state.attributes["unit_of_measurement"] == "°C"
    assert state.attributes["device_class"] == "temperature"
    assert state.attributes["state_class"] == "measurement"
    assert state.attributes["friendly_name"] == "Garden Temperature"
    device = hub.devices.get(hub.entities.get(entity_id).device_id)
    assert device.name == "Garden" and device.manufacturer == "Acme"


async def test_unknown_and_unavailable(hub: Hub) -> None:
    sensor = Thermometer(None)
    entity_id = hub.entities.add(sensor, "test")
    assert hub.states.get(entity_id).state == "unknown"
    sensor.set_available(False)
    assert hub.states.get(entity_id).state == "unavailable"
    sensor.native_value = 3
    sensor.set_available(True)
    assert hub.states.get(entity_id).state == "3"


async def test_switch_services_reach_the_entity(hub: Hub) -> None:
    entity_id = hub.entities.add(Pump(), "test")
    await hub.services.call("switch", "turn_on", target={"entity_id": entity_id})
    assert hub.states.get(entity_id).state == "on"
    await hub.services.call("switch", "toggle", {"entity_id": entity_id})
    assert hub.states.get(entity_id).state == "off"


async def test_the_callers_context_reaches_the_state(hub: Hub) -> None:
    entity_id = hub.entities.add(Pump(), "test")
    context = Context(user_id="owner")
    await hub.services.call("switch", "turn_on", target={"entity_id": entity_id}, context=context)
    assert hub.states.get(entity_id).context is context


async def test_service_by_device_target(hub: Hub) -> None:
    pump_id = hub.entities.add(Pump(), "test")
    device_id = hub.entities.get(pump_id).device_id
    await hub.services.call("switch", "turn_on", target={"device_id": device_id})
    assert hub.states.get(pump_id).state == "on"


async def test_light_turn_on_with_brightness_pct_and_bad_values(hub: Hub) -> None:
    lamp = Lamp()
    entity_id = hub.entities.add(lamp, "test")
    await hub.services.call("light", "turn_on", {"brightness_pct": 50}, target={"entity_id": entity_id})
    assert lamp.received == {"brightness": 128}
    state = hub.states.get(entity_id)
    assert state.state == "on" and state.attributes["brightness"] == 128
    with pytest.raises(ServiceValidationError, match="brightness"):
        await hub.services.call("light", "turn_on", {"brightness": 999}, target={"entity_id": entity_id})


async def test_number_select_button_event_update(hub: Hub) -> None:
    class Level(NumberEntity):
        unique_id = "level"
        name = "Level"
        native_value = 1.0
        native_max_value = 10.0

        async def set_native_value(self, value: float) -> None:
            self.native_value = value
            self.write_state()

    class Mode(SelectEntity):
        unique_id = "mode"
        name = "Mode"
        options = ["a", "b", "c"]
        current_option = "a"

        async def select_option(self, option: str) -> None:
            self.current_option = option
            self.write_state()

    class Bell(ButtonEntity):
        unique_id = "bell"
        name = "Bell"
        pressed = 0

        async def press(self) -> None:
            self.pressed += 1

    class Remote(EventEntity):
        unique_id = "remote"
        name = "Remote"
        event_types = ["single", "double"]

    class Firmware(UpdateEntity):
        unique_id = "fw"
        name = "Firmware"
        installed_version = "1.0"
        latest_version = "1.1"

    level, mode, bell, remote, firmware = Level(), Mode(), Bell(), Remote(), Firmware()
    for entity in (level, mode, bell, remote, firmware):
        hub.entities.add(entity, "test")

    await hub.services.call("number", "set_value", {"value": "7.5"}, target={"entity_id": "number.level"})
    assert hub.states.get("number.level").state == "7.5"
    assert hub.states.get("number.level").attributes["max"] == 10.0
    with pytest.raises(ServiceValidationError, match="outside"):
        await hub.services.call("number", "set_value", {"value": 11}, target={"entity_id": "number.level"})

    await hub.services.call("select", "select_next", target={"entity_id": "select.mode"})
    assert hub.states.get("select.mode").state == "b"
    with pytest.raises(ServiceValidationError, match="not an option"):
        await hub.services.call("select", "select_option", {"option": "z"}, target={"entity_id": "select.mode"})

    await hub.services.call("button", "press", target={"entity_id": "button.bell"})
    assert bell.pressed == 1

    remote.trigger_event("double", {"battery": 80})
    state = hub.states.get("event.remote")
    assert state.attributes["event_type"] == "double" and state.attributes["battery"] == 80
    with pytest.raises(ValueError):
        remote.trigger_event("triple")

    assert hub.states.get("update.firmware").state == "on"
    await hub.services.call("update", "skip", target={"entity_id": "update.firmware"})
    assert hub.states.get("update.firmware").state == "off"


async def test_binary_sensor(hub: Hub) -> None:
    class Door(BinarySensorEntity):
        unique_id = "door"
        name = "Door"
        device_class = "door"
        is_on = True

    hub.entities.add(Door(), "test")
    assert hub.states.get("binary_sensor.door").state == "on"


async def test_entity_id_is_stable_across_restarts_and_a_rename_survives(make_hub, tmp_path) -> None:
    config_dir = tmp_path / "site"
    first = await make_hub(config_dir=config_dir)
    entity_id = first.entities.add(Thermometer(), "test")
    first.entity_registry.update(entity_id, new_entity_id="sensor.lawn", name="Lawn temperature")
    assert first.states.get(entity_id) is None
    assert first.states.get("sensor.lawn").attributes["friendly_name"] == "Lawn temperature"
    await first.stop()

    second = await make_hub(config_dir=config_dir)
    assert second.entities.add(Thermometer(), "test") == "sensor.lawn"
    assert second.states.get("sensor.lawn").attributes["friendly_name"] == "Lawn temperature"


async def test_a_disabled_entity_is_not_added(hub: Hub) -> None:
    entity_id = hub.entities.add(Thermometer(), "test")
    hub.entity_registry.update(entity_id, disabled_by="user")
    await hub.tasks.drain(1)
    assert hub.states.get(entity_id) is None
    assert hub.entities.add(Thermometer(), "test") is None


async def test_a_disabled_entity_ignores_updates_until_it_is_enabled_again(hub: Hub) -> None:
    sensor = Thermometer()
    entity_id = hub.entities.add(sensor, "test")
    hub.entity_registry.update(entity_id, disabled_by="user")
    await hub.tasks.drain(1)
    assert hub.entities.get(entity_id) is None
    sensor.native_value = 30.0
    sensor.write_state()  # harmless: an integration's update loop must not stop here
    assert hub.states.get(entity_id) is None

    hub.entity_registry.update(entity_id, disabled_by=None)
    await hub.tasks.drain(1)
    assert hub.entities.get(entity_id) is sensor
    assert hub.states.get(entity_id).state == "30.0"
    sensor.native_value = 31.0
    sensor.write_state()
    assert hub.states.get(entity_id).state == "31.0"


async def test_an_entity_disabled_at_add_comes_when_enabled_under_its_new_id(hub: Hub) -> None:
    entity_id = hub.entities.add(Thermometer(), "test")
    hub.entity_registry.update(entity_id, disabled_by="user")
    await hub.tasks.drain(1)
    pump = Pump()
    pump_id = hub.entities.add(pump, "test")
    hub.entity_registry.update(pump_id, disabled_by="user")
    await hub.tasks.drain(1)

    sensor = Thermometer()
    assert hub.entities.add(sensor, "test") is None
    sensor.write_state()
    assert hub.states.get(entity_id) is None
    hub.entity_registry.update(entity_id, new_entity_id="sensor.lawn")  # renamed while disabled
    hub.entity_registry.update("sensor.lawn", disabled_by=None)
    await hub.tasks.drain(1)
    assert hub.entities.get("sensor.lawn") is sensor
    assert hub.states.get("sensor.lawn").state == "21.5"

    await hub.entities.remove(pump)  # its integration unloads: enabling it brings nothing back
    hub.entity_registry.update(pump_id, disabled_by=None)
    await hub.tasks.drain(1)
    assert hub.entities.get(pump_id) is None and hub.states.get(pump_id) is None


async def test_remove_all_forgets_the_disabled_entities_too(hub: Hub) -> None:
    pump_id = hub.entities.add(Pump(), "test")
    hub.entity_registry.update(pump_id, disabled_by="user")
    thermometer_id = hub.entities.add(Thermometer(), "test")
    await hub.tasks.drain(1)
    await hub.entities.remove_all("test")  # e.g. the integration failed to set up
    assert hub.entities.all("test") == [] and hub.states.get(thermometer_id) is None
    hub.entity_registry.update(pump_id, disabled_by=None)
    await hub.tasks.drain(1)
    assert hub.entities.get(pump_id) is None and hub.states.get(pump_id) is None


async def test_disabling_and_enabling_at_once_leaves_the_entity_on(hub: Hub) -> None:
    class Polling(Thermometer):
        added_count = removed_count = 0

        async def added(self) -> None:
            self.added_count += 1

        async def removing(self) -> None:
            await asyncio.sleep(0.01)
            self.removed_count += 1

    sensor = Polling()
    entity_id = hub.entities.add(sensor, "test")
    hub.entity_registry.update(entity_id, disabled_by="user")
    hub.entity_registry.update(entity_id, disabled_by=None)
    await hub.tasks.drain(1)
    assert (sensor.added_count, sensor.removed_count) == (2, 1)
    assert hub.entities.get(entity_id) is sensor
    assert hub.states.get(entity_id).state == "21.5"


async def test_removing_an_entity_removes_its_state(hub: Hub) -> None:
    sensor = Thermometer()
    entity_id = hub.entities.add(sensor, "test")
    await hub.entities.remove(sensor)
    assert hub.states.get(entity_id) is None
    assert hub.entity_registry.get(entity_id) is not None  # keeps its id for next time


async def test_removing_a_device_takes_its_entities_off_the_hub(hub: Hub) -> None:
    entity_id = hub.entities.add(Thermometer(), "test")
    hub.devices.remove(hub.entities.get(entity_id).device_id)
    await hub.tasks.drain(1)
    assert hub.states.get(entity_id) is None
    assert hub.entities.get(entity_id) is None


async def test_customize_overrides_attributes(make_hub) -> None:
    hub = await make_hub("hub:\n  customize:\n    sensor.garden_temperature:\n      friendly_name: Lawn\n      icon: mdi:grass\n")
    entity_id = hub.entities.add(Thermometer(), "test")
    attributes = hub.states.get(entity_id).attributes
    assert attributes["friendly_name"] == "Lawn" and attributes["icon"] == "mdi:grass"
