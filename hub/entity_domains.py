"""Covers, valves, climate devices, fans, locks, text and device trackers, with Home
Assistant's state strings, attribute names and services, so HA clients render them as in HA.

The classes follow entity.py's pattern: an integration subclasses one, sets its fields,
overrides the async methods its device supports (the defaults raise NotSupported) and calls
`write_state()`. Importing this module adds the domains' services to `entity.DOMAIN_SERVICES`
(entity.py imports it last, so the table is always complete).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from typing import Any

import voluptuous as vol

from .entity import DOMAIN_SERVICES, Entity, EntityAction, ToggleEntity
from .exceptions import NotSupported, ServiceValidationError

STATE_OPEN = "open"
STATE_OPENING = "opening"
STATE_CLOSED = "closed"
STATE_CLOSING = "closing"
STATE_HOME = "home"
STATE_NOT_HOME = "not_home"


def _cannot(entity: Entity, what: str) -> NotSupported:
    return NotSupported(f"{entity.entity_id} cannot {what}")


def _listed(values: Sequence[str] | None) -> list[str] | None:
    # A copy: a state's attributes must not change when the entity's list does later.
    return None if values is None else list(values)


class FeatureEntity(Entity):
    """An entity whose domain has optional features. `supported_features` is a bitmask of the
    domain's feature flags: HA clients read it from the attributes to choose which controls to
    draw, and the services refuse what the entity does not support."""

    supported_features: int = 0

    def features(self) -> int:
        return int(self.supported_features)

    def supports(self, feature: int) -> bool:
        return self.features() & feature == feature

    def attributes(self) -> dict[str, Any]:
        return {**super().attributes(), "supported_features": self.features()}


# --- cover and valve ---------------------------------------------------------------------


class CoverEntityFeature(enum.IntFlag):
    OPEN = 1
    CLOSE = 2
    SET_POSITION = 4
    STOP = 8
    OPEN_TILT = 16
    CLOSE_TILT = 32
    STOP_TILT = 64
    SET_TILT_POSITION = 128


class ValveEntityFeature(enum.IntFlag):
    OPEN = 1
    CLOSE = 2
    SET_POSITION = 4
    STOP = 8


class _OpenCloseEntity(FeatureEntity):
    """What covers and valves share (their OPEN, CLOSE, SET_POSITION and STOP flags are the
    same numbers): the open/opening/closed/closing state, and HA's toggle."""

    is_closed: bool | None = None
    is_opening: bool | None = None
    is_closing: bool | None = None
    # The toggle reverses the last movement the state showed; never seen moving: as if opened.
    _last_move_open: bool = True

    def _closed(self) -> bool | None:
        return self.is_closed

    def _position(self) -> int | None:
        return None

    @property
    def state(self) -> Any:
        if self.is_opening:
            self._last_move_open = True
            return STATE_OPENING
        if self.is_closing:
            self._last_move_open = False
            return STATE_CLOSING
        closed = self._closed()
        return None if closed is None else (STATE_CLOSED if closed else STATE_OPEN)

    def _toggle_move(self) -> str:
        """The toggle's move, by HA's rules: stop a moving device that can stop, open a closed
        or closing one, close a fully open or opening one; else reverse the last movement."""
        if self.supports(CoverEntityFeature.STOP) and (self.is_opening or self.is_closing):
            return "stop"
        if self._closed() or self.is_closing:
            return "open"
        if self._position() == 100 or self.is_opening:
            return "close"
        return "close" if self._last_move_open else "open"


