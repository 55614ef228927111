"""Persisted registries of areas, devices and entities (Home Assistant's model).

The entity registry is what keeps entity ids stable: an integration registers an entity by
(domain, platform, unique_id) and gets back the same entity_id on every start, the one the user
may have renamed. Each registry is one JSON file in `<config_dir>/.storage/`, saved in the
background (debounced, atomically) and flushed when the hub stops.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import orjson

from .core import id_list, valid_entity_id

_LOGGER = logging.getLogger(__name__)
_NO_OPTIONS: Final[Mapping[str, Any]] = MappingProxyType({})

EVENT_AREA_REGISTRY_UPDATED: Final = "area_registry_updated"
EVENT_DEVICE_REGISTRY_UPDATED: Final = "device_registry_updated"
EVENT_ENTITY_REGISTRY_UPDATED: Final = "entity_registry_updated"
SAVE_DELAY: Final = 1.0
DISABLERS: Final = frozenset({None, "user", "integration"})
_MAC_CONNECTIONS: Final = frozenset({"mac", "bluetooth"})
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_NOT_HEX = re.compile(r"[^0-9a-f]")


def slugify(text: str, separator: str = "_", *, empty: str = "unnamed") -> str:
    """`"Küche Licht #2"` -> `"kuche_licht_2"`; an empty result becomes `empty`."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    slug = _NON_ALNUM.sub(separator, ascii_text.lower()).strip(separator)
    return slug or empty


def format_mac(mac: str) -> str:
    """Any common MAC spelling (`AA-BB-..`, `aabb.ccdd.eeff`, bare hex) -> `aa:bb:cc:dd:ee:ff`."""
    mac = mac.strip().lower()
    digits = _NOT_HEX.sub("", mac)
    if len(digits) == 12 and len(mac) in (12, 14, 17):
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    return mac


def _pair(item: Iterable[str]) -> tuple[str, str]:
    pair = tuple(item)
    if len(pair) != 2 or not all(isinstance(part, str) for part in pair):
        raise ValueError(f"Expected a (type, value) pair of strings, got {item!r}")
    return pair  # type: ignore[return-value]


def _connection(item: Iterable[str]) -> tuple[str, str]:
    kind, value = _pair(item)
    return (kind, format_mac(value)) if kind in _MAC_CONNECTIONS else (kind, value)


def _jsonable(value: Any) -> Any:
    """Copies for event data and files: sets of pairs become sorted lists of 2-lists."""
    if isinstance(value, (set, frozenset)):
        return sorted(list(v) if isinstance(v, tuple) else v for v in value)
    if isinstance(value, (tuple, MappingProxyType)):
        return list(value) if isinstance(value, tuple) else dict(value)
    return value.copy() if isinstance(value, (list, dict)) else value


def _dump(entry: Any) -> dict[str, Any]:
    return {f.name: _jsonable(getattr(entry, f.name)) for f in fields(entry)}


def _build(cls: type, raw: Mapping[str, Any]) -> Any:
    # Unknown keys are ignored, so a file from a newer minor version still loads.
    return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})


