"""MQTT climate (HVAC): each value on its own pair of topics (`mode_state_topic` /
`mode_command_topic`, `temperature_state_topic` / `temperature_command_topic`, ...). A value
with no state topic (or with `optimistic: true`) follows the commands sent; the features are
those a topic is configured for."""

from __future__ import annotations

from functools import partial
from typing import Any

import voluptuous as vol

from hub.entity_domains import ClimateEntity, ClimateEntityFeature, HVACAction, HVACMode

from .. import entity as mqtt
from ..entity import PAYLOAD_NONE, MqttEntity, finite_number
from ..models import Message
from . import register

PRESET_NONE = "none"

# State topic -> (its template, the attribute it sets).
_NUMBERS = {
    "current_temperature_topic": ("current_temperature_template", "current_temperature"),
    "temperature_state_topic": ("temperature_state_template", "target_temperature"),
    "temperature_low_state_topic": ("temperature_low_state_template", "target_temperature_low"),
    "temperature_high_state_topic": ("temperature_high_state_template", "target_temperature_high"),
    "current_humidity_topic": ("current_humidity_template", "current_humidity"),
    "target_humidity_state_topic": ("target_humidity_state_template", "target_humidity"),
}
# State topic -> (its template, the attribute, the option listing the valid values).
_MODES = {
    "mode_state_topic": ("mode_state_template", "hvac_mode", "modes"),
    "fan_mode_state_topic": ("fan_mode_state_template", "fan_mode", "fan_modes"),
    "swing_mode_state_topic": ("swing_mode_state_template", "swing_mode", "swing_modes"),
}
# Each settable value: its command topic, command template and state topic.
_COMMANDS = {
    "hvac_mode": ("mode_command_topic", "mode_command_template", "mode_state_topic"),
    "target_temperature": ("temperature_command_topic", "temperature_command_template",
                           "temperature_state_topic"),
    "target_temperature_low": ("temperature_low_command_topic", "temperature_low_command_template",
                               "temperature_low_state_topic"),
    "target_temperature_high": ("temperature_high_command_topic",
                                "temperature_high_command_template", "temperature_high_state_topic"),
    "target_humidity": ("target_humidity_command_topic", "target_humidity_command_template",
                        "target_humidity_state_topic"),
    "fan_mode": ("fan_mode_command_topic", "fan_mode_command_template", "fan_mode_state_topic"),
    "swing_mode": ("swing_mode_command_topic", "swing_mode_command_template", "swing_mode_state_topic"),
    "preset_mode": ("preset_mode_command_topic", "preset_mode_command_template",
                    "preset_mode_state_topic"),
}
_FEATURES = (  # a feature, and the topics any one of which gives it
    (ClimateEntityFeature.TARGET_TEMPERATURE, ("temperature_state_topic", "temperature_command_topic")),
    (ClimateEntityFeature.TARGET_TEMPERATURE_RANGE,
     ("temperature_low_state_topic", "temperature_low_command_topic",
      "temperature_high_state_topic", "temperature_high_command_topic")),
    (ClimateEntityFeature.TARGET_HUMIDITY, ("target_humidity_command_topic",)),
    (ClimateEntityFeature.FAN_MODE, ("fan_mode_state_topic", "fan_mode_command_topic")),
    (ClimateEntityFeature.SWING_MODE, ("swing_mode_state_topic", "swing_mode_command_topic")),
    (ClimateEntityFeature.PRESET_MODE, ("preset_mode_command_topic",)),
)


def _temperature_unit(value: Any) -> str:
    unit = str(value).upper().lstrip("°")
    if unit not in ("C", "F"):
        raise vol.Invalid("temperature_unit must be C or F")
    return f"°{unit}"


def _check(config: dict[str, Any]) -> dict[str, Any]:
    if PRESET_NONE in config["preset_modes"]:
        raise vol.Invalid("preset_modes must not include preset mode 'none'")
    if config["min_humidity"] >= config["max_humidity"]:
        raise vol.Invalid("max_humidity must be above min_humidity")
    if config["max_humidity"] > 100:
        raise vol.Invalid("max_humidity must be <= 100")
    if "target_humidity_state_topic" in config and "target_humidity_command_topic" not in config:
        raise vol.Invalid("target_humidity_state_topic cannot be used without target_humidity_command_topic")
    return config


def _celsius_in(unit: str, celsius: float) -> float:
    return celsius if unit == "°C" else celsius * 9 / 5 + 32


