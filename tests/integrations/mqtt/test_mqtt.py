"""The MQTT integration end to end, as a user sees it: devices announce themselves with Home
Assistant discovery over a real broker (the embedded one and a real Mosquitto), their states
arrive, commands from the REST API reach them, removal and restarts behave."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from .conftest import Mosquitto, admin_session, broker_port, wait_for

PREFIX = "homeassistant"
KITCHEN = {"ids": ["kitchen01"], "name": "Kitchen node", "mf": "Acme", "mdl": "K1", "sw": "2.1"}



async def announce_kitchen(device: Any) -> None:
    """A sensor, a binary_sensor, a switch and a light, as a typical firmware announces them
    (abbreviated keys, `~`, retained configs, one full device block and the others by id)."""
    await device.publish(f"{PREFIX}/sensor/kitchen01/temp/config", {
        "name": "Temperature", "stat_t": "kitchen01/state", "val_tpl": "{{ value_json.temp }}",
        "unit_of_meas": "°C", "dev_cla": "temperature", "stat_cla": "measurement",
        "uniq_id": "kitchen01_temp", "dev": KITCHEN, "o": {"name": "acme-fw", "sw": "2.1"},
    }, qos=1, retain=True)
    await device.publish(f"{PREFIX}/binary_sensor/kitchen01/door/config", {
        "name": "Door", "stat_t": "kitchen01/state", "val_tpl": "{{ value_json.door }}",
        "dev_cla": "door", "uniq_id": "kitchen01_door", "dev": {"ids": ["kitchen01"]},
    }, qos=1, retain=True)
    await device.publish(f"{PREFIX}/switch/kitchen01/relay/config", {
        "~": "kitchen01/relay", "name": "Relay", "stat_t": "~/state", "cmd_t": "~/set",
        "uniq_id": "kitchen01_relay", "dev": {"ids": ["kitchen01"]},
    }, qos=1, retain=True)
    await device.publish(f"{PREFIX}/light/kitchen01/lamp/config", {
        "~": "kitchen01/lamp", "name": "Lamp", "stat_t": "~/state", "cmd_t": "~/set",
        "uniq_id": "kitchen01_lamp", "dev": {"ids": ["kitchen01"]},
    }, qos=1, retain=True)


KITCHEN_ENTITIES = {
    "sensor.kitchen_node_temperature", "binary_sensor.kitchen_node_door",
    "switch.kitchen_node_relay", "light.kitchen_node_lamp",
}


async def test_a_discovered_device_works_end_to_end(broker: Any, mqtt_hub: Any, devices: Any,
                                                    tmp_path: Path) -> None:
    config_dir = tmp_path / "hub"
    hub = await mqtt_hub(broker, http=True, config_dir=config_dir)
    port = broker_port(hub, broker)
    device = await devices(port, "kitchen01")
    await device.subscribe("kitchen01/+/set")
    await announce_kitchen(device)
    await wait_for(lambda: KITCHEN_ENTITIES <= set(hub.states.entity_ids()), what="4 entities")

    # The device and its entities are in the registries, linked.
    node = hub.devices.get_device([("mqtt", "kitchen01")])
    assert node is not None and (node.name, node.manufacturer, node.model, node.sw_version) == \
        ("Kitchen node", "Acme", "K1", "2.1")
    linked = {e.entity_id for e in hub.entity_registry.entries_for_device(node.id)}
    assert linked == KITCHEN_ENTITIES
    temperature = hub.states.get("sensor.kitchen_node_temperature")
    assert temperature.state == "unknown"
    assert temperature.attributes["unit_of_measurement"] == "°C"
    assert temperature.attributes["friendly_name"] == "Kitchen node Temperature"

    # State updates arrive.
    await device.publish("kitchen01/state", {"temp": 21.5, "door": "ON"})
    await wait_for(lambda: hub.states.get("sensor.kitchen_node_temperature").state == "21.5")
    assert hub.states.get("binary_sensor.kitchen_node_door").state == "on"

    # Turning the switch on from the REST API publishes the command; the state follows the device.
    session, base = await admin_session(hub)
    async with session:
        async with session.post(f"{base}/api/services/switch/turn_on",
                                json={"entity_id": "switch.kitchen_node_relay"}) as response:
            assert response.status == 200
        commands = await wait_for(lambda: device.received("kitchen01/relay/set"), what="command")
        assert commands[0].payload == b"ON"
        assert hub.states.get("switch.kitchen_node_relay").state == "unknown"  # not optimistic
        await device.publish("kitchen01/relay/state", "ON")
        await wait_for(lambda: hub.states.get("switch.kitchen_node_relay").state == "on")
        async with session.post(f"{base}/api/services/light/turn_on",
                                json={"entity_id": "light.kitchen_node_lamp"}) as response:
            assert response.status == 200
        await wait_for(lambda: device.received("kitchen01/lamp/set"), what="light command")

    # The user renames one entity; after a restart every id is the same (the renamed one too).
    hub.entity_registry.update("sensor.kitchen_node_temperature", new_entity_id="sensor.kitchen")
    await hub.stop()
    hub = await mqtt_hub(broker, config_dir=config_dir)
    device.close()
    device = await devices(broker_port(hub, broker), "kitchen01b")
    await announce_kitchen(device)  # devices re-announce when they see the hub's birth message
    expected = KITCHEN_ENTITIES - {"sensor.kitchen_node_temperature"} | {"sensor.kitchen"}
    await wait_for(lambda: expected <= set(hub.states.entity_ids()), what="same ids after restart")
    assert set(hub.states.entity_ids()) == expected

    # An empty payload removes an entity; removing the last one removes the device.
    await device.publish(f"{PREFIX}/light/kitchen01/lamp/config", "", qos=1, retain=True)
    await wait_for(lambda: hub.states.get("light.kitchen_node_lamp") is None, what="light removed")
    assert hub.devices.get_device([("mqtt", "kitchen01")]) is not None
    for topic in ("sensor/kitchen01/temp", "binary_sensor/kitchen01/door", "switch/kitchen01/relay"):
        await device.publish(f"{PREFIX}/{topic}/config", "", qos=1, retain=True)
    await wait_for(lambda: not hub.states.entity_ids(), what="all removed")
    await wait_for(lambda: hub.devices.get_device([("mqtt", "kitchen01")]) is None, what="device removed")


async def test_devices_re_announce_on_the_birth_message(broker: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(broker)
    device = await devices(broker_port(hub, broker), "watcher")
    await device.subscribe(f"{PREFIX}/status")
    await hub.services.call("mqtt", "publish", {"topic": f"{PREFIX}/status", "payload": "online"})
    await wait_for(lambda: device.received(f"{PREFIX}/status"), what="birth message")
    assert device.received(f"{PREFIX}/status")[-1].payload == b"online"


async def test_a_hub_on_an_external_broker_reconnects_and_gets_what_was_published_meanwhile(
        mosquitto: Mosquitto, mqtt_hub: Any, devices: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import integrations.mqtt.connection as connection_module

    # A reconnection delay long enough for the device to publish while the hub is away.
    monkeypatch.setattr(connection_module, "RECONNECT_MIN_SECONDS", 2.0)
    hub = await mqtt_hub(mosquitto, "  sensor:\n    - name: Meter\n      state_topic: meter/total\n"
                                    "      qos: 1\n      availability_topic: meter/status\n")
    device = await devices(mosquitto.port, "meter")
    await device.publish("meter/status", "online", qos=1, retain=True)
    await device.publish("meter/total", "1", qos=1)
    await wait_for(lambda: hub.states.get("sensor.meter").state == "1")

    mosquitto.stop()
    connection = hub.data["mqtt"].connection
    await wait_for(lambda: not connection.connected, what="the hub to notice")
    assert hub.states.get("sensor.meter").state == "unavailable"
    device.close()
    mosquitto.start()
    device = await devices(mosquitto.port, "meter")
    for reading in ("2", "3", "4"):
        await device.publish("meter/total", reading, qos=1)  # acknowledged by Mosquitto: queued for the hub
    assert not connection.connected, "the hub reconnected before the device published"
    seen: list[str] = []
    hub.states.listen("sensor.meter", lambda event: seen.append(event.data["new_state"].state)
                      if event.data["new_state"] else None)
    await wait_for(lambda: connection.connected, timeout=15, what="reconnection")
    await wait_for(lambda: hub.states.get("sensor.meter").state == "4", what="queued QoS 1 messages")
    # Back to its last value once available again, then every queued reading, in order.
    assert [s for s in seen if s != "unavailable"] == ["1", "2", "3", "4"]


async def test_yaml_entities_and_a_broken_one_reported_with_its_line(mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub("embedded", (
        "  sensor:\n"
        "    - name: Outside\n"
        "      state_topic: garden/temp\n"
        "      unit_of_measurement: '°C'\n"
        "    - name: Broken\n"
        "      state_topic: 'garden/#/x'\n"
        "  switch:\n"
        "    - name: Pump\n"
        "      command_topic: garden/pump/set\n"
    ))
    assert hub.states.get("sensor.outside") is not None
    assert hub.states.get("switch.pump").state == "unknown"
    notes = [n["message"] for n in hub.notifications.all()]
    lines = (hub.config_dir / "configuration.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "garden/#/x" in text)
    assert any(f"configuration.yaml:{line}: mqtt sensor[1]" in n for n in notes), notes
    device = await devices(broker_port(hub, "embedded"), "garden")
    await device.subscribe("garden/pump/set")
    await hub.services.call("switch", "turn_on", {"entity_id": "switch.pump"})
    # Optimistic (no state topic): the state follows the command, marked as assumed.
    state = hub.states.get("switch.pump")
    assert state.state == "on" and state.attributes["assumed_state"] is True
    await wait_for(lambda: device.received("garden/pump/set"))


async def test_availability_expiry_and_json_attributes(mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub("embedded", (
        "  sensor:\n"
        "    - name: Any\n      state_topic: a/v\n      availability_mode: any\n"
        "      availability:\n        - topic: a/one\n        - topic: a/two\n"
        "          payload_available: up\n          payload_not_available: down\n"
        "    - name: All\n      state_topic: a/v\n      availability_mode: all\n"
        "      availability:\n        - topic: a/one\n        - topic: a/two\n"
        "          payload_available: up\n          payload_not_available: down\n"
        "    - name: Tmpl\n      state_topic: a/v\n      availability_topic: a/json\n"
        "      availability_template: '{{ value_json.status }}'\n"
        "    - name: Expiring\n      state_topic: a/v\n      expire_after: 1\n"
        "      json_attributes_topic: a/attrs\n"
    ))
    device = await devices(broker_port(hub, "embedded"), "a")
    state = hub.states.get
    assert {state(e).state for e in ("sensor.any", "sensor.all", "sensor.tmpl", "sensor.expiring")} == {"unavailable"}
    await device.publish("a/one", "online")
    await wait_for(lambda: state("sensor.any").state == "unknown")
    assert state("sensor.all").state == "unavailable"
    await device.publish("a/two", "up")
    await wait_for(lambda: state("sensor.all").state == "unknown")
    await device.publish("a/json", {"status": "online"})
    await wait_for(lambda: state("sensor.tmpl").state == "unknown")
    await device.publish("a/attrs", {"battery": 88, "friendly_name": "not allowed"})
    await device.publish("a/v", "7")
    await wait_for(lambda: state("sensor.expiring").state == "7")
    assert state("sensor.expiring").attributes["battery"] == 88
    assert state("sensor.expiring").attributes["friendly_name"] == "Expiring"
    await device.publish("a/one", "offline")
    await wait_for(lambda: state("sensor.all").state == "unavailable")
    assert state("sensor.any").state == "7"
    await wait_for(lambda: state("sensor.expiring").state == "unavailable", timeout=3, what="expiry")


async def test_device_based_discovery_and_migration(mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub("embedded")
    device = await devices(broker_port(hub, "embedded"), "bedroom")
    # An entity announced the old way, then migrated into a device config.
    await device.publish(f"{PREFIX}/sensor/bedroom/hum/config", {
        "name": "Humidity", "stat_t": "bedroom/state", "val_tpl": "{{ value_json.hum }}",
        "uniq_id": "bed_hum", "dev": {"ids": ["bed1"], "name": "Bedroom"}}, retain=True)
    await wait_for(lambda: hub.states.get("sensor.bedroom_humidity"))
    hub.entity_registry.update("sensor.bedroom_humidity", name="Air humidity")
    await device.publish(f"{PREFIX}/sensor/bedroom/hum/config", {"migrate_discovery": True}, retain=True)
    await device.publish(f"{PREFIX}/device/bedroom/config", {
        "dev": {"ids": ["bed1"], "name": "Bedroom"}, "o": {"name": "fw"},
        "stat_t": "bedroom/state", "qos": 1,
        "cmps": {
            "t": {"p": "sensor", "name": "Temperature", "val_tpl": "{{ value_json.t }}",
                  "unit_of_meas": "°C", "uniq_id": "bed_t"},
            "h": {"p": "sensor", "name": "Humidity", "val_tpl": "{{ value_json.hum }}", "uniq_id": "bed_hum"},
            "m": {"p": "binary_sensor", "name": "Motion", "val_tpl": "{{ value_json.m }}", "uniq_id": "bed_m"},
        }}, retain=True)
    await device.publish(f"{PREFIX}/sensor/bedroom/hum/config", "", retain=True)  # clear the old topic
    await wait_for(lambda: hub.states.get("binary_sensor.bedroom_motion"))
    await device.publish("bedroom/state", {"t": 19, "hum": 55, "m": "OFF"})
    await wait_for(lambda: hub.states.get("sensor.bedroom_temperature").state == "19")
    humidity = hub.states.get("sensor.bedroom_humidity")  # kept its id and the user's name
    assert humidity.state == "55" and humidity.attributes["friendly_name"] == "Air humidity"
    # One component removed the documented way: reduced to its platform.
    await device.publish(f"{PREFIX}/device/bedroom/config", {
        "dev": {"ids": ["bed1"]}, "o": {"name": "fw"}, "stat_t": "bedroom/state",
        "cmps": {"t": {"p": "sensor", "name": "Temperature", "val_tpl": "{{ value_json.t }}", "uniq_id": "bed_t"},
                 "h": {"p": "sensor", "name": "Humidity", "val_tpl": "{{ value_json.hum }}", "uniq_id": "bed_hum"},
                 "m": {"p": "binary_sensor"}}}, retain=True)
    await wait_for(lambda: hub.states.get("binary_sensor.bedroom_motion") is None)
    assert hub.states.get("sensor.bedroom_temperature") is not None


async def test_mqtt_publish_service_and_trigger(mqtt_hub: Any, devices: Any) -> None:
    from hub.triggers import trigger_types

    hub = await mqtt_hub("embedded")
    device = await devices(broker_port(hub, "embedded"), "listener")
    await device.subscribe("out/#", qos=1)
    hub.states.set("sensor.level", "42")
    await hub.services.call("mqtt", "publish", {
        "topic": "out/level", "payload": "{{ states('sensor.level') | int + 1 }}", "qos": 1, "retain": True})
    message = (await wait_for(lambda: device.received("out/level")))[0]
    assert (message.payload, message.qos) == (b"43", 1)

    mqtt_trigger = trigger_types(hub)["mqtt"]
    fired: list[dict[str, Any]] = []
    config = mqtt_trigger.schema({"trigger": "mqtt", "topic": "z2m/+/action", "payload": "single",
                                  "value_template": "{{ value_json.action }}"})
    detach = await mqtt_trigger.attach(hub, config, lambda data, ctx: fired.append(data), {"id": "remote"})
    await device.publish("z2m/remote1/action", {"action": "double"})
    await device.publish("z2m/remote1/action", {"action": "single"})
    await device.publish("z2m/remote1/other", {"action": "single"})
    await wait_for(lambda: fired)
    await asyncio.sleep(0.1)
    detach()
    assert [(f["platform"], f["id"], f["topic"], f["payload_json"]) for f in fired] == \
        [("mqtt", "remote", "z2m/remote1/action", {"action": "single"})]
    with pytest.raises(Exception, match="wildcards"):
        await hub.services.call("mqtt", "publish", {"topic": "out/#", "payload": "x"})


@pytest.mark.parametrize("scheme", ["mqtts", "ws"])
async def test_a_hub_reaches_an_external_broker_over_tls_or_websocket(
        scheme: str, mqtt_hub: Any, make_hub: Any, devices: Any, tmp_path: Path) -> None:
    """One hub's embedded broker (TLS and WebSocket listeners) is another hub's external
    broker; the second checks the first's self-signed certificate."""
    import integrations.mqtt as mqtt_integration

    broker_hub = await mqtt_hub("embedded", "    tls_port: 0\n    websocket_port: 0\n",
                                config_dir=tmp_path / "broker")
    ports = broker_hub.data["mqtt"].broker.ports
    cert = tmp_path / "broker" / ".storage" / "mqtt_tls" / "cert.pem"
    url = f"mqtts://127.0.0.1:{ports['mqtts']}" if scheme == "mqtts" else f"ws://127.0.0.1:{ports['ws']}/"
    client_hub = await make_hub(
        f"mqtt:\n  broker: {url}\n  certificate: {cert}\n  discovery: false\n"
        "  sensor:\n    - name: Remote\n      state_topic: remote/value\n",
        plugins=[mqtt_integration], config_dir=tmp_path / "client")
    connection = client_hub.data["mqtt"].connection
    await wait_for(lambda: connection.connected, what=f"{scheme} connection")
    device = await devices(ports["mqtt"], "remote")
    for value in ("1", "2", "3"):
        await device.publish("remote/value", value, qos=1)
    await wait_for(lambda: client_hub.states.get("sensor.remote").state == "3", what="over " + scheme)


