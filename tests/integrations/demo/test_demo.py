"""The demo site a newcomer sees: devices, live values, actions with visible effects."""

from __future__ import annotations

import asyncio

import integrations.demo as demo
from hub.core import EVENT_STATE_CHANGED


async def test_demo_devices_appear_with_their_entities(make_hub) -> None:
    hub = await make_hub("demo:\n  update_interval: 3600\n  seed: 1\n", [demo])
    names = {device.name for device in hub.devices.all()}
    assert {"Weather station", "Power meter", "Heater", "Living room light", "Kitchen light"} <= names
    temperature = hub.states.get("sensor.weather_station_temperature")
    assert temperature.attributes["unit_of_measurement"] == "°C"
    assert temperature.attributes["device_class"] == "temperature"
    assert hub.states.get("light.living_room_light").state == "off"
    assert hub.states.get("switch.heater_power").state == "off"


async def test_values_drift_over_time(make_hub) -> None:
    hub = await make_hub("demo:\n  update_interval: 0.05\n  seed: 2\n", [demo])
    changed: set[str] = set()
    hub.bus.listen(EVENT_STATE_CHANGED, lambda e: changed.add(e.data["entity_id"]))
    for _ in range(100):
        if {"sensor.weather_station_temperature", "sensor.power_meter_power"} <= changed:
            break
        await asyncio.sleep(0.05)
    assert {"sensor.weather_station_temperature", "sensor.power_meter_power"} <= changed


async def test_turning_the_heater_on_raises_the_power_reading(make_hub) -> None:
    hub = await make_hub("demo:\n  update_interval: 0.05\n  seed: 3\n", [demo])
    readings: list[float] = []
    hub.states.listen("sensor.power_meter_power", lambda e: readings.append(float(e.data["new_state"].state)))
    await hub.services.call("switch", "turn_on", target={"entity_id": "switch.heater_power"})
    assert hub.states.get("switch.heater_power").state == "on"
    for _ in range(100):
        if readings and readings[-1] >= 2000:
            break
        await asyncio.sleep(0.05)
    assert readings and readings[-1] >= 2000  # the heater draws 2 kW on top of the base load

    await hub.services.call("button", "press", target={"entity_id": "button.power_meter_reset_energy"})
    assert float(hub.states.get("sensor.power_meter_energy").state) < 0.01


async def test_demo_is_off_unless_configured(make_hub) -> None:
    hub = await make_hub("", [demo])
    assert hub.integrations["demo"].status == "not_loaded"
    assert len(hub.states) == 0


async def test_a_disabled_sensor_does_not_stop_the_others_and_comes_back_when_enabled(
        make_hub, caplog) -> None:
    hub = await make_hub("demo:\n  update_interval: 0.05\n  seed: 4\n", [demo])
    # The temperature is the first sensor the update loop moves.
    disabled = "sensor.weather_station_temperature"
    hub.entity_registry.update(disabled, disabled_by="user")
    changed: set[str] = set()
    hub.bus.listen(EVENT_STATE_CHANGED, lambda e: changed.add(e.data["entity_id"]))
    others = {"sensor.weather_station_humidity", "sensor.power_meter_voltage", "sensor.power_meter_power"}
    for _ in range(100):
        if others <= changed:
            break
        await asyncio.sleep(0.05)
    assert others <= changed
    assert hub.states.get(disabled) is None
    assert "Demo update failed" not in caplog.text

    hub.entity_registry.update(disabled, disabled_by=None)
    values: list[str] = []
    hub.states.listen(disabled, lambda e: values.append(e.data["new_state"].state))
    for _ in range(100):
        if len(values) >= 2:  # back with a state, and updating again
            break
        await asyncio.sleep(0.05)
    assert len(values) >= 2
    assert hub.states.get(disabled).attributes["unit_of_measurement"] == "°C"
