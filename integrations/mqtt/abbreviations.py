"""Home Assistant's MQTT discovery abbreviations, and the expansion applied to every payload.

A discovery payload may abbreviate any option name (`stat_t` for `state_topic`, ...); the device
and origin mappings have short keys of their own. The three tables below are our own copy of
Home Assistant's lists, made from:

- HA core `homeassistant/components/mqtt/abbreviations.py`: the newest version found (a recent
  fork of core, after 2025.10, with `def_ent_id`, `grp`, `ir_e`, `msg_exp_int`, `tz`,
  `swing_h_*`, `cln_segmnts_*`) plus older versions (2022-2024) for keys that core has since
  dropped (`obj_id`, `clrm`, `hold_*`, `whit_val_*`, speed keys, ...; marked as dropped);
- the "Supported abbreviations in MQTT discovery messages" tables of the MQTT integration docs
  (home-assistant.io `source/_integrations/mqtt.markdown`, 2022 and 2024/2025 versions), and
  `/work/shared/reference/formats.md` section "1a. MQTT discovery".

Sources are merged: an abbreviation known to any of them is kept, since old publishers still
send dropped keys and HA ignores unknown keys anyway. Entries only in the docs are marked. The
one true conflict, `pos` (`position` in an early 2024 development version of core, then
`reports_position` in every release and in the docs), keeps the released meaning
`reports_position`. Several abbreviations may name the same option (`cmp`/`cmps`,
`hum_state_tpl`/`hum_stat_tpl`, `sup_dur`/`sup_duration`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ABBREVIATIONS",
    "DEVICE_ABBREVIATIONS",
    "ORIGIN_ABBREVIATIONS",
    "TOPIC_BASE",
    "apply_base_topic",
    "expand",
]

# The key of the base topic in a payload (`{"~": "homeassistant/switch/x", "cmd_t": "~/set"}`).
TOPIC_BASE = "~"

# Option names of the entity (and device-discovery root) config, by abbreviation.
ABBREVIATIONS: dict[str, str] = {
    "act_stat_t": "activity_state_topic",
    "act_t": "action_topic",
    "act_tpl": "action_template",
    "act_val_tpl": "activity_value_template",
    "atype": "automation_type",
    "aux_cmd_t": "aux_command_topic",  # dropped from newer HA core
    "aux_stat_t": "aux_state_topic",  # dropped from newer HA core
    "aux_stat_tpl": "aux_state_template",  # dropped from newer HA core
    "av_tones": "available_tones",
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "away_mode_cmd_t": "away_mode_command_topic",  # dropped from newer HA core
    "away_mode_stat_t": "away_mode_state_topic",  # dropped from newer HA core
    "away_mode_stat_tpl": "away_mode_state_template",  # dropped from newer HA core
    "b_tpl": "blue_template",
    "bat_lev_t": "battery_level_topic",  # dropped from newer HA core
    "bat_lev_tpl": "battery_level_template",  # dropped from newer HA core
    "bri_cmd_t": "brightness_command_topic",
    "bri_cmd_tpl": "brightness_command_template",
    "bri_scl": "brightness_scale",
    "bri_stat_t": "brightness_state_topic",
    "bri_tpl": "brightness_template",
    "bri_val_tpl": "brightness_value_template",
    "chrg_t": "charging_topic",  # dropped from newer HA core
    "chrg_tpl": "charging_template",  # dropped from newer HA core
    "cln_segmnts_cmd_t": "clean_segments_command_topic",
    "cln_segmnts_cmd_tpl": "clean_segments_command_template",
    "cln_t": "cleaning_topic",  # dropped from newer HA core
    "cln_tpl": "cleaning_template",  # dropped from newer HA core
    "clr_temp_cmd_t": "color_temp_command_topic",
    "clr_temp_cmd_tpl": "color_temp_command_template",
    "clr_temp_k": "color_temp_kelvin",
    "clr_temp_stat_t": "color_temp_state_topic",
    "clr_temp_tpl": "color_temp_template",
    "clr_temp_val_tpl": "color_temp_value_template",
    "clrm": "color_mode",  # dropped from newer HA core
    "clrm_stat_t": "color_mode_state_topic",
    "clrm_val_tpl": "color_mode_value_template",
    "cmd_off_tpl": "command_off_template",
    "cmd_on_tpl": "command_on_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cmp": "components",  # HA core 2024.11 dev; docs prose still says `cmp`
    "cmps": "components",
    "cod_arm_req": "code_arm_required",
    "cod_dis_req": "code_disarm_required",
    "cod_form": "code_format",
    "cod_trig_req": "code_trigger_required",
    "cont_type": "content_type",
    "curr_hum_t": "current_humidity_topic",
    "curr_hum_tpl": "current_humidity_template",
    "curr_temp_t": "current_temperature_topic",
    "curr_temp_tpl": "current_temperature_template",
    "def_ent_id": "default_entity_id",
    "dev": "device",
    "dev_cla": "device_class",
    "dir_cmd_t": "direction_command_topic",
    "dir_cmd_tpl": "direction_command_template",
    "dir_stat_t": "direction_state_topic",
    "dir_val_tpl": "direction_value_template",
    "dock_cmd_t": "dock_command_topic",
    "dock_cmd_tpl": "dock_command_template",
    "dock_t": "docked_topic",  # dropped from newer HA core
    "dock_tpl": "docked_template",  # dropped from newer HA core
    "dsp_prc": "display_precision",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "ent_pic": "entity_picture",
    "err_t": "error_topic",  # dropped from newer HA core
    "err_tpl": "error_template",  # dropped from newer HA core
    "evt_typ": "event_types",
    "exp_aft": "expire_after",
    "fan_mode_cmd_t": "fan_mode_command_topic",
    "fan_mode_cmd_tpl": "fan_mode_command_template",
    "fan_mode_stat_t": "fan_mode_state_topic",
    "fan_mode_stat_tpl": "fan_mode_state_template",
    "fanspd_lst": "fan_speed_list",
    "fanspd_t": "fan_speed_topic",  # dropped from newer HA core
    "fanspd_tpl": "fan_speed_template",  # dropped from newer HA core
    "flsh": "flash",
    "flsh_tlng": "flash_time_long",
    "flsh_tsht": "flash_time_short",
    "frc_upd": "force_update",
    "fx_cmd_t": "effect_command_topic",
    "fx_cmd_tpl": "effect_command_template",
    "fx_list": "effect_list",
    "fx_stat_t": "effect_state_topic",
    "fx_tpl": "effect_template",
    "fx_val_tpl": "effect_value_template",
    "g_tpl": "green_template",
    "grp": "group",
    "hold_cmd_t": "hold_command_topic",  # dropped from newer HA core
    "hold_cmd_tpl": "hold_command_template",  # dropped from newer HA core
    "hold_stat_t": "hold_state_topic",  # dropped from newer HA core
    "hold_stat_tpl": "hold_state_template",  # dropped from newer HA core
    "hs_cmd_t": "hs_command_topic",
    "hs_cmd_tpl": "hs_command_template",
    "hs_stat_t": "hs_state_topic",
    "hs_val_tpl": "hs_value_template",
    "hum_cmd_t": "target_humidity_command_topic",
    "hum_cmd_tpl": "target_humidity_command_template",
    "hum_stat_t": "target_humidity_state_topic",
    "hum_stat_tpl": "target_humidity_state_template",  # docs table only
    "hum_state_tpl": "target_humidity_state_template",
    "ic": "icon",
    "img_e": "image_encoding",
    "img_t": "image_topic",
    "init": "initial",
    "ir_e": "infrared_encoding",
    "json_attr": "json_attributes",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "l_ver_t": "latest_version_topic",
    "l_ver_tpl": "latest_version_template",
    "lrst_t": "last_reset_topic",  # dropped from newer HA core
    "lrst_val_tpl": "last_reset_value_template",
    "max": "max",
    "max_hum": "max_humidity",
    "max_k": "max_kelvin",
    "max_mirs": "max_mireds",
    "max_temp": "max_temp",
    "migr_discvry": "migrate_discovery",
    "min": "min",
    "min_hum": "min_humidity",
    "min_k": "min_kelvin",
    "min_mirs": "min_mireds",
    "min_temp": "min_temp",
    "mode": "mode",
    "mode_cmd_t": "mode_command_topic",
    "mode_cmd_tpl": "mode_command_template",
    "mode_stat_t": "mode_state_topic",
    "mode_stat_tpl": "mode_state_template",
    "modes": "modes",
    "msg_exp_int": "message_expiry_interval",
    "name": "name",
    "o": "origin",
    "obj_id": "object_id",  # dropped from newer HA core
    "off_dly": "off_delay",
    "on_cmd_type": "on_command_type",
    "ops": "options",
    "opt": "optimistic",
    "osc_cmd_t": "oscillation_command_topic",
    "osc_cmd_tpl": "oscillation_command_template",
    "osc_stat_t": "oscillation_state_topic",
    "osc_val_tpl": "oscillation_value_template",
    "p": "platform",
    "pause_cmd_t": "pause_command_topic",
    "pause_mw_cmd_tpl": "pause_command_template",
    "pct_cmd_t": "percentage_command_topic",
    "pct_cmd_tpl": "percentage_command_template",
    "pct_stat_t": "percentage_state_topic",
    "pct_val_tpl": "percentage_value_template",
    "pl": "payload",
    "pl_arm_away": "payload_arm_away",
    "pl_arm_custom_b": "payload_arm_custom_bypass",
    "pl_arm_home": "payload_arm_home",
    "pl_arm_nite": "payload_arm_night",
    "pl_arm_vacation": "payload_arm_vacation",
    "pl_avail": "payload_available",
    "pl_cln_sp": "payload_clean_spot",
    "pl_cls": "payload_close",
    "pl_dir_fwd": "payload_direction_forward",  # docs table only
    "pl_dir_rev": "payload_direction_reverse",  # docs table only
    "pl_disarm": "payload_disarm",
    "pl_hi_spd": "payload_high_speed",  # dropped from newer HA core
    "pl_home": "payload_home",
    "pl_inst": "payload_install",
    "pl_lo_spd": "payload_low_speed",  # dropped from newer HA core
    "pl_loc": "payload_locate",
    "pl_lock": "payload_lock",
    "pl_med_spd": "payload_medium_speed",  # dropped from newer HA core
    "pl_not_avail": "payload_not_available",
    "pl_not_home": "payload_not_home",
    "pl_off": "payload_off",
    "pl_off_spd": "payload_off_speed",  # dropped from newer HA core
    "pl_on": "payload_on",
    "pl_open": "payload_open",
    "pl_osc_off": "payload_oscillation_off",
    "pl_osc_on": "payload_oscillation_on",
    "pl_paus": "payload_pause",
    "pl_prs": "payload_press",
    "pl_ret": "payload_return_to_base",
    "pl_rst": "payload_reset",
    "pl_rst_hum": "payload_reset_humidity",
    "pl_rst_mode": "payload_reset_mode",
    "pl_rst_pct": "payload_reset_percentage",
    "pl_rst_pr_mode": "payload_reset_preset_mode",
    "pl_stop": "payload_stop",
    "pl_stop_tilt": "payload_stop_tilt",
    "pl_stpa": "payload_start_pause",  # dropped from newer HA core
    "pl_strt": "payload_start",
    "pl_toff": "payload_turn_off",
    "pl_ton": "payload_turn_on",
    "pl_trig": "payload_trigger",
    "pl_unlk": "payload_unlock",
    "pos": "reports_position",
    "pos_clsd": "position_closed",
    "pos_open": "position_open",
    "pos_t": "position_topic",
    "pos_tpl": "position_template",
    "pow_cmd_t": "power_command_topic",
    "pow_cmd_tpl": "power_command_template",
    "pow_stat_t": "power_state_topic",  # dropped from newer HA core
    "pow_stat_tpl": "power_state_template",  # dropped from newer HA core
    "pr_mode_cmd_t": "preset_mode_command_topic",
    "pr_mode_cmd_tpl": "preset_mode_command_template",
    "pr_mode_stat_t": "preset_mode_state_topic",
    "pr_mode_val_tpl": "preset_mode_value_template",
    "pr_modes": "preset_modes",
    "ptrn": "pattern",
    "r_tpl": "red_template",
    "rel_s": "release_summary",
    "rel_u": "release_url",
    "ret": "retain",
    "rgb_cmd_t": "rgb_command_topic",
    "rgb_cmd_tpl": "rgb_command_template",
    "rgb_stat_t": "rgb_state_topic",
    "rgb_val_tpl": "rgb_value_template",
    "rgbw_cmd_t": "rgbw_command_topic",
    "rgbw_cmd_tpl": "rgbw_command_template",
    "rgbw_stat_t": "rgbw_state_topic",
    "rgbw_val_tpl": "rgbw_value_template",
    "rgbww_cmd_t": "rgbww_command_topic",
    "rgbww_cmd_tpl": "rgbww_command_template",
    "rgbww_stat_t": "rgbww_state_topic",
    "rgbww_val_tpl": "rgbww_value_template",
    "send_cmd_t": "send_command_topic",
    "send_if_off": "send_if_off",
    "set_fan_spd_t": "set_fan_speed_topic",
    "set_pos_t": "set_position_topic",
    "set_pos_tpl": "set_position_template",
    "spd_cmd_t": "speed_command_topic",  # dropped from newer HA core
    "spd_rng_max": "speed_range_max",
    "spd_rng_min": "speed_range_min",
    "spd_stat_t": "speed_state_topic",  # dropped from newer HA core
    "spd_val_tpl": "speed_value_template",  # dropped from newer HA core
    "spds": "speeds",  # dropped from newer HA core
    "src_type": "source_type",
    "stat_cla": "state_class",
    "stat_closing": "state_closing",
    "stat_clsd": "state_closed",
    "stat_jam": "state_jammed",
    "stat_locked": "state_locked",
    "stat_locking": "state_locking",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_open": "state_open",
    "stat_opening": "state_opening",
    "stat_stopped": "state_stopped",
    "stat_t": "state_topic",
    "stat_tpl": "state_template",
    "stat_unlocked": "state_unlocked",
    "stat_unlocking": "state_unlocking",
    "stat_val_tpl": "state_value_template",
    "step": "step",
    "strt_mw_cmd_t": "start_mowing_command_topic",
    "strt_mw_cmd_tpl": "start_mowing_command_template",
    "stype": "subtype",
    "sug_dsp_prc": "suggested_display_precision",
    "sup_clrm": "supported_color_modes",
    "sup_dur": "support_duration",
    "sup_duration": "support_duration",  # docs table only
    "sup_feat": "supported_features",
    "sup_off": "supported_turn_off",  # docs table only
    "sup_vol": "support_volume_set",
    "swing_h_mode_cmd_t": "swing_horizontal_mode_command_topic",
    "swing_h_mode_cmd_tpl": "swing_horizontal_mode_command_template",
    "swing_h_mode_stat_t": "swing_horizontal_mode_state_topic",
    "swing_h_mode_stat_tpl": "swing_horizontal_mode_state_template",
    "swing_h_modes": "swing_horizontal_modes",
    "swing_mode_cmd_t": "swing_mode_command_topic",
    "swing_mode_cmd_tpl": "swing_mode_command_template",
    "swing_mode_stat_t": "swing_mode_state_topic",
    "swing_mode_stat_tpl": "swing_mode_state_template",
    "swing_modes": "swing_modes",
    "t": "topic",
    "temp_cmd_t": "temperature_command_topic",
    "temp_cmd_tpl": "temperature_command_template",
    "temp_hi_cmd_t": "temperature_high_command_topic",
    "temp_hi_cmd_tpl": "temperature_high_command_template",
    "temp_hi_stat_t": "temperature_high_state_topic",
    "temp_hi_stat_tpl": "temperature_high_state_template",
    "temp_lo_cmd_t": "temperature_low_command_topic",
    "temp_lo_cmd_tpl": "temperature_low_command_template",
    "temp_lo_stat_t": "temperature_low_state_topic",
    "temp_lo_stat_tpl": "temperature_low_state_template",
    "temp_stat_t": "temperature_state_topic",
    "temp_stat_tpl": "temperature_state_template",
    "temp_unit": "temperature_unit",
    "tilt_clsd_val": "tilt_closed_value",
    "tilt_cmd_t": "tilt_command_topic",
    "tilt_cmd_tpl": "tilt_command_template",
    "tilt_inv_stat": "tilt_invert_state",  # dropped from newer HA core
    "tilt_max": "tilt_max",
    "tilt_min": "tilt_min",
    "tilt_opnd_val": "tilt_opened_value",
    "tilt_opt": "tilt_optimistic",
    "tilt_status_t": "tilt_status_topic",
    "tilt_status_tpl": "tilt_status_template",
    "tit": "title",
    "trns": "transition",
    "tz": "timezone",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "url_t": "url_topic",
    "url_tpl": "url_template",
    "val_tpl": "value_template",
    "whit_cmd_t": "white_command_topic",
    "whit_scl": "white_scale",
    "whit_val_cmd_t": "white_value_command_topic",  # dropped from newer HA core
    "whit_val_scl": "white_value_scale",  # dropped from newer HA core
    "whit_val_stat_t": "white_value_state_topic",  # dropped from newer HA core
    "whit_val_tpl": "white_value_template",  # dropped from newer HA core
    "xy_cmd_t": "xy_command_topic",
    "xy_cmd_tpl": "xy_command_template",
    "xy_stat_t": "xy_state_topic",
    "xy_val_tpl": "xy_value_template",
}

# Keys of the `device` (`dev`) mapping, by abbreviation.
DEVICE_ABBREVIATIONS: dict[str, str] = {
    "cns": "connections",
    "cu": "configuration_url",
    "hw": "hw_version",
    "ids": "identifiers",
    "mdl": "model",
    "mdl_id": "model_id",
    "mf": "manufacturer",
    "name": "name",
    "sa": "suggested_area",
    "sn": "serial_number",
    "sw": "sw_version",
    "via_device": "via_device",  # never abbreviated; listed so the table names every device key
}

# Keys of the `origin` (`o`) mapping, by abbreviation.
ORIGIN_ABBREVIATIONS: dict[str, str] = {
    "name": "name",
    "sw": "sw_version",
    "url": "support_url",
}

_AVAILABILITY = "availability"
_COMPONENTS = "components"
_DEVICE = "device"
_ORIGIN = "origin"
_TOPIC = "topic"


def _expand_keys(mapping: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, Any]:
    """A new dict with `mapping`'s keys expanded by `table`; values are deep copies.

    A full name given in the payload wins over any abbreviation of it; when only abbreviations
    of one option are given (`cmp` and `cmps`), the first in payload order wins. Keys missing
    from the table are kept as they are.
    """
    result: dict[str, Any] = {}
    # Full names (and unknown keys) first, so an abbreviation never overrides them.
    for key, value in mapping.items():
        if key not in table or table[key] == key:
            result[key] = copy.deepcopy(value)
    for key, value in mapping.items():
        full = table.get(key, key)
        if full != key and full not in result:
            result[full] = copy.deepcopy(value)
    return result


def expand(payload: dict[str, Any]) -> dict[str, Any]:
    """A new dict with abbreviated keys expanded (main table), `device`/`dev` expanded with
    DEVICE_ABBREVIATIONS (including inside nothing else), `origin`/`o` with ORIGIN_ABBREVIATIONS,
    every entry of `availability`/`avty` list expanded with the main table (its items use
    topic/payload_available/payload_not_available/value_template: `t`, `pl_avail`,
    `pl_not_avail`, `val_tpl`), and, for device-based discovery, each value of
    `components`/`cmps` expanded recursively the same way (each component config is a full
    entity config). A key that is both given abbreviated and in full: the full name wins.
    Unknown keys are kept unchanged (forward compatibility). Never mutates the input. Non-dict
    values where a dict is expected are left as they are (validation happens later).

    Differences from HA's own expansion (`discovery._replace_all_abbreviations`), which works in
    place: there the abbreviation overwrites a full name given too, and inside components it
    skips `device`/`origin` (HA's schema forbids them there anyway). The result shares nothing
    with the input: values are deep copies.
    """
    if not isinstance(payload, Mapping):
        return payload
    result = _expand_keys(payload, ABBREVIATIONS)
    if isinstance(device := result.get(_DEVICE), Mapping):
        result[_DEVICE] = _expand_keys(device, DEVICE_ABBREVIATIONS)
    if isinstance(origin := result.get(_ORIGIN), Mapping):
        result[_ORIGIN] = _expand_keys(origin, ORIGIN_ABBREVIATIONS)
    if isinstance(availability := result.get(_AVAILABILITY), list):
        result[_AVAILABILITY] = [
            _expand_keys(item, ABBREVIATIONS) if isinstance(item, Mapping) else item
            for item in availability
        ]
    if isinstance(components := result.get(_COMPONENTS), Mapping):
        result[_COMPONENTS] = {
            key: expand(config) if isinstance(config, Mapping) else config
            for key, config in components.items()
        }
    return result


def _replace_base(value: str, base: str) -> str:
    """`~` at the start and/or end of `value` replaced by `base`."""
    if value.startswith(TOPIC_BASE):
        value = base + value[1:]
        if value.endswith(TOPIC_BASE) and len(value) > len(base):
            # "~/x/~": the trailing one too (not the last character of `base` itself).
            value = value[:-1] + base
    elif value.endswith(TOPIC_BASE):
        value = value[:-1] + base
    return value


def apply_base_topic(config: dict[str, Any]) -> dict[str, Any]:
    """HA's `~` rule: if `~` is present, in every option whose name ends in `_topic` (after
    expansion), and in the `topic` of each availability entry, a `~` at the START or END of the
    value is replaced by the base (`~/set` -> base + '/set', `state/~` -> 'state/' + base); `~`
    is removed from the result. Returns a new dict.

    Like HA (`discovery._replace_topic_base`, which tests `key.endswith("topic")`), an option
    named just `topic` is included too: device triggers and tag scanners use it
    (`{"~": "zigbee/button", "t": "~/action"}`). Only string values change; a non-string base
    is used as `str(base)`. The config is taken as one entity config: for device-based
    discovery apply it to each component (HA does so after merging the shared options in).
    """
    result = dict(config)
    if TOPIC_BASE not in result:
        return result
    base = result.pop(TOPIC_BASE)
    base = base if isinstance(base, str) else str(base)
    for key, value in result.items():
        if key.endswith(_TOPIC) and isinstance(value, str) and value:
            result[key] = _replace_base(value, base)
    if isinstance(availability := result.get(_AVAILABILITY), list):
        entries = []
        for item in availability:
            if isinstance(item, Mapping) and isinstance(topic := item.get(_TOPIC), str) and topic:
                item = {**item, _TOPIC: _replace_base(topic, base)}
            entries.append(item)
        result[_AVAILABILITY] = entries
    return result
