"""MQTT lights, as a user sees them: a light configured in YAML or discovered, turned on with
brightness, colours and effects, sends the device exactly what Home Assistant would, and shows
the state the device reports back, in each of the three schemas (basic, json, template)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from .conftest import Device, wait_for

_sync = itertools.count()


async def synced(hub: Any, dev: Device) -> None:
    """Return once the broker has the hub's subscriptions: the hub's own message, sent after
    them on the same connection, has come round to the device."""
    topic = f"sync/{next(_sync)}"
    await dev.subscribe(topic)
    await hub.data["mqtt"].connection.publish(topic, "1")
    await wait_for(lambda: dev.received(topic), what="the hub's subscriptions")


async def commands(dev: Device, count: int, prefix: str) -> list[tuple[str, str]]:
    """Wait for `count` commands under `prefix`, return them all (topic, payload) in order."""
    def got() -> list[tuple[str, str]]:
        return [(m.topic, m.payload.decode()) for m in dev.received() if m.topic.startswith(prefix)]
    await wait_for(lambda: len(got()) >= count, what=f"{count} commands on {prefix}")
    return got()


async def turn_on(hub: Any, entity_id: str, **data: Any) -> None:
    await hub.services.call("light", "turn_on", {"entity_id": entity_id, **data})


def attrs(hub: Any, entity_id: str) -> dict[str, Any]:
    return dict(hub.states.get(entity_id).attributes)


BASIC = """
  light:
    - name: Desk
      command_topic: desk/set
      state_topic: desk/state
      brightness_command_topic: desk/set/bri
      brightness_state_topic: desk/bri
      brightness_scale: 100
      rgb_command_topic: desk/set/rgb
      rgb_state_topic: desk/rgb
      color_temp_command_topic: desk/set/ct
      color_temp_state_topic: desk/ct
      effect_command_topic: desk/set/fx
      effect_list: [rainbow, colorloop]
    - name: Strip
      command_topic: strip/set
      rgb_command_topic: strip/set/rgb
      rgb_command_template: "{{ red }}-{{ green }}-{{ blue }}"
      payload_on: "1"
      unknown_option: ignored
    - name: Dimmer
      command_topic: dimmer/set
      brightness_command_topic: dimmer/set/level
      on_command_type: brightness