async def test_one_device_cannot_remove_or_take_over_anothers_entities(mqtt_hub: Any, devices: Any) -> None:
    """Discovery ids include the node id, and a unique_id already taken (by YAML or another
    device) is refused, never shared."""
    hub = await mqtt_hub("embedded", "  sensor:\n    - name: Yaml\n      unique_id: taken\n"
                                     "      state_topic: yaml/t\n")
    port = broker_port(hub, "embedded")
    alice = await devices(port, "alice")
    bob = await devices(port, "bob")
    await alice.publish(f"{PREFIX}/device/alice/config", {
        "dev": {"ids": ["alice"], "name": "Alice"}, "o": {"name": "fw"},
        "cmps": {"t": {"p": "sensor", "name": "T", "stat_t": "alice/t", "uniq_id": "alice_t"}}})
    await wait_for(lambda: hub.states.get("sensor.alice_t"))
    # bob's own node id, alice's object id: a different discovery topic, not alice's
    await bob.publish(f"{PREFIX}/device/bob/alice/config", b"")
    await bob.publish(f"{PREFIX}/sensor/bob/steal/config",
                      {"name": "Steal", "stat_t": "bob/x", "uniq_id": "alice_t"})
    await bob.publish(f"{PREFIX}/sensor/bob/yaml/config",
                      {"name": "Steal2", "stat_t": "bob/x", "uniq_id": "taken"})
    await bob.publish(f"{PREFIX}/sensor/bob/mine/config", {"name": "Mine", "stat_t": "bob/x", "uniq_id": "bob_1"})
    await wait_for(lambda: hub.states.get("sensor.mine"))
    # ... and a later update cannot switch its unique_id to alice's either.
    await bob.publish(f"{PREFIX}/sensor/bob/mine/config", {"name": "Mine", "stat_t": "bob/x", "uniq_id": "alice_t"})
    await bob.publish("bob/x", "666")
    await alice.publish("alice/t", "20")
    await wait_for(lambda: hub.states.get("sensor.alice_t").state == "20")
    await asyncio.sleep(0.1)
    assert hub.states.get("sensor.alice_t").state == "20"
    assert hub.states.get("sensor.yaml").state == "unknown"
    assert hub.entity_registry.get("sensor.yaml") is not None
    errors = [c.last_error for c in hub.data["mqtt"].diagnostics.discovery_errors.values()]
    assert sum("already used" in e or "taken" in e for e in errors) >= 2, errors


