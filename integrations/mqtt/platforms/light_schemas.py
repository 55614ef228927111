"""The `json` and `template` schemas of the MQTT light (the base and `basic` are in light.py).

As in Home Assistant, a state message that is partly unusable (an unsupported colour mode, a
brightness that is not a number) still applies its usable parts; what it could not use is then
reported as a malformed payload of the device, so the diagnostics show why.
"""

from __future__ import annotations

import colorsys
from typing import Any

import orjson
import voluptuous as vol

from .. import entity as mqtt
from ..entity import PAYLOAD_NONE
from ..models import Message
from .light import (
    COLOR_MODES,
    EFFECT,
    FLASH,
    LIGHT_OPTIONS,
    TRANSITION,
    MqttLight,
    brightness_supported,
    check_color_modes,
    rgb_to_hs,
)

_CHANNELS = {"rgb": "rgb", "rgbw": "rgbw", "rgbww": "rgbcw"}  # the JSON keys of each mode's colour
_STATES = {"ON": True, "OFF": False, None: None}
_scale = vol.All(vol.Coerce(int), vol.Range(min=1))


def _report(problems: list[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems))


class MqttJsonLight(MqttLight, schema="json"):
    DEFAULT_NAME = "MQTT JSON Light"
    LIGHT_SCHEMA = mqtt.platform_schema({
        **LIGHT_OPTIONS,
        vol.Optional("brightness", default=False): bool,
        vol.Optional("brightness_scale", default=255): _scale,
        vol.Optional("effect", default=False): bool,
        vol.Optional("flash", default=True): bool,
        vol.Optional("flash_time_short", default=2): vol.All(vol.Coerce(int), vol.Range(min=0)),
        vol.Optional("flash_time_long", default=10): vol.All(vol.Coerce(int), vol.Range(min=0)),
        vol.Optional("transition", default=True): bool,
        vol.Optional("supported_color_modes"): vol.All(
            lambda v: v if isinstance(v, list) else [v], [vol.In(COLOR_MODES)], check_color_modes),
        vol.Optional("white_scale", default=255): _scale,
    })

    def setup_light(self, config: dict[str, Any]) -> None:
        modes = config.get("supported_color_modes") or {"brightness" if config["brightness"] else "onoff"}
        self.supported_color_modes = set(modes)
        self.color_mode = next(iter(modes)) if len(modes) == 1 else "unknown"
        self.supported_features = (EFFECT if config["effect"] else 0) | (FLASH if config["flash"] else 0) \
            | (TRANSITION if config["transition"] else 0)

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        values = orjson.loads(self.payload_text(message))
        if not isinstance(values, dict) or "state" not in values:
            raise ValueError('the state must be a JSON object with a "state" key')
        problems = []
        if values["state"] in _STATES:
            self.is_on = _STATES[values["state"]]
        else:
            problems.append(f"state {values['state']!r} is neither ON, OFF nor null")
        if "color_mode" in values:
            try:
                self._update_color(values)
            except (KeyError, TypeError, ValueError) as err:
                problems.append(f"colour {values.get('color')!r} in mode {values['color_mode']!r}: {err!r}")
        if brightness_supported(self.supported_color_modes) and values.get("brightness"):
            try:
                self.brightness = min(255, max(1, round(float(values["brightness"]) * 255
                                                        / self.config["brightness_scale"])))
            except (TypeError, ValueError):
                problems.append(f"brightness {values['brightness']!r} is not a number")
        if self.supported_features & EFFECT and "effect" in values:
            self.effect = values["effect"]
        self.state_received()
        _report(problems)

    def _update_color(self, values: dict[str, Any]) -> None:
        mode = values["color_mode"]
        if mode not in (self.supported_color_modes or ()):
            raise ValueError("not one of supported_color_modes")
        color = values.get("color")
        if mode == "color_temp":
            self.color_temp_kelvin = self.parse_color_temp(values["color_temp"])
        elif mode in ("hs", "xy"):
            self.colors[mode] = tuple(float(color[key]) for key in ("hs" if mode == "hs" else "xy"))
        elif mode in _CHANNELS:
            self.colors[mode] = tuple(int(color[key]) for key in _CHANNELS[mode])
        self.color_mode = mode

    async def send_on(self, kwargs: dict[str, Any]) -> None:
        modes = self.supported_color_modes or set()
        optimistic = self.optimistic
        message: dict[str, Any] = {"state": "ON"}
        for mode, keys in (("hs", "hs"), ("xy", "xy"), *_CHANNELS.items()):
            if (color := kwargs.get(f"{mode}_color")) and mode in modes:
                if mode in _CHANNELS:  # without the brightness option, the colour carries it
                    factor = 255 if self.config["brightness"] else kwargs.pop("brightness", 255)
                    color = tuple(round(c / 255 * factor) for c in color)
                message["color"] = dict(zip(keys, color))
                if optimistic:
                    self.color_mode, self.colors[mode] = mode, tuple(color)
        self._flash_and_transition(message, kwargs)
        if "brightness" in kwargs and brightness_supported(modes):
            scale = self.config["brightness_scale"]
            message["brightness"] = max(round(kwargs["brightness"] * scale / 255), 1)
            if optimistic:
                self.brightness = kwargs["brightness"]
        if "color_temp_kelvin" in kwargs:
            message["color_temp"] = self.device_color_temp(kwargs["color_temp_kelvin"])
            if optimistic:
                self.color_mode, self.color_temp_kelvin = "color_temp", kwargs["color_temp_kelvin"]
        if "effect" in kwargs:
            message["effect"] = kwargs["effect"]
            if optimistic:
                self.effect = kwargs["effect"]
        if "white" in kwargs and "white" in modes:
            scale = self.config["white_scale"]
            message["white"] = max(min(round(kwargs["white"] / 255 * scale), scale), 1)
            if optimistic:
                self.color_mode, self.brightness = "white", kwargs["white"]
        await self.publish_command(orjson.dumps(message).decode())
        if optimistic:
            self.is_on = True
            self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        message: dict[str, Any] = {"state": "OFF"}
        self._flash_and_transition(message, self.adapt(kwargs))
        await self.publish_command(orjson.dumps(message).decode())
        if self.optimistic:
            self.is_on = False
            self.write_state()

    def _flash_and_transition(self, message: dict[str, Any], kwargs: dict[str, Any]) -> None:
        if "transition" in kwargs:
            message["transition"] = kwargs["transition"]
        if kwargs.get("flash") in ("short", "long"):
            message["flash"] = self.config[f"flash_time_{kwargs['flash']}"]


