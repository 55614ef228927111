"""The two ways the hub is on MQTT: in-process with the embedded broker, or as a client of an
external broker (Mosquitto, EMQX, ...). Both are a `models.Connection`."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from hub.exceptions import HubError

from .models import Connection, Message, MessageCallback, encode_payload, validate_topic

if TYPE_CHECKING:
    from .broker import EmbeddedBroker

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
# Without it, small messages wait for Nagle's algorithm: p99 latency ~13 ms instead of ~0.4 ms.
_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# QoS 1/2 publishes not yet acknowledged: paho silently drops some past 65,535; we wait instead.
MAX_UNACKED_PUBLISHES = 1000
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 60.0
STABLE_CONNECTION_SECONDS = 30.0  # a connection up this long resets the reconnection backoff
MAX_PACKETS_PER_ROUND = 500  # packets read between hand-overs to the event loop
PUBLISH_ACK_SECONDS = 10.0  # a QoS 1/2 publish fails if not acknowledged within this


class NotConnected(HubError):
    """Publishing while the broker cannot be reached."""


@dataclass(frozen=True)
class BrokerAddress:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    path: str = "/mqtt"

    @property
    def tls(self) -> bool:
        return self.scheme in ("mqtts", "wss")

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt[s]://[user[:pass]@]host[:port]` or `ws[s]://...[/path]`; ValueError with the reason."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("the broker URL must start with mqtt://, mqtts://, ws:// or wss://")
    if not parts.hostname:
        raise ValueError("broker URL has no host")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as err:
        raise ValueError(f"broker URL has a bad port: {err}") from None
    return BrokerAddress(
        parts.scheme, parts.hostname, port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password is not None else None,
        parts.path or "/mqtt",
    )


class EmbeddedConnection(Connection):
    """The hub inside its own broker: messages arrive by a direct call, publishes go out through
    the broker's broadcast. No client, no socket, no loopback hop."""

    def __init__(self, broker_factory: Callable[[Callable[[Message], None]], EmbeddedBroker]) -> None:
        super().__init__()
        self.broker = broker_factory(self.receive)

    async def start(self) -> None:
        await self.broker.start()
        self._set_connected(True)

    async def stop(self) -> None:
        self._set_connected(False)
        await self.broker.stop()

    async def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        validate_topic(topic)
        if not self.connected:
            raise NotConnected("the embedded MQTT broker is not running")
        await self.broker.publish(topic, encode_payload(payload), qos, retain)

    def _deliver_retained(self, topic_filter: str, callback: MessageCallback) -> None:
        for message in self.broker.retained(topic_filter):
            try:
                callback(message)
            except Exception:
                _LOGGER.exception("Handling retained %s failed", message.topic)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "broker": "embedded", "listeners": self.broker.ports,
                **self.broker.stats()}


@dataclass(frozen=True)
class ClientOptions:
    address: BrokerAddress
    client_id: str
    keepalive: int = 60
    clean_session: bool = False  # a persistent session: QoS 1 messages wait while we are away
    min_subscribe_qos: int = 1
    certificate: str | None = None  # CA file for mqtts/wss ("auto": the system's CAs)
    client_cert: str | None = None
    client_key: str | None = None
    tls_insecure: bool = False
    will: tuple[str, bytes, int, bool] | None = None  # topic, payload, qos, retain