async def test_retained_state_with_expire_after_and_a_second_entity_on_a_shared_topic(
        broker: Any, mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub(broker)
    device = await devices(broker_port(hub, broker), "shared")
    await device.publish("shared/state", {"t": 5, "h": 50}, qos=1, retain=True)
    await device.publish(f"{PREFIX}/sensor/shared/t/config", {
        "name": "T", "stat_t": "shared/state", "val_tpl": "{{ value_json.t }}", "exp_aft": 60,
        "uniq_id": "shared_t"}, qos=1)
    await wait_for(lambda: hub.states.get("sensor.t") is not None and hub.states.get("sensor.t").state == "5",
                   what="the retained state, not unavailable")
    await device.publish(f"{PREFIX}/sensor/shared/h/config", {
        "name": "H", "stat_t": "shared/state", "val_tpl": "{{ value_json.h }}", "uniq_id": "shared_h"}, qos=1)
    await wait_for(lambda: hub.states.get("sensor.h") is not None and hub.states.get("sensor.h").state == "50",
                   what="the retained state for the second entity on the topic")


async def test_external_broker_password_stays_out_of_logs_and_hub_publishes_keep_their_order(
        mosquitto: Mosquitto, mqtt_hub: Any, devices: Any, caplog: pytest.LogCaptureFixture) -> None:
    mosquitto.stop()
    mosquitto.extra_config = f"password_file {mosquitto.directory}/passwd\n"
    import subprocess
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(mosquitto.directory / "passwd"), "hub", "S3cret-pass"],
                   check=True, capture_output=True)
    mosquitto.start()
    with caplog.at_level("DEBUG"):
        hub = await mqtt_hub(mosquitto.url.replace("mqtt://", "mqtt://hub:S3cret-pass@"))
        device = await devices(mosquitto.port, "listener", "hub", "S3cret-pass")
        await device.subscribe("order/#", qos=1)
        for index in range(2000):
            await hub.services.call("mqtt", "publish", {"topic": "order/x", "payload": str(index)})
        await wait_for(lambda: len(device.received("order/x")) == 2000, timeout=20)
    received = [int(m.payload) for m in device.received("order/x")]
    assert received == list(range(2000))
    assert "S3cret-pass" not in caplog.text


