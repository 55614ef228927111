"""What each MQTT device sent: counters per device, the last raw messages per entity, and
malformed payloads logged once per device so that a chatty broken sensor cannot flood the log."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from .models import Message

if TYPE_CHECKING:
    from .entity import MqttEntity

_LOGGER = logging.getLogger(__name__)

PREVIEW_BYTES = 1024  # of each raw message kept for diagnostics
# A device logged for a malformed payload is logged again (at WARNING) after this long.
RELOG_SECONDS = 3600.0
MAX_DISCOVERY_KEYS = 1000  # discovery topics with errors remembered


@dataclass
class DeviceCounters:
    messages: int = 0
    bytes: int = 0
    malformed: int = 0
    commands: int = 0
    last_seen: float | None = None
    last_error: str | None = None
    last_error_topic: str | None = None
    last_error_at: float | None = None
    logged_at: float | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages, "bytes": self.bytes, "malformed": self.malformed,
            "commands": self.commands, "last_seen": _iso(self.last_seen),
            "last_error": self.last_error, "last_error_topic": self.last_error_topic,
            "last_error_at": _iso(self.last_error_at),
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    from datetime import datetime

    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _preview(payload: bytes) -> str:
    text = payload[:PREVIEW_BYTES].decode("utf-8", errors="replace")
    return text + ("…" if len(payload) > PREVIEW_BYTES else "")


class Diagnostics:
    """Per device (the registry device, or the entity when it has none) counters, and the
    last `keep` raw messages per entity."""

    def __init__(self, keep: int = 10) -> None:
        self.keep = keep
        self.devices: dict[str, DeviceCounters] = {}
        self.messages: dict[str, deque[tuple[float, str, bytes, int, bool]]] = {}
        self.discovery_errors: dict[str, DeviceCounters] = {}

    @staticmethod
    def device_key(entity: MqttEntity) -> str:
        return entity.device_id or entity.entity_id

    def record(self, entity: MqttEntity, message: Message) -> None:
        counters = self.devices.get(key := entity.device_id or entity.entity_id)
        if counters is None:
            counters = self.devices[key] = DeviceCounters()
        counters.messages += 1
        counters.bytes += len(message.payload)
        counters.last_seen = message.timestamp or time.time()
        if self.keep:
            recent = self.messages.get(entity.entity_id)
            if recent is None:
                recent = self.messages[entity.entity_id] = deque(maxlen=self.keep)
            # The payload is kept as received (bytes are immutable: no copy); previews are
            # made only when someone asks.
            recent.append((counters.last_seen, message.topic, message.payload, message.qos, message.retain))

    def command(self, entity: MqttEntity, topic: str) -> None:
        counters = self.devices.setdefault(self.device_key(entity), DeviceCounters())
        counters.commands += 1

    def malformed(self, entity: MqttEntity, message: Message, reason: str) -> None:
        counters = self.devices.setdefault(self.device_key(entity), DeviceCounters())
        self._count_error(counters, message.topic, reason, f"{entity.entity_id} ({self._device_name(entity)})")

    def discovery_error(self, discovery_key: str, topic: str, reason: str) -> None:
        """A discovery payload that could not be used, counted per discovery topic. Topics are
        the sender's to choose: the table keeps the latest MAX_DISCOVERY_KEYS of them."""
        discovery_key = discovery_key[:300]
        counters = self.discovery_errors.pop(discovery_key, None) or DeviceCounters()
        self.discovery_errors[discovery_key] = counters  # most recent last
        while len(self.discovery_errors) > MAX_DISCOVERY_KEYS:
            del self.discovery_errors[next(iter(self.discovery_errors))]
        counters.messages += 1
        self._count_error(counters, topic, reason, f"discovery {discovery_key}")

    @staticmethod
    def _device_name(entity: MqttEntity) -> str:
        return str((entity.device_info or {}).get("name") or entity.device_id or "no device")

    @staticmethod
    def _count_error(counters: DeviceCounters, topic: str, reason: str, who: str) -> None:
        now = time.time()
        counters.malformed += 1
        counters.last_error, counters.last_error_topic, counters.last_error_at = reason[:500], topic, now
        if counters.logged_at is None or now - counters.logged_at > RELOG_SECONDS:
            counters.logged_at = now
            _LOGGER.warning("MQTT %s: ignored a message on %s: %s (further ones are counted in "
                            "the diagnostics, not logged, for an hour)", who, topic[:200], reason[:500])
        else:
            _LOGGER.debug("MQTT %s: ignored a message on %s: %s", who, topic[:200], reason[:500])

    def entity_messages(self, entity_id: str) -> list[dict[str, Any]]:
        return [
            {"received": _iso(at), "topic": topic, "payload": _preview(payload),
             "size": len(payload), "qos": qos, "retain": retain}
            for at, topic, payload, qos, retain in self.messages.get(entity_id, ())
        ]

    def forget(self, entity: MqttEntity) -> None:
        self.messages.pop(entity.entity_id, None)
