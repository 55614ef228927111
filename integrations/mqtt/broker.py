"""The hub's embedded MQTT broker: amqtt, secure by default, with the hub on its fast path.

Devices log in with their own credentials (`credentials.py`, `hub mqtt user add`); anonymous
clients are refused unless `allow_anonymous` is on. Every PUBLISH a client sends (QoS 0, 1 and
2 alike, on arrival) goes, in the broker's receive path and in this order, through: the payload
size limit, the client's rate limit (a token bucket), topic validation and the client's publish
ACL (cached per client and topic), then to the hub's `on_message` callback (synchronously: no
task, no loopback client), the retained store and every subscribed client allowed to receive
it, at min(publish QoS, subscription QoS).

amqtt 0.12 does the protocol work (packet codec, sessions, listeners); `_HubBroker` replaces its
per-message plugin events and broadcast queue, which cost several tasks per message, and closes
these amqtt defects:

1. a connecting client got the retained messages of every other client's subscriptions,
   bypassing its ACL: it now gets retained messages for its own subscriptions only, if allowed;
2. delivery used the subscription's QoS, not min(publish QoS, subscription QoS);
3. allowing anonymous clients made every session anonymous, so no client kept a persistent
   session: only clients without a username are anonymous now;
4. TLS client certificates could not be required (CERT_OPTIONAL was hard-coded).

and also these: an unauthenticated CONNECT reusing a connected client's id took over (or, with
clean_session, wiped) that client's session before the password was checked; keep-alive was
never enforced, so a vanished device stayed connected and its last will never fired; a will
could be published to a topic the client may not publish to; messages queued for an offline
persistent session were delivered with the retain flag set; a client holding overlapping
subscriptions got one copy per subscription; a re-subscription kept the old QoS; a listener
that failed to bind left the others open; a connection that never sent CONNECT stayed open.

Nothing a client can do makes the broker hold an unbounded amount of memory or tasks:

- a packet larger than the limits is not read (the connection is closed); an incoming QoS 2
  message is checked and delivered on arrival and only its packet id is kept until PUBREL
  (MQTT's "method B"), at most QOS2_PENDING_MAX per client;
- what waits for a slow client is capped (`max_queued_messages`, `max_queued_bytes`): QoS 0
  messages beyond are dropped for it, a client that falls that far behind with QoS 1/2 is
  disconnected, and so is one that takes in nothing for WRITE_TIMEOUT seconds;
- logins waiting for a password check, connections in all and from one address, retained
  messages and persistent sessions per credential are capped too;
- a client id whose session belongs to another credential is refused, not taken over.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import logging
import math
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import voluptuous as vol
from amqtt.adapters import (
    ReaderAdapter,
    StreamReaderAdapter,
    StreamWriterAdapter,
    WebSocketsReader,
    WebSocketsWriter,
    WriterAdapter,
)
from amqtt.broker import Broker
from amqtt.contexts import BrokerConfig, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError, BrokerError
from amqtt.mqtt.connack import (
    IDENTIFIER_REJECTED,
    NOT_AUTHORIZED,
    SERVER_UNAVAILABLE,
    ConnackPacket,
)
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.packet import PUBLISH
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.mqtt.subscribe import SubscribePacket
from amqtt.mqtt.unsubscribe import UnsubscribePacket
from amqtt.session import ApplicationMessage, Session
from transitions import MachineError

from hub.config import atomic_write
from hub.exceptions import HubError

from .credentials import CredentialStore, DeviceCredential
from .models import (
    HUB_CLIENT_ID,
    Message,
    MessageCallback,
    Subscriptions,
    TopicError,
    encode_payload,
    matches,
    validate_filter,
    validate_topic,
)

_LOGGER = logging.getLogger(__name__)

RETAINED_STORAGE_KEY: Final = "mqtt_retained"
TLS_DIRECTORY: Final = "mqtt_tls"
CONNECT_TIMEOUT: Final = 10.0  # seconds a new connection has to send CONNECT
WRITE_TIMEOUT: Final = 30.0  # a client that takes in nothing for this long is disconnected
CLOSE_TIMEOUT: Final = 5.0  # a polite close that takes longer is cut short
MAINTENANCE_INTERVAL: Final = 2.0  # credential file check, retained save, client pruning
RETAINED_SAVE_DELAY: Final = 30.0  # retained changes are written at most this often
SESSION_EXPIRY: Final = 7 * 86400  # an offline persistent session is forgotten after a week
OFFLINE_QUEUE_LIMIT: Final = 1000  # QoS 1/2 messages kept for one offline persistent session
OUT_BUFFER_LIMIT: Final = 4 * 1024 * 1024  # a QoS 0 message to a client this far behind is dropped
DELIVERY_WINDOW: Final = 20  # QoS 1/2 deliveries to one client awaiting its acknowledgement
QOS2_PENDING_MAX: Final = 20  # QoS 2 messages from one client awaiting its PUBREL (MQTT 5's
# receive maximum); a client sending more is disconnected
WRITES_WAITING_MAX: Final = 256  # answers (PUBACK, SUBACK, PINGRESP...) to one client that wait
# to be written: a client that keeps asking but takes in no answers is disconnected
CONTROL_PACKET_LIMIT: Final = 4 * 65536  # bytes in any packet but PUBLISH (a CONNECT's four
# 64 KiB fields fit)
ACL_CACHE_SIZE: Final = 4096  # per client and direction
FLOOD_GAP: Final = 10.0  # seconds without rate drops that end a flood (one log line per flood)
CLIENT_MEMORY: Final = 86400.0  # disconnected clients stay in clients() for a day
CLIENT_MEMORY_MAX: Final = 1000
AUTH_CONCURRENCY: Final = 2  # scrypt verifications at once; more wait (a guessing flood cannot
# take every executor thread)
LOGINS_WAITING_MAX: Final = 32  # logins waiting for a verification slot; more are refused
WARN_AGAIN_AFTER: Final = 600.0  # a refused login is logged at WARNING once per user/address

_PORT = vol.All(int, vol.Range(min=0, max=65535))


def _check_tls(options: dict[str, Any]) -> dict[str, Any]:
    if (options["certfile"] is None) != (options["keyfile"] is None):
        raise vol.Invalid("certfile and keyfile must be given together")
    if options["require_client_certificate"] and not options["cafile"]:
        raise vol.Invalid("require_client_certificate needs cafile (the CA that signs the "
                          "client certificates)")
    if options["tls_port"] is None and (options["certfile"] or options["cafile"]
                                        or options["require_client_certificate"]):
        raise vol.Invalid("certfile, keyfile, cafile and require_client_certificate need tls_port")
    return options


BROKER_SCHEMA: Final = vol.All(vol.Schema({
    vol.Optional("host", default="0.0.0.0"): str,
    vol.Optional("port", default=1883): _PORT,  # 0: any free port
    vol.Optional("tls_port", default=None): vol.Any(None, _PORT),
    vol.Optional("certfile", default=None): vol.Any(None, str),
    vol.Optional("keyfile", default=None): vol.Any(None, str),
    vol.Optional("cafile", default=None): vol.Any(None, str),
    vol.Optional("require_client_certificate", default=False): bool,
    vol.Optional("websocket_port", default=None): vol.Any(None, _PORT),
    vol.Optional("allow_anonymous", default=False): bool,
    vol.Optional("max_payload_bytes", default=262144): vol.All(
        int, vol.Range(min=1, max=268435455)),
    # per client; 0: unlimited. The burst is one second's worth.
    vol.Optional("max_messages_per_second", default=2000): vol.All(
        vol.Coerce(float), vol.Range(min=0)),
    # Connections at once, in all and from one IP address (0: unlimited).
    vol.Optional("max_connections", default=1000): vol.All(int, vol.Range(min=0)),
    vol.Optional("max_connections_per_address", default=64): vol.All(int, vol.Range(min=0)),
    # What may wait for one client, connected but slow or offline with a persistent session
    # (which keeps at most 1000 messages). Past either limit QoS 0 messages are dropped for it,
    # and a connected client that falls this far behind with QoS 1/2 messages is disconnected.
    vol.Optional("max_queued_messages", default=10000): vol.All(int, vol.Range(min=1)),
    vol.Optional("max_queued_bytes", default=32 * 1024 * 1024): vol.All(int, vol.Range(min=1)),
    # Retained messages kept (count, and bytes of topics and payloads): past either limit a
    # retained message to a new topic is not kept (it is still delivered).
    vol.Optional("max_retained_messages", default=10000): vol.All(int, vol.Range(min=0)),
    vol.Optional("max_retained_bytes", default=64 * 1024 * 1024): vol.All(int, vol.Range(min=0)),
    # Persistent sessions (clean_session off) one credential may keep; past it the one offline
    # the longest is dropped.
    vol.Optional("max_sessions_per_user", default=20): vol.All(int, vol.Range(min=1)),
    vol.Optional("persist_retained", default=True): bool,
}), _check_tls)


class BrokerStartError(HubError):
    """The broker could not start (a port in use, a missing certificate...); says why."""


def _iso(timestamp: float | None) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _encode_publish(topic: bytes, payload: bytes, retain: bool) -> bytes:
    """A QoS 0 PUBLISH packet, built once per message and written to every QoS 0 receiver."""
    length = 2 + len(topic) + len(payload)
    header = bytearray((0x31 if retain else 0x30,))
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            header.append(byte | 0x80)
        else:
            header.append(byte)
            break
    return b"".join((header, len(topic).to_bytes(2, "big"), topic, payload))


# -- TLS ----------------------------------------------------------------------------------------

def ensure_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """`(cert.pem, key.pem)` in `directory`: made on first use (ECDSA P-256, ten years, for
    localhost, 127.0.0.1, ::1 and this machine's hostname), reused afterwards, made again only
    when it expires within 30 days. The key file is mode 0o600. Blocking."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    now = datetime.now(UTC)
    if cert_path.exists() and key_path.exists():
        try:
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if existing.not_valid_after_utc - now > timedelta(days=30):
                return cert_path, key_path
        except ValueError:
            pass  # unreadable: make a new one
    directory.mkdir(parents=True, exist_ok=True)
    hostname = socket.gethostname()
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    if hostname and hostname != "localhost":
        names.append(x509.DNSName(hostname))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname or "localhost"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IoT hub MQTT broker")])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    _LOGGER.info("Made a self-signed certificate for the MQTT TLS listener: %s", cert_path)
    return cert_path, key_path


# -- per-client state ---------------------------------------------------------------------------

class _Client:
    """What the broker knows of one client id: its identity and rights, its live connection,
    counters, caches and rate bucket. Also the callback of its subscriptions in the index."""

    __slots__ = (
        "address", "anonymous", "broker", "bytes_in", "client_id", "connected", "connected_since",
        "cred", "done", "dropped_acl", "dropped_out", "dropped_oversize", "dropped_rate",
        "handler", "last_seen", "listener", "may_pub", "may_recv", "messages_in", "messages_out",
        "offline_bytes", "oversize_logged", "qos2_ids", "qos2_logged", "rate_drop_at", "session",
        "slow_logged", "stamp", "subs", "tokens", "transport", "username",
    )

    def __init__(self, broker: _HubBroker, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.username: str | None = None
        self.cred: DeviceCredential | None = None
        self.anonymous = False
        self.address = ""
        self.listener = ""
        self.connected = False
        self.connected_since = 0.0
        self.last_seen = 0.0
        self.session: Session | None = None
        self.handler: _HubProtocolHandler | None = None
        self.transport: asyncio.WriteTransport | None = None  # TCP/TLS: QoS 0 fast path
        self.may_pub: dict[str, bool] = {}
        self.may_recv: dict[str, bool] = {}
        self.tokens = 0.0
        self.stamp = 0.0
        self.rate_drop_at = -math.inf
        self.oversize_logged = False
        self.slow_logged = False
        self.qos2_logged = False
        self.subs: dict[str, tuple[int, Callable[[], None]]] = {}  # filter -> (qos, remove)
        self.done: asyncio.Event | None = None  # set when its current connection has ended
        self.qos2_ids: set[int] = set()  # QoS 2 messages received, PUBREL not yet (its session's)
        self.offline_bytes = 0  # payload bytes in its offline session's queue
        self.messages_in = self.bytes_in = self.messages_out = 0
        self.dropped_acl = self.dropped_oversize = self.dropped_rate = self.dropped_out = 0

    def __call__(self, message: Message) -> None:
        """Deliver `message` at its own QoS (the index calls receivers through the broker,
        which applies the subscription's QoS; this makes a `_Client` a MessageCallback)."""
        self.broker.deliver(self, message, message.qos, False, None)

    def info(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id, "username": self.username, "address": self.address,
            "listener": self.listener, "connected": self.connected,
            "connected_since": _iso(self.connected_since) if self.connected else None,
            "last_seen": _iso(self.last_seen), "subscriptions": sorted(self.subs),
            "messages_in": self.messages_in, "bytes_in": self.bytes_in,
            "messages_out": self.messages_out, "dropped_acl": self.dropped_acl,
            "dropped_oversize": self.dropped_oversize, "dropped_rate": self.dropped_rate,
            "dropped_out": self.dropped_out,
        }


# -- one connection -------------------------------------------------------------------------------

class _PacketTooLarge(AMQTTError):
    pass


class _BoundedReader(ReaderAdapter):
    """A connection's bytes for amqtt's packet reader, framed here by the packets' fixed headers
    so that a packet too large to hold is refused before it is read: a PUBLISH over `limit`
    bytes (payloads a little over `max_payload_bytes` are read and then dropped), any other
    packet over CONTROL_PACKET_LIMIT (amqtt would build a SUBSCRIBE's list of filters, however
    long). A packet whose fields run past its length is refused too. Either closes the
    connection."""

    __slots__ = ("_header", "_left", "_limit", "_reader", "_stopped")

    def __init__(self, reader: ReaderAdapter, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self._header = b""  # the fixed header read ahead, still to be handed to amqtt
        self._left = 0  # bytes of the current packet's body not yet read
        self._stopped = False

    def stop(self) -> None:
        """Read nothing more, not even what has arrived already: the stream ends here."""
        self._stopped = True

    async def read(self, n: int = -1) -> bytes:
        if self._stopped:
            return b""
        if n < 0:
            raise _PacketTooLarge("a read to the end of the stream is not allowed")
        if not self._header and not self._left:
            self._header = await self._next_header()
            if not self._header:
                return b""  # the end of the stream
        header = self._header
        if header:
            data, self._header = header[:n], header[n:]
            n -= len(data)
            if not n:
                return data
        else:
            data = b""
        if n > self._left:
            raise _PacketTooLarge("a packet's fields run past its length; closing the connection")
        body = await self._reader.read(n)
        self._left -= len(body)
        return data + body if data else body

    async def _next_header(self) -> bytes:
        """Read the next packet's fixed header and check its remaining length."""
        header = bytearray(await self._reader.read(1))
        if not header:
            return b""
        length, multiplier = 0, 1
        while True:
            byte = await self._reader.read(1)
            if not byte:
                raise asyncio.IncompleteReadError(bytes(header), None)
            header += byte
            length += (byte[0] & 0x7F) * multiplier
            if not byte[0] & 0x80:
                break
            multiplier *= 128
            if multiplier > 128 ** 3:
                raise _PacketTooLarge("an invalid packet length; closing the connection")
        limit = self._limit if header[0] >> 4 == PUBLISH else CONTROL_PACKET_LIMIT
        if length > limit:
            raise _PacketTooLarge(f"a packet of {length} bytes exceeds the broker's limit of "
                                  f"{limit} bytes; closing the connection")
        self._left = length
        return bytes(header)

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class _GuardedWriter(WriterAdapter):
    """A connection's writer that gives up on a client taking in nothing for WRITE_TIMEOUT
    seconds (amqtt waited forever, holding everything meant for it): the connection is cut.
    A polite close that takes over CLOSE_TIMEOUT seconds is cut short too."""

    __slots__ = ("_abort", "_aborted", "_writer", "name")

    def __init__(self, writer: WriterAdapter, abort: Callable[[], None]) -> None:
        self._writer = writer
        self._abort = abort
        self._aborted = False
        self.name = "?"  # the client id, once known, for the log

    def abort(self) -> None:
        """Cut the connection at once; nothing more is written."""
        self._aborted = True
        self._abort()

    def write(self, data: bytes) -> None:
        if not self._aborted:
            self._writer.write(data)

    async def drain(self) -> None:
        if self._aborted:
            raise ConnectionResetError("the connection was cut")
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._writer.drain()
        except TimeoutError:
            _LOGGER.warning("MQTT client %s took in nothing for %g s; disconnecting it",
                            self.name, WRITE_TIMEOUT)
            self.abort()
            raise ConnectionResetError("the client takes in nothing") from None

    def get_peer_info(self) -> tuple[str, int] | None:
        return self._writer.get_peer_info()

    def get_ssl_info(self) -> ssl.SSLObject | None:
        return self._writer.get_ssl_info()

    async def close(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._writer.close()
        except TimeoutError:
            self.abort()


def _nothing() -> None:
    pass


class _HubProtocolHandler(BrokerProtocolHandler):
    """amqtt's broker-side protocol handler for one connection, with the hub's changes:

    - every PUBLISH goes straight to the broker (amqtt queued each one for the client's message
      loop, and kept a QoS 2 message, payload and all, until PUBREL, however many). A QoS 2
      message is checked and delivered on arrival; only its packet id is kept until PUBREL,
      which stops a resent PUBLISH from being delivered twice;
    - it holds the connection's outgoing queue (`outbox`, sent by one task, `sender`) and the
      QoS 1/2 deliveries awaiting acknowledgement (`window`);
    - it enforces the keep-alive (amqtt ignores it) and cuts a client that keeps asking but
      takes in none of the answers (amqtt held every answer and request meanwhile)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hub_client: _Client | None = None
        self.abort: Callable[[], None] = _nothing  # cuts the connection at once
        self.outbox: deque[tuple[Message, int, bool]] = deque()  # (message, qos, retained)
        self.queued_bytes = 0
        self.sender: asyncio.Task[None] | None = None
        self.window = 0
        self.window_free: asyncio.Event | None = None
        self.stalled_at: float | None = None  # when its write buffer went over OUT_BUFFER_LIMIT
        self.writes_waiting = 0
        self.cut_why: str | None = None

    def cut(self, why: str) -> None:
        """End the connection now, without waiting for the client (it may have stopped
        reading); its reader ends, as when a client vanishes."""
        if self.cut_why is None:
            self.cut_why = why
            client = self.hub_client
            _LOGGER.warning("MQTT client %s %s; disconnecting it",
                            client.client_id if client else "?", why)
        self.abort()

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        client = self.hub_client
        if client is None:
            return
        try:
            ok, answer = self._publish(client, publish_packet)
            if answer is not None:
                await self._send_packet(answer)
        except Exception as err:  # noqa: BLE001 - a bad packet ends its own connection only
            _LOGGER.warning("MQTT client %s sent a PUBLISH the broker cannot handle (%r); "
                            "disconnecting it", client.client_id, err)
            ok = False
        if not ok:  # a protocol violation: close the connection
            await self.handle_connection_closed()

    def _publish(self, client: _Client, packet: PublishPacket
                 ) -> tuple[bool, PubackPacket | PubrecPacket | None]:
        """Hand a PUBLISH to the broker: (False for a protocol violation, the acknowledgement
        to send)."""
        topic, data, qos = packet.topic_name, packet.data, packet.qos
        if topic is None or data is None or qos not in (QOS_0, QOS_1, QOS_2):  # [MQTT-3.3.1-4]
            return False, None
        packet.payload.data = None  # type: ignore[union-attr] # a waiting PUBACK keeps no payload
        receive = client.broker.receive
        retain = packet.retain_flag
        if qos == QOS_0:  # a DUP flag is a protocol error, ignored [MQTT-3.3.1-2]
            return packet.dup_flag or receive(client, topic, data, QOS_0, retain), None
        packet_id: int = packet.packet_id  # type: ignore[assignment]
        if qos == QOS_1:
            return receive(client, topic, data, QOS_1, retain), PubackPacket.build(packet_id)
        seen = client.qos2_ids
        if packet_id in seen:  # sent again before our PUBREC got there: once only [MQTT-4.3.3-2]
            return True, PubrecPacket.build(packet_id)
        if len(seen) >= QOS2_PENDING_MAX:
            if not client.qos2_logged:
                client.qos2_logged = True
                _LOGGER.warning("MQTT client %s sent more than %d QoS 2 messages without "
                                "releasing them (PUBREL); disconnecting it (logged once per "
                                "client)", client.client_id, QOS2_PENDING_MAX)
            return False, None
        seen.add(packet_id)
        return receive(client, topic, data, QOS_2, retain), PubrecPacket.build(packet_id)

    async def handle_pubrel(self, pubrel: PubrelPacket) -> None:
        if self.hub_client is not None:
            self.hub_client.qos2_ids.discard(pubrel.packet_id)
        await self._send_packet(PubcompPacket.build(pubrel.packet_id))  # known or not [MQTT-4.3.3-1]

    # Acknowledgements of nothing are ignored quietly (amqtt logged a warning for each one).
    async def handle_puback(self, puback: PubackPacket) -> None:
        self._resolve(self._puback_waiters, puback.packet_id, puback)

    async def handle_pubrec(self, pubrec: PubrecPacket) -> None:
        self._resolve(self._pubrec_waiters, pubrec.packet_id, pubrec)

    async def handle_pubcomp(self, pubcomp: PubcompPacket) -> None:
        self._resolve(self._pubcomp_waiters, pubcomp.packet_id, pubcomp)

    @staticmethod
    def _resolve(waiters: dict[int, asyncio.Future[Any]], packet_id: int, packet: Any) -> None:
        waiter = waiters.get(packet_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(packet)

    async def handle_subscribe(self, subscribe: SubscribePacket) -> None:
        if self._pending_subscriptions.qsize() >= WRITES_WAITING_MAX:
            self.cut("sends subscriptions but takes in none of the answers")
            return
        await super().handle_subscribe(subscribe)

    async def handle_unsubscribe(self, unsubscribe: UnsubscribePacket) -> None:
        if self._pending_unsubscriptions.qsize() >= WRITES_WAITING_MAX:
            self.cut("sends subscriptions but takes in none of the answers")
            return
        await super().handle_unsubscribe(unsubscribe)

    async def _send_packet(self, packet: Any) -> None:
        if self.writes_waiting >= WRITES_WAITING_MAX:
            self.cut(f"has {WRITES_WAITING_MAX} answers waiting that it does not take in")
            return
        self.writes_waiting += 1
        try:
            await super()._send_packet(packet)
        finally:
            self.writes_waiting -= 1

    async def send_bytes(self, data: bytes) -> None:
        """Write an encoded packet in turn with the others (the QoS 0 deliveries that queue)."""
        writer = self.writer
        if writer is None:
            return
        try:
            async with self._write_lock:
                writer.write(data)
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            await self.handle_connection_closed()

    def handle_read_timeout(self) -> None:
        # Nothing within 1.5 x the keep-alive: the client is gone [MQTT-3.1.2-24]. Ending the
        # reader ends the connection, and an abnormal end publishes the last will.
        session = self.session
        _LOGGER.info("MQTT client %s sent nothing within its keep-alive; disconnecting it",
                     session.client_id if session else "?")
        if self._reader_task is not None:
            self._reader_task.cancel()


# -- the broker -----------------------------------------------------------------------------------

class _HubBroker(Broker):
    """amqtt's Broker with the hub's connection handling, ACLs, limits and message path."""

    def __init__(self, config: BrokerConfig, owner: EmbeddedBroker) -> None:
        super().__init__(config)
        options = owner.options
        self._owner = owner
        self._store = owner.credentials
        self._on_message = owner.on_message
        self._retained: dict[str, Message] = owner.retained_messages
        self._allow_anonymous: bool = options["allow_anonymous"]
        self._max_payload: int = options["max_payload_bytes"]
        self._hard_limit = max(2 * self._max_payload, self._max_payload + 1024 * 1024)
        self._rate: float = options["max_messages_per_second"]
        self._burst = max(self._rate, 1.0)
        self._max_connections: int = options["max_connections"]
        self._max_per_address: int = options["max_connections_per_address"]
        self._queue_max: int = options["max_queued_messages"]
        self._queue_bytes: int = options["max_queued_bytes"]
        self._retained_max: int = options["max_retained_messages"]
        self._retained_bytes_max: int = options["max_retained_bytes"]
        self._sessions_max: int = options["max_sessions_per_user"]
        self._require_cert: bool = options["require_client_certificate"]
        self._index = Subscriptions()
        self.clients: dict[str, _Client] = {}
        self.pruned: dict[str, int] = {}  # counters of forgotten clients, for the totals
        self.connections = 0
        self._per_address: dict[str, int] = {}
        self.auth_failures = 0
        self.hub_published = 0
        self.retained_refused = 0
        self.retained_bytes = 0
        self._connection_tasks: dict[asyncio.Task[Any], WriterAdapter] = {}
        self._publish_tasks: set[asyncio.Task[Any]] = set()
        self._auth_slots = asyncio.Semaphore(AUTH_CONCURRENCY)
        self._logins = 0  # verifying or waiting to
        self._refusals_logged: dict[tuple[str, str], float] = {}
        self._handler_error_at = -math.inf
        self._stopping = False
        self.generation = self._store.generation
        self._trim_retained()

    # -- listeners ---------------------------------------------------------------------------

    async def start(self) -> None:
        # amqtt's start() also clears the sessions and retained messages, starts a broadcast
        # loop we do not use, and leaves the listeners that did bind open when a later one fails.
        self.transitions.start()
        try:
            await self._start_listeners()
        except BaseException:
            for server in self._servers.values():
                with suppress(Exception):
                    await server.close_instance()
            self._servers.clear()
            self.transitions.starting_fail()
            raise
        self.transitions.starting_success()
        self._session_monitor_task = asyncio.create_task(self._session_monitor())

    def _create_ssl_context(self, listener: ListenerConfig) -> ssl.SSLContext:  # type: ignore[override]
        cafile = listener.get("cafile")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(listener["certfile"], listener["keyfile"])
            if cafile:
                context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as err:
            raise BrokerStartError(f"Cannot use the TLS certificate files: {err}") from err
        if self._require_cert:
            context.verify_mode = ssl.CERT_REQUIRED
        else:
            context.verify_mode = ssl.CERT_OPTIONAL if cafile else ssl.CERT_NONE
        return context

    async def _create_server_instance(self, listener_name: str, listener_type: ListenerType,
                                      address: str | None, port: int,
                                      ssl_context: ssl.SSLContext | None) -> Any:
        try:
            return await super()._create_server_instance(listener_name, listener_type, address,
                                                          port, ssl_context)
        except OSError as err:
            name = _LISTENER_NAMES.get(listener_name, listener_name)
            raise BrokerStartError(f"Cannot listen for MQTT ({name}) on {address or '*'}:{port}: "
                                   f"{err.strerror or err}") from err

    @classmethod
    def _split_bindaddr_port(cls, port_str: str, default_port: int) -> tuple[str | None, int]:
        address, port = super()._split_bindaddr_port(port_str, default_port)
        if address and address.startswith("["):  # amqtt keeps an IPv6 literal's brackets
            address = address[1:-1]
        return address, port

    def port(self, listener_name: str) -> int | None:
        server = self._servers.get(listener_name)
        if server is None or server.instance is None:
            return None
        for sock in server.instance.sockets or ():
            return int(sock.getsockname()[1])
        return None

    async def shutdown(self) -> None:
        self._stopping = True  # no last wills: the devices did not fail, the hub is stopping
        self.transitions.shutdown()
        for server in self._servers.values():
            if server.instance is not None:
                server.instance.close()  # accept no more connections
        for client_id in list(self._sessions):
            await self._cleanup_session(client_id)
        if self._session_monitor_task:
            self._session_monitor_task.cancel()
            await asyncio.gather(self._session_monitor_task, return_exceptions=True)
        for writer in list(self._connection_tasks.values()):
            await self._close(writer)  # those still logging in: their reads end
        tasks = [t for t in [*self._connection_tasks, *self._publish_tasks] if not t.done()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for server in self._servers.values():
            with suppress(Exception):
                await server.close_instance()
        await self.plugins_manager.close()
        self.transitions.stopping_success()

    # -- connections ---------------------------------------------------------------------------

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        transport = writer.transport
        await self._client_connected(listener_name, StreamReaderAdapter(reader),
                                     StreamWriterAdapter(writer), transport=transport,  # type: ignore[arg-type]
                                     abort=transport.abort)

    async def ws_connected(self, websocket: Any, listener_name: str) -> None:
        await self._client_connected(listener_name, WebSocketsReader(websocket),
                                     WebSocketsWriter(websocket), abort=websocket.transport.abort)

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter,
                                writer: WriterAdapter,
                                transport: asyncio.WriteTransport | None = None,
                                abort: Callable[[], None] | None = None) -> None:
        bounded = _BoundedReader(reader, self._hard_limit)
        cut = abort or _nothing

        def abort_now() -> None:  # the connection ends now, even if it has more to read
            bounded.stop()
            cut()

        writer = _GuardedWriter(writer, abort_now)
        if self.transitions.state != "started":
            await self._close(writer)
            return
        task = asyncio.current_task()
        if task is not None:
            self._connection_tasks[task] = writer
        try:
            peer = writer.get_peer_info()
            if peer is None:
                return
            address = str(peer[0])
            if self._max_connections and self.connections >= self._max_connections:
                self._warn_limited(("full", ""), "MQTT broker is full (max_connections: %d); "
                                   "refusing new connections", self._max_connections)
                return
            from_address = self._per_address.get(address, 0)
            if self._max_per_address and from_address >= self._max_per_address:
                self._warn_limited(("address", address), "MQTT broker has %d connections from "
                                   "%s (max_connections_per_address); refusing more from it",
                                   from_address, address)
                return
            self.connections += 1
            self._per_address[address] = from_address + 1
            try:
                await self._serve(listener_name, address, bounded, writer, transport)
            finally:
                self.connections -= 1
                left = self._per_address.pop(address, 1) - 1
                if left > 0:
                    self._per_address[address] = left
        finally:
            if task is not None:
                self._connection_tasks.pop(task, None)
            await self._close(writer)  # usually closed already; not after a cancellation

    @staticmethod
    async def _close(writer: WriterAdapter) -> None:
        with suppress(Exception):
            await writer.close()

    async def _refuse(self, writer: WriterAdapter, code: int) -> None:
        with suppress(Exception):
            await ConnackPacket.build(0, code).to_stream(writer)
        await self._close(writer)

    async def _serve(self, listener_name: str, address: str, reader: ReaderAdapter,
                     writer: _GuardedWriter, transport: asyncio.WriteTransport | None) -> None:
        try:
            handler, incoming = await asyncio.wait_for(
                _HubProtocolHandler.init_from_connect(reader, writer, self.plugins_manager),
                CONNECT_TIMEOUT)
        except TimeoutError:
            _LOGGER.debug("MQTT connection from %s sent no CONNECT in time", address)
            await self._close(writer)
            return
        except Exception as err:  # noqa: BLE001 - anything unreadable ends the connection
            _LOGGER.debug("MQTT connection from %s refused: %s", address, err)
            await self._close(writer)
            return

        identity = await self._authenticate_connect(incoming, address, writer)
        if identity is None or self._stopping:
            return
        cred, anonymous = identity
        session, present = await self._session_for(incoming, anonymous)
        if session is None:
            if present == IDENTIFIER_REJECTED:
                self._log_refusal(incoming.username or "", address,
                                  f"the client id {incoming.client_id!r} is another credential's "
                                  "(its session is connected or kept)")
            await self._refuse(writer, present)
            return
        client_id: str = session.client_id  # type: ignore[assignment]
        if cred is not None:
            # The credential may have been removed or changed while the password was checked
            # (and the broker's check of the credential file found no client of it yet).
            current = self._store.get(cred.name)
            if current is None or current.password_hash != cred.password_hash:
                self._log_refusal(cred.name, address, "its credential was removed or changed "
                                  "while it logged in")
                with suppress(MachineError):
                    session.transitions.disconnect()
                if present and current is None:
                    await self._delete_session(client_id)
                await self._refuse(writer, NOT_AUTHORIZED)
                return
            cred = current
        client = self.clients.get(client_id)
        if client is None:
            client = self.clients[client_id] = _Client(self, client_id)
        # Bind the client to this connection.
        client.username, client.cred, client.anonymous = incoming.username, cred, anonymous
        client.address, client.listener = address, _LISTENER_NAMES.get(listener_name, listener_name)
        client.session, client.handler = session, handler
        client.transport = transport
        client.may_pub.clear()
        client.may_recv.clear()
        client.tokens, client.stamp = self._burst, time.monotonic()
        if not present:
            client.qos2_ids.clear()
        client.done = done = asyncio.Event()
        writer.name = client_id
        handler.attach(session, reader, writer)
        handler.hub_client = client
        handler.abort = writer.abort
        self._sessions[client_id] = (session, handler)
        try:
            if not present and not session.clean_session and not anonymous:
                await self._limit_sessions(client.username or "", client_id)
            session.parent = present
            await handler.mqtt_connack_authorize(True)
            _LOGGER.info("MQTT client %s connected%s from %s (%s)", client_id,
                         f" as {client.username}" if client.username else " anonymously",
                         address, client.listener)
            await handler.start()
            client.connected = True
            client.connected_since = client.last_seen = time.time()
            await self._send_offline_queue(client, session)
            await self._client_message_loop(session, handler)
        except Exception as err:  # noqa: BLE001
            _LOGGER.debug("MQTT client %s connection ended: %r", client_id, err)
        finally:
            await self._connection_ended(client, session, handler)
            done.set()

    async def _authenticate_connect(self, incoming: Session, address: str,
                                    writer: WriterAdapter) -> tuple[DeviceCredential | None, bool] | None:
        """Check a CONNECT before anything else happens: (credential, anonymous), or None
        after refusing it."""
        username = incoming.username
        if incoming.client_id == HUB_CLIENT_ID:
            _LOGGER.warning("MQTT client from %s refused: the client id %r is the hub's own",
                            address, HUB_CLIENT_ID)
            await self._refuse(writer, IDENTIFIER_REJECTED)
            return None
        if username is None:
            if not self._allow_anonymous:
                self._log_refusal("", address, "anonymous clients are not allowed "
                                  "(give the device a credential: hub mqtt user add NAME)")
                await self._refuse(writer, NOT_AUTHORIZED)
                return None
            cred, anonymous = None, True
        else:
            if self._logins >= AUTH_CONCURRENCY + LOGINS_WAITING_MAX:
                incoming.password = None
                self._warn_limited(("logins", ""), "MQTT broker has %d logins waiting for their "
                                   "password check; refusing more for now (from %s...)",
                                   LOGINS_WAITING_MAX, address)
                await self._refuse(writer, SERVER_UNAVAILABLE)
                return None
            self._logins += 1
            try:
                async with self._auth_slots:
                    cred = await asyncio.get_running_loop().run_in_executor(
                        None, self._store.verify, username, incoming.password or "")
            finally:
                self._logins -= 1
            incoming.password = None  # keep no plaintext password around
            if cred is None:
                self.auth_failures += 1
                self._log_refusal(username, address, "wrong username or password")
                await self._refuse(writer, NOT_AUTHORIZED)
                return None
            anonymous = False
        if incoming.will_flag and incoming.will_topic is not None:
            will_topic = incoming.will_topic
            try:
                validate_topic(will_topic)
                allowed = not will_topic.startswith("$") and self._store.may_publish(cred, will_topic)
            except TopicError:
                allowed = False
            if not allowed or len(incoming.will_message or b"") > self._max_payload:
                self._log_refusal(username or "", address,
                                  f"its last will may not be published to {will_topic!r}")
                await self._refuse(writer, NOT_AUTHORIZED)
                return None
        return cred, anonymous

    def _warn_limited(self, key: tuple[str, str], message: str, *args: Any) -> None:
        """Log at WARNING once per WARN_AGAIN_AFTER for `key`, else at DEBUG."""
        now = time.monotonic()
        if now - self._refusals_logged.get(key, -math.inf) > WARN_AGAIN_AFTER:
            if len(self._refusals_logged) > 1000:
                self._refusals_logged.clear()
            self._refusals_logged[key] = now
            _LOGGER.warning(message, *args)
        else:
            _LOGGER.debug(message, *args)

    def _log_refusal(self, username: str, address: str, why: str) -> None:
        self._warn_limited((username, address), "MQTT login refused for %s from %s: %s",
                           repr(username) if username else "an anonymous client", address, why)

    async def _session_for(self, incoming: Session, anonymous: bool) -> tuple[Session | None, int]:
        """(the session this connection continues or a new one, session present), after taking
        over a connection that still uses the client id; (None, CONNACK code) to refuse it: a
        client id whose session, connected or kept, is another credential's is not its own."""
        client_id: str = incoming.client_id  # type: ignore[assignment]
        for _attempt in range(3):
            existing = self._sessions.get(client_id)
            if existing is None:
                break
            old_session, old_handler = existing
            client = self.clients.get(client_id)
            live = old_session.transitions.is_connected() or bool(client and client.connected)
            kept = not old_session.clean_session and not old_session.is_anonymous
            if old_session.username != incoming.username and (live or kept):
                return None, IDENTIFIER_REJECTED
            if not live:
                break
            _LOGGER.info("MQTT client %s connected again; closing its previous connection",
                         client_id)
            with suppress(Exception):
                await old_handler.handle_connection_closed()
            if client is not None and client.done is not None:
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(client.done.wait(), 5)
        else:
            _LOGGER.warning("MQTT client %s: its previous connection did not end; refusing",
                            client_id)
            return None, SERVER_UNAVAILABLE
        keep_alive = incoming.keep_alive
        session, present = incoming, 0
        if existing is not None:
            old_session = existing[0]
            if (incoming.clean_session or anonymous or old_session.is_anonymous
                    or old_session.username != incoming.username):
                # A clean start, or another identity's ended session: nothing to inherit.
                await self._delete_session(client_id)
            else:
                for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain",
                             "username", "remote_address", "remote_port", "ssl_object",
                             "clean_session"):
                    setattr(old_session, attr, getattr(incoming, attr))
                session, present = old_session, 1
        session.password = None
        session.is_anonymous = anonymous  # only clients without a username (amqtt: everyone)
        session.keep_alive = math.ceil(keep_alive * 1.5) if keep_alive > 0 else 0
        try:
            session.transitions.connect()
        except (MachineError, ValueError):
            _LOGGER.warning("MQTT client %s: its previous connection did not end; refusing",
                            client_id)
            return None, SERVER_UNAVAILABLE
        return session, present

    async def _limit_sessions(self, username: str, keep: str) -> None:
        """Keep at most max_sessions_per_user persistent sessions for `username`: drop the
        ones offline the longest."""
        mine = [(client.last_seen if (client := self.clients.get(client_id)) else 0.0, client_id)
                for client_id, (session, _handler) in self._sessions.items()
                if session.username == username and not session.clean_session
                and not session.is_anonymous]
        excess = len(mine) - self._sessions_max
        if excess <= 0:
            return
        offline = sorted((since, client_id) for since, client_id in mine if client_id != keep
                         and not self._sessions[client_id][0].transitions.is_connected())
        for _since, client_id in offline[:excess]:
            _LOGGER.info("MQTT credential %s has more than %d persistent sessions; forgetting "
                         "the session of client %s (offline the longest)", username,
                         self._sessions_max, client_id)
            await self._cleanup_session(client_id)

    async def _send_offline_queue(self, client: _Client, session: Session) -> None:
        queue = session.retained_messages  # amqtt's name for messages kept while offline
        client.offline_bytes = 0
        while not queue.empty():
            message = queue.get_nowait()
            # amqtt sent these with the retain flag set; they are ordinary messages
            self.deliver(client, Message(message.topic, bytes(message.data), message.qos or 0),
                         message.qos or 0, False, None)

    async def _connection_ended(self, client: _Client, session: Session,
                                handler: _HubProtocolHandler) -> None:
        if client.session is session and client.handler is handler:
            client.connected = False
            client.transport = None
            client.last_seen = time.time()
        self._end_outbox(client, handler)
        with suppress(Exception):
            await self._stop_handler(handler)
        client_id: str = session.client_id  # type: ignore[assignment]
        current = self._sessions.get(client_id)
        if current is not None and current[1] is handler:
            if session.transitions.is_connected():
                session.transitions.disconnect()
            if session.clean_session or session.is_anonymous:
                await self._cleanup_session(client_id)

    async def _handle_disconnect(self, client_session: Session, handler: BrokerProtocolHandler,
                                 disconnect_waiter: asyncio.Future[Any]) -> None:
        result = disconnect_waiter.result()
        client = self.clients.get(client_session.client_id or "")
        if client is not None and client.handler is handler:
            client.connected = False
            client.transport = None
            client.last_seen = time.time()
        if client is not None and isinstance(handler, _HubProtocolHandler):
            self._end_outbox(client, handler)
        abnormal = not isinstance(result, DisconnectPacket)
        if (abnormal and client_session.will_flag and client_session.will_topic
                and not self._stopping):
            _LOGGER.debug("MQTT client %s left abnormally; publishing its will on %s",
                          client_session.client_id, client_session.will_topic)
            self.dispatch(Message(client_session.will_topic,
                                  bytes(client_session.will_message or b""),
                                  client_session.will_qos or 0, bool(client_session.will_retain),
                                  client_session.client_id, time.time()))
        await self._stop_handler(handler)
        if client_session.transitions.is_connected():
            client_session.transitions.disconnect()
        _LOGGER.info("MQTT client %s disconnected%s", client_session.client_id,
                     " abnormally" if abnormal else "")

    # -- subscriptions -------------------------------------------------------------------------

    async def _handle_subscription(self, client_session: Session, handler: BrokerProtocolHandler,
                                   subscribe_waiter: asyncio.Future[Any]) -> None:
        request = subscribe_waiter.result()
        client = self.clients.get(client_session.client_id or "")
        codes = [self.subscribe(client, topic_filter, qos) for topic_filter, qos in request.topics]
        await handler.mqtt_acknowledge_subscription(request.packet_id, codes)
        for (topic_filter, _qos), code in zip(request.topics, codes, strict=True):
            if code != 0x80 and client is not None:
                self._send_retained(client, topic_filter, code)

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        return self.subscribe(self.clients.get(session.client_id or ""), *subscription)

    def subscribe(self, client: _Client | None, topic_filter: str, qos: int) -> int:
        """Add or replace a subscription; the granted QoS, or 0x80 when refused."""
        if client is None:
            return 0x80
        try:
            validate_filter(topic_filter)
        except TopicError:
            return 0x80
        if not self._store.may_subscribe(client.cred, topic_filter):
            client.dropped_acl += 1
            _LOGGER.info("MQTT client %s (%s) may not subscribe to %s; refused", client.client_id,
                         client.username or "anonymous", topic_filter)
            return 0x80
        qos = max(0, min(int(qos), QOS_2))
        old = client.subs.pop(topic_filter, None)
        if old is not None:
            old[1]()  # a new SUBSCRIBE replaces the old one, QoS included [MQTT-3.8.4-3]
        remove = self._index.add(topic_filter, client, qos, owner=client.client_id)
        client.subs[topic_filter] = (qos, remove)
        return qos

    # amqtt's own table (self._subscriptions) stays empty: routing uses the index above.
    def _del_subscription(self, a_filter: str, session: Session) -> int:
        client = self.clients.get(session.client_id or "")
        if client is None or client.session is not session:
            return 0
        old = client.subs.pop(a_filter, None)
        if old is None:
            return 0
        old[1]()
        return 1

    async def _del_all_subscriptions(self, session: Session) -> None:
        client = self.clients.get(session.client_id or "")
        if client is not None and client.session is session:
            for _qos, remove in client.subs.values():
                remove()
            client.subs.clear()

    def _send_retained(self, client: _Client, topic_filter: str, qos: int) -> None:
        """The retained messages matching a new subscription, if the client may receive them."""
        if "+" in topic_filter or "#" in topic_filter:
            found = [m for t, m in self._retained.items() if matches(topic_filter, t)]
        else:
            found = [m] if (m := self._retained.get(topic_filter)) is not None else []
        for message in found:
            self.deliver(client, message, min(message.qos, qos), True, None)

    # -- the message path ------------------------------------------------------------------------

    async def _handle_message_delivery(self, client_session: Session,
                                       handler: BrokerProtocolHandler,
                                       wait_deliver: asyncio.Future[Any]) -> bool:
        # Nothing comes this way: the handler gives every PUBLISH to receive() on arrival.
        return True

    def receive(self, client: _Client, topic: str, payload: bytes, qos: int,
                retain: bool) -> bool:
        """A client's PUBLISH: limits, ACL, then the hub and the subscribers. False for a
        protocol violation (the connection is then closed)."""
        if len(payload) > self._max_payload:
            client.dropped_oversize += 1
            if not client.oversize_logged:
                client.oversize_logged = True
                _LOGGER.warning("MQTT client %s published %d bytes to %s, over max_payload_bytes "
                                "(%d); dropped (logged once per client)", client.client_id,
                                len(payload), topic, self._max_payload)
            return True
        rate = self._rate
        if rate:
            now = time.monotonic()
            tokens = client.tokens + (now - client.stamp) * rate
            client.stamp = now
            tokens = min(tokens, self._burst)
            if tokens < 1.0:
                client.tokens = tokens
                client.dropped_rate += 1
                if now - client.rate_drop_at > FLOOD_GAP:
                    _LOGGER.warning("MQTT client %s publishes more than %g messages a second; "
                                    "dropping the excess", client.client_id, rate)
                client.rate_drop_at = now
                return True
            client.tokens = tokens - 1.0
        allowed = client.may_pub.get(topic)
        if allowed is None:
            try:
                validate_topic(topic)
            except TopicError as err:
                _LOGGER.warning("MQTT client %s sent an invalid topic (%s); disconnecting it",
                                client.client_id, err)
                return False
            allowed = not topic.startswith("$") and self._store.may_publish(client.cred, topic)
            if not allowed:
                _LOGGER.info("MQTT client %s (%s) may not publish to %s; dropped",
                             client.client_id, client.username or "anonymous", topic)
            if len(client.may_pub) >= ACL_CACHE_SIZE:
                client.may_pub.clear()
            client.may_pub[topic] = allowed
        if not allowed:
            client.dropped_acl += 1
            return True
        client.messages_in += 1
        client.bytes_in += len(payload)
        message = Message(topic, payload, qos, retain, client.client_id, time.time())
        client.last_seen = message.timestamp
        self.dispatch(message)
        return True

    def dispatch(self, message: Message) -> None:
        """A message accepted by the broker: to the hub, the retained store, the subscribers."""
        try:
            self._on_message(message)
        except Exception:
            now = time.monotonic()
            if now - self._handler_error_at > 10:
                self._handler_error_at = now
                _LOGGER.exception("The hub's MQTT message handler failed on %s", message.topic)
        if message.retain:
            self._retain(message)
        subs = self._index.match(message.topic)
        if not subs:
            return
        if len(subs) == 1:
            sub = subs[0]
            self.deliver(sub.callback, message, min(message.qos, sub.qos), False, None)  # type: ignore[arg-type]
            return
        # One copy per client, at the highest QoS of its matching subscriptions [MQTT-3.3.5-1].
        targets: dict[_Client, int] = {}
        for sub in subs:
            client = sub.callback
            if sub.qos > targets.get(client, -1):  # type: ignore[call-overload]
                targets[client] = sub.qos  # type: ignore[index]
        frame: list[bytes] = []
        for client, sub_qos in targets.items():
            self.deliver(client, message, min(message.qos, sub_qos), False, frame)

    def deliver(self, client: _Client, message: Message, qos: int, retain: bool,
                frame: list[bytes] | None) -> None:
        """Send one message to one client, if it may receive it; `frame` caches the encoded
        QoS 0 packet across the receivers of one message. `retain` marks a retained message
        sent for a new subscription."""
        topic = message.topic
        allowed = client.may_recv.get(topic)
        if allowed is None:
            allowed = self._store.may_receive(client.cred, topic)
            if len(client.may_recv) >= ACL_CACHE_SIZE:
                client.may_recv.clear()
            client.may_recv[topic] = allowed
        if not allowed:
            return
        handler = client.handler
        if not client.connected or handler is None:
            if qos:
                self._keep_offline(client, message, qos)
            return
        transport = client.transport
        # QoS 0 is written at once, unless messages queued for this client are still on their
        # way (its sender task): it then queues behind them, so that a topic stays in order.
        if qos == QOS_0 and transport is not None and handler.sender is None:
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > OUT_BUFFER_LIMIT:
                self._behind(client, handler)
                return
            handler.stalled_at = None
            if retain:
                data = _encode_publish(topic.encode(), message.payload, True)
            elif frame:
                data = frame[0]
            else:
                data = _encode_publish(topic.encode(), message.payload, False)
                if frame is not None:
                    frame.append(data)
            transport.write(data)
            client.messages_out += 1
            return
        size = len(message.payload)
        outbox = handler.outbox
        if len(outbox) >= self._queue_max or handler.queued_bytes + size > self._queue_bytes:
            if qos == QOS_0 or retain:
                self._behind(client, handler)
            else:
                client.dropped_out += 1
                handler.cut(f"fell {len(outbox)} messages ({handler.queued_bytes} bytes) behind "
                            "(max_queued_messages, max_queued_bytes)")
            return
        if (qos == QOS_0 and transport is not None
                and transport.get_write_buffer_size() > OUT_BUFFER_LIMIT):
            self._behind(client, handler)
            return
        outbox.append((message, qos, retain))
        handler.queued_bytes += size
        if handler.sender is None:
            task = handler.sender = asyncio.create_task(self._send_queued(client, handler))
            self._publish_tasks.add(task)
            task.add_done_callback(self._publish_tasks.discard)

    def _behind(self, client: _Client, handler: _HubProtocolHandler) -> None:
        """A QoS 0 message dropped for a client that does not keep up; one whose write buffer
        stays full for WRITE_TIMEOUT seconds is disconnected."""
        client.dropped_out += 1
        if not client.slow_logged:
            client.slow_logged = True
            _LOGGER.warning("MQTT client %s does not keep up with its messages; dropping QoS 0 "
                            "messages for it (logged once per client)", client.client_id)
        transport = client.transport
        if transport is None or transport.get_write_buffer_size() <= OUT_BUFFER_LIMIT:
            return
        now = time.monotonic()
        if handler.stalled_at is None:
            handler.stalled_at = now
        elif now - handler.stalled_at > WRITE_TIMEOUT:
            handler.cut(f"took in nothing for {WRITE_TIMEOUT:g} s")

    async def _send_queued(self, client: _Client, handler: _HubProtocolHandler) -> None:
        """Send the messages queued for one connection, in order: QoS 0 written in turn, QoS
        1/2 handed to amqtt's flow (a task each, at most DELIVERY_WINDOW awaiting their
        acknowledgement)."""
        outbox = handler.outbox
        try:
            while True:
                while outbox:
                    message, qos, retain = outbox.popleft()
                    handler.queued_bytes -= len(message.payload)
                    if qos == QOS_0:
                        await handler.send_bytes(
                            _encode_publish(message.topic.encode(), message.payload, retain))
                        client.messages_out += 1
                        continue
                    while handler.window >= DELIVERY_WINDOW:
                        handler.window_free = asyncio.Event()
                        await handler.window_free.wait()
                    handler.window += 1
                    task = asyncio.create_task(
                        handler.mqtt_publish(message.topic, message.payload, qos, retain))
                    self._publish_tasks.add(task)
                    task.add_done_callback(functools.partial(self._publish_done, handler))
                    client.messages_out += 1
                    await asyncio.sleep(0)  # it takes its turn to write before what follows
                async with handler._write_lock:  # all written: the QoS 0 fast path may go on
                    pass
                if not outbox:
                    return
        finally:
            if handler.sender is asyncio.current_task():
                handler.sender = None

    def _publish_done(self, handler: _HubProtocolHandler, task: asyncio.Task[Any]) -> None:
        self._publish_tasks.discard(task)
        handler.window -= 1
        if handler.window_free is not None:
            handler.window_free.set()
        if not task.cancelled() and (err := task.exception()) is not None:
            _LOGGER.debug("MQTT delivery failed: %r", err)

    def _end_outbox(self, client: _Client, handler: _HubProtocolHandler) -> None:
        """A connection ended: its sender stops; its queued QoS 1/2 messages go to the client's
        session (kept while offline if persistent) or its new connection."""
        sender, handler.sender = handler.sender, None
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
        queued = list(handler.outbox)
        handler.outbox.clear()
        handler.queued_bytes = 0
        if client.handler is handler and client.connected:
            return  # still bound to it (its callers mark it disconnected first)
        for message, qos, _retain in queued:
            if qos:
                self.deliver(client, message, qos, False, None)

    def _keep_offline(self, client: _Client, message: Message, qos: int) -> None:
        """Queue a QoS 1/2 message for an offline persistent session (within the limits:
        the oldest messages make way)."""
        session = client.session
        if session is None or session.clean_session or session.is_anonymous:
            return
        queue = session.retained_messages  # amqtt's name for messages kept while offline
        if queue.empty():
            client.offline_bytes = 0
        size = len(message.payload)
        if size > self._queue_bytes:
            client.dropped_out += 1
            return
        limit = min(OFFLINE_QUEUE_LIMIT, self._queue_max)
        while queue.qsize() >= limit or client.offline_bytes + size > self._queue_bytes:
            old = queue.get_nowait()
            client.offline_bytes -= len(old.data or b"")
            client.dropped_out += 1
        queue.put_nowait(ApplicationMessage(None, message.topic, qos, message.payload, False))
        client.offline_bytes += size

    # -- retained messages -----------------------------------------------------------------------

    def _retain(self, message: Message) -> None:
        """Keep `message` as its topic's retained message (an empty payload clears it
        [MQTT-3.3.1-10]), within max_retained_messages and max_retained_bytes: past them a new
        topic is not kept, and a topic whose new message does not fit loses its old one."""
        retained = self._retained
        topic = message.topic
        old = retained.get(topic)
        old_size = len(topic) + len(old.payload) if old is not None else 0
        if message.payload:
            size = len(topic) + len(message.payload)
            if ((old is not None or len(retained) < self._retained_max)
                    and self.retained_bytes - old_size + size <= self._retained_bytes_max):
                retained[topic] = message
                self.retained_bytes += size - old_size
                self._owner.retained_changed()
                return
            self.retained_refused += 1
            if self.retained_refused == 1:
                _LOGGER.warning("MQTT broker keeps %d retained messages (%d bytes), its limit "
                                "(max_retained_messages, max_retained_bytes): new retained "
                                "messages are not kept (logged once; see stats)", len(retained),
                                self.retained_bytes)
        if old is not None:
            del retained[topic]
            self.retained_bytes -= old_size
            self._owner.retained_changed()

    def _trim_retained(self) -> None:
        """Count the retained messages loaded at start; drop those over the limits."""
        kept = dropped = 0
        total = 0
        for topic, message in list(self._retained.items()):
            size = len(topic) + len(message.payload)
            if kept >= self._retained_max or total + size > self._retained_bytes_max:
                del self._retained[topic]
                dropped += 1
                continue
            kept += 1
            total += size
        self.retained_bytes = total
        if dropped:
            self._owner.retained_changed()
            _LOGGER.warning("MQTT broker dropped %d stored retained messages over its limits "
                            "(max_retained_messages, max_retained_bytes)", dropped)

    async def _broadcast_message(self, session: Session | None, topic: str | None,
                                 data: bytes | bytearray | None,
                                 force_qos: int | None = None) -> None:
        # amqtt's queue-and-task broadcast, for BrokerContext users: routed at once instead.
        if topic:
            self.dispatch(Message(topic, bytes(data or b""), force_qos or 0, False,
                                  session.client_id if session else HUB_CLIENT_ID, time.time()))

    async def retain_message(self, source_session: Session | None, topic_name: str | None,
                             data: bytes | bytearray | None, qos: int | None = None) -> None:
        if topic_name:
            self._retain(Message(topic_name, bytes(data or b""), qos or 0, True,
                                 source_session.client_id if source_session else HUB_CLIENT_ID,
                                 time.time()))

    # -- upkeep ----------------------------------------------------------------------------------

    async def apply_credential_changes(self) -> None:
        """Follow the credential file: disconnect clients whose credential was removed or got
        a new password, give the others their new topic rights."""
        self.generation = self._store.generation
        for client in list(self.clients.values()):
            if client.anonymous or client.username is None or client.session is None:
                continue
            new = self._store.get(client.username)
            old = client.cred
            if new is None or old is None or new.password_hash != old.password_hash:
                why = "removed" if new is None else "changed"
                if client.connected and client.handler is not None:
                    _LOGGER.info("MQTT credential %s was %s; disconnecting client %s",
                                 client.username, why, client.client_id)
                    with suppress(Exception):
                        await client.handler.handle_connection_closed()
                if new is None and client.client_id in self._sessions:
                    await self._cleanup_session(client.client_id)  # no offline queue for it
            elif new != old:
                client.cred = new
                client.may_pub.clear()
                client.may_recv.clear()

    def prune_clients(self) -> None:
        horizon = time.time() - CLIENT_MEMORY
        gone = [c for c in self.clients.values() if not c.connected
                and c.client_id not in self._sessions and c.last_seen < horizon]
        excess = len(self.clients) - len(gone) - CLIENT_MEMORY_MAX
        if excess > 0:
            idle = sorted((c for c in self.clients.values() if not c.connected and c not in gone
                           and c.client_id not in self._sessions), key=lambda c: c.last_seen)
            gone += idle[:excess]
        for client in gone:
            for key in _COUNTERS:
                self.pruned[key] = self.pruned.get(key, 0) + getattr(client, key)
            del self.clients[client.client_id]


_LISTENER_NAMES: Final = {"default": "mqtt", "mqtts": "mqtts", "ws": "ws"}
_COUNTERS: Final = ("messages_in", "bytes_in", "messages_out", "dropped_acl", "dropped_oversize",
                    "dropped_rate", "dropped_out")


# -- the hub's interface ----------------------------------------------------------------------------

class EmbeddedBroker:
    """The MQTT broker inside the hub. Messages from clients reach `on_message` in the receive
    path; the hub publishes with `publish()`. See the module docstring for the rules."""

    def __init__(self, *, config_dir: Path, options: dict[str, Any], credentials: CredentialStore,
                 on_message: MessageCallback, discovery_prefix: str = "homeassistant") -> None:
        self.config_dir = Path(config_dir)
        self.options: dict[str, Any] = BROKER_SCHEMA(dict(options))
        self.credentials = credentials
        self.on_message = on_message
        self.discovery_prefix = discovery_prefix
        self.retained_messages: dict[str, Message] = {}
        self._broker: _HubBroker | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._retained_dirty = False
        self._retained_saved_at = 0.0
        self._retained_path = self.config_dir / ".storage" / RETAINED_STORAGE_KEY

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        """Bind the listeners and accept clients. BrokerStartError says what went wrong."""
        if self._broker is not None:
            return
        # amqtt's state machines log every change at INFO, and amqtt its own set-up (with its
        # own, unused, connection limits): our broker logs what a user needs to know.
        for name in ("transitions", "amqtt"):
            quiet = logging.getLogger(name)
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        options = self.options
        try:
            config = await loop.run_in_executor(None, self._broker_config)
        except (OSError, ValueError) as err:
            raise BrokerStartError(f"Cannot set up the MQTT broker: {err}") from err
        if options["persist_retained"]:
            self.retained_messages.clear()
            self.retained_messages.update(await loop.run_in_executor(None, self._load_retained))
        broker = _HubBroker(config, self)
        try:
            await broker.start()
        except BrokerStartError:
            raise
        except (OSError, ssl.SSLError, BrokerError, AMQTTError, MachineError) as err:
            raise BrokerStartError(f"Cannot start the MQTT broker: {err}") from err
        self._broker = broker
        self._maintenance = asyncio.create_task(self._maintain())
        _LOGGER.info("MQTT broker listening on %s",
                     ", ".join(f"{name} port {port}" for name, port in self.ports.items()))

    def _broker_config(self) -> BrokerConfig:
        options = self.options
        host = options["host"]

        def bind(port: int) -> str:
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

        listeners = {"default": ListenerConfig(type=ListenerType.TCP, bind=bind(options["port"]))}
        if options["tls_port"] is not None:
            certfile, keyfile = options["certfile"], options["keyfile"]
            if certfile is None:
                certfile, keyfile = ensure_self_signed_certificate(
                    self.config_dir / ".storage" / TLS_DIRECTORY)
            listeners["mqtts"] = ListenerConfig(type=ListenerType.TCP, bind=bind(options["tls_port"]),
                                                ssl=True, certfile=certfile, keyfile=keyfile,
                                                cafile=options["cafile"])
        if options["websocket_port"] is not None:
            listeners["ws"] = ListenerConfig(type=ListenerType.WS,
                                             bind=bind(options["websocket_port"]))
        # No plugins: amqtt's default event/packet loggers and $SYS plugin cost tasks per packet.
        return BrokerConfig(listeners=listeners, plugins={}, timeout_disconnect_delay=0,
                            session_expiry_interval=SESSION_EXPIRY)

    async def stop(self) -> None:
        """Close the listeners and every client connection; save the retained messages."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        try:
            await broker.shutdown()
        finally:
            if self.options["persist_retained"]:
                await self._save_retained()
        _LOGGER.info("MQTT broker stopped")

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish as the hub: no ACL, straight to the subscribers, the retained store (an empty
        retained payload clears it) and `on_message`, like any message."""
        validate_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS must be 0, 1 or 2, not {qos!r}")
        broker = self._broker
        if broker is None:
            raise HubError("The MQTT broker is not running")
        broker.hub_published += 1
        broker.dispatch(Message(topic, encode_payload(payload), qos, bool(retain), HUB_CLIENT_ID,
                                time.time()))

    def retained(self, topic_filter: str) -> list[Message]:
        """The retained messages matching `topic_filter`."""
        validate_filter(topic_filter)
        if "+" not in topic_filter and "#" not in topic_filter:
            message = self.retained_messages.get(topic_filter)
            return [message] if message is not None else []
        return [m for t, m in self.retained_messages.items() if matches(topic_filter, t)]

    @property
    def ports(self) -> dict[str, int]:
        """Listener name ("mqtt", "mqtts", "ws") -> the port it is bound to."""
        broker = self._broker
        if broker is None:
            return {}
        ports = {}
        for name, public in _LISTENER_NAMES.items():
            port = broker.port(name)
            if port is not None:
                ports[public] = port
        return ports

    def topic_rights(self, client_id: str | None) -> Callable[[str], bool] | None:
        """For a message from `client_id`: a check saying whether a topic (or filter) lies within
        what its credential may publish or subscribe to; None when it is unrestricted (the hub
        itself, a superuser, an admitted anonymous client, or a client no longer known)."""
        broker = self._broker
        client = broker.clients.get(client_id) if broker is not None and client_id else None
        cred = None if client is None else client.cred
        if cred is None or cred.superuser:
            return None
        store = self.credentials
        return lambda topic: store.may_publish(cred, topic) or store.may_subscribe(cred, topic)

    def clients(self) -> list[dict[str, Any]]:
        """Connected clients and those seen in the last day, with their counters."""
        broker = self._broker
        if broker is None:
            return []
        return [client.info() for client in broker.clients.values()]

    def stats(self) -> dict[str, Any]:
        """Totals since the broker started."""
        broker = self._broker
        if broker is None:
            return {"running": False, "retained": len(self.retained_messages)}
        totals = dict.fromkeys(_COUNTERS, 0)
        for client in broker.clients.values():
            for key in _COUNTERS:
                totals[key] += getattr(client, key)
        for key, value in broker.pruned.items():
            totals[key] += value
        return {
            "running": True, "ports": self.ports,
            "clients_connected": sum(1 for c in broker.clients.values() if c.connected),
            "clients_known": len(broker.clients), "connections": broker.connections,
            "sessions": len(broker.sessions), "subscriptions": len(broker._index),
            "retained": len(self.retained_messages), "retained_bytes": broker.retained_bytes,
            "retained_refused": broker.retained_refused, "hub_published": broker.hub_published,
            "auth_failures": broker.auth_failures, **totals,
        }

    # -- upkeep and persistence ------------------------------------------------------------------

    def retained_changed(self) -> None:
        self._retained_dirty = True

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            broker = self._broker
            if broker is None:
                return
            try:
                await loop.run_in_executor(None, self.credentials.refresh)
                if self.credentials.generation != broker.generation:
                    await broker.apply_credential_changes()
                broker.prune_clients()
                if (self._retained_dirty and self.options["persist_retained"]
                        and time.monotonic() - self._retained_saved_at > RETAINED_SAVE_DELAY):
                    await self._save_retained()
            except Exception:
                _LOGGER.exception("MQTT broker upkeep failed")

    def _load_retained(self) -> dict[str, Message]:
        try:
            doc = orjson.loads(self._retained_path.read_bytes())
            messages = {}
            for item in doc["data"]["messages"]:
                messages[item["topic"]] = Message(
                    item["topic"], base64.b64decode(item["payload"]), int(item.get("qos", 0)),
                    True, item.get("client_id"), float(item.get("timestamp", 0.0)))
            return messages
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as err:
            _LOGGER.error("Cannot load retained MQTT messages from %s (%s); starting without them",
                          self._retained_path, err)
            return {}

    async def _save_retained(self) -> None:
        self._retained_dirty = False
        self._retained_saved_at = time.monotonic()
        messages = list(self.retained_messages.values())  # encoded and written off the loop
        path = self._retained_path

        def write() -> None:
            data = _encode_retained(messages)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data, mode=0o600)

        try:
            await asyncio.get_running_loop().run_in_executor(None, write)
        except OSError as err:
            self._retained_dirty = True
            _LOGGER.error("Cannot save retained MQTT messages to %s: %s", path, err)


def _encode_retained(messages: list[Message]) -> bytes:
    """The retained store's file content. Blocking (base64 and JSON of up to
    max_retained_bytes): run in an executor."""
    items = [{"topic": m.topic, "payload": base64.b64encode(m.payload).decode("ascii"),
              "qos": m.qos, "client_id": m.client_id, "timestamp": m.timestamp}
             for m in messages]
    return orjson.dumps({"version": 1, "key": RETAINED_STORAGE_KEY, "data": {"messages": items}})


__all__ = ["BROKER_SCHEMA", "BrokerStartError", "EmbeddedBroker", "ensure_self_signed_certificate"]
