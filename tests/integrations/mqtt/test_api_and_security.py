"""Per-device credentials and ACLs as a user sets them up (CLI and REST API), and the MQTT
diagnostics API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import integrations.mqtt as mqtt_integration

from .conftest import HTTP_CONFIG, Device, admin_session, wait_for

SECURE = "mqtt:\n  embedded_broker:\n    host: 127.0.0.1\n    port: 0\n"
HUB = [sys.executable, "-m", "hub.cli"]


def add_credential(config_dir: Path, name: str, *extra: str) -> str:
    """`hub mqtt user add` as a user runs it: the password is the last line of its output."""
    result = subprocess.run([*HUB, "mqtt", "user", "add", name, "-c", str(config_dir), *extra],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stderr == "" or "Traceback" not in result.stderr
    return result.stdout.strip().splitlines()[-1]


async def test_a_credential_may_only_use_its_own_topics(make_hub: Any, devices: Any, tmp_path: Path) -> None:
    config_dir = tmp_path / "hub"
    config_dir.mkdir()
    hub = await make_hub(SECURE + "  sensor:\n"
                         "    - name: Kitchen\n      state_topic: kitchen/temp\n"
                         "    - name: Garage\n      state_topic: garage/temp\n",
                         plugins=[mqtt_integration], config_dir=config_dir)
    port = hub.data["mqtt"].broker.ports["mqtt"]
    # Added while the hub runs, from the command line: usable at once.
    kitchen_password = add_credential(config_dir, "kitchen")
    garage_password = add_credential(config_dir, "garage")
    assert kitchen_password != garage_password and len(kitchen_password) >= 24

    anonymous = Device(port, client_id="anon")
    assert not await anonymous.connect()  # no anonymous access by default
    wrong = Device(port, "kitchen", "not the password", client_id="wrong")
    assert not await wrong.connect()
    anonymous.close()
    wrong.close()

    kitchen = await devices(port, "kitchen-node", "kitchen", kitchen_password)
    garage = await devices(port, "garage-node", "garage", garage_password)
    await kitchen.publish("kitchen/temp", "21", qos=1)
    await wait_for(lambda: hub.states.get("sensor.kitchen").state == "21")
    await kitchen.publish("garage/temp", "99", qos=1)  # another device's topic: refused
    assert await kitchen.subscribe("garage/#") == 128  # nor may it listen there
    assert await kitchen.subscribe("#") == 128
    await garage.publish("garage/temp", "12", qos=1)
    await wait_for(lambda: hub.states.get("sensor.garage").state == "12")
    assert hub.states.get("sensor.garage").state == "12"  # never 99
    clients = {c["client_id"]: c for c in hub.data["mqtt"].broker.clients()}
    assert clients["kitchen-node"]["dropped_acl"] >= 1
    assert clients["garage-node"]["dropped_acl"] == 0

    # Discovery under its own node id is allowed; under another's it is not.
    await kitchen.publish("homeassistant/sensor/kitchen/hum/config",
                          {"name": "Hum", "stat_t": "kitchen/hum", "uniq_id": "k_hum"}, qos=1)
    await kitchen.publish("homeassistant/sensor/garage/fake/config",
                          {"name": "Fake", "stat_t": "kitchen/x", "uniq_id": "fake"}, qos=1)
    # Nor may its entities point at another device's topics: the hub would read or command
    # them on its behalf.
    await kitchen.publish("homeassistant/switch/kitchen/door/config",
                          {"name": "Door", "cmd_t": "garage/door/set", "uniq_id": "k_door"}, qos=1)
    await kitchen.publish("homeassistant/sensor/kitchen/spy/config",
                          {"name": "Spy", "stat_t": "garage/temp", "uniq_id": "k_spy"}, qos=1)
    await wait_for(lambda: hub.states.get("sensor.hum") is not None)
    await wait_for(lambda: len(hub.data["mqtt"].diagnostics.discovery_errors) >= 2, what="refusals")
    assert hub.states.get("sensor.fake") is None
    assert hub.states.get("switch.door") is None and hub.states.get("sensor.spy") is None
    errors = [c.last_error for c in hub.data["mqtt"].diagnostics.discovery_errors.values()]
    assert any("'garage/door/set' is outside" in e for e in errors), errors


async def test_passwords_never_reach_the_log(make_hub: Any, tmp_path: Path, caplog: Any) -> None:
    config_dir = tmp_path / "hub"
    config_dir.mkdir()
    with caplog.at_level("DEBUG"):
        hub = await make_hub(SECURE, plugins=[mqtt_integration], config_dir=config_dir)
        password = add_credential(config_dir, "sensor1")
        device = Device(hub.data["mqtt"].broker.ports["mqtt"], "sensor1", password + "x", client_id="s1")
        assert not await device.connect()
        device.close()
        device = Device(hub.data["mqtt"].broker.ports["mqtt"], "sensor1", password, client_id="s1")
        assert await device.connect()
        device.close()
    text = caplog.text
    assert "sensor1" in text  # the attempt is logged, by name
    assert password not in text and (password + "x") not in text


async def test_credentials_and_diagnostics_through_the_api(make_hub: Any, devices: Any, tmp_path: Path) -> None:
    hub = await make_hub(SECURE + "  sensor:\n    - name: Meter\n      state_topic: meter/kwh\n"
                         "      unit_of_measurement: kWh\n" + HTTP_CONFIG,
                         plugins=[mqtt_integration, __import__("hub.http").http])
    session, base = await admin_session(hub)
    async with session:
        async with session.post(f"{base}/api/mqtt/credentials", json={"name": "meter"}) as response:
            assert response.status == 201
            created = await response.json()
        assert created["name"] == "meter" and "meter/#" in created["publish"]
        async with session.post(f"{base}/api/mqtt/credentials", json={"name": "meter"}) as response:
            assert response.status == 400 and "exists" in (await response.json())["message"]
        for bad in ({"name": "a b"}, {"name": 5}, {"name": "x", "publish": "meter/#"},
                    {"name": "y", "password": "short"}, {"name": "z", "superuser": "yes"}):
            async with session.post(f"{base}/api/mqtt/credentials", json=bad) as response:
                assert response.status == 400, bad
        async with session.post(f"{base}/api/mqtt/credentials", data=b"{oops") as response:
            assert response.status == 400
        async with session.get(f"{base}/api/mqtt/credentials") as response:
            listed = await response.json()
        assert [c["name"] for c in listed] == ["meter"] and "password" not in str(listed)

        device = await devices(hub.data["mqtt"].broker.ports["mqtt"], "meter-1", "meter", created["password"])
        await device.publish("meter/kwh", "12.5", qos=1)
        await device.publish("meter/kwh", "not a number", qos=1)
        await device.publish("meter/kwh", "13", qos=1)
        await wait_for(lambda: hub.states.get("sensor.meter").state == "13")

        async with session.get(f"{base}/api/mqtt/devices") as response:
            body = await response.json()
        meter = next(d for d in body["devices"] if d["entity_id"] == "sensor.meter")
        assert (meter["messages"], meter["malformed"]) == (3, 1)
        assert "not numeric" in meter["last_error"] and meter["last_error_topic"] == "meter/kwh"
        async with session.get(f"{base}/api/mqtt/entities/sensor.meter/messages") as response:
            messages = (await response.json())["messages"]
        assert [m["payload"] for m in messages] == ["12.5", "not a number", "13"]
        async with session.get(f"{base}/api/mqtt/entities/sensor.nope/messages") as response:
            assert response.status == 404
        async with session.get(f"{base}/api/mqtt") as response:
            status = await response.json()
        assert status["connection"]["broker"] == "embedded"
        assert any(c["client_id"] == "meter-1" and c["messages_in"] == 3 for c in status["clients"])

        async with session.delete(f"{base}/api/mqtt/credentials/meter") as response:
            assert response.status == 200
        # A removed credential's client is cut off.
        await wait_for(lambda: not device.connected, timeout=10, what="disconnection")
        async with session.delete(f"{base}/api/mqtt/credentials/meter") as response:
            assert response.status == 404
    # Plain users may not see or manage credentials.
    user = await hub.auth.create_user("User", "user", "a long password 1")
    token = hub.auth.create_long_lived_token(user, "t")
    import aiohttp

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as plain:
        async with plain.get(f"{base}/api/mqtt/credentials") as response:
            assert response.status == 403