class MqttTemplateLight(MqttLight, schema="template"):
    DEFAULT_NAME = "MQTT Template Light"
    LIGHT_SCHEMA = mqtt.platform_schema({
        **LIGHT_OPTIONS,
        vol.Required("command_on_template"): mqtt.template,
        vol.Required("command_off_template"): mqtt.template,
        **{vol.Optional(f"{part}_template"): mqtt.template
           for part in ("state", "brightness", "color_temp", "red", "green", "blue", "effect")},
    })

    @property
    def optimistic(self) -> bool:
        return super().optimistic or "state_template" not in self.config

    def setup_light(self, config: dict[str, Any]) -> None:
        modes = {"onoff"}
        if "brightness_template" in config:
            modes.add("brightness")
        if "color_temp_template" in config:
            modes.add("color_temp")
        if all(f"{c}_template" in config for c in ("red", "green", "blue")):
            modes.add("hs")
        if len(modes) > 1:  # HA's filter_supported_color_modes
            modes.discard("onoff")
        if modes & {"color_temp", "hs"}:
            modes.discard("brightness")
        self.supported_color_modes = modes
        self._fixed_mode = next(iter(modes)) if len(modes) == 1 else None
        self.color_mode = self._fixed_mode
        self.supported_features = FLASH | TRANSITION | (EFFECT if config.get("effect_list") is not None else 0)

    def _update_color_mode(self) -> None:
        if self._fixed_mode is None:  # colour temperature and hs: hs wins
            self.color_mode = "hs" if self.colors.get("hs") else "color_temp"

    def subscriptions(self) -> dict[str, Any]:
        return {"state_topic": self._on_state}

    def _on_state(self, message: Message) -> None:
        config, problems = self.config, []

        def part(name: str) -> str:
            return str(self.render(f"{name}_template", message)) if f"{name}_template" in config else ""

        state = part("state")
        if state in ("on", "off", PAYLOAD_NONE):
            self.is_on = {"on": True, "off": False}.get(state)
        elif state:
            problems.append(f"state {state!r} is neither on, off nor None")
        if brightness := part("brightness"):
            try:
                if value := int(brightness):  # HA ignores zero
                    self.brightness = value
            except ValueError:
                problems.append(f"brightness {brightness!r} is not an integer")
        if color_temp := part("color_temp"):
            try:
                self.color_temp_kelvin = None if color_temp == PAYLOAD_NONE else self.parse_color_temp(color_temp)
            except ValueError:
                problems.append(f"colour temperature {color_temp!r} is not an integer")
        rgb = [part(c) for c in ("red", "green", "blue")]
        if all(rgb) and "hs" in (self.supported_color_modes or ()):
            try:
                if rgb == [PAYLOAD_NONE] * 3:
                    self.colors.pop("hs", None)
                else:
                    self.colors["hs"] = rgb_to_hs(*(int(c) for c in rgb))
                self._update_color_mode()
            except ValueError:
                problems.append(f"colour {','.join(rgb)!r} is not three integers")
        if effect := part("effect"):
            if effect in (config.get("effect_list") or ()):
                self.effect = effect
            else:
                problems.append(f"effect {effect!r} is not in effect_list")
        self.state_received()
        _report(problems)

    async def send_on(self, kwargs: dict[str, Any]) -> None:
        optimistic = self.optimistic
        values: dict[str, Any] = {"state": True}
        if "brightness" in kwargs:
            values["brightness"] = int(kwargs["brightness"])
            if optimistic:
                self.brightness = kwargs["brightness"]
        if "color_temp_kelvin" in kwargs:
            values["color_temp"] = self.device_color_temp(kwargs["color_temp_kelvin"])
            if optimistic:
                self.color_temp_kelvin = kwargs["color_temp_kelvin"]
                self.colors.pop("hs", None)
                self._update_color_mode()
        if "hs_color" in kwargs:
            hue, sat = kwargs["hs_color"]
            brightness = 255 if "brightness_template" in self.config \
                else kwargs.get("brightness", 255 if self.brightness is None else self.brightness)
            red, green, blue = (int(c * 255) for c in colorsys.hsv_to_rgb(hue / 360, sat / 100, brightness / 255))
            values.update(red=red, green=green, blue=blue, hue=hue, sat=sat)
            if optimistic:
                self.color_temp_kelvin = None
                self.colors["hs"] = (hue, sat)
                self._update_color_mode()
        for key in ("effect", "flash", "transition"):
            if key in kwargs:
                values[key] = kwargs[key]
        if optimistic and "effect" in kwargs:
            self.effect = kwargs["effect"]
        await self.publish_command(None, template_key="command_on_template", **values)
        if optimistic:
            self.is_on = True
            self.write_state()

    async def turn_off(self, **kwargs: Any) -> None:
        values: dict[str, Any] = {"state": False}
        values.update({k: v for k, v in self.adapt(kwargs).items() if k in ("flash", "transition")})
        await self.publish_command(None, template_key="command_off_template", **values)
        if self.optimistic:
            self.is_on = False
            self.write_state()