class CoverEntity(_OpenCloseEntity):
    """Blinds, shutters, garage doors, gates, awnings. Positions: 0 closed, 100 fully open."""

    domain = "cover"
    # None: derived from what the cover reports, as HA does (open, close and stop, plus
    # position and tilt control when it reports those positions).
    supported_features: int | None = None  # type: ignore[assignment]
    current_cover_position: int | None = None
    current_cover_tilt_position: int | None = None

    def features(self) -> int:
        if self.supported_features is not None:
            return int(self.supported_features)
        features = CoverEntityFeature.OPEN | CoverEntityFeature.CLOSE | CoverEntityFeature.STOP
        if self.current_cover_position is not None:
            features |= CoverEntityFeature.SET_POSITION
        if self.current_cover_tilt_position is not None:
            features |= (
                CoverEntityFeature.OPEN_TILT
                | CoverEntityFeature.CLOSE_TILT
                | CoverEntityFeature.STOP_TILT
                | CoverEntityFeature.SET_TILT_POSITION
            )
        return int(features)

    def _position(self) -> int | None:
        return self.current_cover_position

    def state_attributes(self) -> dict[str, Any] | None:
        attrs: dict[str, Any] = {}
        if self.current_cover_position is not None:
            attrs["current_position"] = self.current_cover_position
        if self.current_cover_tilt_position is not None:
            attrs["current_tilt_position"] = self.current_cover_tilt_position
        return attrs

    async def open_cover(self) -> None:
        raise _cannot(self, "open")

    async def close_cover(self) -> None:
        raise _cannot(self, "close")

    async def stop_cover(self) -> None:
        raise _cannot(self, "stop")

    async def set_cover_position(self, position: int) -> None:
        raise _cannot(self, "set its position")

    async def open_cover_tilt(self) -> None:
        raise _cannot(self, "open its tilt")

    async def close_cover_tilt(self) -> None:
        raise _cannot(self, "close its tilt")

    async def stop_cover_tilt(self) -> None:
        raise _cannot(self, "stop its tilt")

    async def set_cover_tilt_position(self, tilt_position: int) -> None:
        raise _cannot(self, "set its tilt position")

    async def toggle(self) -> None:
        moves = {"open": self.open_cover, "close": self.close_cover, "stop": self.stop_cover}
        await moves[self._toggle_move()]()

    async def toggle_tilt(self) -> None:
        if self.current_cover_tilt_position == 0:
            await self.open_cover_tilt()
        else:
            await self.close_cover_tilt()


class ValveEntity(_OpenCloseEntity):
    """A water or gas valve. With `reports_position`, `current_valve_position` (0 closed, 100
    fully open) decides open or closed, as in HA; else `is_closed` does."""

    domain = "valve"
    reports_position: bool = False
    current_valve_position: int | None = None

    def _closed(self) -> bool | None:
        if not self.reports_position:
            return self.is_closed
        position = self.current_valve_position
        return None if position is None else position == 0

    def _position(self) -> int | None:
        return self.current_valve_position if self.reports_position else None

    def state_attributes(self) -> dict[str, Any] | None:
        return {"current_position": self.current_valve_position} if self.reports_position else None

    async def open_valve(self) -> None:
        raise _cannot(self, "open")

    async def close_valve(self) -> None:
        raise _cannot(self, "close")

    async def stop_valve(self) -> None:
        raise _cannot(self, "stop")

    async def set_valve_position(self, position: int) -> None:
        raise _cannot(self, "set its position")

    # As in HA, the open/close services send a valve that takes a position to 100 or 0.
    async def _open(self) -> None:
        if self.supports(ValveEntityFeature.SET_POSITION):
            await self.set_valve_position(100)
        else:
            await self.open_valve()

    async def _close(self) -> None:
        if self.supports(ValveEntityFeature.SET_POSITION):
            await self.set_valve_position(0)
        else:
            await self.close_valve()

    async def toggle(self) -> None:
        moves = {"open": self._open, "close": self._close, "stop": self.stop_valve}
        await moves[self._toggle_move()]()


# --- climate -----------------------------------------------------------------------------


class HVACMode(enum.StrEnum):
    off = "off"
    heat = "heat"
    cool = "cool"
    heat_cool = "heat_cool"
    auto = "auto"
    dry = "dry"
    fan_only = "fan_only"


class HVACAction(enum.StrEnum):
    cooling = "cooling"
    defrosting = "defrosting"
    drying = "drying"
    fan = "fan"
    heating = "heating"
    idle = "idle"
    off = "off"
    preheating = "preheating"