"""


async def test_basic_light_commands_and_state(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(mosquitto, BASIC)
    dev = await devices(mosquitto.port, "desk")
    for topic in ("desk/set/#", "strip/set/#", "dimmer/set/#"):
        await dev.subscribe(topic)
    await synced(hub, dev)
    desk = attrs(hub, "light.desk")
    assert hub.states.get("light.desk").state == "unknown"
    assert desk["supported_color_modes"] == ["color_temp", "rgb"]
    assert desk["effect_list"] == ["rainbow", "colorloop"]
    assert (desk["min_color_temp_kelvin"], desk["max_color_temp_kelvin"]) == (2000, 6535)
    assert "assumed_state" not in desk

    # Brightness goes to its own topic, on the device's scale, then the on payload (on_command_type last).
    await turn_on(hub, "light.desk", brightness=128)
    assert await commands(dev, 2, "desk/") == [("desk/set/bri", "50"), ("desk/set", "ON")]
    await turn_on(hub, "light.desk", rgb_color=[255, 0, 0], color_temp_kelvin=2700, effect="rainbow")
    assert (await commands(dev, 6, "desk/"))[2:] == [
        ("desk/set/rgb", "255,0,0"), ("desk/set/ct", "370"), ("desk/set/fx", "rainbow"), ("desk/set", "ON")]
    assert hub.states.get("light.desk").state == "unknown"  # it waits for the device to say

    for topic, payload in (("desk/state", "ON"), ("desk/bri", "50"), ("desk/rgb", "255,0,0")):
        await dev.publish(topic, payload)
    await wait_for(lambda: attrs(hub, "light.desk").get("rgb_color") == [255, 0, 0], what="the colour")
    desk = attrs(hub, "light.desk")
    assert hub.states.get("light.desk").state == "on"
    assert (desk["brightness"], desk["color_mode"], desk["hs_color"], desk["xy_color"]) == \
        (128, "rgb", [0.0, 100.0], [0.701, 0.299])
    await dev.publish("desk/ct", "370")
    await wait_for(lambda: attrs(hub, "light.desk")["color_mode"] == "color_temp")
    assert attrs(hub, "light.desk")["color_temp_kelvin"] == 2702  # 370 mireds
    assert "rgb_color" not in attrs(hub, "light.desk")

    # A light without state topics is optimistic: it shows what was sent.
    strip = attrs(hub, "light.strip")
    assert strip["assumed_state"] is True and strip["supported_color_modes"] == ["rgb"]
    await turn_on(hub, "light.strip", rgb_color=[255, 128, 0], brightness=128)
    assert await commands(dev, 2, "strip/") == [("strip/set/rgb", "128-64-0"), ("strip/set", "1")]
    assert hub.states.get("light.strip").state == "on"
    strip = attrs(hub, "light.strip")
    # As in HA, the colour is remembered unscaled, and that path leaves the brightness unknown.
    assert (strip["brightness"], strip["rgb_color"], strip["color_mode"]) == (None, [255, 128, 0], "rgb")
    # hs is not a mode of this light: HA converts the colour to rgb.
    await turn_on(hub, "light.strip", hs_color=[240, 100])
    # A brightness alone travels in the last colour.
    await turn_on(hub, "light.strip", brightness=128)
    assert (await commands(dev, 6, "strip/"))[2:] == [
        ("strip/set/rgb", "0-0-255"), ("strip/set", "1"), ("strip/set/rgb", "0-0-128"), ("strip/set", "1")]
    assert attrs(hub, "light.strip")["brightness"] == 128
    await hub.services.call("light", "turn_off", {"entity_id": "light.strip"})
    await wait_for(lambda: hub.states.get("light.strip").state == "off")
    assert (await commands(dev, 7, "strip/"))[6] == ("strip/set", "OFF")

    # on_command_type brightness: no on payload, the brightness (last, or full) turns it on.
    await turn_on(hub, "light.dimmer")
    assert await commands(dev, 1, "dimmer/") == [("dimmer/set/level", "255")]
    await turn_on(hub, "light.dimmer", brightness_pct=50)
    assert (await commands(dev, 2, "dimmer/"))[1] == ("dimmer/set/level", "128")
    assert attrs(hub, "light.dimmer")["brightness"] == 128


async def test_basic_light_bad_state_is_counted_and_ignored(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(mosquitto, BASIC)
    dev = await devices(mosquitto.port, "desk")
    await synced(hub, dev)
    await dev.publish("desk/state", "ON")
    await dev.publish("desk/rgb", "0,0,255")
    await wait_for(lambda: attrs(hub, "light.desk").get("rgb_color") == [0, 0, 255])
    for topic, payload in (("desk/state", "MAYBE"), ("desk/rgb", "red"), ("desk/rgb", "1,2"),
                           ("desk/bri", "-4"), ("desk/ct", "warm")):
        await dev.publish(topic, payload)
    diagnostics = hub.data["mqtt"].diagnostics
    key = hub.entities.get("light.desk").entity_id
    await wait_for(lambda: key in diagnostics.devices and diagnostics.devices[key].malformed == 5,
                   what="five malformed payloads")
    assert hub.states.get("light.desk").state == "on"
    assert attrs(hub, "light.desk")["rgb_color"] == [0, 0, 255]
    await dev.publish("desk/state", "OFF")  # the light still listens
    await wait_for(lambda: hub.states.get("light.desk").state == "off")


def bulb_config(**extra: Any) -> dict[str, Any]:
    return {"~": "zb/bulb", "schema": "json", "name": "Bulb", "cmd_t": "~/set", "stat_t": "~",
            "sup_clrm": ["color_temp", "xy"], "bri_scl": 254, "effect": True, "fx_list": ["blink"],
            "uniq_id": "bulb1", "dev": {"ids": ["bulb1"], "name": "Bulb"}, **extra}


async def test_json_light_discovered(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(mosquitto)
    dev = await devices(mosquitto.port, "bulb")
    await dev.subscribe("zb/bulb/set")
    await dev.publish("homeassistant/light/bulb/light/config", bulb_config())
    await wait_for(lambda: hub.states.get("light.bulb"), what="the discovered light")
    await synced(hub, dev)
    bulb = attrs(hub, "light.bulb")
    assert bulb["supported_color_modes"] == ["color_temp", "xy"]
    assert bulb["supported_features"] == 4 | 8 | 32  # effect, flash, transition
    assert bulb["effect_list"] == ["blink"]

    await turn_on(hub, "light.bulb", brightness=128, transition=2)
    await turn_on(hub, "light.bulb", color_temp_kelvin=4000)
    await turn_on(hub, "light.bulb", hs_color=[0, 100])  # an xy light: HA sends xy
    await turn_on(hub, "light.bulb", effect="blink")
    await hub.services.call("light", "turn_off", {"entity_id": "light.bulb"})
    sent = [json.loads(payload) for _, payload in await commands(dev, 5, "zb/bulb/set")]
    assert sent == [
        {"state": "ON", "brightness": 127, "transition": 2.0},
        {"state": "ON", "color_temp": 250},
        {"state": "ON", "color": {"x": 0.701, "y": 0.299}},
        {"state": "ON", "effect": "blink"},
        {"state": "OFF"},
    ]

    await dev.publish("zb/bulb", {"state": "ON", "brightness": 254, "color_mode": "xy",
                            "color": {"x": 0.701, "y": 0.299}, "effect": "blink"})
    await wait_for(lambda: hub.states.get("light.bulb").state == "on")
    bulb = attrs(hub, "light.bulb")
    assert (bulb["brightness"], bulb["color_mode"], bulb["xy_color"], bulb["rgb_color"], bulb["effect"]) == \
        (255, "xy", [0.701, 0.299], [255, 0, 0], "blink")
    await dev.publish("zb/bulb", {"state": "ON", "color_mode": "color_temp", "color_temp": 250})
    await wait_for(lambda: attrs(hub, "light.bulb")["color_mode"] == "color_temp")
    assert attrs(hub, "light.bulb")["color_temp_kelvin"] == 4000

    # Garbage: nothing changes; half-usable: the usable part applies; both are counted.
    device_id = hub.devices.get_device([("mqtt", "bulb1")]).id
    await dev.publish("zb/bulb", "{not json")
    await dev.publish("zb/bulb", [1, 2])
    await dev.publish("zb/bulb", {"brightness": 3})
    await dev.publish("zb/bulb", {"state": "OFF", "color_mode": "hs", "color": {"h": 1, "s": 2}})
    counters = hub.data["mqtt"].diagnostics.devices
    await wait_for(lambda: counters[device_id].malformed == 4, what="four malformed payloads")
    assert "supported_color_modes" in counters[device_id].last_error
    assert hub.states.get("light.bulb").state == "off"  # the usable part of the last one
    await dev.publish("zb/bulb", {"state": "ON"})
    await wait_for(lambda: hub.states.get("light.bulb").state == "on")


async def test_json_light_optimistic_rgb_carries_brightness(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    yaml = ("  light:\n    - name: Lamp\n      schema: json\n      command_topic: lamp/set\n"
            "      supported_color_modes: [rgb]\n      color_temp_kelvin: true\n")
    hub = await mqtt_hub(mosquitto, yaml)
    dev = await devices(mosquitto.port, "lamp")
    await dev.subscribe("lamp/set")
    await synced(hub, dev)
    assert attrs(hub, "light.lamp")["assumed_state"] is True
    # Without `brightness: true`, HA scales the colour by the brightness and sends no brightness.
    await turn_on(hub, "light.lamp", rgb_color=[255, 0, 0], brightness=51)
    assert json.loads((await commands(dev, 1, "lamp/set"))[0][1]) == {"state": "ON", "color": {"r": 51, "g": 0, "b": 0}}
    lamp = attrs(hub, "light.lamp")
    assert hub.states.get("light.lamp").state == "on"
    assert (lamp["color_mode"], lamp["rgb_color"]) == ("rgb", [51, 0, 0])
    await turn_on(hub, "light.lamp", brightness=0)  # HA: brightness 0 turns the light off
    assert json.loads((await commands(dev, 2, "lamp/set"))[1][1]) == {"state": "OFF"}
    assert hub.states.get("light.lamp").state == "off"


TEMPLATE = """
  light:
    - name: Lamp
      schema: template
      command_topic: lamp/set
      state_topic: lamp/state
      command_on_template: >-
        on{% if brightness is defined %},{{ brightness }}{% endif %}{% if red is defined
        %},{{ red }}-{{ green }}-{{ blue }},{{ hue }}/{{ sat }}{% endif %}{% if color_temp is defined
        %},ct{{ color_temp }}{% endif %}{% if effect is defined %},{{ effect }}{% endif %}
      command_off_template: "off{% if transition is defined %},{{ transition }}{% endif %}"
      state_template: "{{ value_json.state }}"
      brightness_template: "{{ value_json.brightness }}"
      color_temp_template: "{{ value_json.ct }}"
      red_template: "{{ value_json.rgb[0] }}"
      green_template: "{{ value_json.rgb[1] }}"
      blue_template: "{{ value_json.rgb[2] }}"
      effect_template: "{{ value_json.effect }}"
      effect_list: [candle, fire]