class _BufferedSocket:
    """paho reads each packet in two to four small `recv` calls, each a system call. This
    serves them from one large read, and says through `pending()` (which paho's loop checks, for
    TLS sockets) that more is buffered, so nothing waits in `select` while data is at hand.
    Everything else goes to the real socket (plain, TLS or paho's WebSocket wrapper)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._data):
            data = self._sock.recv(65536)  # may raise BlockingIOError/SSLWantReadError: paho's
            if not data:
                return data
            self._data, self._pos = data, 0
        chunk = self._data[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._data) - self._pos + inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ExternalConnection(Connection):
    """A client of an external broker: paho in its own network thread (it decodes about twice
    as many messages per second as asyncio clients here), handing messages to the event loop in
    batches. Reconnects with backoff and jitter, resubscribes, and keeps a persistent session so
    that QoS 1 messages published while the hub was away still arrive."""

    def __init__(self, options: ClientOptions) -> None:
        super().__init__()
        self.options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._first_attempt: asyncio.Future[None] | None = None
        self._inbox: deque[Message] = deque()
        self._drain_scheduled = False
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._unacked: asyncio.Semaphore | None = None
        self._on_broker: dict[str, int] = {}  # the filters the broker has for us, as far as we know
        self.subscriptions.on_filter_change = self._on_filter_change
        self.reconnects = 0
        self.last_error: str | None = None
        self.messages_in = 0
        self.connected_since: float | None = None

    # --- life cycle (event loop side) ---------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._first_attempt = self._loop.create_future()
        self._unacked = asyncio.Semaphore(MAX_UNACKED_PUBLISHES)
        self._client = self._make_client()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._network, name=f"mqtt {self.options.address}",
                                        daemon=True)
        self._thread.start()
        await asyncio.shield(self._first_attempt)

    async def stop(self) -> None:
        self._stopping.set()
        client = self._client
        if client is not None:
            client.disconnect()  # a clean DISCONNECT: the broker does not send our will
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)
            self._thread = None
        self._set_connected(False)
        for future in self._acks.values():
            if not future.done():
                future.set_exception(NotConnected("the MQTT connection was stopped"))
        self._acks.clear()

    def _make_client(self) -> Any:
        import paho.mqtt.client as paho

        opts = self.options
        address = opts.address
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, opts.client_id, clean_session=opts.clean_session,
            protocol=paho.MQTTv311,
            transport="websockets" if address.scheme in ("ws", "wss") else "tcp",
        )
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        if address.scheme in ("ws", "wss"):
            client.ws_set_options(path=address.path)
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            context = ssl.create_default_context(
                cafile=None if opts.certificate in (None, "auto") else opts.certificate)
            if opts.client_cert:
                context.load_cert_chain(opts.client_cert, opts.client_key)
            if opts.tls_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            client.tls_set_context(context)
        if opts.will is not None:
            topic, payload, qos, retain = opts.will
            client.will_set(topic, payload, qos, retain)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # --- the network thread -------------------------------------------------------------------
    # Only this thread touches the socket. The event loop's publish/subscribe calls only queue
    # packets: paho then wakes this thread's select (it does so once `_thread` is set, as
    # loop_start() would set it) instead of writing from the caller's thread.

    def _network(self) -> None:
        """Connect, run paho's loop until the connection drops, wait, again; until stopped."""
        client, address = self._client, self.options.address
        client._thread = threading.current_thread()
        failures = 0
        while not self._stopping.is_set():
            up_since: float | None = None
            try:
                client.connect(address.host, address.port, self.options.keepalive)
                up_since = time.monotonic()
                sock = client.socket()
                if isinstance(sock, socket.socket):
                    sock.setsockopt(*_NODELAY)
                buffered = client._sock = _BufferedSocket(sock)
                while not self._stopping.is_set():
                    rc = client.loop(timeout=0.5)
                    # The rest of what one read brought, in bounded rounds so that keep-alive
                    # and hand-overs go on during a flood.
                    for _ in range(MAX_PACKETS_PER_ROUND):
                        if rc != 0 or not buffered.pending():
                            break
                        rc = client.loop_read()
                    self._hand_over()
                    if rc != 0:
                        break  # connection lost (or refused in the CONNACK)
            except (OSError, ssl.SSLError, ValueError) as err:
                self.last_error = str(err) or type(err).__name__
                if failures == 0:
                    _LOGGER.warning("Cannot connect to MQTT broker %s: %s", address, self.last_error)
            except Exception:
                _LOGGER.exception("MQTT client for %s failed; reconnecting", address)
            self._hand_over()
            if self._stopping.is_set():
                break
            # A connection that stayed up a while resets the backoff; one that a broker keeps
            # cutting right after CONNACK does not.
            lasted = time.monotonic() - up_since if up_since is not None else 0.0
            failures = 0 if lasted > STABLE_CONNECTION_SECONDS else failures + 1
            self.reconnects += 1
            self._call(self._set_connected, False)
            self._call(self._first_done)
            delay = min(RECONNECT_MAX_SECONDS, RECONNECT_MIN_SECONDS * 2 ** min(failures, 10))
            self._stopping.wait(delay * random.uniform(0.8, 1.2))  # jitter: fleets don't reconnect in step
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _call(self, func: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(func, *args)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.last_error = f"the broker refused the connection: {reason}"
            _LOGGER.warning("MQTT broker %s: %s", self.options.address, self.last_error)
            return
        self.connected_since = time.time()
        _LOGGER.info("Connected to MQTT broker %s", self.options.address)
        self._call(self._on_connected)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not self._stopping.is_set():
            self.last_error = str(reason)
            _LOGGER.warning("Lost the MQTT broker %s: %s", self.options.address, reason)
        self._call(self._set_connected, False)

    def _on_message(self, client: Any, userdata: Any, raw: Any) -> None:
        try:
            topic = raw.topic
        except UnicodeDecodeError:  # a lenient broker passed a topic that is not UTF-8
            topic = bytes(getattr(raw, "_topic", b"")).decode("utf-8", errors="replace")
        self._inbox.append(Message(topic, raw.payload, raw.qos, bool(raw.retain), None, time.time()))

    def _hand_over(self) -> None:
        """Wake the event loop once for everything read so far, not once per message: each
        wake-up costs a system call and a trip through the GIL."""
        if self._inbox and not self._drain_scheduled:
            self._drain_scheduled = True
            self._call(self._drain)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._call(self._acked, mid)

    # --- back on the event loop ---------------------------------------------------------------

    def _first_done(self) -> None:
        if self._first_attempt is not None and not self._first_attempt.done():
            self._first_attempt.set_result(None)

    def _on_connected(self) -> None:
        """Subscribe everything the hub wants and drop what it no longer wants (a persistent
        session keeps the broker's side across reconnections), then say we are connected."""
        client = self._client
        wanted = {f: self._qos(q) for f, q in self.subscriptions.filters().items()}
        stale = [f for f in self._on_broker if f not in wanted]
        items = list(wanted.items())
        for start in range(0, len(items), 100):  # brokers cap the filters per SUBSCRIBE
            client.subscribe(items[start:start + 100])
        for start in range(0, len(stale), 100):
            client.unsubscribe(stale[start:start + 100])
        self._on_broker = dict(wanted)
        self._set_connected(True)
        self._first_done()

    def _drain(self) -> None:
        self._drain_scheduled = False
        inbox, receive = self._inbox, self.receive
        for _ in range(len(inbox)):  # what is there now; later ones schedule their own drain
            message = inbox.popleft()
            self.messages_in += 1
            receive(message)

    def _acked(self, mid: int) -> None:
        future = self._acks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _qos(self, qos: int) -> int:
        return max(qos, self.options.min_subscribe_qos)

    def _on_filter_change(self, topic_filter: str, qos: int | None) -> None:
        client = self._client
        if client is None or not self.connected:
            return  # brought in line on (re)connection
        if qos is None:
            self._on_broker.pop(topic_filter, None)
            client.unsubscribe(topic_filter)
        else:
            self._on_broker[topic_filter] = self._qos(qos)
            client.subscribe(topic_filter, self._qos(qos))

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0,
                  owner: str = "") -> Callable[[], None]:
        known = topic_filter in self._on_broker
        remove = super().subscribe(topic_filter, callback, qos, owner)
        if known and self.connected and self._client is not None:
            # Subscribing again makes the broker resend the topic's retained message, which a
            # second entity on a shared state topic needs as much as the first.
            self._client.subscribe(topic_filter, self._on_broker[topic_filter])
        return remove

    async def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        validate_topic(topic)
        client = self._client
        if client is None or not self.connected:
            raise NotConnected(f"not connected to the MQTT broker {self.options.address}")
        if qos == 0:
            info = client.publish(topic, encode_payload(payload), qos, retain)
            if info.rc != 0:
                raise NotConnected(f"publishing to {topic} failed: {info.rc}")
            return
        assert self._unacked is not None
        async with self._unacked:  # bounded: paho silently loses some past 65,535 unacknowledged
            future = asyncio.get_running_loop().create_future()
            info = client.publish(topic, encode_payload(payload), qos, retain)
            if info.rc != 0:
                raise NotConnected(f"publishing to {topic} failed: {info.rc}")
            if info.is_published():
                return
            self._acks[info.mid] = future
            if info.is_published():  # acknowledged before we registered
                self._acks.pop(info.mid, None)
                return
            try:
                await asyncio.wait_for(future, PUBLISH_ACK_SECONDS)
            except TimeoutError:
                self._acks.pop(info.mid, None)
                raise NotConnected(f"the broker did not acknowledge the message to {topic} within "
                                   f"{PUBLISH_ACK_SECONDS:.0f} s (paho resends it after reconnecting)") from None

    def stats(self) -> dict[str, Any]:
        return {
            **super().stats(), "broker": str(self.options.address), "reconnects": self.reconnects,
            "last_error": self.last_error, "messages_in": self.messages_in,
            "connected_since": self.connected_since,
        }
