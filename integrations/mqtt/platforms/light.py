"""MQTT light: three message schemas, chosen by `schema:` (`basic`, the default; `json`;
`template`), as in Home Assistant.

`basic` has a topic per feature (`brightness_command_topic`, `rgb_state_topic`, ...), `json` one
JSON command and state document, `template` Jinja templates that build the commands and read
the state. They share this module's base class: the colour conversions, the adaptation of a
`light.turn_on` call to the colour modes the light supports (done by HA's light service, which
ours leaves to the entity), the attributes HA shows (every colour representation of the current
colour mode, `supported_features`, `assumed_state`) and the choice of class by schema.
`json` and `template` live in `light_schemas.py`.
"""

from __future__ import annotations

import colorsys
from functools import partial
from typing import Any, ClassVar

import voluptuous as vol

from hub.entity import LightEntity

from .. import entity as mqtt
from ..entity import MqttEntity
from ..models import Message
from . import register

# LightEntityFeature flags, as HA clients read them from `supported_features`.
EFFECT, FLASH, TRANSITION = 4, 8, 32

COLOR_MODES = ("onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white")
_COLORS = ("hs", "xy", "rgb", "rgbw", "rgbww")  # the modes that carry a colour
DEFAULT_MIN_KELVIN, DEFAULT_MAX_KELVIN = 2000, 6535

# --- colours (the formulas of HA's homeassistant/util/color.py) ----------------------------------


def mired_to_kelvin(mired: float) -> int:
    return int(1_000_000 // mired)


def kelvin_to_mired(kelvin: float) -> int:
    return int(1_000_000 // kelvin)


def hs_to_rgb(hue: float, sat: float) -> tuple[int, ...]:
    return tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue / 360, sat / 100, 1.0))


def rgb_to_hs(red: int, green: int, blue: int) -> tuple[float, float]:
    hue, sat, _ = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    return round(hue * 360, 3), round(sat * 100, 3)


def rgb_to_xy(red: int, green: int, blue: int) -> tuple[float, float]:
    r, g, b = (((c / 255 + 0.055) / 1.055) ** 2.4 if c / 255 > 0.04045 else c / 255 / 12.92
               for c in (red, green, blue))
    x = r * 0.664511 + g * 0.154324 + b * 0.162028
    y = r * 0.283881 + g * 0.668433 + b * 0.047685
    total = x + y + r * 0.000088 + g * 0.072310 + b * 0.986039
    return (0.0, 0.0) if total == 0 else (round(x / total, 3), round(y / total, 3))


def xy_to_rgb(x: float, y: float) -> tuple[int, ...]:
    if y == 0:
        return (0, 0, 0)
    big_x, big_z = x / y, (1 - x - y) / y
    linear = (big_x * 1.656492 - 0.354851 - big_z * 0.255038,
              -big_x * 0.707196 + 1.655397 + big_z * 0.036152,
              big_x * 0.051713 - 0.121364 + big_z * 1.011530)
    rgb = [max(0.0, 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055) for c in linear]
    top = max(rgb)
    return tuple(int(c / top * 255 if top > 1 else c * 255) for c in rgb)


def _match_max(source: tuple[int, ...], result: tuple[float, ...]) -> tuple[int, ...]:
    top = max(result)
    factor = max(source) / top if top else 0
    return tuple(round(c * factor) for c in result)


def rgbw_to_rgb(*rgbw: int) -> tuple[int, ...]:
    *rgb, white = rgbw
    return _match_max(rgbw, tuple(c + white for c in rgb))


def rgbww_to_rgb(*rgbww: int) -> tuple[int, ...]:
    # HA mixes the two whites at their colour temperatures; both count as neutral white here.
    *rgb, cold, warm = rgbww
    return _match_max(rgbww, tuple(c + cold + warm for c in rgb))


def rgb_to_rgbw(*rgb: int) -> tuple[int, ...]:
    white = min(rgb)
    return _match_max(rgb, (*(c - white for c in rgb), white))


def rgb_to_rgbww(*rgb: int) -> tuple[int, ...]:
    white = min(rgb)
    return _match_max(rgb, (*(c - white for c in rgb), white, white))


_TO_RGB = {"hs": hs_to_rgb, "xy": xy_to_rgb, "rgb": lambda *c: tuple(c), "rgbw": rgbw_to_rgb,
           "rgbww": rgbww_to_rgb}
