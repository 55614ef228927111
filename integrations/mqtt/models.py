"""What every part of the MQTT integration shares: the message, topic rules, the hub's own
subscription table, and the connection interface both broker modes implement.

The hub sees MQTT the same way whether it runs the embedded broker (messages arrive in-process)
or talks to an external one (through a client): a `Connection` delivers every message that
matches one of the hub's subscriptions to the callbacks in a `Subscriptions` table, and
publishes with `publish()`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_LOGGER = logging.getLogger(__name__)

# The hub's own identity on the broker (embedded) or its client id prefix (external).
HUB_CLIENT_ID = "iot-hub"


@dataclass(slots=True)
class Message:
    """One PUBLISH as the hub received it. `client_id` is the publishing client when the
    embedded broker knows it (None from an external broker)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    client_id: str | None = None
    timestamp: float = 0.0  # time.time() at reception

    def text(self, encoding: str = "utf-8") -> str:
        """The payload decoded; undecodable bytes become U+FFFD rather than failing."""
        return self.payload.decode(encoding or "utf-8", errors="replace")


MessageCallback = Callable[[Message], None]


class TopicError(ValueError):
    """A topic or topic filter that MQTT does not allow."""


def validate_topic(topic: str) -> str:
    """A topic a message may be published to (no wildcards, not empty, no NUL, ≤ 65535 bytes)."""
    if not isinstance(topic, str) or not topic:
        raise TopicError("a topic must be a non-empty string")
    if "+" in topic or "#" in topic:
        raise TopicError(f"wildcards are not allowed in a topic to publish to: {topic!r}")
    _check_common(topic)
    return topic


def validate_filter(topic_filter: str) -> str:
    """A subscription filter: `+` a whole level, `#` only as the whole last level."""
    if not isinstance(topic_filter, str) or not topic_filter:
        raise TopicError("a topic filter must be a non-empty string")
    _check_common(topic_filter)
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"'#' must be the whole last level: {topic_filter!r}")
        if "+" in level and level != "+":
            raise TopicError(f"'+' must be a whole level: {topic_filter!r}")
    return topic_filter


def _check_common(value: str) -> None:
    if "\x00" in value:
        raise TopicError("a topic cannot contain NUL")
    if len(value.encode("utf-8", "surrogatepass")) > 65535:
        raise TopicError("a topic is limited to 65535 bytes")


def matches(topic_filter: str, topic: str) -> bool:
    """True if `topic` matches `topic_filter` (MQTT 3.1.1 §4.7, `$` topics excluded from
    filters that start with a wildcard)."""
    if topic_filter == topic:
        return True
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(slots=True, eq=False)
class Subscription:
    topic_filter: str
    callback: MessageCallback
    qos: int = 0
    owner: str = ""  # who subscribed, for diagnostics and error messages


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    here: list[Subscription] = field(default_factory=list)  # filters that end at this level
    rest: list[Subscription] = field(default_factory=list)  # filters that end with '#' here