class ClimateEntityFeature(enum.IntFlag):
    TARGET_TEMPERATURE = 1
    TARGET_TEMPERATURE_RANGE = 2
    TARGET_HUMIDITY = 4
    FAN_MODE = 8
    PRESET_MODE = 16
    SWING_MODE = 32
    TURN_OFF = 128
    TURN_ON = 256


class ClimateEntity(FeatureEntity):
    """A thermostat, heat pump or air conditioner. The state is `hvac_mode`. Temperatures are
    shown as given, in `temperature_unit` (never converted), rounded to `precision`."""

    domain = "climate"
    hvac_mode: str | None = None
    hvac_modes: Sequence[str] = ()
    hvac_action: str | None = None
    temperature_unit: str = "°C"
    precision: float | None = None  # 0.1, 0.5 or 1; None: HA's default, 0.1 in °C, else 1
    current_temperature: float | None = None
    target_temperature: float | None = None
    target_temperature_high: float | None = None
    target_temperature_low: float | None = None
    target_temperature_step: float | None = None
    min_temp: float = 7  # HA's defaults, in °C
    max_temp: float = 35
    current_humidity: float | None = None
    target_humidity: float | None = None
    min_humidity: float = 30
    max_humidity: float = 99
    fan_mode: str | None = None
    fan_modes: list[str] | None = None
    preset_mode: str | None = None
    preset_modes: list[str] | None = None
    swing_mode: str | None = None
    swing_modes: list[str] | None = None

    @property
    def state(self) -> Any:
        return None if self.hvac_mode is None else str(self.hvac_mode)

    def _show(self, temperature: float | None) -> float | None:
        """Round a temperature for display the way HA does."""
        if temperature is None:
            return None
        precision = self.precision or (0.1 if self.temperature_unit == "°C" else 1.0)
        if precision == 0.5:
            return round(temperature * 2) / 2.0
        if precision == 0.1:
            return round(temperature, 1)
        return round(temperature)

    def capability_attributes(self) -> dict[str, Any] | None:
        has = self.supports
        attrs: dict[str, Any] = {
            "hvac_modes": [str(mode) for mode in self.hvac_modes],
            "min_temp": self._show(self.min_temp),
            "max_temp": self._show(self.max_temp),
        }
        if self.target_temperature_step:
            attrs["target_temp_step"] = self.target_temperature_step
        if has(ClimateEntityFeature.TARGET_HUMIDITY):
            attrs["min_humidity"] = self.min_humidity
            attrs["max_humidity"] = self.max_humidity
        if has(ClimateEntityFeature.FAN_MODE):
            attrs["fan_modes"] = _listed(self.fan_modes)
        if has(ClimateEntityFeature.PRESET_MODE):
            attrs["preset_modes"] = _listed(self.preset_modes)
        if has(ClimateEntityFeature.SWING_MODE):
            attrs["swing_modes"] = _listed(self.swing_modes)
        return attrs

    def state_attributes(self) -> dict[str, Any] | None:
        has = self.supports
        attrs: dict[str, Any] = {"current_temperature": self._show(self.current_temperature)}
        if has(ClimateEntityFeature.TARGET_TEMPERATURE):
            attrs["temperature"] = self._show(self.target_temperature)
        if has(ClimateEntityFeature.TARGET_TEMPERATURE_RANGE):
            attrs["target_temp_high"] = self._show(self.target_temperature_high)
            attrs["target_temp_low"] = self._show(self.target_temperature_low)
        if self.current_humidity is not None:
            attrs["current_humidity"] = self.current_humidity
        if has(ClimateEntityFeature.TARGET_HUMIDITY):
            attrs["humidity"] = self.target_humidity
        if has(ClimateEntityFeature.FAN_MODE):
            attrs["fan_mode"] = self.fan_mode
        if self.hvac_action:
            attrs["hvac_action"] = str(self.hvac_action)
        if has(ClimateEntityFeature.PRESET_MODE):
            attrs["preset_mode"] = self.preset_mode
        if has(ClimateEntityFeature.SWING_MODE):
            attrs["swing_mode"] = self.swing_mode
        return attrs

    async def set_hvac_mode(self, hvac_mode: str) -> None:
        raise _cannot(self, "set its HVAC mode")

    async def set_temperature(
        self,
        *,
        temperature: float | None = None,
        target_temp_low: float | None = None,
        target_temp_high: float | None = None,
        hvac_mode: str | None = None,
    ) -> None:
        """Only the keys the caller gave are passed; `hvac_mode` is to be set as well."""
        raise _cannot(self, "set its temperature")

    async def set_humidity(self, humidity: int) -> None:
        raise _cannot(self, "set its humidity")

    async def set_fan_mode(self, fan_mode: str) -> None:
        raise _cannot(self, "set its fan mode")

    async def set_preset_mode(self, preset_mode: str) -> None:
        raise _cannot(self, "set its preset mode")

    async def set_swing_mode(self, swing_mode: str) -> None:
        raise _cannot(self, "set its swing mode")

    async def turn_on(self) -> None:
        """HA's default: the one mode besides off, else heat_cool, heat or cool."""
        modes = [str(mode) for mode in self.hvac_modes]
        candidates = [m for m in modes if m != "off"] if len(modes) == 2 and "off" in modes else []
        candidates += [m for m in ("heat_cool", "heat", "cool") if m in modes]
        if not candidates:
            raise _cannot(self, "be turned on")
        await self.set_hvac_mode(candidates[0])

    async def turn_off(self) -> None:
        if "off" not in self.hvac_modes:
            raise _cannot(self, "be turned off")
        await self.set_hvac_mode("off")

    async def toggle(self) -> None:
        if self.hvac_mode == "off":
            await self.turn_on()
        else:
            await self.turn_off()


