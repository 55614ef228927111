"""MQTT numbers, selects, buttons, events and updates, as a user sees them: what the device
receives when the user acts, what the hub shows when the device reports, and that a device
sending something unusable changes nothing but its malformed count."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest

from hub.exceptions import NotSupported, ServiceValidationError

from .conftest import Device, wait_for

_sync = itertools.count()


async def synced(hub: Any, dev: Device) -> None:
    """Return once the broker has the hub's subscriptions: the hub's own message, sent after
    them on the same connection, has come round to the device."""
    topic = f"sync/{next(_sync)}"
    await dev.subscribe(topic)
    await hub.data["mqtt"].connection.publish(topic, "1")
    await wait_for(lambda: dev.received(topic), what="the hub's subscriptions")


async def discover(hub: Any, dev: Device, component: str, node: str, config: dict[str, Any],
                   entity_id: str) -> None:
    await dev.publish(f"homeassistant/{component}/{node}/config", config)
    await wait_for(lambda: hub.states.get(entity_id), what=entity_id)
    await synced(hub, dev)


def payloads(dev: Device, topic: str) -> list[str]:
    return [m.payload.decode() for m in dev.received(topic)]


def state(hub: Any, entity_id: str) -> str:
    return hub.states.get(entity_id).state


def malformed(hub: Any, device: str) -> int:
    counters = hub.data["mqtt"].diagnostics.devices
    key = hub.devices.get_device([("mqtt", device)]).id
    return counters[key].malformed if key in counters else 0


async def test_number(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(mosquitto, "  number:\n    - name: Volume\n      command_topic: amp/volume/set\n")
    dev = await devices(mosquitto.port, "thermo")
    await dev.subscribe("thermo/target/set")
    await dev.subscribe("amp/volume/set")
    await discover(hub, dev, "number", "thermo/target", {
        "name": "Target", "cmd_t": "thermo/target/set", "stat_t": "thermo/target", "min": 5, "max": 30,
        "step": 0.5, "mode": "slider", "unit_of_meas": "°C", "dev_cla": "temperature",
        "cmd_tpl": '{"target": {{ value }}}', "uniq_id": "thermo_target",
        "dev": {"ids": ["thermo"], "name": "Thermo"}}, "number.thermo_target")
    attrs = hub.states.get("number.thermo_target").attributes
    assert (attrs["min"], attrs["max"], attrs["step"], attrs["mode"]) == (5, 30, 0.5, "slider")
    assert (attrs["unit_of_measurement"], attrs["device_class"]) == ("°C", "temperature")

    for value in (21, 21.5):
        await hub.services.call("number", "set_value", {"entity_id": "number.thermo_target", "value": value})
    await wait_for(lambda: len(dev.received("thermo/target/set")) == 2)
    assert payloads(dev, "thermo/target/set") == ['{"target": 21}', '{"target": 21.5}']  # 21, not 21.0
    assert state(hub, "number.thermo_target") == "unknown"  # until the device reports
    with pytest.raises(ServiceValidationError):
        await hub.services.call("number", "set_value", {"entity_id": "number.thermo_target", "value": 31})

    await dev.publish("thermo/target", "21.5")
    await wait_for(lambda: state(hub, "number.thermo_target") == "21.5")
    await dev.publish("thermo/target", "35")  # out of range
    await dev.publish("thermo/target", "warm")
    await wait_for(lambda: malformed(hub, "thermo") == 2, what="two malformed payloads")
    assert state(hub, "number.thermo_target") == "21.5"
    await dev.publish("thermo/target", "None")  # payload_reset
    await wait_for(lambda: state(hub, "number.thermo_target") == "unknown")

    # Without a state topic the number is optimistic.
    await hub.services.call("number", "set_value", {"entity_id": "number.volume", "value": 40})
    assert state(hub, "number.volume") == "40"
    assert hub.states.get("number.volume").attributes["assumed_state"] is True
    await wait_for(lambda: payloads(dev, "amp/volume/set") == ["40"])


async def test_select(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    yaml = ("  select:\n    - name: Heating\n      command_topic: heat/mode/set\n"
            "      state_topic: heat/mode\n      options: [eco, comfort, boost]\n"
            "      command_template: '{\"mode\": \"{{ value }}\"}'\n"
            "      device: {identifiers: [heat], name: Boiler}\n")
    hub = await mqtt_hub(mosquitto, yaml)
    dev = await devices(mosquitto.port, "heat")
    await dev.subscribe("heat/mode/set")
    await dev.subscribe("fan/mode/set")
    await discover(hub, dev, "select", "fan/mode", {
        "name": "Mode", "cmd_t": "fan/mode/set", "ops": ["low", "high"], "uniq_id": "fan_mode"},
        "select.mode")
    assert hub.states.get("select.boiler_heating").attributes["options"] == ["eco", "comfort", "boost"]

    await hub.services.call("select", "select_option", {"entity_id": "select.boiler_heating", "option": "comfort"})
    await wait_for(lambda: payloads(dev, "heat/mode/set") == ['{"mode": "comfort"}'])
    with pytest.raises(ServiceValidationError):
        await hub.services.call("select", "select_option", {"entity_id": "select.boiler_heating", "option": "max"})
    await dev.publish("heat/mode", "boost")
    await wait_for(lambda: state(hub, "select.boiler_heating") == "boost")
    await dev.publish("heat/mode", "turbo")
    await wait_for(lambda: malformed(hub, "heat") == 1)
    assert state(hub, "select.boiler_heating") == "boost"
    await dev.publish("heat/mode", "None")
    await wait_for(lambda: state(hub, "select.boiler_heating") == "unknown")

    await hub.services.call("select", "select_option", {"entity_id": "select.mode", "option": "high"})
    assert state(hub, "select.mode") == "high"
    assert hub.states.get("select.mode").attributes["assumed_state"] is True
    await wait_for(lambda: payloads(dev, "fan/mode/set") == ["high"])


async def test_button(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    yaml = ("  button:\n    - name: Doorbell chime\n      command_topic: chime/set\n"
            "      command_template: '{\"action\": \"{{ value | lower }}\"}'\n")
    hub = await mqtt_hub(mosquitto, yaml)
    dev = await devices(mosquitto.port, "plug")
    await dev.subscribe("plug/restart")
    await dev.subscribe("chime/set")
    await discover(hub, dev, "button", "plug/restart", {
        "name": "Restart", "cmd_t": "plug/restart", "pl_prs": "REBOOT", "dev_cla": "restart",
        "uniq_id": "plug_restart", "dev": {"ids": ["plug"], "name": "Plug"}}, "button.plug_restart")
    assert state(hub, "button.plug_restart") == "unknown"
    await hub.services.call("button", "press", {"entity_id": "button.plug_restart"})
    await wait_for(lambda: payloads(dev, "plug/restart") == ["REBOOT"])
    pressed = datetime.fromisoformat(state(hub, "button.plug_restart"))
    assert pressed.tzinfo is not None
    assert hub.states.get("button.plug_restart").attributes["device_class"] == "restart"
    await hub.services.call("button", "press", {"entity_id": "button.doorbell_chime"})
    await wait_for(lambda: payloads(dev, "chime/set") == ['{"action": "press"}'])


async def test_event(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    yaml = ("  event:\n    - name: Knob\n      state_topic: knob/action\n      event_types: [turn]\n"
            "      value_template: '{\"event_type\": \"{{ value_json.action }}\", \"by\": {{ value_json.step }}}'\n")
    hub = await mqtt_hub(mosquitto, yaml)
    dev = await devices(mosquitto.port, "remote")
    # A retained event is an old one, replayed when the hub subscribes: not a new press.
    await dev.publish("remote/action", {"event_type": "hold"}, retain=True)
    await discover(hub, dev, "event", "remote/action", {
        "name": "Button", "stat_t": "remote/action", "evt_typ": ["press", "hold"], "dev_cla": "button",
        "uniq_id": "remote_button", "dev": {"ids": ["remote"], "name": "Remote"}}, "event.remote_button")
    attrs = hub.states.get("event.remote_button").attributes
    assert state(hub, "event.remote_button") == "unknown"
    assert attrs["event_types"] == ["press", "hold"] and attrs["device_class"] == "button"

    await dev.publish("remote/action", {"event_type": "press", "button": 1})
    await wait_for(lambda: state(hub, "event.remote_button") != "unknown")
    fired = state(hub, "event.remote_button")
    assert datetime.fromisoformat(fired).tzinfo is not None
    attrs = hub.states.get("event.remote_button").attributes
    assert (attrs["event_type"], attrs["button"]) == ("press", 1)
    await dev.publish("remote/action", {"event_type": "spin"})  # not one of event_types
    await dev.publish("remote/action", "clicked")  # not JSON
    await dev.publish("remote/action", {"button": 2})  # no event_type
    await wait_for(lambda: malformed(hub, "remote") == 3, what="three malformed payloads")
    assert state(hub, "event.remote_button") == fired

    await dev.publish("knob/action", {"action": "turn", "step": 3})
    await wait_for(lambda: hub.states.get("event.knob").attributes.get("by") == 3)
    assert hub.states.get("event.knob").attributes["event_type"] == "turn"


async def test_update(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(mosquitto, "  update:\n    - name: Bridge\n      state_topic: bridge/version\n")
    dev = await devices(mosquitto.port, "plug")
    await dev.subscribe("plug/fw/install")
    await discover(hub, dev, "update", "plug/fw", {
        "name": "Firmware", "stat_t": "plug/fw", "l_ver_t": "plug/fw/latest", "cmd_t": "plug/fw/install",
        "pl_inst": "go", "title": "Plug firmware", "uniq_id": "plug_fw",
        "dev": {"ids": ["plug"], "name": "Plug"}}, "update.plug_firmware")
    entity = "update.plug_firmware"
    assert state(hub, entity) == "unknown"
    assert hub.states.get(entity).attributes["supported_features"] == 1  # install

    await dev.publish("plug/fw", {"installed_version": "1.0.0", "latest_version": "1.1.0",
                                  "release_summary": "Fixes", "release_url": "https://example.com/1.1"})
    await wait_for(lambda: state(hub, entity) == "on")
    attrs = hub.states.get(entity).attributes
    assert (attrs["installed_version"], attrs["latest_version"], attrs["title"], attrs["release_summary"],
            attrs["release_url"], attrs["in_progress"]) == \
        ("1.0.0", "1.1.0", "Plug firmware", "Fixes", "https://example.com/1.1", False)
    await dev.publish("plug/fw/latest", "1.2.0")
    await wait_for(lambda: hub.states.get(entity).attributes["latest_version"] == "1.2.0")

    await hub.services.call("update", "install", {"entity_id": entity})
    await wait_for(lambda: payloads(dev, "plug/fw/install") == ["go"])
    with pytest.raises(NotSupported):
        await hub.services.call("update", "install", {"entity_id": entity, "version": "1.1.0"})
    await dev.publish("plug/fw", {"update_percentage": 40})
    await wait_for(lambda: hub.states.get(entity).attributes["update_percentage"] == 40)
    assert hub.states.get(entity).attributes["in_progress"] is True

    await dev.publish("plug/fw", {"installed_version": "1.3.0", "colour": "red"})  # unknown key: all ignored
    await dev.publish("plug/fw", {"update_percentage": 140})
    await wait_for(lambda: malformed(hub, "plug") == 2, what="two malformed payloads")
    assert hub.states.get(entity).attributes["installed_version"] == "1.0.0"
    await dev.publish("plug/fw", "1.2.0")  # a plain version: the installed one
    await wait_for(lambda: state(hub, entity) == "off")

    await dev.publish("bridge/version", "2.0")
    await wait_for(lambda: hub.states.get("update.bridge").attributes["installed_version"] == "2.0")
    assert hub.states.get("update.bridge").attributes["supported_features"] == 0
    with pytest.raises(NotSupported):
        await hub.services.call("update", "install", {"entity_id": "update.bridge"})
