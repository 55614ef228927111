"""Home Assistant's MQTT discovery abbreviations and the `~` base topic rule."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from integrations.mqtt import abbreviations
from integrations.mqtt.abbreviations import (
    ABBREVIATIONS,
    DEVICE_ABBREVIATIONS,
    ORIGIN_ABBREVIATIONS,
    apply_base_topic,
    expand,
)

# --- the tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("stat_t", "state_topic"),
        ("cmd_t", "command_topic"),
        ("val_tpl", "value_template"),
        ("cmd_tpl", "command_template"),
        ("avty", "availability"),
        ("avty_t", "availability_topic"),
        ("avty_mode", "availability_mode"),
        ("avty_tpl", "availability_template"),
        ("pl_avail", "payload_available"),
        ("pl_not_avail", "payload_not_available"),
        ("json_attr_t", "json_attributes_topic"),
        ("json_attr_tpl", "json_attributes_template"),
        ("exp_aft", "expire_after"),
        ("frc_upd", "force_update"),
        ("uniq_id", "unique_id"),
        ("ent_cat", "entity_category"),
        ("en", "enabled_by_default"),
        ("dev_cla", "device_class"),
        ("stat_cla", "state_class"),
        ("unit_of_meas", "unit_of_measurement"),
        ("sug_dsp_prc", "suggested_display_precision"),
        ("bri_cmd_t", "brightness_command_topic"),
        ("bri_stat_t", "brightness_state_topic"),
        ("clr_temp_cmd_t", "color_temp_command_topic"),
        ("clr_temp_k", "color_temp_kelvin"),
        ("rgb_cmd_t", "rgb_command_topic"),
        ("fx_list", "effect_list"),
        ("pos_t", "position_topic"),
        ("set_pos_t", "set_position_topic"),
        ("pos", "reports_position"),
        ("mode_cmd_t", "mode_command_topic"),
        ("temp_cmd_t", "temperature_command_topic"),
        ("curr_temp_t", "current_temperature_topic"),
        ("pr_mode_cmd_t", "preset_mode_command_topic"),
        ("pct_cmd_t", "percentage_command_topic"),
        ("osc_cmd_t", "oscillation_command_topic"),
        ("dir_cmd_t", "direction_command_topic"),
        ("dir_stat_t", "direction_state_topic"),
        ("l_ver_t", "latest_version_topic"),
        ("pl_inst", "payload_install"),
        ("evt_typ", "event_types"),
        ("ops", "options"),
        ("pl_on", "payload_on"),
        ("pl_off", "payload_off"),
        ("pl_prs", "payload_press"),
        ("stat_jam", "state_jammed"),
        ("cont_type", "content_type"),
        ("tit", "title"),
        ("url_t", "url_topic"),
        ("ic", "icon"),
        ("ret", "retain"),
        ("opt", "optimistic"),
        ("e", "encoding"),
        ("t", "topic"),
        ("p", "platform"),
        ("o", "origin"),
        ("dev", "device"),
        ("cmps", "components"),
        ("def_ent_id", "default_entity_id"),
        ("obj_id", "object_id"),
        ("migr_discvry", "migrate_discovery"),
        ("atype", "automation_type"),
        ("stype", "subtype"),
        ("pl", "payload"),
    ],
)
def test_well_known_abbreviation(short: str, full: str) -> None:
    assert ABBREVIATIONS[short] == full


def test_device_and_origin_tables() -> None:
    assert DEVICE_ABBREVIATIONS == {
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
        "via_device": "via_device",
    }
    assert ORIGIN_ABBREVIATIONS == {"name": "name", "sw": "sw_version", "url": "support_url"}


def test_tables_are_sorted_and_consistent() -> None:
    for table in (ABBREVIATIONS, DEVICE_ABBREVIATIONS, ORIGIN_ABBREVIATIONS):
        assert list(table) == sorted(table)
    assert len(ABBREVIATIONS) >= 250
    # No abbreviation is also the full name of another option: expansion is unambiguous.
    full_names = set(ABBREVIATIONS.values())
    assert not [
        short for short, full in ABBREVIATIONS.items() if short != full and short in full_names
    ]
    # `migrate_discovery` itself (what the docs tell publishers to send) needs no table entry.
    assert "migrate_discovery" not in ABBREVIATIONS


def test_source_lists_one_entry_per_line() -> None:
    """Dict literals can silently drop a duplicated key; the source must not contain any."""
    text = Path(abbreviations.__file__).read_text()
    keys = re.findall(r'^    "([^"]+)": "[^"]+",', text, flags=re.MULTILINE)
    assert len(keys) == len(ABBREVIATIONS) + len(DEVICE_ABBREVIATIONS) + len(ORIGIN_ABBREVIATIONS)


# --- expand -------------------------------------------------------------------------------


def test_documented_irrigation_switch() -> None:
    payload = {
        "~": "homeassistant/switch/irrigation",
        "name": "garden",
        "cmd_t": "~/set",
        "stat_t": "~/state",
    }
    expanded = expand(payload)
    assert expanded == {
        "~": "homeassistant/switch/irrigation",
        "name": "garden",
        "command_topic": "~/set",
        "state_topic": "~/state",
    }
    assert apply_base_topic(expanded) == {
        "name": "garden",
        "command_topic": "homeassistant/switch/irrigation/set",
        "state_topic": "homeassistant/switch/irrigation/state",
    }


def test_documented_device_discovery_payload() -> None:
    payload = {
        "dev": {
            "ids": "ea334450945afc",
            "name": "Kitchen",
            "mf": "Bla electronics",
            "mdl": "xya",
            "sw": "1.0",
            "sn": "ea334450945afc",
            "hw": "1.0rev2",
        },
        "o": {"name": "bla2mqtt", "sw": "2.1", "url": "https://bla2mqtt.example.com/support"},
        "cmps": {
            "some_unique_component_id1": {
                "p": "sensor",
                "device_class": "temperature",
                "unit_of_measurement": "°C",
                "value_template": "{{ value_json.temperature}}",
                "unique_id": "temp01ae_t",
            },
            "some_unique_id2": {
                "p": "sensor",
                "dev_cla": "humidity",
                "unit_of_meas": "%",
                "val_tpl": "{{ value_json.humidity}}",
                "uniq_id": "temp01ae_h",
            },
            "removed": {"p": "sensor"},
        },
        "stat_t": "sensorBedroom/state",
        "qos": 2,
    }
    assert expand(payload) == {
        "device": {
            "identifiers": "ea334450945afc",
            "name": "Kitchen",
            "manufacturer": "Bla electronics",
            "model": "xya",
            "sw_version": "1.0",
            "serial_number": "ea334450945afc",
            "hw_version": "1.0rev2",
        },
        "origin": {
            "name": "bla2mqtt",
            "sw_version": "2.1",
            "support_url": "https://bla2mqtt.example.com/support",
        },
        "components": {
            "some_unique_component_id1": {
                "platform": "sensor",
                "device_class": "temperature",
                "unit_of_measurement": "°C",
                "value_template": "{{ value_json.temperature}}",
                "unique_id": "temp01ae_t",
            },
            "some_unique_id2": {
                "platform": "sensor",
                "device_class": "humidity",
                "unit_of_measurement": "%",
                "value_template": "{{ value_json.humidity}}",
                "unique_id": "temp01ae_h",
            },
            "removed": {"platform": "sensor"},
        },
        "state_topic": "sensorBedroom/state",
        "qos": 2,
    }


def test_component_configs_are_expanded_like_entities() -> None:
    payload = {
        "dev": {"ids": ["0AFFD2"], "mdl_id": "X-1", "cns": [["mac", "02:5b:26:a8:dc:12"]]},
        "o": {"name": "foobar"},
        "cmps": {
            "bla1": {
                "p": "device_automation",
                "atype": "trigger",
                "pl": "short_press",
                "t": "foobar/triggers/button1",
                "type": "button_short_press",
                "stype": "button_1",
            },
            "bla2": {
                "p": "light",
                "cmd_t": "x/set",
                "bri_cmd_t": "x/bri/set",
                "avty": [{"t": "x/status", "pl_avail": "up"}],
                "dev": {"ids": "other"},
            },
        },
    }
    expanded = expand(payload)
    assert expanded["device"] == {
        "identifiers": ["0AFFD2"],
        "model_id": "X-1",
        "connections": [["mac", "02:5b:26:a8:dc:12"]],
    }
    assert expanded["components"]["bla1"] == {
        "platform": "device_automation",
        "automation_type": "trigger",
        "payload": "short_press",
        "topic": "foobar/triggers/button1",
        "type": "button_short_press",
        "subtype": "button_1",
    }
    assert expanded["components"]["bla2"] == {
        "platform": "light",
        "command_topic": "x/set",
        "brightness_command_topic": "x/bri/set",
        "availability": [{"topic": "x/status", "payload_available": "up"}],
        "device": {"identifiers": "other"},
    }


def test_availability_list_entries_are_expanded() -> None:
    payload = {
        "avty": [
            {"t": "bridge/state", "pl_avail": "online", "pl_not_avail": "offline"},
            {"topic": "dev/state", "val_tpl": "{{ value_json.state }}"},
            "not-a-dict",
        ],
        "avty_mode": "all",
    }
    assert expand(payload) == {
        "availability": [
            {
                "topic": "bridge/state",
                "payload_available": "online",
                "payload_not_available": "offline",
            },
            {"topic": "dev/state", "value_template": "{{ value_json.state }}"},
            "not-a-dict",
        ],
        "availability_mode": "all",
    }


def test_device_keys_are_not_expanded_with_the_main_table() -> None:
    # `t` is `topic` at the root but means nothing in a device; `sw` is the reverse.
    expanded = expand({"dev": {"t": "x", "sw": "1.0"}, "o": {"sw": "2.0", "t": "y"}, "sw": "z"})
    assert expanded == {
        "device": {"t": "x", "sw_version": "1.0"},
        "origin": {"sw_version": "2.0", "t": "y"},
        "sw": "z",
    }


def test_full_name_wins_over_abbreviation() -> None:
    payload = {
        "stat_t": "short/state",
        "state_topic": "full/state",
        "uniq_id": "a",
        "dev": {"ids": "short"},
        "device": {"identifiers": "full", "mf": "m", "manufacturer": "M"},
        "o": {"name": "o"},
    }
    assert expand(payload) == {
        "state_topic": "full/state",
        "unique_id": "a",
        "device": {"identifiers": "full", "manufacturer": "M"},
        "origin": {"name": "o"},
    }
    # Order in the payload does not matter.
    assert expand({"state_topic": "full", "stat_t": "short"}) == {"state_topic": "full"}
    assert expand({"avty": [{"topic": "full", "t": "short"}]}) == {
        "availability": [{"topic": "full"}]
    }


def test_unknown_keys_are_kept() -> None:
    payload = {
        "stat_t": "a/b",
        "some_future_option": {"x": 1},
        "schema": "json",
        "brightness": True,
    }
    assert expand(payload) == {
        "state_topic": "a/b",
        "some_future_option": {"x": 1},
        "schema": "json",
        "brightness": True,
    }


def test_non_dict_values_are_left_for_validation() -> None:
    payload = {"dev": "not-a-dict", "o": ["x"], "avty": "a/b", "cmps": ["sensor"]}
    assert expand(payload) == {
        "device": "not-a-dict",
        "origin": ["x"],
        "availability": "a/b",
        "components": ["sensor"],
    }
    assert expand({"cmps": {"a": "oops", "b": {"p": "sensor"}}}) == {
        "components": {"a": "oops", "b": {"platform": "sensor"}}
    }


def test_input_is_not_mutated_and_nothing_is_shared() -> None:
    payload = {
        "~": "base",
        "stat_t": "~/state",
        "dev": {"ids": ["abc"], "cns": [["mac", "aa"]]},
        "o": {"name": "x", "sw": "1"},
        "avty": [{"t": "~/avail"}],
        "cmps": {"c": {"p": "sensor", "uniq_id": "u", "json_attr_t": "~/attr", "ops": ["a"]}},
    }
    before = copy.deepcopy(payload)
    expanded = expand(payload)
    apply_base_topic(expanded)
    assert payload == before
    expanded["device"]["identifiers"].append("mutated")
    expanded["components"]["c"]["options"].append("b")
    expanded["availability"][0]["topic"] = "changed"
    assert payload == before


# --- apply_base_topic ---------------------------------------------------------------------


def test_base_at_start_or_end_of_topics() -> None:
    config = {
        "~": "home/kitchen",
        "state_topic": "~/state",
        "command_topic": "set/~",
        "json_attributes_topic": "~",
        "availability_topic": "avail/~/x",  # only the start or end counts
        "value_template": "~/not-a-topic",
        "name": "~",
        "qos": 1,
    }
    assert apply_base_topic(config) == {
        "state_topic": "home/kitchen/state",
        "command_topic": "set/home/kitchen",
        "json_attributes_topic": "home/kitchen",
        "availability_topic": "avail/~/x",
        "value_template": "~/not-a-topic",
        "name": "~",
        "qos": 1,
    }


def test_base_in_availability_entries_and_plain_topic() -> None:
    config = expand(
        {
            "~": "zigbee2mqtt/button",
            "atype": "trigger",
            "t": "~/action",
            "avty": [{"t": "~/availability"}, {"t": "bridge/state"}, {"pl_avail": "on"}, "x"],
        }
    )
    assert apply_base_topic(config) == {
        "automation_type": "trigger",
        "topic": "zigbee2mqtt/button/action",
        "availability": [
            {"topic": "zigbee2mqtt/button/availability"},
            {"topic": "bridge/state"},
            {"payload_available": "on"},
            "x",
        ],
    }


def test_without_base_returns_an_equal_new_dict() -> None:
    config = {"state_topic": "~/state"}
    result = apply_base_topic(config)
    assert result == config
    assert result is not config


def test_apply_base_topic_does_not_mutate() -> None:
    config = {"~": "b", "state_topic": "~/s", "availability": [{"topic": "~/a"}]}
    before = copy.deepcopy(config)
    assert apply_base_topic(config) == {"state_topic": "b/s", "availability": [{"topic": "b/a"}]}
    assert config == before