# --- fan ---------------------------------------------------------------------------------


class FanEntityFeature(enum.IntFlag):
    SET_SPEED = 1
    OSCILLATE = 2
    DIRECTION = 4
    PRESET_MODE = 8
    TURN_OFF = 16
    TURN_ON = 32


DIRECTION_FORWARD = "forward"
DIRECTION_REVERSE = "reverse"


class FanEntity(FeatureEntity, ToggleEntity):
    """A fan: on/off (`is_on`), a speed as a percentage in steps of 100 / `speed_count`,
    preset modes, oscillation and direction."""

    domain = "fan"
    percentage: int | None = None
    speed_count: int = 100
    preset_mode: str | None = None
    preset_modes: list[str] | None = None
    oscillating: bool | None = None
    current_direction: str | None = None

    @property
    def percentage_step(self) -> float:
        return 100 / self.speed_count

    def capability_attributes(self) -> dict[str, Any] | None:
        if self.supports(FanEntityFeature.SET_SPEED) or self.supports(FanEntityFeature.PRESET_MODE):
            return {"preset_modes": _listed(self.preset_modes)}
        return None

    def state_attributes(self) -> dict[str, Any] | None:
        has = self.supports
        attrs: dict[str, Any] = {}
        if has(FanEntityFeature.DIRECTION):
            attrs["direction"] = self.current_direction
        if has(FanEntityFeature.OSCILLATE):
            attrs["oscillating"] = self.oscillating
        if has(FanEntityFeature.SET_SPEED):
            attrs["percentage"] = self.percentage
            attrs["percentage_step"] = self.percentage_step
        if has(FanEntityFeature.SET_SPEED) or has(FanEntityFeature.PRESET_MODE):
            attrs["preset_mode"] = self.preset_mode
        return attrs

    async def turn_on(
        self, percentage: int | None = None, preset_mode: str | None = None, **kwargs: Any
    ) -> None:
        raise _cannot(self, "be turned on")

    async def set_percentage(self, percentage: int) -> None:
        raise _cannot(self, "set its speed")

    async def set_preset_mode(self, preset_mode: str) -> None:
        raise _cannot(self, "set its preset mode")

    async def oscillate(self, oscillating: bool) -> None:
        raise _cannot(self, "oscillate")

    async def set_direction(self, direction: str) -> None:
        raise _cannot(self, "set its direction")


# --- lock --------------------------------------------------------------------------------


class LockEntityFeature(enum.IntFlag):
    OPEN = 1


