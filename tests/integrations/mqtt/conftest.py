"""Real brokers and real MQTT clients for the MQTT tests.

- `mosquitto`: a real Mosquitto on a free 127.0.0.1 port (Debian's package; `.ci/run` installs
  it). Without it the tests that need it skip with the reason, except under CI, where a
  missing part is a failure.
- `mqtt_hub(broker, config)`: a started hub whose `mqtt:` block uses that broker ("embedded"
  runs the embedded broker on a free port).
- `Device`: an ordinary MQTT client library (paho) playing a device, with bounded waits.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

import integrations.mqtt as mqtt_integration
from bench.mosquitto import MOSQUITTO, Mosquitto, free_port  # noqa: F401 - shared with the benchmarks
from hub.core import Hub
from tests.support import missing_part

HOST = "127.0.0.1"


def need_mosquitto() -> None:
    if MOSQUITTO is None:
        missing_part("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    need_mosquitto()
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    broker = Mosquitto(directory)
    broker.start()
    yield broker
    broker.stop()

@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Mosquitto]:
    """Each test that takes `broker` runs twice: on the embedded broker and on a real Mosquitto."""
    if request.param == "embedded":
        yield "embedded"
        return
    need_mosquitto()
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    mosquitto = Mosquitto(directory)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()



class Device:
    """A device: a paho client (MQTT 3.1.1) running in its own thread."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None, *,
                 client_id: str = "", clean_session: bool = True, transport: str = "tcp",
                 keepalive: int = 60, tls: dict[str, Any] | None = None,
                 will: tuple[str, bytes, int, bool] | None = None) -> None:
        self.port = port
        self.keepalive = keepalive
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session, transport=transport,
                                  reconnect_on_failure=False)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set(**tls)
        if will is not None:
            self.client.will_set(*will)
        self.connack: mqtt.ReasonCode | None = None
        self.session_present = False
        self.disconnected = threading.Event()
        self.messages: list[mqtt.MQTTMessage] = []
        self.granted: dict[int, list[int]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_message = lambda _c, _u, message: self.messages.append(message)
        self.client.on_subscribe = self._on_subscribe
        self._started = False

    def _on_connect(self, _client: Any, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        self.session_present = bool(flags.session_present)
        self.connack = reason

    def _on_subscribe(self, _client: Any, _userdata: Any, mid: int, codes: Any, _props: Any) -> None:
        self.granted[mid] = [code.value for code in codes]

    @property
    def connected(self) -> bool:
        return self.connack is not None and not self.connack.is_failure and not self.disconnected.is_set()

    async def connect(self, timeout: float = 5.0) -> bool:
        """True once accepted; False if refused or cut off (the reason is in `connack`)."""
        loop = asyncio.get_running_loop()
        try:  # blocking (TCP, TLS and WebSocket handshakes need the broker): off the loop
            await loop.run_in_executor(None, self.client.connect, HOST, self.port, self.keepalive)
        except (OSError, ssl.SSLError):
            return False
        self.client.loop_start()
        self._started = True
        await wait_for(lambda: self.connack is not None or self.disconnected.is_set(), timeout,
                    "CONNACK")
        await asyncio.sleep(0.05)  # a refusal is followed by the broker closing the connection
        return self.connected

    async def subscribe(self, topic_filter: str, qos: int = 0) -> int:
        """The granted QoS (128: refused)."""
        _result, mid = self.client.subscribe(topic_filter, qos)
        await wait_for(lambda: mid in self.granted, what=f"SUBACK for {topic_filter}")
        return self.granted[mid][0]

    async def publish(self, topic: str, payload: bytes | str | dict[str, Any] | list[Any] = b"",
                      qos: int = 0, retain: bool = False) -> None:
        """Publish and wait until paho has sent it (QoS 0) or the broker acknowledged it."""
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos, retain)
        await wait_for(info.is_published, what=f"publishing to {topic}")

    def received(self, topic: str | None = None) -> list[mqtt.MQTTMessage]:
        return [m for m in list(self.messages) if topic is None or m.topic == topic]

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
        else:
            self.client.socket() and self.client.socket().close()


async def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll `condition` on the loop until it is truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def devices() -> AsyncIterator[Callable[..., Any]]:
    """`await devices(port, client_id, username=None, password=None, **kwargs)`: a connected
    Device; all are closed after the test."""
    made: list[Device] = []

    async def factory(port: int, client_id: str = "", username: str | None = None,
                      password: str | None = None, **kwargs: Any) -> Device:
        device = Device(port, username, password, client_id=client_id, **kwargs)
        made.append(device)
        assert await device.connect(), f"refused: {device.connack}"
        return device

    yield factory
    for device in made:
        device.close()


def mqtt_config(broker: str | Mosquitto, extra: str = "") -> str:
    """configuration.yaml text for a hub on `broker` ("embedded" listens on a free port with
    anonymous devices allowed, so that tests need no credential unless they are about them)."""
    if isinstance(broker, Mosquitto) or broker.startswith(("mqtt://", "mqtts://", "ws://")):
        head = f"mqtt:\n  broker: {broker.url if isinstance(broker, Mosquitto) else broker}\n"
    else:
        head = ("mqtt:\n  embedded_broker:\n    host: 127.0.0.1\n    port: 0\n"
                "    allow_anonymous: true\n")
    return head + extra


HTTP_CONFIG = """
http:
  server_host: 127.0.0.1
  server_port: 0
  login_attempts_threshold: 1000
"""


async def admin_session(hub: Hub) -> tuple[Any, str]:
    """An aiohttp session and the base URL, authenticated as a new admin."""
    import aiohttp

    user = await hub.auth.create_user("Admin", f"admin{len(hub.auth.users())}", "a long password 1", admin=True)
    token = hub.auth.create_long_lived_token(user, f"tests{len(hub.auth.users())}")
    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})
    return session, hub.urls[0]


def broker_port(hub: Hub, broker: str | Mosquitto) -> int:
    if isinstance(broker, Mosquitto):
        return broker.port
    return hub.data["mqtt"].broker.ports["mqtt"]


@pytest.fixture
async def mqtt_hub(make_hub: Callable[..., Any]) -> Callable[..., Any]:
    """`await mqtt_hub(broker, extra_yaml, config_dir=None)`: a started hub with the MQTT
    integration (extra_yaml goes under `mqtt:`, indented by the caller)."""

    async def factory(broker: str | Mosquitto, extra: str = "", http: bool = False, **kwargs: Any) -> Hub:
        config, plugins = mqtt_config(broker, extra), [mqtt_integration]
        if http:
            import hub.http

            config += HTTP_CONFIG
            plugins.append(hub.http)
        hub = await make_hub(config, plugins=plugins, **kwargs)
        status = hub.integrations.get("mqtt")
        assert status is not None and status.status == "loaded", status
        return hub

    return factory
