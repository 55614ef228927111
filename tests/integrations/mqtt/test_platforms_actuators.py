"""MQTT covers, valves, climate devices, fans, locks, texts and device trackers, as a user sees
them: a device (a real MQTT client on a real broker) reports its state, the hub shows it as
Home Assistant would, a service call puts the exact payload the device expects on its command
topic, and whatever garbage a device sends is counted in the diagnostics while the last good
state stays.

Each runs on the embedded broker and on Mosquitto. Device state messages are retained, so that
none is lost to a subscription still on its way."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.exceptions import NotSupported, ServiceValidationError

from .conftest import Mosquitto, broker_port, need_mosquitto, wait_for


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Mosquitto]:
    """Each story runs on the embedded broker and on a real Mosquitto."""
    if request.param == "embedded":
        yield "embedded"
        return
    need_mosquitto()
    (directory := tmp_path / "mosquitto").mkdir()
    mosquitto = Mosquitto(directory)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def mqtt_yaml(**platforms: Any) -> str:
    return textwrap.indent(yaml.safe_dump(platforms, sort_keys=False), "  ")


def malformed(hub: Any, entity_id: str) -> int:
    diagnostics = hub.data["mqtt"].diagnostics
    counters = diagnostics.devices.get(diagnostics.device_key(hub.entities.get(entity_id)))
    return counters.malformed if counters else 0


async def shows(hub: Any, entity_id: str, state: str, **attributes: Any) -> Any:
    """Wait until `entity_id` has `state` and `attributes`; return its state."""
    def matches() -> bool:
        current = hub.states.get(entity_id)
        return current is not None and current.state == state and all(
            current.attributes.get(key) == value for key, value in attributes.items())

    try:
        await wait_for(matches, 5)
    except AssertionError:
        current = hub.states.get(entity_id)
        raise AssertionError(f"{entity_id}: wanted {state} {attributes}, have "
                             f"{current and (current.state, dict(current.attributes))}") from None
    return hub.states.get(entity_id)


async def report(device: Any, topic: str, payload: Any) -> None:
    await device.publish(topic, payload, retain=True)


async def rejects(hub: Any, device: Any, entity_id: str, topic: str, payload: Any) -> None:
    """The device sends a payload the entity cannot use: it is counted, the state stays."""
    before, state = malformed(hub, entity_id), hub.states.get(entity_id)
    await device.publish(topic, payload, retain=True)
    await wait_for(lambda: malformed(hub, entity_id) > before, 5, f"{payload!r} counted as malformed")
    after = hub.states.get(entity_id)
    assert (after.state, after.attributes) == (state.state, state.attributes)


async def sent(device: Any, topic: str, count: int = 1) -> list[str]:
    """The payloads the device received on `topic`, once there are `count` of them."""
    await wait_for(lambda: len(device.received(topic)) >= count, 5, f"{count} command(s) on {topic}")
    return [message.payload.decode() for message in device.received(topic)]


async def call(hub: Any, domain: str, service: str, entity_id: str, **data: Any) -> None:
    await hub.services.call(domain, service, {"entity_id": entity_id, **data})


# --- cover -----------------------------------------------------------------------------------


async def test_a_blind_reports_state_position_and_tilt_in_its_own_ranges(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker, mqtt_yaml(cover=[
        {"name": "Blind", "command_topic": "blind/set", "state_topic": "blind/state",
         "position_topic": "blind/position", "position_open": 255,
         "set_position_topic": "blind/position/set",
         "set_position_template": '{"pos": {{ value }}, "pct": {{ position }}}',
         "tilt_command_topic": "blind/tilt/set", "tilt_status_topic": "blind/tilt",
         "tilt_max": 180, "tilt_opened_value": 180, "some_future_option": True},
        # An inverted device (0 is open) that only reports its position.
        {"name": "Shutter", "command_topic": "shutter/set", "position_topic": "shutter/position",
         "position_open": 0, "position_closed": 100},
    ]))
    device = await devices(broker_port(hub, broker), "blind")
    await device.subscribe("blind/#")
    blind = await shows(hub, "cover.blind", "unknown", supported_features=255)
    assert "assumed_state" not in blind.attributes

    await report(device, "blind/state", "opening")
    await shows(hub, "cover.blind", "opening")
    await report(device, "blind/position", "102")  # of 0..255
    await shows(hub, "cover.blind", "opening", current_position=40)
    await report(device, "blind/state", "stopped")  # stopped part-way: open
    await shows(hub, "cover.blind", "open", current_position=40)
    await report(device, "blind/tilt", "90")  # of 0..180
    await shows(hub, "cover.blind", "open", current_tilt_position=50)

    await call(hub, "cover", "open_cover", "cover.blind")
    await call(hub, "cover", "stop_cover", "cover.blind")
    assert await sent(device, "blind/set", 2) == ["OPEN", "STOP"]
    await call(hub, "cover", "set_cover_position", "cover.blind", position=60)
    assert await sent(device, "blind/position/set") == ['{"pos": 153, "pct": 60}']
    await call(hub, "cover", "set_cover_tilt_position", "cover.blind", tilt_position=25)
    await call(hub, "cover", "close_cover_tilt", "cover.blind")
    assert await sent(device, "blind/tilt/set", 2) == ["45", "0"]
    # The blind reports its state: nothing is assumed.
    await shows(hub, "cover.blind", "open", current_position=40, current_tilt_position=50)

    await rejects(hub, device, "cover.blind", "blind/state", "ajar")
    await rejects(hub, device, "cover.blind", "blind/position", "half")
    await rejects(hub, device, "cover.blind", "blind/tilt", "500")  # outside 0..180
    with pytest.raises(ServiceValidationError):
        await call(hub, "cover", "set_cover_position", "cover.blind", position=140)

    await report(device, "shutter/position", "30")
    await shows(hub, "cover.shutter", "open", current_position=70)
    await report(device, "shutter/position", "100")
    await shows(hub, "cover.shutter", "closed", current_position=0)


async def test_a_discovered_garage_door_without_state_is_optimistic(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker)
    device = await devices(broker_port(hub, broker), "garage")
    await device.subscribe("garage/#")
    await device.publish("homeassistant/cover/garage/door/config", {
        "name": "Garage door", "cmd_t": "garage/door/set", "pl_stop": None, "dev_cla": "garage",
        "uniq_id": "garage-door-1", "not_an_option": 5})
    await shows(hub, "cover.garage_door", "unknown", supported_features=3, assumed_state=True,
                device_class="garage")

    await call(hub, "cover", "open_cover", "cover.garage_door")
    await shows(hub, "cover.garage_door", "open")
    await call(hub, "cover", "toggle", "cover.garage_door")
    await shows(hub, "cover.garage_door", "closed")
    assert await sent(device, "garage/door/set", 2) == ["OPEN", "CLOSE"]
    with pytest.raises(NotSupported):  # payload_stop: null
        await call(hub, "cover", "stop_cover", "cover.garage_door")


# --- valve -----------------------------------------------------------------------------------


async def test_valves_report_open_closed_or_a_position(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker, mqtt_yaml(valve=[
        {"name": "Tap", "command_topic": "tap/set", "state_topic": "tap/state", "payload_stop": "STOP"},
        {"name": "Mixer", "command_topic": "mixer/set", "state_topic": "mixer/state",
         "reports_position": True, "command_template": '{"position": {{ value }}}'},
        {"name": "Broken", "command_topic": "broken/set", "reports_position": True, "payload_open": "ON"},
    ]))
    device = await devices(broker_port(hub, broker), "valves")
    await device.subscribe("tap/set")
    await device.subscribe("mixer/set")
    await shows(hub, "valve.tap", "unknown", supported_features=11)  # open, close, stop
    await shows(hub, "valve.mixer", "unknown", supported_features=7)  # open, close, set position
    assert hub.states.get("valve.broken") is None  # invalid: position valves take no payload_open

    await report(device, "tap/state", "opening")
    await shows(hub, "valve.tap", "opening")
    await report(device, "tap/state", {"state": "closed", "flow": 0})
    await shows(hub, "valve.tap", "closed")
    await call(hub, "valve", "open_valve", "valve.tap")
    await call(hub, "valve", "stop_valve", "valve.tap")
    assert await sent(device, "tap/set", 2) == ["OPEN", "STOP"]
    await rejects(hub, device, "valve.tap", "tap/state", "half")
    await rejects(hub, device, "valve.tap", "tap/state", {"flow": 3})  # JSON without a state

    await report(device, "mixer/state", "50")
    await shows(hub, "valve.mixer", "open", current_position=50)
    await report(device, "mixer/state", {"state": "closing", "position": 20})
    await shows(hub, "valve.mixer", "closing", current_position=20)
    await report(device, "mixer/state", "0")
    await shows(hub, "valve.mixer", "closed", current_position=0)
    await call(hub, "valve", "set_valve_position", "valve.mixer", position=60)
    await call(hub, "valve", "open_valve", "valve.mixer")  # a position valve opens to 100
    assert await sent(device, "mixer/set", 2) == ['{"position": 60}', '{"position": 100}']
    await rejects(hub, device, "valve.mixer", "mixer/state", "lots")
    await rejects(hub, device, "valve.mixer", "mixer/state", {"state": "open"})  # no position


# --- climate ---------------------------------------------------------------------------------

LIVING_ROOM = {
    "name": "Living room", "modes": ["off", "heat", "cool"],
    "mode_state_topic": "hvac/mode", "mode_command_topic": "hvac/mode/set",
    "temperature_state_topic": "hvac/state", "temperature_state_template": "{{ value_json.target }}",
    "current_temperature_topic": "hvac/state",
    "current_temperature_template": "{{ value_json.current }}",
    "temperature_command_topic": "hvac/temperature/set", "action_topic": "hvac/action",
    "fan_mode_state_topic": "hvac/fan", "fan_mode_command_topic": "hvac/fan/set",
    "swing_mode_command_topic": "hvac/swing/set",
    "preset_mode_command_topic": "hvac/preset/set", "preset_modes": ["eco", "away"],
    "current_humidity_topic": "hvac/humidity", "target_humidity_command_topic": "hvac/humidity/set",
    "power_command_topic": "hvac/power", "min_temp": 10, "max_temp": 30, "temp_step": 0.5,
    "precision": 0.5,
}


async def test_a_thermostat_shows_what_it_reports_and_follows_what_it_does_not(broker, mqtt_hub,
                                                                              devices):
    hub = await mqtt_hub(broker, mqtt_yaml(climate=[LIVING_ROOM]))
    device = await devices(broker_port(hub, broker), "hvac")
    await device.subscribe("hvac/+/set")
    await device.subscribe("hvac/power")
    entity_id = "climate.living_room"
    start = await shows(hub, entity_id, "unknown", hvac_modes=["off", "heat", "cool"], min_temp=10,
                        max_temp=30, target_temp_step=0.5, preset_modes=["none", "eco", "away"],
                        preset_mode="none", swing_mode="off",
                        fan_modes=["auto", "low", "medium", "high"])
    # target temperature, humidity, fan, preset, swing, turn off, turn on
    assert start.attributes["supported_features"] == 1 | 4 | 8 | 16 | 32 | 128 | 256

    await report(device, "hvac/mode", "heat")
    await shows(hub, entity_id, "heat")
    await report(device, "hvac/state", {"target": 21.5, "current": 19.26})
    await shows(hub, entity_id, "heat", temperature=21.5, current_temperature=19.5)  # halves
    await report(device, "hvac/action", "heating")
    await report(device, "hvac/humidity", "45")
    await shows(hub, entity_id, "heat", hvac_action="heating", current_humidity=45.0)

    await call(hub, "climate", "set_temperature", entity_id, temperature=22)
    await call(hub, "climate", "set_hvac_mode", entity_id, hvac_mode="cool")
    await call(hub, "climate", "set_fan_mode", entity_id, fan_mode="high")
    await call(hub, "climate", "set_swing_mode", entity_id, swing_mode="on")
    await call(hub, "climate", "set_preset_mode", entity_id, preset_mode="eco")
    await call(hub, "climate", "set_humidity", entity_id, humidity=50)
    await call(hub, "climate", "turn_off", entity_id)
    assert await sent(device, "hvac/temperature/set") == ["22.0"]
    assert await sent(device, "hvac/mode/set") == ["cool"]
    assert await sent(device, "hvac/fan/set") == ["high"]
    assert await sent(device, "hvac/swing/set") == ["on"]
    assert await sent(device, "hvac/preset/set") == ["eco"]
    assert await sent(device, "hvac/humidity/set") == ["50"]
    assert await sent(device, "hvac/power") == ["OFF"]
    # What has a state topic waits for the device; the rest follows the commands at once.
    await shows(hub, entity_id, "heat", temperature=21.5, fan_mode=None, swing_mode="on",
                preset_mode="eco", humidity=50)

    await rejects(hub, device, entity_id, "hvac/mode", "turbo")  # not one of the modes
    await rejects(hub, device, entity_id, "hvac/action", "dancing")
    await rejects(hub, device, entity_id, "hvac/fan", "hurricane")
    await rejects(hub, device, entity_id, "hvac/state", {"target": "warm", "current": 19.26})
    with pytest.raises(ServiceValidationError):  # heat_cool is an HVAC mode, but not this one's
        await call(hub, "climate", "set_hvac_mode", entity_id, hvac_mode="heat_cool")
    with pytest.raises(ServiceValidationError):  # above max_temp
        await call(hub, "climate", "set_temperature", entity_id, temperature=35)


async def test_a_discovered_heater_without_state_topics_is_optimistic(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker)
    device = await devices(broker_port(hub, broker), "heater")
    await device.subscribe("heater/#")
    await device.publish("homeassistant/climate/heater/config", {
        "name": "Heater", "mode_cmd_t": "heater/mode", "temp_cmd_t": "heater/temperature",
        "temp_unit": "F", "modes": ["off", "heat"]})
    await shows(hub, "climate.heater", "off", temperature=70, min_temp=45, max_temp=95,
                supported_features=1 | 128 | 256)  # 21, 7 and 35 °C in °F, whole degrees

    await call(hub, "climate", "turn_on", "climate.heater")  # the one mode besides off
    await shows(hub, "climate.heater", "heat")
    await call(hub, "climate", "set_temperature", "climate.heater", temperature=72)
    await shows(hub, "climate.heater", "heat", temperature=72)
    await call(hub, "climate", "turn_off", "climate.heater")
    await shows(hub, "climate.heater", "off")
    assert await sent(device, "heater/mode", 2) == ["heat", "off"]
    assert await sent(device, "heater/temperature") == ["72.0"]


# --- fan -------------------------------------------------------------------------------------


async def test_a_three_speed_fan(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker, mqtt_yaml(fan=[{
        "name": "Ceiling", "command_topic": "fan/set", "state_topic": "fan/state",
        "percentage_command_topic": "fan/speed/set", "percentage_state_topic": "fan/speed",
        "speed_range_min": 1, "speed_range_max": 3,
        "preset_mode_command_topic": "fan/preset/set", "preset_mode_state_topic": "fan/preset",
        "preset_modes": ["breeze", "sleep"],
        "oscillation_command_topic": "fan/oscillation/set", "oscillation_state_topic": "fan/oscillation",
        "direction_command_topic": "fan/direction/set", "direction_state_topic": "fan/direction",
    }]))
    device = await devices(broker_port(hub, broker), "fan")
    await device.subscribe("fan/+/set")
    await device.subscribe("fan/set")
    await shows(hub, "fan.ceiling", "unknown", supported_features=63, oscillating=False,
                percentage_step=100 / 3, preset_modes=["breeze", "sleep"])

    await report(device, "fan/state", "ON")
    await report(device, "fan/speed", "2")
    await report(device, "fan/preset", "sleep")
    await report(device, "fan/oscillation", "oscillate_on")
    await report(device, "fan/direction", "reverse")
    await shows(hub, "fan.ceiling", "on", percentage=66, preset_mode="sleep", oscillating=True,
                direction="reverse")

    await call(hub, "fan", "set_percentage", "fan.ceiling", percentage=50)
    await call(hub, "fan", "turn_on", "fan.ceiling", preset_mode="breeze")
    await call(hub, "fan", "oscillate", "fan.ceiling", oscillating=False)
    await call(hub, "fan", "set_direction", "fan.ceiling", direction="forward")
    await call(hub, "fan", "turn_off", "fan.ceiling")
    assert await sent(device, "fan/speed/set") == ["2"]  # 50 % of three speeds, rounded up
    assert await sent(device, "fan/set", 2) == ["ON", "OFF"]
    assert await sent(device, "fan/preset/set") == ["breeze"]
    assert await sent(device, "fan/oscillation/set") == ["oscillate_off"]
    assert await sent(device, "fan/direction/set") == ["forward"]

    await rejects(hub, device, "fan.ceiling", "fan/speed", "4")  # beyond the top speed
    await rejects(hub, device, "fan.ceiling", "fan/preset", "turbo")
    await rejects(hub, device, "fan.ceiling", "fan/state", "SPINNING")
    await report(device, "fan/speed", "None")
    await shows(hub, "fan.ceiling", "on", percentage=None)


# --- lock ------------------------------------------------------------------------------------


async def test_locks_with_a_code_and_an_optimistic_one(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker, mqtt_yaml(lock=[
        {"name": "Front door", "command_topic": "door/set", "state_topic": "door/state",
         "command_template": '{"action": "{{ value }}", "code": "{{ code }}"}',
         "payload_open": "OPEN", "code_format": r"^\d{4}$"},
        {"name": "Shed", "command_topic": "shed/set"},
    ]))
    device = await devices(broker_port(hub, broker), "locks")
    await device.subscribe("door/set")
    await device.subscribe("shed/set")
    await shows(hub, "lock.front_door", "unknown", supported_features=1, code_format=r"^\d{4}$")

    for payload, state in (("LOCKED", "locked"), ("UNLOCKING", "unlocking"), ("JAMMED", "jammed")):
        await report(device, "door/state", payload)
        await shows(hub, "lock.front_door", state)
    await rejects(hub, device, "lock.front_door", "door/state", "WOBBLY")
    await report(device, "door/state", "None")
    await shows(hub, "lock.front_door", "unknown")

    await call(hub, "lock", "lock", "lock.front_door", code="1234")
    await call(hub, "lock", "open", "lock.front_door", code="1234")
    assert await sent(device, "door/set", 2) == ['{"action": "LOCK", "code": "1234"}',
                                                 '{"action": "OPEN", "code": "1234"}']
    await shows(hub, "lock.front_door", "unknown")  # the door reports its state itself
    with pytest.raises(ServiceValidationError):
        await call(hub, "lock", "unlock", "lock.front_door", code="12")

    await shows(hub, "lock.shed", "unknown", supported_features=0, assumed_state=True)
    await call(hub, "lock", "lock", "lock.shed")
    await shows(hub, "lock.shed", "locked")
    assert await sent(device, "shed/set") == ["LOCK"]
    with pytest.raises(NotSupported):  # no payload_open
        await call(hub, "lock", "open", "lock.shed")


# --- text ------------------------------------------------------------------------------------


async def test_texts_check_length_and_pattern_both_ways(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker, mqtt_yaml(text=[
        {"name": "Greeting", "command_topic": "greeting/set", "state_topic": "greeting/state",
         "max": 10, "pattern": "[a-z ]*"},
        {"name": "Secret", "command_topic": "secret/set", "mode": "password"},
        {"name": "Bad", "command_topic": "bad/set", "min": 5, "max": 5},
    ]))
    device = await devices(broker_port(hub, broker), "texts")
    await device.subscribe("greeting/set")
    await device.subscribe("secret/set")
    await shows(hub, "text.greeting", "unknown", min=0, max=10, pattern="[a-z ]*", mode="text")
    assert hub.states.get("text.bad") is None  # min must be below max

    await report(device, "greeting/state", "hello")
    await shows(hub, "text.greeting", "hello")
    await rejects(hub, device, "text.greeting", "greeting/state", "far too long a greeting")
    await rejects(hub, device, "text.greeting", "greeting/state", "Hello!")
    await call(hub, "text", "set_value", "text.greeting", value="hi there")
    assert await sent(device, "greeting/set") == ["hi there"]
    await shows(hub, "text.greeting", "hello")
    with pytest.raises(ServiceValidationError):
        await call(hub, "text", "set_value", "text.greeting", value="HI")

    await call(hub, "text", "set_value", "text.secret", value="s3cret")
    await shows(hub, "text.secret", "s3cret", mode="password", assumed_state=True)
    assert await sent(device, "secret/set") == ["s3cret"]


# --- device tracker --------------------------------------------------------------------------


async def test_a_phone_reports_zones_and_coordinates(broker, mqtt_hub, devices):
    hub = await mqtt_hub(broker)
    device = await devices(broker_port(hub, broker), "phone")
    await device.publish("homeassistant/device_tracker/phone/config", {
        "name": None, "stat_t": "phone/state", "json_attr_t": "phone/attributes",
        "uniq_id": "phone-1", "dev": {"ids": ["phone-1"], "name": "Anna phone"}})
    entity_id = "device_tracker.anna_phone"
    await shows(hub, entity_id, "unknown", source_type="gps")
    assert hub.entity_registry.get(entity_id).entity_category is None  # not diagnostic, as in HA

    await report(device, "phone/state", "home")
    await shows(hub, entity_id, "home")
    await report(device, "phone/state", "Work")
    await shows(hub, entity_id, "Work")
    # Coordinates replace the zone name; 47 m from the hub's home (0, 0) is home.
    await report(device, "phone/attributes", {"latitude": 0.0003, "longitude": 0.0003,
                                              "gps_accuracy": 10, "battery": 80})
    await shows(hub, entity_id, "home", latitude=0.0003, longitude=0.0003, gps_accuracy=10,
                battery=80)
    await report(device, "phone/attributes", {"latitude": 10.5, "longitude": 10})
    await shows(hub, entity_id, "not_home", latitude=10.5, gps_accuracy=0)
    await rejects(hub, device, entity_id, "phone/attributes", "not json at all")
    await report(device, "phone/state", "None")
    await shows(hub, entity_id, "not_home")  # a reset name: the coordinates still place it

    before = malformed(hub, entity_id)
    await report(device, "phone/attributes", {"latitude": "north", "longitude": 3})
    await shows(hub, entity_id, "unknown")  # bad coordinates reset the location, as in HA
    assert malformed(hub, entity_id) == before + 1