def _apply(entry: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Set the fields that differ; return {field: old value} of those (HA's `changes`)."""
    old = {}
    for name, value in changes.items():
        if (current := getattr(entry, name)) != value:
            old[name] = _jsonable(current)
            setattr(entry, name, value)
    if old:
        entry.modified_at = time.time()
    return old


def _check_fields(given: Iterable[str], allowed: Iterable[str]) -> None:
    if unknown := set(given) - set(allowed):
        raise TypeError(f"Unknown field(s): {', '.join(sorted(unknown))}")


def _check_disabler(value: str | None) -> str | None:
    if value not in DISABLERS:
        raise ValueError(f"disabled_by/hidden_by must be None, 'user' or 'integration': {value!r}")
    return value


# --- storage -------------------------------------------------------------------------------


class Store:
    """One JSON file `<config_dir>/.storage/<key>`: `{"version", "key", "data"}`.

    Reads and writes run in the executor; saves are debounced, so a burst of changes costs one
    write. A file that cannot be read as a registry is set aside, never silently overwritten.
    """

    def __init__(
        self, hub: Any, key: str, version: int, data_func: Callable[[], dict[str, Any]], *,
        migrate: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
        delay: float = SAVE_DELAY, mode: int = 0o644,
    ) -> None:
        self.hub = hub
        self.key = key
        self.version = version
        self.delay = delay
        self.mode = mode  # file permissions; 0o600 for files holding secrets
        self.path = Path(hub.config_dir) / ".storage" / key
        self._data_func = data_func
        self._migrate = migrate
        self._pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()

    def migrate(self, old_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Bring data written by an older version up to `self.version`."""
        return self._migrate(old_version, data) if self._migrate else data

    async def load(self) -> dict[str, Any] | None:
        """The stored data, or None when there is no file (or it had to be set aside)."""
        raw = await asyncio.get_running_loop().run_in_executor(None, self._read)
        if raw is None:
            return None
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
                raise ValueError("expected an object with a 'data' object")
            version = doc.get("version")
            if not isinstance(version, int) or doc.get("key") != self.key:
                raise ValueError(f"expected key {self.key!r} and an integer version")
            if version > self.version:
                raise ValueError(f"written by a newer version ({version} > {self.version})")
        except ValueError as err:  # orjson.JSONDecodeError is a ValueError
            await self.set_aside(str(err))
            return None
        if version < self.version:
            self.schedule_save()  # write the migrated shape back soon
            return self.migrate(version, doc["data"])
        return doc["data"]

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    async def set_aside(self, reason: str) -> None:
        """Rename an unusable file to `<key>.corrupt-<UTC time>` and tell the user."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        backup = self.path.with_name(f"{self.key}.corrupt-{stamp}")
        await asyncio.get_running_loop().run_in_executor(None, self.path.replace, backup)
        _LOGGER.error("Could not load %s (%s); moved it to %s", self.path, reason, backup)
        self.hub.notifications.create(
            f"The file {self.path} could not be loaded ({reason}). It was moved to {backup} "
            f"and {self.key} starts empty. Restore it from the backup once fixed.",
            "Registry file set aside",
            notification_id=f"storage_corrupt_{self.key}",
        )

    def schedule_save(self, delay: float | None = None) -> None:
        """Save within `delay` seconds (default `self.delay`; 0: at the next loop iteration)."""
        self._pending = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a CLI tool): flush() writes it
        when = loop.time() + (self.delay if delay is None else delay)
        if self._timer is not None:
            # Debounce: the save already due writes the data as it is then, this change included.
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.hub.tasks.spawn(self._background_write(), name=f"save {self.key}")

    async def _background_write(self) -> None:
        # Shielded: cancelling background tasks at stop must not abandon a write half-way;
        # flush() then waits for it through the lock.
        await asyncio.shield(self._write())

    async def flush(self) -> None:
        """Write now if a save is pending (and wait for a write in progress)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._write()

    async def _write(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            self._pending = False
            # Snapshot and serialise on the loop, so the data cannot change half-way.
            doc = {"version": self.version, "key": self.key, "data": self._data_func()}
            payload = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._write_file, payload)
            except OSError:
                self._pending = True  # still dirty: the next save or flush() tries again
                _LOGGER.exception("Could not save %s", self.path)

    def _write_file(self, payload: bytes) -> None:
        from .config import atomic_write  # config imports the core: import it when needed

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, payload, mode=self.mode)


class _Registry:
    """Load/flush plumbing; subclasses define KEY, `_data()` and `_restore(data)`."""

    KEY: str
    VERSION = 1
    EVENT: str
    _data: Callable[[], dict[str, Any]]
    _restore: Callable[[Mapping[str, Any]], None]

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self._store = Store(hub, self.KEY, self.VERSION, self._data)
        self._restore({})

    async def load(self) -> None:
        data = await self._store.load()
        if data is None:
            return
        try:
            self._restore(data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            self._restore({})  # one bad entry sets the whole file aside, like bad JSON
            await self._store.set_aside(f"invalid entry: {err!r}")

    async def flush(self) -> None:
        await self._store.flush()

    def _changed(self, data: dict[str, Any], changes: dict[str, Any] | None = None) -> None:
        self._store.schedule_save()
        if changes is not None:
            data["changes"] = changes
        self._hub.bus.fire(self.EVENT, data)

    def _check_area(self, area_id: str | None) -> None:
        areas = getattr(self._hub, "areas", None)
        if area_id is not None and areas is not None and areas.get(area_id) is None:
            raise ValueError(f"Unknown area {area_id!r}")


def _lookup(items: Mapping[str, Any], key: str, what: str) -> Any:
    if (item := items.get(key)) is None:
        raise KeyError(f"Unknown {what} {key!r}")
    return item


# --- areas ---------------------------------------------------------------------------------


@dataclass(slots=True)
class AreaEntry:
    id: str
    name: str
    aliases: list[str] = field(default_factory=list)
    icon: str | None = None
    picture: str | None = None
    floor_id: str | None = None
    labels: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    modified_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """The shape of Home Assistant's `config/area_registry/list` entries."""
        data = _dump(self)
        data["area_id"] = data.pop("id")
        return data


_AREA_FIELDS: Final = frozenset({"name", "aliases", "icon", "picture", "floor_id", "labels"})


class AreaRegistry(_Registry):
    KEY = "core.area_registry"
    EVENT = EVENT_AREA_REGISTRY_UPDATED

    def _data(self) -> dict[str, Any]:
        return {"areas": [_dump(area) for area in self._areas.values()]}

    def _restore(self, data: Mapping[str, Any]) -> None:
        areas = [_build(AreaEntry, raw) for raw in data.get("areas", [])]
        self._areas: dict[str, AreaEntry] = {area.id: area for area in areas}

    def create(self, name: str, **kw: Any) -> AreaEntry:
        """A new area; its id is the slug of its name (`_2`, `_3`... if taken)."""
        _check_fields(kw, _AREA_FIELDS - {"name"})
        name = self._check_name(name)
        area_id = base = slugify(name)
        n = 1
        while area_id in self._areas:
            n += 1
            area_id = f"{base}_{n}"
        area = self._areas[area_id] = AreaEntry(area_id, name, **kw)
        self._changed({"action": "create", "area_id": area_id})
        return area

    def get(self, area_id: str) -> AreaEntry | None:
        return self._areas.get(area_id)

    def get_by_name(self, name: str) -> AreaEntry | None:
        wanted = name.strip().casefold()
        return next((a for a in self._areas.values() if a.name.casefold() == wanted), None)

    def update(self, area_id: str, **changes: Any) -> AreaEntry:
        area = _lookup(self._areas, area_id, "area")
        _check_fields(changes, _AREA_FIELDS)
        if "name" in changes:
            changes["name"] = self._check_name(changes["name"], area_id)
        if old := _apply(area, changes):
            self._changed({"action": "update", "area_id": area_id}, old)
        return area

    def delete(self, area_id: str) -> None:
        _lookup(self._areas, area_id, "area")
        # Devices and entities must not point at an area that no longer exists.
        for name in ("devices", "entity_registry"):
            if (registry := getattr(self._hub, name, None)) is not None:
                registry._clear_area(area_id)
        del self._areas[area_id]
        self._changed({"action": "remove", "area_id": area_id})

    def all(self) -> list[AreaEntry]:
        return list(self._areas.values())

    def _check_name(self, name: str, area_id: str | None = None) -> str:
        if not (name := str(name).strip()):
            raise ValueError("An area needs a name")
        other = self.get_by_name(name)
        if other is not None and other.id != area_id:
            raise ValueError(f"An area named {other.name!r} already exists ({other.id})")
        return name


# --- devices -------------------------------------------------------------------------------


@dataclass(slots=True)
class DeviceEntry:
    integration: str  # the domain that created it: HA's primary config entry
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    identifiers: set[tuple[str, str]] = field(default_factory=set)
    connections: set[tuple[str, str]] = field(default_factory=set)
    integrations: set[str] = field(default_factory=set)  # every domain that registered it
    name: str | None = None
    name_by_user: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    model_id: str | None = None
    sw_version: str | None = None
    hw_version: str | None = None
    serial_number: str | None = None
    via_device_id: str | None = None
    area_id: str | None = None
    configuration_url: str | None = None
    entry_type: str | None = None
    disabled_by: str | None = None
    labels: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    modified_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """Home Assistant's `config/device_registry/list` entry; integration domains stand in
        for config entry ids."""
        data = _dump(self)
        del data["integration"], data["integrations"]
        entries = [self.integration, *sorted(self.integrations - {self.integration})]
        data["config_entries"] = entries
        data["config_entries_subentries"] = {entry: [None] for entry in entries}
        data["primary_config_entry"] = self.integration
        return data


# What an integration reports (updated on every get_or_create), and what a user may change.
_DEVICE_INFO: Final = frozenset({
    "name", "manufacturer", "model", "model_id", "sw_version", "hw_version", "serial_number",
    "configuration_url", "entry_type",
})
_DEVICE_USER: Final = frozenset(
    {"name_by_user", "area_id", "disabled_by", "labels", "via_device_id"}
)


class DeviceRegistry(_Registry):
    KEY = "core.device_registry"
    EVENT = EVENT_DEVICE_REGISTRY_UPDATED

    def _data(self) -> dict[str, Any]:
        return {"devices": [_dump(device) for device in self._devices.values()]}

    def _restore(self, data: Mapping[str, Any]) -> None:
        self._devices: dict[str, DeviceEntry] = {}
        self._by_identifier: dict[tuple[str, str], DeviceEntry] = {}
        self._by_connection: dict[tuple[str, str], DeviceEntry] = {}
        for raw in data.get("devices", []):
            device = _build(DeviceEntry, raw)
            device.identifiers = {_pair(i) for i in device.identifiers}
            device.connections = {_connection(c) for c in device.connections}
            device.integrations = {*device.integrations, device.integration}
            self._index(device)

    def _index(self, device: DeviceEntry) -> None:
        self._devices[device.id] = device
        self._by_identifier.update(dict.fromkeys(device.identifiers, device))
        self._by_connection.update(dict.fromkeys(device.connections, device))

    def get_or_create(
        self, *, integration: str, identifiers: Iterable[Iterable[str]] = (),
        connections: Iterable[Iterable[str]] = (), via_device: Iterable[str] | None = None,
        suggested_area: str | None = None, disabled_by: str | None = None, **info: Any,
    ) -> DeviceEntry:
        """The device matching any identifier or connection, updated with `info`; or a new one.

        `suggested_area` (an area name, created if missing) and `disabled_by` apply only to a
        new device: afterwards they belong to the user.
        """
        _check_fields(info, _DEVICE_INFO)
        idents = {_pair(i) for i in identifiers}
        conns = {_connection(c) for c in connections}
        if not idents and not conns:
            raise ValueError("A device needs at least one identifier or connection")
        device = self.get_device(idents, conns)
        created = device is None
        if device is None:
            device = DeviceEntry(integration, disabled_by=_check_disabler(disabled_by))
            if suggested_area and (areas := getattr(self._hub, "areas", None)) is not None:
                area = areas.get_by_name(suggested_area) or areas.create(suggested_area)
                device.area_id = area.id
        # Never steal an identifier that another device owns; merge the rest.
        new_idents = {i for i in idents if self._by_identifier.get(i, device) is device}
        new_conns = {c for c in conns if self._by_connection.get(c, device) is device}
        if len(new_idents) < len(idents) or len(new_conns) < len(conns):
            _LOGGER.warning("Device %s: identifiers owned by another device not merged", device.id)
        changes = {
            **info,
            "identifiers": device.identifiers | new_idents,
            "connections": device.connections | new_conns,
            "integrations": device.integrations | {integration},
        }
        if via_device is not None and (parent := self._by_identifier.get(_pair(via_device))):
            changes["via_device_id"] = parent.id  # a parent not registered yet is linked later
        old = _apply(device, changes)
        self._index(device)
        if created:
            self._changed({"action": "create", "device_id": device.id})
        elif old:
            self._changed({"action": "update", "device_id": device.id}, old)
        return device

    def get(self, device_id: str) -> DeviceEntry | None:
        return self._devices.get(device_id)

    def get_device(
        self, identifiers: Iterable[Iterable[str]] = (), connections: Iterable[Iterable[str]] = ()
    ) -> DeviceEntry | None:
        """The device with any of these identifiers or connections."""
        for ident in identifiers:
            if (device := self._by_identifier.get(_pair(ident))) is not None:
                return device
        for conn in connections:
            if (device := self._by_connection.get(_connection(conn))) is not None:
                return device
        return None

    def update(self, device_id: str, **changes: Any) -> DeviceEntry:
        """Change user fields (name_by_user, area_id, disabled_by, labels, via_device_id) or
        reported ones (name, model, ...)."""
        device = _lookup(self._devices, device_id, "device")
        _check_fields(changes, _DEVICE_USER | _DEVICE_INFO)
        self._check_area(changes.get("area_id"))
        _check_disabler(changes.get("disabled_by"))
        if old := _apply(device, changes):
            self._changed({"action": "update", "device_id": device_id}, old)
        return device

    def remove(self, device_id: str) -> None:
        """Remove a device, its entities' registry entries, and its children's link to it."""
        device = _lookup(self._devices, device_id, "device")
        if (entity_registry := getattr(self._hub, "entity_registry", None)) is not None:
            for entry in entity_registry.entries_for_device(device_id):
                entity_registry.remove(entry.entity_id)
        for child in list(self._devices.values()):
            if child.via_device_id == device_id:
                self.update(child.id, via_device_id=None)
        del self._devices[device_id]
        for ident in device.identifiers:
            self._by_identifier.pop(ident, None)
        for conn in device.connections:
            self._by_connection.pop(conn, None)
        self._changed({"action": "remove", "device_id": device_id})

    def all(self) -> list[DeviceEntry]:
        return list(self._devices.values())

    def _clear_area(self, area_id: str) -> None:
        for device in list(self._devices.values()):
            if device.area_id == area_id:
                self.update(device.id, area_id=None)


# --- entities ------------------------------------------------------------------------------


@dataclass(slots=True)
class RegistryEntry:
    entity_id: str
    unique_id: str
    platform: str  # the integration's domain
    domain: str  # the entity's domain (sensor, light, ...)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    device_id: str | None = None
    area_id: str | None = None
    name: str | None = None  # the user's; original_* are the integration's
    original_name: str | None = None
    icon: str | None = None
    original_icon: str | None = None
    device_class: str | None = None
    original_device_class: str | None = None
    unit_of_measurement: str | None = None
    entity_category: str | None = None
    disabled_by: str | None = None
    hidden_by: str | None = None
    has_entity_name: bool = False
    options: Mapping[str, Any] = None  # type: ignore[assignment]  # set in __post_init__
    labels: Sequence[str] = ()
    previous_unique_id: str | None = None
    created_at: float = 0.0
    modified_at: float = 0.0

    def __post_init__(self) -> None:
        # Memory per entity matters at 10,000 entities: share empties and one timestamp.
        if not self.created_at:
            self.created_at = self.modified_at = time.time()
        if not self.options:
            self.options = _NO_OPTIONS
        if not self.labels:
            self.labels = ()

    @property
    def disabled(self) -> bool:
        return self.disabled_by is not None

    def as_dict(self) -> dict[str, Any]:
        """Home Assistant's `config/entity_registry/list` entry, plus the original_* fields."""
        data = _dump(self)
        data.update(
            config_entry_id=None, config_subentry_id=None, categories={}, translation_key=None
        )
        return data


_ORIGINAL_FIELDS: Final = frozenset({
    "original_name", "original_icon", "original_device_class", "unit_of_measurement",
    "entity_category", "has_entity_name",
})
_ENTITY_USER: Final = frozenset({
    "name", "icon", "area_id", "device_class", "disabled_by", "hidden_by", "labels", "options",
})


class EntityRegistry(_Registry):
    KEY = "core.entity_registry"
    EVENT = EVENT_ENTITY_REGISTRY_UPDATED

    def _data(self) -> dict[str, Any]:
        return {"entities": [_dump(entry) for entry in self._by_entity_id.values()]}

    def _restore(self, data: Mapping[str, Any]) -> None:
        # Two indexes, so both look-ups are O(1): by entity_id, and by what the integration knows.
        self._by_entity_id: dict[str, RegistryEntry] = {}
        # (domain, platform) -> unique_id -> entry: one small tuple per platform, not per entity.
        self._by_key: dict[tuple[str, str], dict[str, RegistryEntry]] = {}
        for raw in data.get("entities", []):
            entry = _build(RegistryEntry, raw)
            if not valid_entity_id(entry.entity_id) or entry.entity_id in self._by_entity_id:
                raise ValueError(f"bad or repeated entity id {entry.entity_id!r}")
            self._by_entity_id[entry.entity_id] = entry
            self._by_key.setdefault((entry.domain, entry.platform), {})[entry.unique_id] = entry

    def get_or_create(
        self, domain: str, platform: str, unique_id: str, *, suggested_object_id: str | None = None,
        device_id: str | None = None, disabled_by: str | None = None, **original: Any,
    ) -> RegistryEntry:
        """The entry for (domain, platform, unique_id). An existing one keeps its entity_id
        (perhaps the user's rename) and takes the integration's current original_* values;
        `disabled_by` applies only to a new one."""
        _check_fields(original, _ORIGINAL_FIELDS)
        unique_id = str(unique_id)
        if (entry := self._by_key.get((domain, platform), {}).get(unique_id)) is not None:
            changes = original if device_id is None else {**original, "device_id": device_id}
            if old := _apply(entry, changes):
                self._changed({"action": "update", "entity_id": entry.entity_id}, old)
            return entry
        if not valid_entity_id(f"{domain}.x"):
            raise ValueError(f"Invalid entity domain {domain!r}")
        object_id = (suggested_object_id or unique_id).removeprefix(f"{domain}.")
        base = candidate = f"{domain}.{slugify(object_id)}"
        n = 1
        while self._taken(candidate):
            n += 1
            candidate = f"{base}_{n}"
        entry = RegistryEntry(
            candidate, unique_id, platform, domain, device_id=device_id,
            disabled_by=_check_disabler(disabled_by), **original,
        )
        self._by_entity_id[candidate] = entry
        self._by_key.setdefault((domain, platform), {})[unique_id] = entry
        self._changed({"action": "create", "entity_id": candidate})
        return entry

    def _taken(self, entity_id: str) -> bool:
        # States count too: an entity without a unique_id holds its id only there.
        return entity_id in self._by_entity_id or entity_id in self._hub.states

    def get(self, entity_id: str) -> RegistryEntry | None:
        return self._by_entity_id.get(entity_id)

    def get_entity_id(self, domain: str, platform: str, unique_id: str) -> str | None:
        entry = self._by_key.get((domain, platform), {}).get(str(unique_id))
        return entry.entity_id if entry is not None else None

    def update(
        self, entity_id: str, *, new_entity_id: str | None = None, **changes: Any
    ) -> RegistryEntry:
        """A user's changes: name, icon, area_id, device_class, disabled_by, hidden_by, labels
        (None clears), options (the given top-level keys replaced, HA's per-domain options).
        `new_entity_id` renames: same domain, and not registered or in use by a state."""
        entry = _lookup(self._by_entity_id, entity_id, "entity")
        _check_fields(changes, _ENTITY_USER)
        self._check_area(changes.get("area_id"))
        _check_disabler(changes.get("disabled_by"))
        _check_disabler(changes.get("hidden_by"))
        if "options" in changes:
            changes["options"] = {**entry.options, **changes["options"]}
        if new_entity_id is not None and new_entity_id != entity_id:
            self._check_rename(entry, new_entity_id)
            changes["entity_id"] = new_entity_id
        if not (old := _apply(entry, changes)):
            return entry
        data = {"action": "update", "entity_id": entry.entity_id}
        if "entity_id" in old:
            del self._by_entity_id[entity_id]
            self._by_entity_id[entry.entity_id] = entry
            data["old_entity_id"] = entity_id
        self._changed(data, old)
        return entry

    def _check_rename(self, entry: RegistryEntry, new_entity_id: str) -> None:
        if not valid_entity_id(new_entity_id):
            raise ValueError(
                f"Invalid entity id {new_entity_id!r}: use {entry.domain}.object_id with "
                "lower-case letters, digits and single underscores"
            )
        if new_entity_id.partition(".")[0] != entry.domain:
            raise ValueError(f"Cannot rename {entry.entity_id} to another domain: {new_entity_id}")
        if self._taken(new_entity_id):
            raise ValueError(f"Entity id {new_entity_id} is already in use")

    def remove(self, entity_id: str) -> None:
        entry = _lookup(self._by_entity_id, entity_id, "entity")
        del self._by_entity_id[entity_id]
        del self._by_key[(entry.domain, entry.platform)][entry.unique_id]
        self._changed({"action": "remove", "entity_id": entity_id})

    def entries_for_device(self, device_id: str) -> list[RegistryEntry]:
        return [e for e in self._by_entity_id.values() if e.device_id == device_id]

    def entries_for_area(self, area_id: str) -> list[RegistryEntry]:
        """Entries assigned to the area themselves (not through their device)."""
        return [e for e in self._by_entity_id.values() if e.area_id == area_id]

    def all(self) -> list[RegistryEntry]:
        return list(self._by_entity_id.values())

    def _clear_area(self, area_id: str) -> None:
        for entry in self.entries_for_area(area_id):
            self.update(entry.entity_id, area_id=None)


# --- service targets -----------------------------------------------------------------------


def _targetable(entry: RegistryEntry) -> bool:
    # As in Home Assistant: a device or area target means its primary entities, not its
    # configuration/diagnostic, hidden or disabled ones.
    return entry.entity_category is None and entry.hidden_by is None and entry.disabled_by is None


def resolve_target(hub: Any, target: Mapping[str, Any]) -> list[str]:
    """Entity ids named by a service target (`entity_id`, `device_id`, `area_id`), each once,
    in first-seen order. Explicit entity ids are kept even when unknown (logged at debug)."""
    found: dict[str, None] = {}
    registry: EntityRegistry | None = getattr(hub, "entity_registry", None)
    devices: DeviceRegistry | None = getattr(hub, "devices", None)
    areas: AreaRegistry | None = getattr(hub, "areas", None)
    entries = registry._by_entity_id.values() if registry is not None else ()

    entity_ids = id_list(target.get("entity_id"))
    if "all" in entity_ids:
        entity_ids = hub.states.entity_ids()
    for entity_id in entity_ids:
        if entity_id not in hub.states and (registry is None or not registry.get(entity_id)):
            _LOGGER.debug("Target entity %s is unknown", entity_id)
        found[entity_id] = None

    for device_id in id_list(target.get("device_id")):
        if devices is None or devices.get(device_id) is None:
            _LOGGER.debug("Target device %s is unknown", device_id)
            continue
        found.update(
            (e.entity_id, None) for e in entries if e.device_id == device_id and _targetable(e)
        )

    for area_id in id_list(target.get("area_id")):
        if areas is None or areas.get(area_id) is None:
            _LOGGER.debug("Target area %s is unknown", area_id)
            continue
        in_area = {d.id for d in devices.all() if d.area_id == area_id} if devices else set()
        for e in entries:
            # An entity's own area wins over its device's.
            in_target = e.area_id == area_id or (e.area_id is None and e.device_id in in_area)
            if in_target and _targetable(e):
                found[e.entity_id] = None
    return list(found)