_FROM_RGB = {"hs": rgb_to_hs, "xy": rgb_to_xy, "rgbw": rgb_to_rgbw, "rgbww": rgb_to_rgbww}
# Where HA's light service sends a colour the light cannot take in its own mode.
_FALLBACK = {"hs_color": ("rgb", "rgbw", "rgbww", "xy"), "rgb_color": ("rgbw", "rgbww", "hs", "xy")}


def brightness_supported(modes: set[str] | None) -> bool:
    return bool(modes and modes - {"onoff"})


def check_color_modes(modes: Any) -> set[str]:
    """HA's `valid_supported_color_modes`."""
    modes = set(modes)
    if not modes or ({"onoff", "brightness"} & modes and len(modes) > 1) \
            or ("white" in modes and not modes & set(_COLORS)):
        raise vol.Invalid(f"invalid supported_color_modes {sorted(modes)}")
    return modes


# Options all three schemas share.
LIGHT_OPTIONS: dict[Any, Any] = {
    vol.Required("command_topic"): mqtt.topic,
    vol.Optional("state_topic"): mqtt.subscribe_topic,
    vol.Optional("optimistic", default=False): bool,
    vol.Optional("effect_list"): vol.All(lambda v: v if isinstance(v, list) else [v], [vol.Coerce(str)]),
    vol.Optional("color_temp_kelvin", default=False): bool,
    vol.Optional("min_kelvin"): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("max_kelvin"): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("min_mireds"): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("max_mireds"): vol.All(vol.Coerce(int), vol.Range(min=1)),
}


