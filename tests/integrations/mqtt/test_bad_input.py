"""Whatever devices send, the hub keeps going: each bad message is counted for its device,
logged once, and never disturbs other devices."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from .conftest import broker_port, wait_for

PREFIX = "homeassistant"



def sensor_config(node: str, **extra: Any) -> dict[str, Any]:
    return {"name": "Value", "stat_t": f"{node}/state", "uniq_id": f"{node}_value",
            "dev": {"ids": [node], "name": node}, **extra}


async def test_bad_devices_are_counted_logged_once_and_harm_no_one(
        broker: Any, mqtt_hub: Any, devices: Any, caplog: pytest.LogCaptureFixture) -> None:
    hub = await mqtt_hub(broker)
    port = broker_port(hub, broker)
    good = await devices(port, "good")
    bad = await devices(port, "bad")
    await good.publish(f"{PREFIX}/sensor/good/value/config", sensor_config("good", unit_of_meas="W"))
    await bad.publish(f"{PREFIX}/sensor/numeric/value/config", sensor_config("numeric", unit_of_meas="W"))
    await bad.publish(f"{PREFIX}/sensor/tmpl/value/config",
                sensor_config("tmpl", val_tpl="{{ value_json.w / 0 }}"))
    await bad.publish(f"{PREFIX}/sensor/broken/value/config", b"{not json")
    await bad.publish(f"{PREFIX}/vacuum/bad/robot/config", {"name": "Robot", "cmd_t": "r/set"})
    await bad.publish(f"{PREFIX}/sensor/bad/invalid/config", {"name": "No topic", "stat_t": "a/#/b"})
    await bad.publish(f"{PREFIX}/sensor/bad/list/config", [1, 2, 3])
    await wait_for(lambda: {"sensor.good_value", "sensor.numeric_value", "sensor.tmpl_value"}
                   <= set(hub.states.entity_ids()), what="the valid sensors")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="integrations.mqtt"):
        for _ in range(5):
            await bad.publish("numeric/state", "twelve")  # text on a numeric sensor
            await bad.publish("tmpl/state", '{"w": 3}')  # a template that raises
        await good.publish("good/state", "42")
        await wait_for(lambda: hub.states.get("sensor.good_value").state == "42")
        diagnostics = hub.data["mqtt"].diagnostics
        numeric = hub.devices.get_device([("mqtt", "numeric")]).id
        tmpl = hub.devices.get_device([("mqtt", "tmpl")]).id
        await wait_for(lambda: diagnostics.devices[numeric].malformed == 5
                       and diagnostics.devices[tmpl].malformed == 5, what="malformed counts")
    assert hub.states.get("sensor.numeric_value").state == "unknown"
    assert "not numeric" in diagnostics.devices[numeric].last_error
    assert "division by zero" in diagnostics.devices[tmpl].last_error
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("numeric/state" in w for w in warnings) == 1, warnings  # once per device
    assert sum("tmpl/state" in w for w in warnings) == 1, warnings
    errors = {key: c.last_error for key, c in diagnostics.discovery_errors.items()}
    assert any("invalid JSON" in e for e in errors.values()), errors
    assert any("'vacuum' is not supported" in e for e in errors.values()), errors
    assert any("a/#/b" in e or "wildcard" in e or "'#'" in e for e in errors.values()), errors
    assert any("JSON object" in e for e in errors.values()), errors
    assert diagnostics.devices[hub.devices.get_device([("mqtt", "good")]).id].malformed == 0


async def test_odd_topics_and_big_payloads(broker: Any, mqtt_hub: Any, devices: Any) -> None:
    odd = ["dev/ünï cödé/🌡", "/leading/slash", "double//slash", "x" * 2000, "trailing/"]
    yaml = "  sensor:\n" + "".join(
        f"    - name: Odd {index}\n      state_topic: \"{topic}\"\n" for index, topic in enumerate(odd))
    yaml += "    - name: Big\n      state_topic: big/state\n"
    hub = await mqtt_hub(broker, yaml)
    device = await devices(broker_port(hub, broker), "odd")
    for index, topic in enumerate(odd):
        await device.publish(topic, f"v{index}")
    for index in range(len(odd)):
        await wait_for(lambda i=index: hub.states.get(f"sensor.odd_{i}").state == f"v{i}", what=f"odd {index}")
    await device.publish("big/state", "ok")
    await wait_for(lambda: hub.states.get("sensor.big").state == "ok")
    await device.publish("big/state", b"x" * (1024 * 1024 + 1), qos=1)  # 1 MB
    await device.publish("big/state", "after")
    await wait_for(lambda: hub.states.get("sensor.big").state == "after", what="the hub to go on")
    runtime = hub.data["mqtt"]
    if runtime.broker is not None:  # the embedded broker refuses it before the hub sees it
        stats = {c["client_id"]: c for c in runtime.broker.clients()}
        assert stats["odd"]["dropped_oversize"] == 1
    else:
        counters = runtime.diagnostics.devices["sensor.big"]
        assert counters.malformed == 1 and "over the limit" in counters.last_error


async def test_a_flooding_client_is_limited_and_others_still_get_through(mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub("embedded", "    max_messages_per_second: 200\n"
                                     "  sensor:\n    - name: Calm\n      state_topic: calm/state\n")
    port = broker_port(hub, "embedded")
    flood = await devices(port, "flood")
    calm = await devices(port, "calm")
    for index in range(3000):
        flood.client.publish("flood/state", str(index))
    await calm.publish("calm/state", "still here", qos=1)
    await wait_for(lambda: hub.states.get("sensor.calm").state == "still here")
    stats = {c["client_id"]: c for c in hub.data["mqtt"].broker.clients()}
    await wait_for(lambda: {c["client_id"]: c for c in hub.data["mqtt"].broker.clients()}["flood"]
                   ["dropped_rate"] > 0, what="the flood to be limited")
    stats = {c["client_id"]: c for c in hub.data["mqtt"].broker.clients()}
    assert stats["calm"]["dropped_rate"] == 0