class LockEntity(FeatureEntity):
    """A lock. `code_format` is a regular expression the code given to lock, unlock and open
    must match (None: no code needed)."""

    domain = "lock"
    is_locked: bool | None = None
    is_locking: bool | None = None
    is_unlocking: bool | None = None
    is_jammed: bool | None = None
    is_open: bool | None = None
    is_opening: bool | None = None
    code_format: str | None = None
    changed_by: str | None = None

    @property
    def state(self) -> Any:
        # HA's order: a jammed lock says so whatever else it reports.
        if self.is_jammed:
            return "jammed"
        if self.is_opening:
            return "opening"
        if self.is_locking:
            return "locking"
        if self.is_open:
            return "open"
        if self.is_unlocking:
            return "unlocking"
        if self.is_locked is None:
            return None
        return "locked" if self.is_locked else "unlocked"

    def state_attributes(self) -> dict[str, Any] | None:
        attrs = {"changed_by": self.changed_by, "code_format": self.code_format}
        return {key: value for key, value in attrs.items() if value is not None}

    async def lock(self, code: str | None = None) -> None:
        raise _cannot(self, "lock")

    async def unlock(self, code: str | None = None) -> None:
        raise _cannot(self, "unlock")

    async def open(self, code: str | None = None) -> None:
        raise _cannot(self, "open")


# --- text --------------------------------------------------------------------------------


class TextMode(enum.StrEnum):
    text = "text"
    password = "password"


class TextEntity(Entity):
    """A text value the user can set: `native_min`..`native_max` characters, matching
    `pattern` (a regular expression, whole value) when set."""

    domain = "text"
    native_value: str | None = None
    native_min: int = 0
    native_max: int = 255  # the longest state there is
    pattern: str | None = None
    mode: str = TextMode.text

    @property
    def state(self) -> Any:
        return self.native_value

    def capability_attributes(self) -> dict[str, Any] | None:
        return {
            "min": self.native_min,
            "max": self.native_max,
            "pattern": self.pattern,
            "mode": str(self.mode),
        }

    async def set_value(self, value: str) -> None:
        raise _cannot(self, "be set")


# --- device tracker ----------------------------------------------------------------------


class SourceType(enum.StrEnum):
    gps = "gps"
    router = "router"
    bluetooth = "bluetooth"
    bluetooth_le = "bluetooth_le"


class DeviceTrackerEntity(Entity):
    """Where a phone, tag or car is: `location_name` (a zone's name) when known, else home or
    not_home from `is_home`; GPS coordinates as attributes."""

    domain = "device_tracker"
    entity_category = "diagnostic"  # as HA's trackers; an integration may set None
    force_update = True  # every report is recorded, as in HA, even from the same place
    source_type: str = SourceType.gps
    location_name: str | None = None
    is_home: bool | None = None
    latitude: float | None = None
    longitude: float | None = None
    gps_accuracy: float = 0
    battery_level: int | None = None

    @property
    def state(self) -> Any:
        if self.location_name is not None:
            return self.location_name
        if self.is_home is None:
            return None
        return STATE_HOME if self.is_home else STATE_NOT_HOME

    def state_attributes(self) -> dict[str, Any] | None:
        attrs: dict[str, Any] = {"source_type": str(self.source_type)}
        if self.battery_level is not None:
            attrs["battery_level"] = self.battery_level
        if self.latitude is not None and self.longitude is not None:
            attrs["latitude"] = self.latitude
            attrs["longitude"] = self.longitude
            attrs["gps_accuracy"] = self.gps_accuracy
        return attrs


# --- services ----------------------------------------------------------------------------


def _regex(entity: Entity, pattern: str) -> re.Pattern[str]:
    # The pattern comes from the device's configuration: a bad one is the device's fault, said
    # clearly, not a crash in the service.
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ServiceValidationError(
            f"{entity.entity_id} has an invalid pattern {pattern!r}: {err}"
        ) from err