"""


async def test_template_light(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(mosquitto, TEMPLATE)
    dev = await devices(mosquitto.port, "lamp")
    await dev.subscribe("lamp/set")
    await synced(hub, dev)
    lamp = attrs(hub, "light.lamp")
    assert lamp["supported_color_modes"] == ["color_temp", "hs"]
    assert "assumed_state" not in lamp

    await turn_on(hub, "light.lamp", brightness=100)
    await turn_on(hub, "light.lamp", hs_color=[120, 50])  # with a brightness template: full scale
    await turn_on(hub, "light.lamp", rgb_color=[255, 0, 0])  # an hs light: HA sends hs
    await turn_on(hub, "light.lamp", color_temp_kelvin=2500, effect="candle")
    await hub.services.call("light", "turn_off", {"entity_id": "light.lamp", "transition": 3})
    assert [p for _, p in await commands(dev, 5, "lamp/set")] == [
        "on,100", "on,127-255-127,120.0/50.0", "on,255-0-0,0.0/100.0", "on,ct400,candle", "off,3.0"]

    await dev.publish("lamp/state", {"state": "on", "brightness": 200, "ct": 400, "rgb": [0, 0, 255],
                               "effect": "fire"})
    await wait_for(lambda: hub.states.get("light.lamp").state == "on")
    lamp = attrs(hub, "light.lamp")
    assert (lamp["brightness"], lamp["color_mode"], lamp["hs_color"], lamp["effect"]) == \
        (200, "hs", [240.0, 100.0], "fire")
    await dev.publish("lamp/state", {"state": "on", "brightness": 200, "ct": 400, "rgb": [0, 0, 255],
                               "effect": "disco"})
    device = hub.entities.get("light.lamp").entity_id
    counters = hub.data["mqtt"].diagnostics.devices
    await wait_for(lambda: device in counters and counters[device].malformed == 1)
    assert "disco" in counters[device].last_error
    assert attrs(hub, "light.lamp")["effect"] == "fire"


async def test_discovery_update_changes_the_schema(mosquitto: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(mosquitto)
    dev = await devices(mosquitto.port, "bulb")
    await dev.subscribe("zb/bulb/set")
    config = {"name": "Bulb", "cmd_t": "zb/bulb/set", "bri_cmd_t": "zb/bulb/set", "uniq_id": "bulb1"}
    await dev.publish("homeassistant/light/bulb/light/config", config)
    await wait_for(lambda: hub.states.get("light.bulb"), what="the discovered light")
    assert attrs(hub, "light.bulb")["supported_color_modes"] == ["brightness"]
    await dev.publish("homeassistant/light/bulb/light/config",
                      {**config, "schema": "json", "sup_clrm": ["hs"], "stat_t": "zb/bulb"})
    await wait_for(lambda: attrs(hub, "light.bulb")["supported_color_modes"] == ["hs"])
    await synced(hub, dev)
    await turn_on(hub, "light.bulb", hs_color=[60, 50])
    assert json.loads((await commands(dev, 1, "zb/bulb/set"))[0][1]) == \
        {"state": "ON", "color": {"h": 60.0, "s": 50.0}}
    await dev.publish("zb/bulb", {"state": "ON", "color_mode": "hs", "color": {"h": 60, "s": 50}})
    await wait_for(lambda: attrs(hub, "light.bulb").get("hs_color") == [60.0, 50.0])
