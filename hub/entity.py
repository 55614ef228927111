"""Entity base classes per domain, and the collection of live entities.

An integration creates entity objects and adds them with `hub.entities.add(entity, domain)`;
the collection gives each a stable entity_id from the entity registry, registers its device,
writes its state, and routes domain services (`switch.turn_on`, `number.set_value`, ...) to the
entities they target. An entity publishes a change by setting its values and calling
`write_state()`.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import voluptuous as vol

from .exceptions import NotSupported, ServiceValidationError
from .core import STATE_UNAVAILABLE, STATE_UNKNOWN, Context, Event, EventOrigin, valid_entity_id
from .services import ServiceCall

if TYPE_CHECKING:
    from .core import Hub

_LOGGER = logging.getLogger(__name__)

STATE_ON = "on"
STATE_OFF = "off"


class StateClass(enum.StrEnum):
    measurement = "measurement"
    total = "total"
    total_increasing = "total_increasing"


class Entity:
    """Base of every entity. Subclasses set `domain` and compute `state`.

    Instance attributes an integration sets: `unique_id` (gives a stable entity_id across
    restarts and lets the user rename it), `name` (the entity's own name; shown after the
    device's name), `device_info` (a dict for the device registry: identifiers, connections,
    name, manufacturer, model, sw_version, hw_version, via_device, configuration_url, ...),
    `device_class`, `unit_of_measurement`, `state_class`, `entity_category`, `icon`,
    `available`, `enabled_by_default`, `force_update`.
    """

    domain: ClassVar[str] = ""

    unique_id: str | None = None
    name: str | None = None
    device_info: Mapping[str, Any] | None = None
    device_class: str | None = None
    unit_of_measurement: str | None = None
    state_class: str | None = None
    entity_category: str | None = None
    icon: str | None = None
    available: bool = True
    enabled_by_default: bool = True
    force_update: bool = False
    suggested_object_id: str | None = None

    # The context of the service call acting on the entity: the state it writes in the next
    # few seconds carries it, so a trace or the API shows what caused the change.
    _context: Context | None = None
    _context_until: float = 0.0

    # Set when added to a hub.
    hub: Hub | None = None
    entity_id: str = ""
    platform: str = ""
    device_id: str | None = None
    registry_name: str | None = None

    @property
    def state(self) -> Any:
        return None

    def state_attributes(self) -> dict[str, Any] | None:
        """Attributes the domain defines for its current state (e.g. a light's brightness)."""
        return None

    def capability_attributes(self) -> dict[str, Any] | None:
        """Attributes that describe what the entity can do (e.g. a select's options)."""
        return None

    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Attributes an integration adds of its own."""
        return None

    @property
    def friendly_name(self) -> str | None:
        if self.registry_name:
            return self.registry_name
        device_name = (self.device_info or {}).get("name")
        if self.device_id and self.hub is not None:
            # The registry's name: the user's rename, or another entity's report of the device
            # (MQTT entities may share a device by its identifiers alone).
            device = self.hub.devices.get(self.device_id)
            if device is not None:
                device_name = device.name_by_user or device.name or device_name
        if device_name and self.name:
            return f"{device_name} {self.name}"
        return self.name or device_name

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for part in (self.capability_attributes(), self.state_attributes(), self.extra_state_attributes()):
            if part:
                attrs.update(part)
        if self.unit_of_measurement is not None:
            attrs["unit_of_measurement"] = self.unit_of_measurement
        if self.device_class is not None:
            attrs["device_class"] = str(self.device_class)
        if self.state_class is not None:
            attrs["state_class"] = str(self.state_class)
        if self.icon is not None:
            attrs["icon"] = self.icon
        name = self.friendly_name
        if name is not None:
            attrs["friendly_name"] = name
        return attrs

    def state_string(self) -> str:
        if not self.available:
            return STATE_UNAVAILABLE
        value = self.state
        if value is None:
            return STATE_UNKNOWN
        if isinstance(value, bool):
            return STATE_ON if value else STATE_OFF
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    def write_state(self) -> None:
        """Publish the entity's current values to the state machine."""
        if self.hub is None:  # never added, disabled in the entity registry, or removed
            _LOGGER.debug("%s is not on a hub: state not written", self.entity_id or self)
            return
        attributes = self.attributes()
        customized = self.hub.config.get("customize", {}).get(self.entity_id)
        if customized:  # the user's `customize:` overrides win over the integration's values
            attributes.update(customized)
        context = self._context
        if context is not None and time.monotonic() > self._context_until:
            context = self._context = None
        self.hub.states.set(
            self.entity_id, self.state_string(), attributes, self.force_update, context
        )

    def set_context(self, context: Context, seconds: float = 5.0) -> None:
        """Attribute the state changes of the next `seconds` to `context`."""
        self._context = context
        self._context_until = time.monotonic() + seconds

    def set_available(self, available: bool) -> None:
        if available != self.available:
            self.available = available
            if self.hub is not None:
                self.write_state()

    async def added(self) -> None:
        """Called once the entity has its entity_id and first state (start polling here)."""

    async def removing(self) -> None:
        """Called before the entity is removed (stop what `added` started)."""


class SensorEntity(Entity):
    domain = "sensor"
    native_value: Any = None
    suggested_display_precision: int | None = None
    options: list[str] | None = None  # the possible values of an "enum" sensor

    @property
    def state(self) -> Any:
        value = self.native_value
        if isinstance(value, float) and self.suggested_display_precision is not None:
            return round(value, self.suggested_display_precision)
        return value

    def capability_attributes(self) -> dict[str, Any] | None:
        if self.device_class == "enum" and self.options is not None:
            return {"options": list(self.options)}
        return None


class BinarySensorEntity(Entity):
    domain = "binary_sensor"
    is_on: bool | None = None

    @property
    def state(self) -> Any:
        return None if self.is_on is None else (STATE_ON if self.is_on else STATE_OFF)


class ToggleEntity(Entity):
    """An entity that can be turned on and off (switches, lights)."""

    is_on: bool | None = None

    @property
    def state(self) -> Any:
        return None if self.is_on is None else (STATE_ON if self.is_on else STATE_OFF)

    async def turn_on(self, **kwargs: Any) -> None:
        raise NotSupported(f"{self.entity_id} cannot be turned on")

    async def turn_off(self, **kwargs: Any) -> None:
        raise NotSupported(f"{self.entity_id} cannot be turned off")

    async def toggle(self, **kwargs: Any) -> None:
        if self.is_on:
            await self.turn_off(**kwargs)
        else:
            await self.turn_on(**kwargs)


class SwitchEntity(ToggleEntity):
    domain = "switch"


class LightEntity(ToggleEntity):
    domain = "light"
    brightness: int | None = None  # 0..255
    color_mode: str | None = None
    supported_color_modes: set[str] | None = None
    hs_color: tuple[float, float] | None = None
    rgb_color: tuple[int, int, int] | None = None
    color_temp_kelvin: int | None = None
    min_color_temp_kelvin: int = 2000
    max_color_temp_kelvin: int = 6500
    effect: str | None = None
    effect_list: list[str] | None = None

    def capability_attributes(self) -> dict[str, Any] | None:
        attrs: dict[str, Any] = {}
        if self.supported_color_modes:
            attrs["supported_color_modes"] = sorted(self.supported_color_modes)
            if "color_temp" in self.supported_color_modes:
                attrs["min_color_temp_kelvin"] = self.min_color_temp_kelvin
                attrs["max_color_temp_kelvin"] = self.max_color_temp_kelvin
        if self.effect_list:
            attrs["effect_list"] = list(self.effect_list)
        return attrs

    def state_attributes(self) -> dict[str, Any] | None:
        if not self.is_on:
            return {"color_mode": None, "brightness": None}
        attrs: dict[str, Any] = {"color_mode": self.color_mode, "brightness": self.brightness}
        if self.color_temp_kelvin is not None:
            attrs["color_temp_kelvin"] = self.color_temp_kelvin
        if self.hs_color is not None:
            attrs["hs_color"] = list(self.hs_color)
        if self.rgb_color is not None:
            attrs["rgb_color"] = list(self.rgb_color)
        if self.effect is not None:
            attrs["effect"] = self.effect
        return attrs


class NumberEntity(Entity):
    domain = "number"
    native_value: float | None = None
    native_min_value: float = 0.0
    native_max_value: float = 100.0
    native_step: float = 1.0
    mode: str = "auto"  # auto, box, slider

    @property
    def state(self) -> Any:
        return self.native_value

    def capability_attributes(self) -> dict[str, Any] | None:
        return {
            "min": self.native_min_value,
            "max": self.native_max_value,
            "step": self.native_step,
            "mode": self.mode,
        }

    async def set_native_value(self, value: float) -> None:
        raise NotSupported(f"{self.entity_id} cannot be set")


class ButtonEntity(Entity):
    domain = "button"
    last_pressed: datetime | None = None

    @property
    def state(self) -> Any:
        return self.last_pressed

    async def press(self) -> None:
        raise NotSupported(f"{self.entity_id} cannot be pressed")


class SelectEntity(Entity):
    domain = "select"
    current_option: str | None = None
    options: list[str] = []

    @property
    def state(self) -> Any:
        return self.current_option

    def capability_attributes(self) -> dict[str, Any] | None:
        return {"options": list(self.options)}

    async def select_option(self, option: str) -> None:
        raise NotSupported(f"{self.entity_id} cannot select")


class EventEntity(Entity):
    """Something that happens (a button press on a remote): the state is when it last
    happened; the attributes say what."""

    domain = "event"
    event_types: list[str] = []
    last_event_at: datetime | None = None
    last_event_type: str | None = None
    last_event_data: dict[str, Any] | None = None

    @property
    def state(self) -> Any:
        return self.last_event_at

    def capability_attributes(self) -> dict[str, Any] | None:
        return {"event_types": list(self.event_types)}

    def state_attributes(self) -> dict[str, Any] | None:
        return {"event_type": self.last_event_type, **(self.last_event_data or {})}

    def trigger_event(self, event_type: str, data: Mapping[str, Any] | None = None) -> None:
        if self.event_types and event_type not in self.event_types:
            raise ValueError(f"{self.entity_id}: unknown event type {event_type!r}")
        self.last_event_at = datetime.now(timezone.utc)
        self.last_event_type = event_type
        self.last_event_data = dict(data or {})
        self.write_state()


class UpdateEntity(Entity):
    """A firmware or software update: `on` when a newer version is available."""

    domain = "update"
    installed_version: str | None = None
    latest_version: str | None = None
    skipped_version: str | None = None
    title: str | None = None
    release_summary: str | None = None
    release_url: str | None = None
    in_progress: bool | int = False

    @property
    def state(self) -> Any:
        if self.installed_version is None or self.latest_version is None:
            return None
        newer = self.latest_version != self.installed_version
        return STATE_ON if newer and self.latest_version != self.skipped_version else STATE_OFF

    def state_attributes(self) -> dict[str, Any] | None:
        return {
            "installed_version": self.installed_version,
            "latest_version": self.latest_version,
            "skipped_version": self.skipped_version,
            "title": self.title,
            "release_summary": self.release_summary,
            "release_url": self.release_url,
            "in_progress": self.in_progress,
        }

    async def install(self, version: str | None, backup: bool) -> None:
        raise NotSupported(f"{self.entity_id} cannot install updates")


def _light_turn_on_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    if "brightness_pct" in data:
        data["brightness"] = round(data.pop("brightness_pct") * 255 / 100)
    return data


_LIGHT_ON_SCHEMA = vol.Schema(
    {
        vol.Optional("brightness"): vol.All(vol.Coerce(int), vol.Range(min=0, max=255)),
        vol.Optional("brightness_pct"): vol.All(vol.Coerce(float), vol.Range(min=0, max=100)),
        vol.Optional("rgb_color"): vol.All(
            vol.ExactSequence((int, int, int)), vol.Coerce(tuple)
        ),
        vol.Optional("hs_color"): vol.All(vol.ExactSequence((vol.Coerce(float), vol.Coerce(float))), vol.Coerce(tuple)),
        vol.Optional("color_temp_kelvin"): vol.All(vol.Coerce(int), vol.Range(min=1000, max=20000)),
        vol.Optional("effect"): str,
        vol.Optional("transition"): vol.All(vol.Coerce(float), vol.Range(min=0)),
    }
)
_TRANSITION_SCHEMA = vol.Schema({vol.Optional("transition"): vol.All(vol.Coerce(float), vol.Range(min=0))})


async def _select_option(entity: SelectEntity, option: str) -> None:
    if option not in entity.options:
        raise ServiceValidationError(
            f"{option!r} is not an option of {entity.entity_id}; options: {entity.options}"
        )
    await entity.select_option(option)


async def _set_number(entity: NumberEntity, value: float) -> None:
    if not entity.native_min_value <= value <= entity.native_max_value:
        raise ServiceValidationError(
            f"{value} is outside {entity.entity_id}'s range "
            f"[{entity.native_min_value}, {entity.native_max_value}]"
        )
    await entity.set_native_value(value)


# domain -> service -> (schema, how to apply a call's data to one entity)
EntityAction = Callable[[Any, dict[str, Any]], Any]
DOMAIN_SERVICES: dict[str, dict[str, tuple[vol.Schema | None, EntityAction]]] = {
    "switch": {
        "turn_on": (None, lambda e, d: e.turn_on()),
        "turn_off": (None, lambda e, d: e.turn_off()),
        "toggle": (None, lambda e, d: e.toggle()),
    },
    "light": {
        "turn_on": (_LIGHT_ON_SCHEMA, lambda e, d: e.turn_on(**_light_turn_on_kwargs(dict(d)))),
        "turn_off": (_TRANSITION_SCHEMA, lambda e, d: e.turn_off(**d)),
        "toggle": (_LIGHT_ON_SCHEMA, lambda e, d: e.toggle(**_light_turn_on_kwargs(dict(d)))),
    },
    "number": {
        "set_value": (
            vol.Schema({vol.Required("value"): vol.Coerce(float)}),
            lambda e, d: _set_number(e, d["value"]),
        ),
    },
    "button": {"press": (None, lambda e, d: e.press())},
    "select": {
        "select_option": (
            vol.Schema({vol.Required("option"): vol.Coerce(str)}),
            lambda e, d: _select_option(e, d["option"]),
        ),
        "select_first": (None, lambda e, d: _select_option(e, e.options[0])),
        "select_last": (None, lambda e, d: _select_option(e, e.options[-1])),
        "select_next": (
            vol.Schema({vol.Optional("cycle", default=True): bool}),
            lambda e, d: _select_option(e, _step_option(e, 1, d["cycle"])),
        ),
        "select_previous": (
            vol.Schema({vol.Optional("cycle", default=True): bool}),
            lambda e, d: _select_option(e, _step_option(e, -1, d["cycle"])),
        ),
    },
    "update": {
        "install": (
            vol.Schema({vol.Optional("version"): vol.Any(None, str), vol.Optional("backup", default=False): bool}),
            lambda e, d: e.install(d.get("version"), d["backup"]),
        ),
        "skip": (None, lambda e, d: _skip_update(e)),
    },
}


def _step_option(entity: SelectEntity, step: int, cycle: bool) -> str:
    options = entity.options
    index = options.index(entity.current_option) if entity.current_option in options else -step
    index += step
    if cycle:
        return options[index % len(options)]
    return options[max(0, min(index, len(options) - 1))]


def _skip_update(entity: UpdateEntity) -> None:
    entity.skipped_version = entity.latest_version
    entity.write_state()


class EntityCollection:
    """The live entity objects of a hub, and the domain services that act on them."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._entities: dict[str, Entity] = {}
        # Entities the user disabled in the entity registry, by entity_id: kept, so that
        # enabling the entry again brings the live object back without a restart.
        self._disabled: dict[str, tuple[Entity, str]] = {}
        # Taking an entity off and putting it back run in tasks: one at a time, in order.
        self._lock = asyncio.Lock()
        self._services_registered: set[str] = set()
        hub.bus.listen("entity_registry_updated", self._on_registry_updated)

    def get(self, entity_id: str) -> Entity | None:
        return self._entities.get(entity_id)

    def all(self, integration: str | None = None) -> list[Entity]:
        return [e for e in self._entities.values() if integration is None or e.platform == integration]

    def add(self, entity: Entity, integration: str) -> str | None:
        """Give the entity its entity_id, register it and its device, and write its first
        state. Returns the entity_id, or None when the user disabled the entity: it is then
        kept aside (its `write_state()` does nothing) and added when the user enables it."""
        hub = self._hub
        if not entity.domain:
            raise ValueError(f"{type(entity).__name__} has no domain")
        entity.hub = hub
        entity.platform = integration
        if entity.device_info:
            info = dict(entity.device_info)
            entity.device_id = hub.devices.get_or_create(integration=integration, **info).id
        suggested = entity.suggested_object_id or entity.friendly_name or entity.unique_id or entity.domain
        if entity.unique_id is not None:
            entry = hub.entity_registry.get_or_create(
                entity.domain,
                integration,
                entity.unique_id,
                suggested_object_id=suggested,
                device_id=entity.device_id,
                disabled_by=None if entity.enabled_by_default else "integration",
                original_name=entity.friendly_name,
                original_icon=entity.icon,
                original_device_class=entity.device_class,
                unit_of_measurement=entity.unit_of_measurement,
                entity_category=entity.entity_category,
            )
            if entry.disabled_by:
                entity.hub = None
                entity.entity_id = entry.entity_id
                self._disabled[entry.entity_id] = (entity, integration)
                return None
            entity.entity_id = entry.entity_id
            entity.registry_name = entry.name
        else:
            entity.entity_id = self._free_entity_id(entity.domain, suggested)
        if entity.entity_id in self._entities:
            raise ValueError(f"Entity {entity.entity_id} was already added")
        self._entities[entity.entity_id] = entity
        self._register_domain_services(entity.domain)
        entity.write_state()
        if type(entity).added is not Entity.added:  # no task for entities that need none
            hub.create_task(self._call(entity.added, entity), f"{entity.entity_id} added")
        return entity.entity_id

    async def remove(self, entity: Entity | str) -> None:
        """Take the entity off the hub (its registry entry stays, to keep its id). A disabled
        entity is forgotten: enabling it later no longer brings it back."""
        entity_id = entity if isinstance(entity, str) else entity.entity_id
        live = self._entities.pop(entity_id, None)
        if live is None:
            self._forget_disabled(entity)
            return
        await self._take_off(live)

    async def remove_all(self, integration: str) -> None:
        """Take all of an integration's entities off the hub, and forget its disabled ones
        (for an integration that failed or unloaded without removing its own)."""
        for key, (_, platform) in list(self._disabled.items()):
            if platform == integration:
                del self._disabled[key]
        for entity in self.all(integration):
            await self.remove(entity)

    def _forget_disabled(self, entity: Entity | str) -> None:
        if isinstance(entity, str):
            self._disabled.pop(entity, None)
            return
        for key, (kept, _) in list(self._disabled.items()):
            if kept is entity:
                del self._disabled[key]

    async def _take_off(self, entity: Entity) -> None:
        if type(entity).removing is not Entity.removing:
            await self._call(entity.removing, entity)
        self._hub.states.remove(entity.entity_id)
        entity.hub = None

    async def _disable(self, entity: Entity) -> None:
        async with self._lock:
            await self._take_off(entity)

    async def _enable(self, entity_id: str) -> None:
        async with self._lock:  # after a take-off still under way
            entry = self._hub.entity_registry.get(entity_id)
            if entry is None or entry.disabled_by or entity_id not in self._disabled:
                return  # disabled again, removed, or its integration unloaded meanwhile
            entity, integration = self._disabled.pop(entity_id)
            try:
                self.add(entity, integration)
            except Exception:
                _LOGGER.exception("Could not add %s back", entity_id)

    def _free_entity_id(self, domain: str, suggested: str) -> str:
        from .registry import slugify

        base = f"{domain}.{slugify(suggested)}"
        candidate, n = base, 1
        while candidate in self._hub.states or self._hub.entity_registry.get(candidate):
            n += 1
            candidate = f"{base}_{n}"
        if not valid_entity_id(candidate):
            raise ValueError(f"Cannot make an entity id from {suggested!r}")
        return candidate

    def _register_domain_services(self, domain: str) -> None:
        if domain in self._services_registered:
            return
        self._services_registered.add(domain)
        for service, (schema, action) in DOMAIN_SERVICES.get(domain, {}).items():
            self._hub.services.register(
                domain, service, self._make_handler(domain, action), schema
            )

    def _make_handler(self, domain: str, action: EntityAction) -> Callable[[ServiceCall], Any]:
        async def handle(call: ServiceCall) -> None:
            targets = [
                entity
                for eid in call.entity_ids or ()
                if (entity := self._entities.get(eid)) is not None and entity.domain == domain
            ]
            for entity in targets:
                entity.set_context(call.context)
            results = await asyncio.gather(
                *(self._apply(action, entity, call.data) for entity in targets),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]

        return handle

    @staticmethod
    async def _apply(action: EntityAction, entity: Entity, data: dict[str, Any]) -> None:
        result = action(entity, data)
        if inspect.isawaitable(result):
            await result

    @staticmethod
    async def _call(method: Callable[[], Any], entity: Entity) -> None:
        try:
            await method()
        except Exception:
            _LOGGER.exception("%s of %s failed", method.__name__, entity.entity_id)

    def _on_registry_updated(self, event: Event) -> None:
        """Follow a user's rename, name change, disabling, enabling or removal of an entity
        at once."""
        if event.origin is not EventOrigin.local:
            return  # only the registry itself says what changed in it
        old_id = event.data.get("old_entity_id")
        new_id = event.data.get("entity_id")
        entry = self._hub.entity_registry.get(new_id)
        if (kept := self._disabled.pop(old_id or new_id, None)) is not None:
            if entry is None:
                return  # its registry entry was removed: forget it
            self._disabled[new_id] = kept  # under its new id if renamed while disabled
            if not entry.disabled_by:
                self._hub.create_task(self._enable(new_id), f"enable {new_id}")
            return
        entity = self._entities.get(old_id or new_id)
        if entity is None:
            return
        if entry is None or entry.disabled_by:  # removed from the registry, or disabled
            # Off the collection now (services no longer reach it), off the hub in a task.
            del self._entities[entity.entity_id]
            if entry is not None:
                self._disabled[new_id] = (entity, entity.platform)
            self._hub.create_task(self._disable(entity), f"disable {entity.entity_id}")
            return
        if old_id and old_id != new_id:
            self._entities.pop(old_id, None)
            self._hub.states.remove(old_id)
            entity.entity_id = new_id
            self._entities[new_id] = entity
        entity.registry_name = entry.name
        entity.write_state()


# The other domains (cover, climate, fan, ...) add their services to DOMAIN_SERVICES when their
# module loads; it builds on this one, so it is imported last.
from . import entity_domains  # noqa: E402, F401
