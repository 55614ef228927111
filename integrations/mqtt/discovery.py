"""Home Assistant MQTT discovery, as devices already speak it.

Topics: `<prefix>/<component>/[<node_id>/]<object_id>/config` (one entity) and
`<prefix>/device/<object_id>/config` (a device with its components under `cmps`). Payloads are
JSON, keys may be abbreviated, `~` is a base topic; a later payload updates, an empty one
removes. Anything a device gets wrong is counted and logged once for that discovery topic,
and changes nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import voluptuous as vol
from voluptuous.humanize import humanize_error

from .abbreviations import apply_base_topic, expand
from .models import Message

if TYPE_CHECKING:
    from . import MqttRuntime
    from .entity import MqttEntity

_LOGGER = logging.getLogger(__name__)

_ID = r"[a-zA-Z0-9_-]+"
_TOPIC_RE = re.compile(rf"^(?P<component>{_ID})/(?:(?P<node_id>{_ID})/)?(?P<object_id>{_ID})/config$")
# Options a device config's root shares with every component (HA's device discovery rules).
_SHARED_ROOT_OPTIONS = frozenset({
    "availability", "availability_topic", "availability_mode", "availability_template",
    "payload_available", "payload_not_available", "state_topic", "command_topic", "qos",
    "encoding",
})
MAX_DISCOVERY_BYTES = 65536


@dataclass
class Discovered:
    """What one discovery id currently maps to."""

    discovery_id: tuple[str, ...]
    topic: str
    payload: dict[str, Any]  # expanded, before validation: compared to skip repeats
    entity: MqttEntity | None = None
    migrating: bool = False


@dataclass
class DiscoveryStats:
    configs: int = 0
    removed: int = 0
    errors: int = 0
    ignored_components: dict[str, int] = field(default_factory=dict)


class Discovery:
    def __init__(self, runtime: MqttRuntime, prefix: str) -> None:
        self.runtime = runtime
        self.prefix = prefix
        # By discovery id: (component, node_id, object_id), or ("device", node_id, object_id,
        # component key) for device discovery; node_id is "" when the topic has none.
        self.items: dict[tuple[str, ...], Discovered] = {}
        self.stats = DiscoveryStats()
        # Messages of one discovery topic are handled in order, one at a time.
        self._queues: dict[str, asyncio.Queue[tuple[bytes, str | None]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._device_components: dict[tuple[str, str], set[str]] = {}  # (node_id, object_id) -> keys
        self._unsubscribe = None

    def start(self) -> None:
        self._unsubscribe = self.runtime.connection.subscribe(
            f"{self.prefix}/#", self._on_message, 0, "mqtt discovery")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    # --- receiving ------------------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        topic = message.topic[len(self.prefix) + 1:]
        if not topic.endswith("/config"):
            return  # state topics under the prefix (and the birth topic) are not ours
        match = _TOPIC_RE.match(topic)
        if match is None:
            self._error(message.topic, message.topic, "a discovery topic must be "
                        "<prefix>/<component>/[<node_id>/]<object_id>/config with ids of "
                        "letters, digits, _ and -")
            return
        queue = self._queues.get(message.topic)
        if queue is None:
            queue = self._queues[message.topic] = asyncio.Queue()
        queue.put_nowait((message.payload, message.client_id))
        if message.topic not in self._workers:
            self._workers[message.topic] = asyncio.get_running_loop().create_task(
                self._drain(message.topic, match), name=f"mqtt discovery {message.topic}")

    async def _drain(self, topic: str, match: re.Match[str]) -> None:
        queue = self._queues[topic]
        try:
            while not queue.empty():
                payload, sender = queue.get_nowait()
                try:
                    await self._handle(topic, match, payload, sender)
                except Exception as err:  # one device's config never stops discovery
                    _LOGGER.debug("MQTT discovery on %s failed", topic, exc_info=True)
                    self._error(topic, topic, f"{type(err).__name__}: {err}")
        finally:
            del self._workers[topic]
            if queue.empty():
                self._queues.pop(topic, None)

    def _error(self, key: str, topic: str, reason: str) -> None:
        self.stats.errors += 1
        self.runtime.diagnostics.discovery_error(key, topic, reason)

    async def _handle(self, topic: str, match: re.Match[str], raw: bytes, sender: str | None) -> None:
        component, object_id = match["component"], match["object_id"]
        node_id = match["node_id"] or ""
        is_device = component == "device"
        if not raw:
            if is_device:
                for key in list(self._device_components.pop((node_id, object_id), ())):
                    await self._remove(("device", node_id, object_id, key))
            else:
                await self._remove((component, node_id, object_id))
            return
        if len(raw) > MAX_DISCOVERY_BYTES:
            self._error(topic, topic, f"discovery payload of {len(raw)} bytes is over {MAX_DISCOVERY_BYTES}")
            return
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            self._error(topic, topic, f"invalid JSON: {err}")
            return
        if not isinstance(payload, dict):
            self._error(topic, topic, "a discovery payload must be a JSON object")
            return
        payload = expand(payload)
        if is_device:
            await self._handle_device(topic, node_id, object_id, payload, sender)
            return
        payload = apply_base_topic(payload)
        discovery_id = (component, node_id, object_id)
        if payload.get("migrate_discovery"):
            if (item := self.items.get(discovery_id)) is not None:
                item.migrating = True  # the device config will take this entity over
            return
        await self._apply(discovery_id, topic, component, payload, sender)

    async def _handle_device(self, topic: str, node_id: str, object_id: str,
                             payload: dict[str, Any], sender: str | None) -> None:
        components = payload.get("components")
        if not isinstance(payload.get("device"), dict) or not isinstance(components, dict):
            self._error(topic, topic, "a device discovery payload needs a `dev` (device) object "
                        "and a `cmps` (components) object")
            return
        if not isinstance(payload.get("origin"), dict):
            _LOGGER.debug("Device discovery %s has no origin (`o`); accepted anyway", topic)
        shared = {k: v for k, v in payload.items() if k in _SHARED_ROOT_OPTIONS or k == "~"}
        seen: set[str] = set()
        for key, component_config in components.items():
            discovery_id = ("device", node_id, object_id, str(key))
            if not isinstance(component_config, dict) or not isinstance(component_config.get("platform"), str):
                self._error(topic, topic, f"component {key!r} needs a `p` (platform)")
                continue
            platform = component_config["platform"]
            if set(component_config) == {"platform"}:
                await self._remove(discovery_id)  # HA's way to remove one component
                continue
            seen.add(key)
            config = apply_base_topic({**shared, **component_config, "device": payload["device"]})
            if "origin" in payload:
                config["origin"] = payload["origin"]
            await self._apply(discovery_id, topic, platform, config, sender)
        for key in self._device_components.get((node_id, object_id), set()) - seen:
            await self._remove(("device", node_id, object_id, key))  # left out of the new config
        self._device_components[(node_id, object_id)] = seen

    # --- entities -------------------------------------------------------------------------

    async def _apply(self, discovery_id: tuple[str, ...], topic: str, component: str,
                     payload: dict[str, Any], sender: str | None = None) -> None:
        runtime = self.runtime
        cls = runtime.platforms.get(component)
        if cls is None:
            ignored = self.stats.ignored_components
            if component in ignored or len(ignored) < 100:  # names are the sender's to choose
                ignored[component] = ignored.get(component, 0) + 1
            self._error(topic, topic, f"component {component!r} is not supported")
            return
        item = self.items.get(discovery_id)
        if item is not None and item.payload == payload and item.entity is not None:
            return  # a repeat (devices re-announce on every birth message)
        try:
            config = cls.SCHEMA(payload)
        except vol.Invalid as err:
            self._error(topic, topic, f"invalid {component} config: {humanize_error(payload, err)}")
            return
        if (outside := self._outside_rights(config, sender)) is not None:
            self._error(topic, topic, f"topic {outside!r} is outside what the announcing "
                        "device's credential may use: an entity may only use its own device's topics")
            return
        self.stats.configs += 1
        if item is not None and item.entity is not None:
            if item.entity.PLATFORM == component and item.entity.unique_id == config.get("unique_id"):
                item.payload = payload
                await item.entity.update_discovery(config)
                return
            # Another platform or another unique_id: a different entity. Start again (and let
            # the new unique_id go through the duplicate check below).
            await self._remove(discovery_id, force=True)
        # A new discovery id: maybe a migration from a single-component topic, by unique_id.
        unique_id = config.get("unique_id")
        if unique_id is not None:
            for other in list(self.items.values()):
                if other.entity is not None and other.entity.unique_id == unique_id \
                        and other.entity.PLATFORM == component:
                    if not other.migrating:
                        self._error(topic, topic, f"unique_id {unique_id!r} is already used by "
                                    f"{other.entity.entity_id} (discovered on {other.topic})")
                        return
                    del self.items[other.discovery_id]
                    other.entity.discovery_id = discovery_id
                    self.items[discovery_id] = Discovered(discovery_id, topic, payload, other.entity)
                    await other.entity.update_discovery(config)
                    return
        entity = cls(runtime, config, discovery_id)
        if not runtime.add_entity(entity):
            self._error(topic, topic, f"{component} {config.get('unique_id') or config.get('name')!r} "
                        "could not be added (its id is taken by another entity)")
            return
        self.items[discovery_id] = Discovered(discovery_id, topic, payload, entity)

    def _outside_rights(self, config: dict[str, Any], sender: str | None) -> str | None:
        """The first topic of `config` that the sender's credential may neither publish nor
        subscribe to (so a device cannot make the hub read or command another device's
        topics); None when all are within it or the sender is unrestricted."""
        broker = self.runtime.broker
        allowed = broker.topic_rights(sender) if broker is not None else None
        if allowed is None:
            return None
        topics = [value for key, value in config.items() if key.endswith("_topic") and isinstance(value, str)]
        topics += [item["topic"] for item in config.get("availability") or () if isinstance(item, dict)]
        return next((t for t in topics if not allowed(t)), None)

    async def _remove(self, discovery_id: tuple[str, ...], force: bool = False) -> None:
        item = self.items.pop(discovery_id, None)
        if item is None or item.entity is None:
            return
        if item.migrating and not force:
            self.items[discovery_id] = item  # cleared during a migration: keep the entity
            return
        self.stats.removed += 1
        await self.runtime.remove_entity(item.entity, forget=True)