def _check_mode(entity: Entity, kind: str, mode: str, modes: Sequence[str] | None) -> None:
    if not modes or mode not in modes:
        raise ServiceValidationError(
            f"{kind[0].upper()}{kind[1:]} mode {mode!r} is not valid for {entity.entity_id}. "
            f"Valid {kind} modes are: {', '.join(str(m) for m in modes or ())}"
        )


def _check_range(entity: Entity, what: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ServiceValidationError(
            f"Provided {what} {value} is not valid for {entity.entity_id}. "
            f"Accepted range is {low} to {high}."
        )


def _one_temperature_target(data: dict[str, Any]) -> dict[str, Any]:
    low, high = data.get("target_temp_low"), data.get("target_temp_high")
    if "temperature" in data and (low is not None or high is not None):
        raise vol.Invalid("give temperature, or target_temp_low and target_temp_high: not both")
    if "temperature" not in data and (low is None or high is None):
        raise vol.Invalid("give temperature, or both target_temp_low and target_temp_high")
    if low is not None and high is not None and low > high:
        raise vol.Invalid("target_temp_low can not be higher than target_temp_high")
    return data


async def _set_temperature(entity: ClimateEntity, data: dict[str, Any]) -> None:
    if "temperature" in data and not entity.supports(ClimateEntityFeature.TARGET_TEMPERATURE):
        raise _cannot(entity, "set a target temperature")
    if "target_temp_low" in data and not entity.supports(
        ClimateEntityFeature.TARGET_TEMPERATURE_RANGE
    ):
        raise _cannot(entity, "set a target temperature range")
    if "hvac_mode" in data:
        _check_mode(entity, "HVAC", data["hvac_mode"], entity.hvac_modes)
    for key in ("temperature", "target_temp_low", "target_temp_high"):
        if key in data:
            _check_range(entity, "temperature", data[key], entity.min_temp, entity.max_temp)
    await entity.set_temperature(**data)


async def _set_humidity(entity: ClimateEntity, humidity: int) -> None:
    _check_range(entity, "humidity", humidity, entity.min_humidity, entity.max_humidity)
    await entity.set_humidity(humidity)


async def _set_mode(
    entity: Entity, kind: str, mode: str, modes: Sequence[str] | None, setter: Any
) -> None:
    _check_mode(entity, kind, mode, modes)
    await setter(mode)


async def _fan_turn_on(entity: FanEntity, data: dict[str, Any]) -> None:
    if data.get("preset_mode") is not None:
        _check_mode(entity, "preset", data["preset_mode"], entity.preset_modes)
    await entity.turn_on(percentage=data.get("percentage"), preset_mode=data.get("preset_mode"))


async def _fan_set_percentage(entity: FanEntity, percentage: int) -> None:
    if percentage == 0:  # HA: a fan set to 0 % is off
        await entity.turn_off()
    else:
        await entity.set_percentage(percentage)


async def _fan_step(entity: FanEntity, direction: int, step: int | None) -> None:
    current = entity.percentage or 0
    if step is not None:
        new = current + step * direction
    else:  # to the fan's next speed, counted as HA does
        speeds = entity.speed_count
        new = (math.ceil(speeds * current / 100) + direction) * 100 // speeds
    await _fan_set_percentage(entity, max(0, min(100, new)))


async def _with_code(entity: LockEntity, action: Any, code: str | None) -> None:
    if entity.code_format is not None and not _regex(entity, entity.code_format).fullmatch(
        code or ""
    ):
        raise ServiceValidationError(
            f"The code for {entity.entity_id} doesn't match pattern {entity.code_format}"
        )
    await action(code=code or None)


async def _set_text(entity: TextEntity, value: str) -> None:
    # The value itself stays out of the messages: it may be a password.
    if len(value) < entity.native_min:
        raise ServiceValidationError(
            f"Value for {entity.entity_id} is too short ({len(value)} characters; "
            f"minimum length {entity.native_min})"
        )
    if len(value) > entity.native_max:
        raise ServiceValidationError(
            f"Value for {entity.entity_id} is too long ({len(value)} characters; "
            f"maximum length {entity.native_max})"
        )
    if entity.pattern is not None and not _regex(entity, entity.pattern).fullmatch(value):
        raise ServiceValidationError(
            f"Value for {entity.entity_id} doesn't match pattern {entity.pattern}"
        )
    await entity.set_value(value)


# Like HA's cv.string: text, or a number taken as text.
_STRING = vol.Any(str, vol.All(vol.Any(int, float), vol.Coerce(str)))
_PERCENT = vol.All(vol.Coerce(int), vol.Range(min=0, max=100))
_TEMPERATURE = vol.Coerce(float)
_HVAC_MODE = vol.In([str(mode) for mode in HVACMode])
_CODE = vol.Schema({vol.Optional("code"): vol.Any(None, _STRING)})
_STEP = vol.Schema({vol.Optional("percentage_step"): _PERCENT})


def _field(key: str, validator: Any = _STRING) -> vol.Schema:
    return vol.Schema({vol.Required(key): validator})


# Required features: an int the entity must have all of, or a tuple of them, any one of which
# will do; 0 for none. (HA's `required_features`.)
_Spec = tuple[vol.Schema | None, int | tuple[int, ...], EntityAction]

_Cover, _Valve, _Climate, _Fan = (
    CoverEntityFeature,
    ValveEntityFeature,
    ClimateEntityFeature,
    FanEntityFeature,
)
_SPECS: dict[str, dict[str, _Spec]] = {
    "cover": {
        "open_cover": (None, _Cover.OPEN, lambda e, d: e.open_cover()),
        "close_cover": (None, _Cover.CLOSE, lambda e, d: e.close_cover()),
        "stop_cover": (None, _Cover.STOP, lambda e, d: e.stop_cover()),
        "toggle": (None, _Cover.OPEN | _Cover.CLOSE, lambda e, d: e.toggle()),
        "set_cover_position": (
            _field("position", _PERCENT),
            _Cover.SET_POSITION,
            lambda e, d: e.set_cover_position(d["position"]),
        ),
        "open_cover_tilt": (None, _Cover.OPEN_TILT, lambda e, d: e.open_cover_tilt()),
        "close_cover_tilt": (None, _Cover.CLOSE_TILT, lambda e, d: e.close_cover_tilt()),
        "stop_cover_tilt": (None, _Cover.STOP_TILT, lambda e, d: e.stop_cover_tilt()),
        "set_cover_tilt_position": (
            _field("tilt_position", _PERCENT),
            _Cover.SET_TILT_POSITION,
            lambda e, d: e.set_cover_tilt_position(d["tilt_position"]),
        ),
        "toggle_cover_tilt": (
            None,
            _Cover.OPEN_TILT | _Cover.CLOSE_TILT,
            lambda e, d: e.toggle_tilt(),
        ),
    },
    "valve": {
        "open_valve": (None, _Valve.OPEN, lambda e, d: e._open()),
        "close_valve": (None, _Valve.CLOSE, lambda e, d: e._close()),
        "stop_valve": (None, _Valve.STOP, lambda e, d: e.stop_valve()),
        "set_valve_position": (
            _field("position", _PERCENT),
            _Valve.SET_POSITION,
            lambda e, d: e.set_valve_position(d["position"]),
        ),
        "toggle": (None, _Valve.OPEN | _Valve.CLOSE, lambda e, d: e.toggle()),
    },
    "climate": {
        "set_hvac_mode": (
            _field("hvac_mode", _HVAC_MODE),
            0,
            lambda e, d: _set_mode(e, "HVAC", d["hvac_mode"], e.hvac_modes, e.set_hvac_mode),
        ),
        "set_temperature": (
            vol.Schema(
                vol.All(
                    {
                        vol.Optional("temperature"): _TEMPERATURE,
                        vol.Optional("target_temp_low"): _TEMPERATURE,
                        vol.Optional("target_temp_high"): _TEMPERATURE,
                        vol.Optional("hvac_mode"): _HVAC_MODE,
                    },
                    _one_temperature_target,
                )
            ),
            0,  # which feature depends on the data: _set_temperature checks
            _set_temperature,
        ),
        "set_humidity": (
            _field("humidity", _PERCENT),
            _Climate.TARGET_HUMIDITY,
            lambda e, d: _set_humidity(e, d["humidity"]),
        ),
        "set_fan_mode": (
            _field("fan_mode"),
            _Climate.FAN_MODE,
            lambda e, d: _set_mode(e, "fan", d["fan_mode"], e.fan_modes, e.set_fan_mode),
        ),
        "set_preset_mode": (
            _field("preset_mode"),
            _Climate.PRESET_MODE,
            lambda e, d: _set_mode(
                e, "preset", d["preset_mode"], e.preset_modes, e.set_preset_mode
            ),
        ),
        "set_swing_mode": (
            _field("swing_mode"),
            _Climate.SWING_MODE,
            lambda e, d: _set_mode(e, "swing", d["swing_mode"], e.swing_modes, e.set_swing_mode),
        ),
        "turn_on": (None, _Climate.TURN_ON, lambda e, d: e.turn_on()),
        "turn_off": (None, _Climate.TURN_OFF, lambda e, d: e.turn_off()),
        "toggle": (None, (_Climate.TURN_OFF, _Climate.TURN_ON), lambda e, d: e.toggle()),
    },
    "fan": {
        "turn_on": (
            vol.Schema(
                {vol.Optional("percentage"): _PERCENT, vol.Optional("preset_mode"): _STRING}
            ),
            _Fan.TURN_ON,
            _fan_turn_on,
        ),
        "turn_off": (None, _Fan.TURN_OFF, lambda e, d: e.turn_off()),
        "toggle": (None, (_Fan.TURN_OFF, _Fan.TURN_ON), lambda e, d: e.toggle()),
        "set_percentage": (
            _field("percentage", _PERCENT),
            _Fan.SET_SPEED,
            lambda e, d: _fan_set_percentage(e, d["percentage"]),
        ),
        "increase_speed": (
            _STEP,
            _Fan.SET_SPEED,
            lambda e, d: _fan_step(e, 1, d.get("percentage_step")),
        ),
        "decrease_speed": (
            _STEP,
            _Fan.SET_SPEED,
            lambda e, d: _fan_step(e, -1, d.get("percentage_step")),
        ),
        "set_preset_mode": (
            _field("preset_mode"),
            (_Fan.SET_SPEED, _Fan.PRESET_MODE),
            lambda e, d: _set_mode(
                e, "preset", d["preset_mode"], e.preset_modes, e.set_preset_mode
            ),
        ),
        "oscillate": (
            _field("oscillating", vol.Boolean()),
            _Fan.OSCILLATE,
            lambda e, d: e.oscillate(d["oscillating"]),
        ),
        "set_direction": (
            _field("direction", vol.In([DIRECTION_FORWARD, DIRECTION_REVERSE])),
            _Fan.DIRECTION,
            lambda e, d: e.set_direction(d["direction"]),
        ),
    },
    "lock": {
        "lock": (_CODE, 0, lambda e, d: _with_code(e, e.lock, d.get("code"))),
        "unlock": (_CODE, 0, lambda e, d: _with_code(e, e.unlock, d.get("code"))),
        "open": (_CODE, LockEntityFeature.OPEN, lambda e, d: _with_code(e, e.open, d.get("code"))),
    },
    "text": {
        "set_value": (_field("value"), 0, lambda e, d: _set_text(e, d["value"])),
    },
}


def _refusing_unsupported(
    domain: str, service: str, needs: int | tuple[int, ...], action: EntityAction
) -> EntityAction:
    if not needs:
        return action
    options = needs if isinstance(needs, tuple) else (needs,)

    def act(entity: FeatureEntity, data: dict[str, Any]) -> Any:
        if not any(entity.supports(option) for option in options):
            raise NotSupported(
                f"Entity {entity.entity_id} does not support action {domain}.{service}"
            )
        return action(entity, data)

    return act


DOMAIN_SERVICES.update(
    {
        domain: {
            service: (schema, _refusing_unsupported(domain, service, needs, action))
            for service, (schema, needs, action) in specs.items()
        }
        for domain, specs in _SPECS.items()
    }
)