class Subscriptions:
    """The hub's subscriptions: a trie over topic levels, so a message costs one walk down its
    levels, not a test against every filter. Exact topics (the common case: one state topic per
    entity) are answered from a dict."""

    def __init__(self) -> None:
        self._exact: dict[str, list[Subscription]] = {}
        self._root = _Node()
        self._count: dict[str, int] = {}  # filter -> number of subscriptions
        self._max_qos: dict[str, int] = {}
        # Called with (filter, qos) when a filter gets its first subscription or a higher QoS,
        # and with (filter, None) when its last subscription goes: connections to an external
        # broker follow this to subscribe and unsubscribe there.
        self.on_filter_change: Callable[[str, int | None], None] | None = None

    def add(self, topic_filter: str, callback: MessageCallback, qos: int = 0,
            owner: str = "") -> Callable[[], None]:
        """Subscribe; returns a function that removes this subscription."""
        validate_filter(topic_filter)
        sub = Subscription(topic_filter, callback, qos, owner)
        if "+" not in topic_filter and "#" not in topic_filter:
            self._exact.setdefault(topic_filter, []).append(sub)
        else:
            node = self._root
            levels = topic_filter.split("/")
            for level in levels[:-1] if levels[-1] == "#" else levels:
                node = node.children.setdefault(level, _Node())
            (node.rest if levels[-1] == "#" else node.here).append(sub)
        self._count[topic_filter] = self._count.get(topic_filter, 0) + 1
        old_qos = self._max_qos.get(topic_filter)
        if old_qos is None or qos > old_qos:
            self._max_qos[topic_filter] = qos
            if self.on_filter_change is not None:
                self.on_filter_change(topic_filter, qos)

        removed = False

        def remove() -> None:
            nonlocal removed
            if not removed:
                removed = True
                self._remove(sub)

        return remove

    def _remove(self, sub: Subscription) -> None:
        topic_filter = sub.topic_filter
        if topic_filter in self._exact:
            subs = self._exact[topic_filter]
            subs.remove(sub)
            if not subs:
                del self._exact[topic_filter]
        else:
            levels = topic_filter.split("/")
            path = [self._root]
            for level in levels[:-1] if levels[-1] == "#" else levels:
                path.append(path[-1].children[level])
            (path[-1].rest if levels[-1] == "#" else path[-1].here).remove(sub)
            keys = levels[:-1] if levels[-1] == "#" else levels
            for depth in range(len(keys), 0, -1):  # prune empty branches
                node = path[depth]
                if node.children or node.here or node.rest:
                    break
                del path[depth - 1].children[keys[depth - 1]]
        self._count[topic_filter] -= 1
        if not self._count[topic_filter]:
            del self._count[topic_filter]
            del self._max_qos[topic_filter]
            if self.on_filter_change is not None:
                self.on_filter_change(topic_filter, None)

    def filters(self) -> dict[str, int]:
        """Every subscribed filter with the highest QoS asked for it."""
        return dict(self._max_qos)

    def match(self, topic: str) -> list[Subscription]:
        found = list(self._exact.get(topic, ()))
        if self._root.children or self._root.rest:
            self._walk(self._root, topic.split("/"), 0, found, topic.startswith("$"))
        return found

    def _walk(self, node: _Node, levels: list[str], index: int, found: list[Subscription],
              dollar: bool) -> None:
        wild_ok = not (dollar and index == 0)
        if wild_ok:
            found.extend(node.rest)
        if index == len(levels):
            found.extend(node.here)
            return
        child = node.children.get(levels[index])
        if child is not None:
            self._walk(child, levels, index + 1, found, dollar)
        if wild_ok and (plus := node.children.get("+")) is not None:
            self._walk(plus, levels, index + 1, found, dollar)

    def dispatch(self, message: Message) -> int:
        """Call every matching callback; one that raises is logged and the others still run.
        Returns how many were called."""
        subs = self.match(message.topic)
        for sub in subs:
            try:
                sub.callback(message)
            except Exception:
                _LOGGER.exception("Handling %s for %s failed", message.topic, sub.owner or sub.callback)
        return len(subs)

    def __len__(self) -> int:
        return sum(self._count.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._count)


class Connection(abc.ABC):
    """The hub's side of MQTT. Implemented by the embedded broker's in-process connection and
    by the client for an external broker. Callbacks run on the event loop and must not block."""

    def __init__(self) -> None:
        self.subscriptions = Subscriptions()
        self.connected = False
        self._connection_listeners: list[Callable[[bool], None]] = []

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0,
                  owner: str = "") -> Callable[[], None]:
        """Receive every message matching `topic_filter` (retained ones too, when subscribing
        after they were published). Returns the function that unsubscribes."""
        remove = self.subscriptions.add(topic_filter, callback, qos, owner)
        self._deliver_retained(topic_filter, callback)
        return remove

    def _deliver_retained(self, topic_filter: str, callback: MessageCallback) -> None:
        """Hand a new subscription the retained messages it matches, where the connection
        keeps them (the embedded broker does; an external broker sends them itself)."""

    @abc.abstractmethod
    async def publish(self, topic: str, payload: bytes | str, qos: int = 0,
                      retain: bool = False) -> None:
        """Publish; raises TopicError for a bad topic and HomeAssistantError-style errors
        (hub.exceptions.HubError) when not connected."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (or start the broker). Returns once the first connection is up or has
        failed; an external connection keeps retrying in the background."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Disconnect and stop everything started; publishes nothing more."""

    def add_connection_listener(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """`listener(True)` on every (re)connection, `listener(False)` on every loss."""
        self._connection_listeners.append(listener)
        return lambda: self._connection_listeners.remove(listener) if listener in self._connection_listeners else None

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        for listener in list(self._connection_listeners):
            try:
                listener(connected)
            except Exception:
                _LOGGER.exception("MQTT connection listener failed")

    def receive(self, message: Message) -> None:
        """Entry point of every message the connection gets: hand it to the subscriptions."""
        self.subscriptions.dispatch(message)

    def stats(self) -> dict[str, Any]:
        """Figures for diagnostics."""
        return {"connected": self.connected, "subscriptions": len(self.subscriptions)}


def encode_payload(payload: bytes | bytearray | str | float | None) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return str(payload).encode("utf-8")