async def test_discovery_ids_names_categories_and_forced_updates(mqtt_hub: Any, devices: Any) -> None:
    hub = await mqtt_hub("embedded")
    device = await devices(broker_port(hub, "embedded"), "opts")
    mac = {"cns": [["mac", "AA:BB:CC:00:11:22"]], "name": "Plug", "mf": "Shelly"}
    await device.publish(f"{PREFIX}/sensor/opts/power/config", {
        "name": "Power", "stat_t": "opts/power", "uniq_id": "opts_power", "dev": mac,
        "def_ent_id": "sensor.plug_power_custom", "frc_upd": True, "unit_of_meas": "W"})
    await device.publish(f"{PREFIX}/sensor/opts/legacy/config", {
        "name": "Legacy", "stat_t": "opts/legacy", "uniq_id": "opts_legacy", "obj_id": "old_style_id",
        "dev": {"cns": [["mac", "aa:bb:cc:00:11:22"]]}, "ent_cat": "diagnostic"})
    await device.publish(f"{PREFIX}/sensor/opts/hidden/config", {
        "name": "Hidden", "stat_t": "opts/hidden", "uniq_id": "opts_hidden", "en": False, "dev": mac})
    await wait_for(lambda: hub.states.get("sensor.old_style_id") and hub.states.get("sensor.plug_power_custom")
                   and hub.entity_registry.get("sensor.plug_hidden"), what="three entities")
    # Both share one device by its connection (MAC case does not matter); the hidden one is
    # registered but disabled, as its `enabled_by_default: false` says.
    plug = hub.devices.get_device(connections=[("mac", "aa:bb:cc:00:11:22")])
    entries = {e.entity_id: e for e in hub.entity_registry.entries_for_device(plug.id)}
    assert set(entries) == {"sensor.plug_power_custom", "sensor.old_style_id", "sensor.plug_hidden"}
    assert entries["sensor.plug_hidden"].disabled_by == "integration"
    assert hub.states.get("sensor.plug_hidden") is None
    assert entries["sensor.old_style_id"].entity_category == "diagnostic"
    changes: list[str] = []
    hub.states.listen("sensor.plug_power_custom", lambda event: changes.append(event.data["new_state"].state))
    for _ in range(3):
        await device.publish("opts/power", "7")  # the same value: recorded every time (force_update)
    await wait_for(lambda: len(changes) == 3, what="three forced updates")