_MODE_LIST = vol.All(lambda v: v if isinstance(v, list) else [v], [vol.Coerce(str)])


def _options() -> dict[Any, Any]:
    options: dict[Any, Any] = {
        vol.Optional("modes", default=["auto", "off", "cool", "heat", "dry", "fan_only"]):
            vol.All(_MODE_LIST, [vol.In([str(mode) for mode in HVACMode])]),
        vol.Optional("fan_modes", default=["auto", "low", "medium", "high"]): _MODE_LIST,
        vol.Optional("swing_modes", default=["on", "off"]): _MODE_LIST,
        vol.Inclusive("preset_mode_command_topic", "preset_modes"): mqtt.topic,
        vol.Inclusive("preset_modes", "preset_modes", default=list): _MODE_LIST,
        vol.Optional("preset_mode_state_topic"): mqtt.subscribe_topic,
        vol.Optional("preset_mode_value_template"): mqtt.template,
        vol.Optional("action_topic"): mqtt.subscribe_topic,
        vol.Optional("action_template"): mqtt.template,
        vol.Optional("power_command_topic"): mqtt.topic,
        vol.Optional("power_command_template"): mqtt.template,
        vol.Optional("payload_on", default="ON"): mqtt.payload_str,
        vol.Optional("payload_off", default="OFF"): mqtt.payload_str,
        vol.Optional("initial"): vol.Coerce(float),
        vol.Optional("min_temp"): vol.Coerce(float),
        vol.Optional("max_temp"): vol.Coerce(float),
        vol.Optional("temp_step", default=1.0): vol.Coerce(float),
        vol.Optional("precision"): vol.All(vol.Coerce(float), vol.In((0.1, 0.5, 1.0))),
        vol.Optional("temperature_unit"): _temperature_unit,
        vol.Optional("min_humidity", default=30.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("max_humidity", default=99.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("optimistic", default=False): bool,
        vol.Optional("value_template"): mqtt.template,
    }
    for topic, (template, *_) in (*_NUMBERS.items(), *_MODES.items()):
        options[vol.Optional(topic)] = mqtt.subscribe_topic
        options[vol.Optional(template)] = mqtt.template
    for command, command_template, _state in _COMMANDS.values():
        options.setdefault(vol.Optional(command), mqtt.topic)  # (markers are equal by key)
        options[vol.Optional(command_template)] = mqtt.template
    return options


@register
class MqttClimate(MqttEntity, ClimateEntity):
    ASSUMED_WHEN_OPTIMISTIC = True
    PLATFORM = "climate"
    DEFAULT_NAME = "MQTT HVAC"
    SCHEMA = mqtt.platform_schema(_options(), _check)

    def setup_from_config(self, config: dict[str, Any]) -> None:
        unit_system = self.runtime.hub.config.get("unit_system")
        self.temperature_unit = config.get("temperature_unit", "°F" if unit_system == "us_customary" else "°C")
        self.min_temp = config.get("min_temp", _celsius_in(self.temperature_unit, 7))
        self.max_temp = config.get("max_temp", _celsius_in(self.temperature_unit, 35))
        self.precision = config.get("precision")
        self.target_temperature_step = config["temp_step"]
        self.min_humidity, self.max_humidity = config["min_humidity"], config["max_humidity"]
        self.hvac_modes = list(config["modes"])
        self.fan_modes, self.swing_modes = list(config["fan_modes"]), list(config["swing_modes"])
        # HA's starting values for what no state topic reports.
        initial = config.get("initial", _celsius_in(self.temperature_unit, 21))
        for attr, value in (("target_temperature", initial), ("target_temperature_low", initial),
                            ("target_temperature_high", initial), ("fan_mode", "low"),
                            ("swing_mode", "off"), ("hvac_mode", "off")):
            if self._optimistic_for(attr):
                setattr(self, attr, value)
        if "preset_mode_command_topic" in config:
            presets = list(config["preset_modes"])
            self.preset_modes = [PRESET_NONE, *presets] if presets else []
            self.preset_mode = PRESET_NONE
        else:
            self.preset_modes = []
        features = ClimateEntityFeature.TURN_ON | ClimateEntityFeature.TURN_OFF
        for feature, topics in _FEATURES:
            if any(config.get(topic) is not None for topic in topics):
                features |= feature
        self.supported_features = int(features)

    @property
    def optimistic(self) -> bool:
        return bool(self.config["optimistic"])

    def _optimistic_for(self, attr: str) -> bool:
        return self.config["optimistic"] or self.config.get(_COMMANDS[attr][2]) is None

    def subscriptions(self) -> dict[str, Any]:
        handlers: dict[str, Any] = {
            "action_topic": self._on_action, "preset_mode_state_topic": self._on_preset_mode}
        for topic, (template, attr) in _NUMBERS.items():
            handlers[topic] = partial(self._on_number, template, attr)
        for topic, (template, attr, modes) in _MODES.items():
            handlers[topic] = partial(self._on_mode, template, attr, modes)
        return handlers

    def _value(self, template: str, message: Message) -> Any:
        """A state template, or `value_template` for all those not given."""
        return self.render(template if self.has_template(template) else "value_template", message)

    def _on_number(self, template: str, attr: str, message: Message) -> None:
        value = self._value(template, message)
        if value == "":
            return  # HA ignores an empty value
        setattr(self, attr, None if value == PAYLOAD_NONE else finite_number(value))
        self.state_received()

    def _on_mode(self, template: str, attr: str, modes: str, message: Message) -> None:
        value = self._value(template, message)
        if value != PAYLOAD_NONE and value not in self.config[modes]:
            raise ValueError(f"{value!r} is not one of the {modes} {self.config[modes]}")
        setattr(self, attr, None if value == PAYLOAD_NONE else value)
        self.state_received()

    def _on_action(self, message: Message) -> None:
        value = self._value("action_template", message)
        if value == "":
            return
        self.hvac_action = None if value == PAYLOAD_NONE else HVACAction(value)
        self.state_received()

    def _on_preset_mode(self, message: Message) -> None:
        value = self._value("preset_mode_value_template", message)
        if value in (PRESET_NONE, PAYLOAD_NONE):
            value = PRESET_NONE
        elif value == "":
            return
        elif value not in self.preset_modes:
            raise ValueError(f"{value!r} is not one of the preset_modes {self.preset_modes}")
        self.preset_mode = value
        self.state_received()

    # --- commands -------------------------------------------------------------------------

    async def _set(self, attr: str, value: Any) -> bool:
        """Send `value` (if there is a command topic); True when the state follows it."""
        topic, template, _state = _COMMANDS[attr]
        if self.config.get(topic) is not None:
            await self.publish_command(value, topic_key=topic, template_key=template)
        if self._optimistic_for(attr):
            setattr(self, attr, value)
            return True
        return False

    async def set_hvac_mode(self, hvac_mode: str) -> None:
        if await self._set("hvac_mode", hvac_mode):
            self.write_state()

    async def set_temperature(self, *, temperature: float | None = None,
                              target_temp_low: float | None = None,
                              target_temp_high: float | None = None,
                              hvac_mode: str | None = None) -> None:
        if hvac_mode is not None:
            await self.set_hvac_mode(hvac_mode)
        changed = False
        for attr, value in (("target_temperature", temperature), ("target_temperature_low", target_temp_low),
                            ("target_temperature_high", target_temp_high)):
            if value is not None:
                changed = await self._set(attr, value) or changed
        if changed:
            self.write_state()

    async def set_humidity(self, humidity: int) -> None:
        if await self._set("target_humidity", humidity):
            self.write_state()

    async def set_fan_mode(self, fan_mode: str) -> None:
        if await self._set("fan_mode", fan_mode):
            self.write_state()

    async def set_swing_mode(self, swing_mode: str) -> None:
        if await self._set("swing_mode", swing_mode):
            self.write_state()

    async def set_preset_mode(self, preset_mode: str) -> None:
        if await self._set("preset_mode", preset_mode):
            self.write_state()

    async def turn_on(self) -> None:
        if self.config.get("power_command_topic") is None:
            await super().turn_on()  # HA's default: set a mode other than off
            return
        await self.publish_command(self.config["payload_on"], topic_key="power_command_topic",
                                   template_key="power_command_template")

    async def turn_off(self) -> None:
        if self.config.get("power_command_topic") is None:
            await super().turn_off()  # HA's default: set mode off
            return
        await self.publish_command(self.config["payload_off"], topic_key="power_command_topic",
                                   template_key="power_command_template")
        if self.config["optimistic"]:
            self.hvac_mode = "off"
            self.write_state()