@register
class MqttLight(MqttEntity, LightEntity):
    """The `light` component; each instance becomes the class of its config's schema."""

    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "light"
    DEFAULT_NAME = "MQTT Light"
    LIGHT_SCHEMA: ClassVar[Any]
    _SCHEMAS: ClassVar[dict[str, type[MqttLight]]] = {}

    supported_features = 0
    colors: dict[str, tuple[Any, ...]]

    def __init_subclass__(cls, schema: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if schema:
            MqttLight._SCHEMAS[schema] = cls

    @staticmethod
    def SCHEMA(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise vol.Invalid("expected a mapping")
        name = str(value.get("schema", "basic")).lower()
        if name not in MqttLight._SCHEMAS:
            raise vol.Invalid(f"unknown light schema {name!r} (basic, json or template)", path=["schema"])
        config = MqttLight._SCHEMAS[name].LIGHT_SCHEMA(value)
        config["schema"] = name
        return config

    def apply_config(self, config: dict[str, Any]) -> None:
        cls = MqttLight._SCHEMAS[config["schema"]]
        if type(self) is not cls:  # new, or a discovery update changed the schema
            self.__class__ = cls
            self.is_on = self.brightness = self.color_temp_kelvin = self.effect = None
            self.colors = {}
        super().apply_config(config)

    def setup_from_config(self, config: dict[str, Any]) -> None:
        self.min_color_temp_kelvin = mired_to_kelvin(config["max_mireds"]) if config.get("max_mireds") \
            else config.get("min_kelvin", DEFAULT_MIN_KELVIN)
        self.max_color_temp_kelvin = mired_to_kelvin(config["min_mireds"]) if config.get("min_mireds") \
            else config.get("max_kelvin", DEFAULT_MAX_KELVIN)
        self.setup_light(config)
        self.effect_list = config.get("effect_list") if self.supported_features & EFFECT else None

    def setup_light(self, config: dict[str, Any]) -> None:
        """Set `supported_color_modes`, `color_mode` and `supported_features`."""

    # --- what the device is told, in the units it uses ---------------------------------------

    def device_color_temp(self, kelvin: int) -> int:
        return kelvin if self.config["color_temp_kelvin"] else kelvin_to_mired(kelvin)

    def parse_color_temp(self, value: Any) -> int:
        number = int(value)
        if number <= 0:
            raise ValueError(f"colour temperature {value!r} is not positive")
        return number if self.config["color_temp_kelvin"] else mired_to_kelvin(number)

    # --- commands ---------------------------------------------------------------------------

    async def turn_on(self, **kwargs: Any) -> None:
        if kwargs.get("brightness") == 0:  # HA: brightness 0 turns the light off
            await self.turn_off(**{k: v for k, v in kwargs.items() if k == "transition"})
            return
        await self.send_on(self.adapt(kwargs))

    async def send_on(self, kwargs: dict[str, Any]) -> None:
        """Publish the turn-on command; each schema's class (basic, json, template) has its own,
        and every instance becomes one of them in `apply_config`."""
        raise NotImplementedError(f"{type(self).__name__} has no light schema")

    def adapt(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """What HA's light service does before calling the entity: colours converted to a mode
        the light has, the colour temperature clamped, unsupported parameters dropped."""
        modes = self.supported_color_modes or set()
        for key, fallbacks in _FALLBACK.items():
            if key in kwargs and key.removesuffix("_color") not in modes:
                value = kwargs.pop(key)
                rgb = hs_to_rgb(*value) if key == "hs_color" else tuple(value)
                target = next((mode for mode in fallbacks if mode in modes), None)
                if target is not None:
                    kwargs[f"{target}_color"] = rgb if target == "rgb" else _FROM_RGB[target](*rgb)
        if "color_temp_kelvin" in kwargs:
            if "color_temp" in modes:
                kwargs["color_temp_kelvin"] = min(max(kwargs["color_temp_kelvin"], self.min_color_temp_kelvin),
                                                  self.max_color_temp_kelvin)
            else:
                del kwargs["color_temp_kelvin"]
        for key, feature in (("effect", EFFECT), ("flash", FLASH), ("transition", TRANSITION)):
            if not self.supported_features & feature:
                kwargs.pop(key, None)
        if not brightness_supported(modes):
            kwargs.pop("brightness", None)
        return kwargs

    # --- state --------------------------------------------------------------------------------

    def _rgb(self) -> tuple[int, ...] | None:
        value = self.colors.get(self.color_mode or "")
        return None if value is None else _TO_RGB[self.color_mode](*value)  # type: ignore[index]

    @property  # type: ignore[override]
    def rgb_color(self) -> tuple[int, ...] | None:
        return self._rgb()

    @property  # type: ignore[override]
    def hs_color(self) -> tuple[float, float] | None:
        if self.color_mode == "hs":
            return self.colors.get("hs")  # type: ignore[return-value]
        rgb = self._rgb()
        return None if rgb is None else rgb_to_hs(*rgb)

    def state_attributes(self) -> dict[str, Any] | None:
        attrs = super().state_attributes() or {}
        if not self.is_on:
            return attrs
        if self.color_mode != "color_temp":
            attrs.pop("color_temp_kelvin", None)
        rgb = self._rgb()
        if rgb is not None:
            attrs["xy_color"] = list(self.colors["xy"] if self.color_mode == "xy" else rgb_to_xy(*rgb))
        if self.color_mode in ("rgbw", "rgbww"):
            attrs[f"{self.color_mode}_color"] = list(self.colors[self.color_mode])
        return attrs

    def attributes(self) -> dict[str, Any]:
        attrs = super().attributes()
        attrs["supported_features"] = self.supported_features
        return attrs


# --- basic: a topic per feature ------------------------------------------------------------------


def _feature_options(*features: str) -> dict[Any, Any]:
    options: dict[Any, Any] = {}
    for feature in features:
        options[vol.Optional(f"{feature}_command_topic")] = mqtt.topic
        options[vol.Optional(f"{feature}_command_template")] = mqtt.template
        options[vol.Optional(f"{feature}_state_topic")] = mqtt.subscribe_topic
        options[vol.Optional(f"{feature}_value_template")] = mqtt.template
    return options


def _basic_modes(config: dict[str, Any]) -> list[str]:
    """The colour modes of a basic light, from its command topics, in HA's order."""
    modes = [mode for mode in ("color_temp", "hs", "rgb", "rgbw", "rgbww", "white", "xy")
             if config.get(f"{mode}_command_topic")]
    if not modes:
        modes = ["brightness" if config.get("brightness_command_topic") else "onoff"]
    return modes


def _check_basic(config: dict[str, Any]) -> dict[str, Any]:
    check_color_modes(_basic_modes(config))
    return config


class MqttBasicLight(MqttLight, schema="basic"):
    LIGHT_SCHEMA = mqtt.platform_schema(
        {
            **LIGHT_OPTIONS,
            **_feature_options("brightness", "color_temp", "effect", "hs", "rgb", "rgbw", "rgbww", "xy"),
            vol.Optional("state_value_template"): mqtt.template,
            vol.Optional("payload_on", default="ON"): mqtt.payload_str,
            vol.Optional("payload_off", default="OFF"): mqtt.payload_str,
            vol.Optional("on_command_type", default="last"): vol.In(("last", "first", "brightness")),
            vol.Optional("brightness_scale", default=255): vol.All(vol.Coerce(int), vol.Range(min=1)),
            vol.Optional("color_mode_state_topic"): mqtt.subscribe_topic,
            vol.Optional("color_mode_value_template"): mqtt.template,
            vol.Optional("white_command_topic"): mqtt.topic,
            vol.Optional("white_scale", default=255): vol.All(vol.Coerce(int), vol.Range(min=1)),
        },
        _check_basic,
    )

    def setup_light(self, config: dict[str, Any]) -> None:
        modes = _basic_modes(config)
        self.supported_color_modes = set(modes)
        self.color_mode = modes[0] if len(modes) == 1 else "unknown"  # until the device says
        self.supported_features = EFFECT if config.get("effect_command_topic") else 0
        forced = config["optimistic"]
        # HA: each feature without a state topic follows the commands sent.
        self._optimistic = {key for key in ("color_mode", "color_temp", "effect", *_COLORS)
                            if forced or config.get(f"{key}_state_topic") is None}
        if forced or (config.get("brightness_command_topic") and not config.get("brightness_state_topic")) \
                or (not config.get("brightness_command_topic") and not config.get("rgb_state_topic")):
            self._optimistic.add("brightness")

    def subscriptions(self) -> dict[str, Any]:
        handlers: dict[str, Any] = {
            "state_topic": self._on_state, "brightness_state_topic": self._on_brightness,
            "color_mode_state_topic": self._on_color_mode, "color_temp_state_topic": self._on_color_temp,
            "effect_state_topic": self._on_effect, "hs_state_topic": partial(self._on_pair, "hs"),
            "xy_state_topic": partial(self._on_pair, "xy"),
        }
        for mode in ("rgb", "rgbw", "rgbww"):
            handlers[f"{mode}_state_topic"] = partial(self._on_channels, mode)
        return handlers

    def _value(self, feature: str, message: Message) -> str | None:
        """The rendered value, or None for an empty one (HA ignores those)."""
        value = self.render(f"{feature}_value_template", message)
        return None if value == "" else str(value)

    def _on_state(self, message: Message) -> None:
        value = self._value("state", message)
        if value is None:
            return
        self.is_on = self.on_off(value, self.config["payload_on"], self.config["payload_off"])
        self.state_received()

    def _on_brightness(self, message: Message) -> None:
        value = self._value("brightness", message)
        if value is None or (number := float(value)) == 0:
            return  # HA ignores a zero brightness: the state topic says off
        if not 0 < number < float("inf"):
            raise ValueError(f"brightness {value!r} is not a positive number")
        self.brightness = min(round(number / self.config["brightness_scale"] * 255), 255)
        self.state_received()

    def _on_channels(self, mode: str, message: Message) -> None:
        value = self._value(mode, message)
        if value is None:
            return
        channels = tuple(int(part) for part in value.split(","))
        if len(channels) != len(mode) or not all(0 <= c <= 255 for c in channels):
            raise ValueError(f"{value!r} is not {len(mode)} channels of 0..255 ({mode})")
        if not self.config.get("brightness_state_topic"):
            brightness = max(channels)  # the colour carries the brightness
            if brightness == 0:
                return
            self.brightness = brightness
            channels = tuple(min(round(c / brightness * 255), 255) for c in channels)
        self._set_color(mode, channels)

    def _on_pair(self, mode: str, message: Message) -> None:
        value = self._value(mode, message)
        if value is None:
            return
        pair = tuple(float(part) for part in value.split(","))
        if len(pair) != 2:
            raise ValueError(f"{value!r} is not two numbers ({mode})")
        self._set_color(mode, pair)

    def _set_color(self, mode: str, value: tuple[Any, ...]) -> None:
        if "color_mode" in self._optimistic:
            self.color_mode = mode
        self.colors[mode] = value
        self.state_received()

    def _on_color_mode(self, message: Message) -> None:
        value = self._value("color_mode", message)
        if value is None:
            return
        if value not in COLOR_MODES:
            raise ValueError(f"{value!r} is not a colour mode ({', '.join(COLOR_MODES)})")
        self.color_mode = value
        self.state_received()

    def _on_color_temp(self, message: Message) -> None:
        value = self._value("color_temp", message)
        if value is None:
            return
        self.color_temp_kelvin = self.parse_color_temp(value)
        if "color_mode" in self._optimistic:
            self.color_mode = "color_temp"
        self.state_received()

    def _on_effect(self, message: Message) -> None:
        value = self._value("effect", message)
        if value is not None:
            self.effect = value
            self.state_received()

    # --- commands ---------------------------------------------------------------------------

    def _assume(self, feature: str, value: Any, mode: str | None = None) -> bool:
        """Follow a command sent for a feature that has no state topic."""
        if feature not in self._optimistic:
            return False
        if mode is not None and "color_mode" in self._optimistic:
            self.color_mode = mode
        if feature in _COLORS:
            self.colors[feature] = tuple(value)
        else:
            setattr(self, {"color_temp": "color_temp_kelvin"}.get(feature, feature), value)
        return True

    async def send_on(self, kwargs: dict[str, Any]) -> None:
        config = self.config
        changed = False
        if config["on_command_type"] == "first":
            await self.publish_command(config["payload_on"])
        elif config["on_command_type"] == "brightness" and "brightness" not in kwargs and "white" not in kwargs:
            kwargs["brightness"] = self.brightness or 255

        def scaled(color: tuple[int, ...], brightness: int | None = None) -> tuple[int, ...]:
            if brightness is None:  # with a brightness topic, the colour stays at full scale
                brightness = 255 if config.get("brightness_command_topic") \
                    else kwargs.get("brightness") or self.brightness or 255
            return tuple(int(c * brightness / 255) for c in color)

        async def send_channels(mode: str, color: tuple[int, ...]) -> None:
            names = ("red", "green", "blue", *{"rgbw": ("white",), "rgbww": ("cold_white", "warm_white")}.get(mode, ()))
            await self.publish_command(",".join(map(str, color)), topic_key=f"{mode}_command_topic",
                                       template_key=f"{mode}_command_template", **dict(zip(names, color)))

        for mode, names in (("hs", ("hue", "sat")), ("xy", ("x", "y"))):
            if (pair := kwargs.get(f"{mode}_color")) and config.get(f"{mode}_command_topic"):
                await self.publish_command(f"{pair[0]},{pair[1]}", topic_key=f"{mode}_command_topic",
                                           template_key=f"{mode}_command_template", **dict(zip(names, pair)))
                changed |= self._assume(mode, pair, mode)
        for mode in ("rgb", "rgbw", "rgbww"):
            if (color := kwargs.get(f"{mode}_color")) and config.get(f"{mode}_command_topic"):
                await send_channels(mode, scaled(color))
                changed |= self._assume(mode, color, mode)
        if "brightness" in kwargs:
            brightness = kwargs["brightness"]
            if config.get("brightness_command_topic"):
                scale = config["brightness_scale"]
                await self.publish_command(max(min(round(brightness / 255 * scale), scale), 1),
                                           topic_key="brightness_command_topic",
                                           template_key="brightness_command_template")
                changed |= self._assume("brightness", brightness)
            else:  # the brightness travels in the colour
                mode = next((m for m in ("rgb", "rgbw", "rgbww")
                             if config.get(f"{m}_command_topic") and f"{m}_color" not in kwargs), None)
                if mode is not None:
                    await send_channels(mode, scaled(self.colors.get(mode) or (255,) * len(mode), brightness))
                    changed |= self._assume("brightness", brightness)
        if "color_temp_kelvin" in kwargs and config.get("color_temp_command_topic"):
            kelvin = kwargs["color_temp_kelvin"]
            await self.publish_command(self.device_color_temp(kelvin), topic_key="color_temp_command_topic",
                                       template_key="color_temp_command_template")
            changed |= self._assume("color_temp", kelvin, "color_temp")
        effect = kwargs.get("effect")
        if effect is not None and config.get("effect_command_topic") and effect in (config.get("effect_list") or ()):
            await self.publish_command(effect, topic_key="effect_command_topic", template_key="effect_command_template")
            changed |= self._assume("effect", effect)
        if "white" in kwargs and config.get("white_command_topic"):
            scale = config["white_scale"]
            await self.publish_command(min(round(kwargs["white"] / 255 * scale), scale),
                                       topic_key="white_command_topic")
            changed |= self._assume("brightness", kwargs["white"], "white")
        if config["on_command_type"] == "last":
            await self.publish_command(config["payload_on"])
        if self.optimistic:
            self.is_on = changed = True
        if changed:
            self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        await self.command(self.config["payload_off"], assume={"is_on": False})


from . import light_schemas  # noqa: F401 - registers the json and template schemas
