"""The embedded MQTT broker, seen by real devices (paho clients) and by the hub (on_message).

Every test runs the real broker on 127.0.0.1 with free ports and a temporary config dir.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.mqtt.broker import BrokerStartError, EmbeddedBroker
from integrations.mqtt.credentials import CredentialStore
from integrations.mqtt.models import HUB_CLIENT_ID, Message

from .conftest import HOST, Device, wait_for


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    return CredentialStore(tmp_path)


@pytest.fixture
async def make_broker(tmp_path: Path, store: CredentialStore) -> AsyncIterator[Callable[..., Any]]:
    """Start embedded brokers: `await make_broker(**options)` -> (broker, messages the hub saw)."""
    brokers: list[EmbeddedBroker] = []

    async def factory(credentials: CredentialStore | None = None, **options: Any
                      ) -> tuple[EmbeddedBroker, list[Message]]:
        received: list[Message] = []
        broker = EmbeddedBroker(config_dir=tmp_path, options={"host": HOST, "port": 0, **options},
                                credentials=credentials or store, on_message=received.append)
        brokers.append(broker)
        await broker.start()
        return broker, received

    yield factory
    for broker in reversed(brokers):
        await broker.stop()


@pytest.fixture
def make_device() -> Iterator[Callable[..., Device]]:
    made: list[Device] = []

    def factory(*args: Any, **kwargs: Any) -> Device:
        made.append(Device(*args, **kwargs))
        return made[-1]

    yield factory
    for device in made:
        device.close()


async def connected(make_device: Callable[..., Device], port: int, *args: Any, **kwargs: Any) -> Device:
    device = make_device(port, *args, **kwargs)
    assert await device.connect(), f"refused: {device.connack}"
    return device


def topics(messages: list[Message]) -> list[str]:
    return [m.topic for m in messages]


# -- logging in ---------------------------------------------------------------------------------

async def test_anonymous_clients_are_refused_by_default(make_broker, make_device) -> None:
    broker, received = await make_broker()
    device = make_device(broker.ports["mqtt"])
    assert not await device.connect()
    assert device.connack is not None and device.connack.getName() == "Not authorized"
    device.client.publish("x/y", b"1")
    await asyncio.sleep(0.1)
    assert received == []


async def test_a_device_logs_in_with_its_credential_and_a_wrong_password_is_refused(
        make_broker, make_device, store, caplog) -> None:
    caplog.set_level(logging.INFO, logger="integrations.mqtt.broker")
    _cred, password = store.add("kitchen")
    broker, received = await make_broker()
    port = broker.ports["mqtt"]

    device = await connected(make_device, port, "kitchen", password, client_id="kitchen-1")
    await device.publish("kitchen/temperature", b"21.5", qos=1)
    await wait_for(lambda: received, what="the hub to get the reading")
    message = received[0]
    assert (message.topic, message.payload, message.qos, message.client_id) == (
        "kitchen/temperature", b"21.5", 1, "kitchen-1")
    assert message.timestamp == pytest.approx(time.time(), abs=5)

    intruder = make_device(port, "kitchen", "not-the-password")
    assert not await intruder.connect()
    assert intruder.connack.getName() == "Not authorized"
    unknown = make_device(port, "nobody", "whatever")
    assert not await unknown.connect()
    refusals = [r for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.message]
    assert len(refusals) == 2
    assert "'kitchen' from 127.0.0.1" in refusals[0].message
    assert not any(secret in r.getMessage() for r in caplog.records
                   for secret in (password, "not-the-password"))
    assert broker.stats()["auth_failures"] == 2
    assert device.connected  # untouched by the failed attempts


async def test_a_failed_login_cannot_take_over_a_connected_device(make_broker, make_device, store) -> None:
    _cred, password = store.add("door")
    broker, _received = await make_broker()
    port = broker.ports["mqtt"]
    door = await connected(make_device, port, "door", password, client_id="door", clean_session=False)
    assert await door.subscribe("door/cmd", 1) == 1

    impostor = make_device(port, "door", "wrong-password", client_id="door")
    assert not await impostor.connect()

    assert door.connected
    await broker.publish("door/cmd", b"open", qos=1)
    await wait_for(lambda: door.received("door/cmd"), what="the door to still get its commands")


async def test_a_credential_added_from_the_cli_works_without_a_restart(make_broker, make_device,
                                                                       store, tmp_path) -> None:
    broker, received = await make_broker()
    port = broker.ports["mqtt"]
    cli_store = CredentialStore(tmp_path)  # what `hub mqtt user add` does, in another process
    _cred, password = cli_store.add("garage")

    garage = await connected(make_device, port, "garage", password)
    await garage.publish("garage/door", b"closed")
    await wait_for(lambda: "garage/door" in topics(received))

    assert cli_store.remove("garage")  # and `hub mqtt user remove` disconnects it
    await wait_for(lambda: not garage.connected, timeout=6, what="the removed device to be cut off")
    again = make_device(port, "garage", password)
    assert not await again.connect()


# -- topic rights ----------------------------------------------------------------------------------

async def test_a_device_keeps_to_its_own_topics(make_broker, make_device, store) -> None:
    _a, password_a = store.add("device_a")
    _b, password_b = store.add("device_b")
    broker, received = await make_broker()
    port = broker.ports["mqtt"]
    a = await connected(make_device, port, "device_a", password_a, client_id="a")
    b = await connected(make_device, port, "device_b", password_b, client_id="b")

    assert await b.subscribe("device_b/#") == 0
    assert await a.subscribe("#") == 128
    assert await a.subscribe("+/state") == 128
    assert await a.subscribe("device_b/state") == 128
    assert await a.subscribe("device_a/x/+", 1) == 1

    await a.publish("device_b/state", b"forged", qos=1)
    await a.publish("device_a/state", b"mine", qos=1)
    await wait_for(lambda: "device_a/state" in topics(received))
    await asyncio.sleep(0.1)
    assert topics(received) == ["device_a/state"]
    assert b.received() == []
    info = {c["client_id"]: c for c in broker.clients()}["a"]
    assert info["dropped_acl"] == 4  # three refused subscriptions, one refused publish


async def test_a_device_announces_itself_by_discovery_and_hears_the_hub_come_online(
        make_broker, make_device, store) -> None:
    _cred, password = store.add("plug_1")
    broker, received = await make_broker()
    await broker.publish("homeassistant/status", b"online", qos=1, retain=True)
    plug = await connected(make_device, broker.ports["mqtt"], "plug_1", password)

    assert await plug.subscribe("homeassistant/status", 1) == 1
    await wait_for(lambda: plug.received("homeassistant/status"))
    birth = plug.received("homeassistant/status")[0]
    assert (birth.payload, birth.retain, birth.qos) == (b"online", True, 1)

    await plug.publish("homeassistant/switch/plug_1/relay/config", b"{}", retain=True)
    await plug.publish("homeassistant/device/plug_1/config", b"{}", retain=True)
    await plug.publish("homeassistant/switch/plug_2/relay/config", b"{}", retain=True)
    await plug.publish("homeassistant/switch/relay/config", b"{}", retain=True)
    await wait_for(lambda: len(received) >= 3)
    await asyncio.sleep(0.1)
    assert topics(received) == ["homeassistant/status", "homeassistant/switch/plug_1/relay/config",
                                "homeassistant/device/plug_1/config"]
    assert [m.topic for m in broker.retained("homeassistant/#")] == [
        "homeassistant/status", "homeassistant/switch/plug_1/relay/config",
        "homeassistant/device/plug_1/config"]
    assert await plug.subscribe("homeassistant/#") == 128


async def test_a_last_will_outside_the_device_topics_is_refused(make_broker, make_device, store) -> None:
    _cred, password = store.add("sensor")
    broker, _received = await make_broker()
    port = broker.ports["mqtt"]
    liar = make_device(port, "sensor", password, will=("other/status", b"offline", 1, True))
    assert not await liar.connect()
    honest = make_device(port, "sensor", password, will=("sensor/status", b"offline", 1, True))
    assert await honest.connect()


# -- the hub's side ------------------------------------------------------------------------------

async def test_the_hub_publishes_to_devices_and_keeps_retained_messages(
        make_broker, make_device, store) -> None:
    _cred, password = store.add("lamp")
    broker, received = await make_broker()
    port = broker.ports["mqtt"]
    early = await connected(make_device, port, "lamp", password, client_id="early")
    assert await early.subscribe("lamp/set", 1) == 1

    await broker.publish("lamp/set", b"ON", qos=1, retain=True)
    await wait_for(lambda: early.received("lamp/set"))
    live = early.received("lamp/set")[0]
    assert (live.payload, live.qos, live.retain) == (b"ON", 1, False)
    assert [(m.topic, m.payload, m.client_id, m.retain) for m in received] == [
        ("lamp/set", b"ON", HUB_CLIENT_ID, True)]  # echoed to the hub like an external broker

    [kept] = broker.retained("lamp/#")
    assert (kept.topic, kept.payload, kept.retain) == ("lamp/set", b"ON", True)
    late = await connected(make_device, port, "lamp", password, client_id="late")
    assert await late.subscribe("lamp/+", 1) == 1
    await wait_for(lambda: late.received("lamp/set"))
    assert late.received("lamp/set")[0].retain is True

    await broker.publish("lamp/set", b"", retain=True)  # an empty retained payload clears it
    assert broker.retained("lamp/set") == []
    latest = await connected(make_device, port, "lamp", password, client_id="latest")
    assert await latest.subscribe("lamp/#") == 0
    await asyncio.sleep(0.1)
    assert latest.received() == []


async def test_retained_messages_survive_a_restart(make_broker, make_device, store) -> None:
    _cred, password = store.add("meter")
    broker, _received = await make_broker()
    meter = await connected(make_device, broker.ports["mqtt"], "meter", password)
    await meter.publish("meter/energy", b"\x00\x01binary", qos=1, retain=True)
    await broker.publish("meter/config", b"interval=60", retain=True)
    await wait_for(lambda: len(broker.retained("meter/#")) == 2)
    meter.close()
    await broker.stop()
    await broker.stop()  # idempotent

    again, _received = await make_broker()
    assert {m.topic: m.payload for m in again.retained("meter/#")} == {
        "meter/energy": b"\x00\x01binary", "meter/config": b"interval=60"}
    reader = await connected(make_device, again.ports["mqtt"], "meter", password)
    assert await reader.subscribe("meter/energy") == 0
    await wait_for(lambda: reader.received("meter/energy"))
    assert reader.received("meter/energy")[0].payload == b"\x00\x01binary"


async def test_the_broker_reports_a_port_in_use(make_broker) -> None:
    broker, _received = await make_broker()
    with pytest.raises(BrokerStartError, match="in use"):
        await make_broker(port=broker.ports["mqtt"])


# -- amqtt defects, closed ---------------------------------------------------------------------

async def test_a_client_gets_only_the_retained_messages_of_its_own_allowed_subscriptions(
        make_broker, make_device, store) -> None:
    # amqtt sent a connecting client the retained messages of EVERY client's subscriptions.
    _admin, admin_password = store.add("admin", superuser=True)
    _cam, cam_password = store.add("camera")
    broker, _received = await make_broker()
    port = broker.ports["mqtt"]
    await broker.publish("alarm/code", b"1234", retain=True)
    await broker.publish("camera/config", b"hd", retain=True)
    admin = await connected(make_device, port, "admin", admin_password)
    assert await admin.subscribe("alarm/#") == 0
    assert await admin.subscribe("camera/#") == 0
    await wait_for(lambda: len(admin.received()) == 2)

    camera = await connected(make_device, port, "camera", cam_password, client_id="camera")
    await asyncio.sleep(0.2)
    assert camera.received() == []  # nothing on connecting
    assert await camera.subscribe("camera/#") == 0
    await wait_for(lambda: camera.received("camera/config"))
    await asyncio.sleep(0.1)
    assert [m.topic for m in camera.received()] == ["camera/config"]


async def test_delivery_uses_the_lower_of_the_publish_and_subscription_qos(
        make_broker, make_device, store) -> None:
    # amqtt delivered at the subscription's QoS.
    _cred, password = store.add("bus", superuser=True)
    broker, _received = await make_broker()
    port = broker.ports["mqtt"]
    high = await connected(make_device, port, "bus", password, client_id="high")
    low = await connected(make_device, port, "bus", password, client_id="low")
    assert await high.subscribe("q/#", 2) == 2
    assert await low.subscribe("q/#", 0) == 0
    sender = await connected(make_device, port, "bus", password, client_id="sender")

    assert await high.subscribe("solo/x", 1) == 1  # its only receiver

    await sender.publish("q/zero", b"0", qos=0)
    await sender.publish("q/one", b"1", qos=1)
    await sender.publish("solo/x", b"2", qos=0)
    await wait_for(lambda: len(high.received()) == 3 and len(low.received()) == 2)
    assert {m.topic: m.qos for m in high.received()} == {"q/zero": 0, "q/one": 1, "solo/x": 0}
    assert {m.topic: m.qos for m in low.received()} == {"q/zero": 0, "q/one": 0}


async def test_a_topic_stays_in_order_across_qos_levels(make_broker, make_device, store) -> None:
    _cred, password = store.add("light")
    broker, _received = await make_broker()
    light = await connected(make_device, broker.ports["mqtt"], "light", password)
    assert await light.subscribe("light/set", 1) == 1
    for i in range(30):  # (paho hands QoS 2 messages over later, after PUBREL: not used here)
        await broker.publish("light/set", str(i).encode(), qos=(0, 1, 1)[i % 3])
    await wait_for(lambda: len(light.received()) == 30)
    assert [int(m.payload) for m in light.received()] == list(range(30))


async def test_persistent_sessions_work_when_anonymous_clients_are_allowed(
        make_broker, make_device, store) -> None:
    # amqtt marked every session anonymous once anonymous clients were allowed, and anonymous
    # sessions are never kept.
    _cred, password = store.add("valve")
    broker, received = await make_broker(allow_anonymous=True)
    port = broker.ports["mqtt"]
    guest = await connected(make_device, port)  # no username: admitted, anonymous
    await guest.publish("guest/hello", b"hi")
    await wait_for(lambda: "guest/hello" in topics(received))

    valve = await connected(make_device, port, "valve", password, client_id="valve", clean_session=False)
    assert await valve.subscribe("valve/set", 1) == 1
    valve.close()
    await wait_for(lambda: not any(c["connected"] for c in broker.clients() if c["client_id"] == "valve"))

    await broker.publish("valve/set", b"open", qos=1)  # while it is offline
    back = await connected(make_device, port, "valve", password, client_id="valve", clean_session=False)
    assert back.session_present
    await wait_for(lambda: back.received("valve/set"), what="the message kept for the session")
    assert back.received("valve/set")[0].payload == b"open"


def _make_ca_and_client_cert(directory: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, issuer_key: Any, key: Any, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("Test device CA", None, ca_key, ca_key, True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = build("thermostat", ca_cert.subject, ca_key, client_key, False)
    paths = directory / "ca.pem", directory / "client.pem", directory / "client.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(client_key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


async def test_tls_client_certificates_can_be_required(make_broker, make_device, store, tmp_path) -> None:
    # amqtt hard-coded CERT_OPTIONAL.
    ca, client_cert, client_key = _make_ca_and_client_cert(tmp_path)
    _cred, password = store.add("thermostat")
    broker, received = await make_broker(tls_port=0, cafile=str(ca),
                                         require_client_certificate=True)
    server_cert = tmp_path / ".storage" / "mqtt_tls" / "cert.pem"

    anonymous_tls = make_device(broker.ports["mqtts"], "thermostat", password,
                            tls={"ca_certs": str(server_cert)})
    assert not await anonymous_tls.connect(timeout=3)

    with_cert = make_device(broker.ports["mqtts"], "thermostat", password,
                        tls={"ca_certs": str(server_cert), "certfile": str(client_cert),
                             "keyfile": str(client_key)})
    assert await with_cert.connect()
    await with_cert.publish("thermostat/temp", b"19", qos=1)
    await wait_for(lambda: "thermostat/temp" in topics(received))


# -- listeners ----------------------------------------------------------------------------------

async def test_the_tls_listener_makes_its_own_certificate_once(make_broker, make_device, store,
                                                               tmp_path) -> None:
    _cred, password = store.add("tv")
    broker, received = await make_broker(tls_port=0)
    cert = tmp_path / ".storage" / "mqtt_tls" / "cert.pem"
    key = tmp_path / ".storage" / "mqtt_tls" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    first = cert.read_bytes()
    loaded = x509.load_pem_x509_certificate(first)
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]

    tv = make_device(broker.ports["mqtts"], "tv", password, tls={"ca_certs": str(cert)})
    assert await tv.connect()  # paho checks the certificate and that it names 127.0.0.1
    await tv.publish("tv/power", b"on", qos=1)
    await wait_for(lambda: "tv/power" in topics(received))
    assert await tv.subscribe("tv/set") == 0
    await broker.publish("tv/set", b"channel 2")
    await wait_for(lambda: tv.received("tv/set"))
    await broker.stop()

    await make_broker(tls_port=0)
    assert cert.read_bytes() == first


async def test_devices_can_connect_over_websockets(make_broker, make_device, store) -> None:
    _cred, password = store.add("browser")
    broker, received = await make_broker(websocket_port=0)
    assert set(broker.ports) == {"mqtt", "ws"}
    page = await connected(make_device, broker.ports["ws"], "browser", password, transport="websockets")
    assert await page.subscribe("browser/notify", 1) == 1
    await page.publish("browser/click", b"1", qos=1)
    await wait_for(lambda: "browser/click" in topics(received))
    await broker.publish("browser/notify", b"hello", qos=1)
    await broker.publish("browser/notify", b"again", qos=0)
    await wait_for(lambda: len(page.received("browser/notify")) == 2)
    assert [(m.payload, m.qos) for m in page.received()] == [(b"hello", 1), (b"again", 0)]


# -- limits ------------------------------------------------------------------------------------

async def test_an_oversized_payload_is_dropped_and_counted(make_broker, make_device, store, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="integrations.mqtt.broker")
    _cred, password = store.add("cam", superuser=True)
    broker, received = await make_broker(max_payload_bytes=1000)
    port = broker.ports["mqtt"]
    watcher = await connected(make_device, port, "cam", password, client_id="watcher")
    assert await watcher.subscribe("cam/#") == 0
    cam = await connected(make_device, port, "cam", password, client_id="cam")
    other = await connected(make_device, port, "cam", password, client_id="other")

    await cam.publish("cam/snapshot", b"x" * 5000, qos=1)
    await cam.publish("cam/snapshot", b"y" * 3000, qos=1)
    await cam.publish("cam/motion", b"1", qos=1)
    await other.publish("cam/other", b"z" * 1000, qos=1)
    await wait_for(lambda: {"cam/motion", "cam/other"} <= set(topics(received)))
    await wait_for(lambda: len(watcher.received()) == 2)
    assert sorted(topics(received)) == ["cam/motion", "cam/other"]
    assert sorted(m.topic for m in watcher.received()) == ["cam/motion", "cam/other"]
    counters = {c["client_id"]: c for c in broker.clients()}
    assert counters["cam"]["dropped_oversize"] == 2
    assert counters["other"]["dropped_oversize"] == 0
    assert broker.stats()["dropped_oversize"] == 2
    assert len([r for r in caplog.records if "max_payload_bytes" in r.message]) == 1

    # A payload too big to even read (over 1 MiB beyond the limit) ends the connection.
    cam.client.publish("cam/huge", b"h" * (2 * 1024 * 1024 + 1))
    await wait_for(lambda: not cam.connected, what="the connection to be closed")
    await other.publish("cam/after", b"ok", qos=1)
    await wait_for(lambda: "cam/after" in topics(received))


async def test_max_connections_is_enforced(make_broker, make_device, store) -> None:
    _cred, password = store.add("hall")
    broker, _received = await make_broker(max_connections=1)
    first = await connected(make_device, broker.ports["mqtt"], "hall", password)
    second = make_device(broker.ports["mqtt"], "hall", password)
    assert not await second.connect(timeout=2)
    assert first.connected


async def test_a_flooding_device_is_rate_limited_while_others_get_through(
        make_broker, make_device, store, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="integrations.mqtt.broker")
    _cred, password = store.add("net", superuser=True)
    broker, received = await make_broker(max_messages_per_second=50)
    port = broker.ports["mqtt"]
    flooder = await connected(make_device, port, "net", password, client_id="flooder")
    calm = await connected(make_device, port, "net", password, client_id="calm")

    started = time.monotonic()
    for i in range(3000):
        flooder.client.publish("flood/x", str(i))
    for i in range(10):
        await calm.publish("calm/x", str(i), qos=1)
        await asyncio.sleep(0.01)
    await wait_for(lambda: len([m for m in received if m.topic == "calm/x"]) == 10)
    await wait_for(lambda: broker.stats()["messages_in"] + broker.stats()["dropped_rate"] >= 3010,
                what="the flood to be counted")
    elapsed = time.monotonic() - started
    accepted = len([m for m in received if m.topic == "flood/x"])
    assert 50 <= accepted <= 50 + 50 * elapsed + 5
    flood = {c["client_id"]: c for c in broker.clients()}["flooder"]
    assert flood["dropped_rate"] == 3000 - accepted
    assert flood["messages_in"] == accepted
    assert len([r for r in caplog.records if "more than 50 messages a second" in r.message]) == 1


# -- liveness and bookkeeping --------------------------------------------------------------------

async def test_a_silent_device_is_disconnected_and_its_will_published(make_broker, make_device,
                                                                      store) -> None:
    # amqtt never enforced the keep-alive, so a vanished device stayed "connected" forever.
    _cred, password = store.add("sensor")
    broker, received = await make_broker()
    sensor = await connected(make_device, broker.ports["mqtt"], "sensor", password, client_id="s1",
                             keepalive=1, will=("sensor/availability", b"offline", 1, True))
    sensor.client.loop_stop()  # the device hangs: no more packets, not even PINGREQ
    await wait_for(lambda: "sensor/availability" in topics(received), timeout=5,
                what="the last will")
    will = received[-1]
    assert (will.payload, will.retain, will.client_id) == (b"offline", True, "s1")
    assert broker.retained("sensor/availability")[0].payload == b"offline"
    assert not {c["client_id"]: c for c in broker.clients()}["s1"]["connected"]


async def test_clients_shows_who_is_connected_and_what_they_sent(make_broker, make_device, store) -> None:
    _cred, password = store.add("boiler")
    broker, _received = await make_broker()
    boiler = await connected(make_device, broker.ports["mqtt"], "boiler", password, client_id="boiler-7")
    await boiler.publish("boiler/temp", b"55", qos=1)
    await boiler.publish("boiler/pressure", b"1.5", qos=1)
    await boiler.publish("elsewhere/x", b"no", qos=1)

    [info] = broker.clients()
    assert info["client_id"] == "boiler-7" and info["username"] == "boiler"
    assert info["address"] == "127.0.0.1" and info["connected"] is True
    assert datetime.datetime.fromisoformat(info["connected_since"])
    assert (info["messages_in"], info["bytes_in"], info["dropped_acl"]) == (2, 5, 1)
    assert (info["dropped_oversize"], info["dropped_rate"]) == (0, 0)

    boiler.close()
    await wait_for(lambda: not broker.clients()[0]["connected"])
    [info] = broker.clients()
    assert datetime.datetime.fromisoformat(info["last_seen"])
    stats = broker.stats()
    assert (stats["messages_in"], stats["clients_connected"], stats["clients_known"]) == (2, 0, 1)
