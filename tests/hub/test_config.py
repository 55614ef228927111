"""configuration.yaml: loading, tags, validation and errors located as file:line."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from textwrap import dedent

import pytest
import voluptuous as vol

from hub.config import (
    DEFAULT_CONFIGURATION,
    HubConfig,
    Input,
    NodeDict,
    NodeList,
    NodeStr,
    Secrets,
    atomic_write,
    humanize_error,
    load_configuration,
    load_yaml,
    location,
    validate_integration_configs,
    write_default_config,
)
from hub.exceptions import ConfigError, ConfigIssue


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def only_issue(excinfo: pytest.ExceptionInfo[ConfigError]) -> ConfigIssue:
    assert len(excinfo.value.issues) == 1
    return excinfo.value.issues[0]


# --- loading YAML ------------------------------------------------------------------------------

def test_every_mapping_list_and_string_knows_its_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", """
        name: kitchen
        items:
          - first
          - nested: true
        """)
    data = load_yaml(path)
    assert isinstance(data, NodeDict) and location(data) == (str(path), 1)
    assert isinstance(data["items"], NodeList) and location(data["items"]) == (str(path), 3)
    assert isinstance(data["name"], NodeStr) and location(data["name"]) == (str(path), 1)
    assert location(data["items"][1]) == (str(path), 4)
    assert data == {"name": "kitchen", "items": ["first", {"nested": True}]}
    assert location(42) == (None, None) and location("plain") == (None, None)


def test_an_empty_file_loads_as_none(tmp_path: Path) -> None:
    assert load_yaml(write(tmp_path / "empty.yaml", "# only a comment\n")) is None


def test_a_syntax_error_reports_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", """
        good: 1
        also_good: 2
        bad: [unclosed
        """)
    with pytest.raises(ConfigError) as excinfo:
        load_yaml(path)
    issue = only_issue(excinfo)
    assert issue.file == str(path)
    assert issue.line == 4
    assert "flow sequence" in issue.message or "expected" in issue.message


def test_a_bad_indentation_is_reported_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "a: 1\nb:\n  c: 2\n d: 3\n")
    with pytest.raises(ConfigError) as excinfo:
        load_yaml(path)
    assert only_issue(excinfo).line == 4


def test_duplicate_keys_warn_with_their_line_and_the_last_wins(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "dup.yaml", """
        port: 1
        other: x
        port: 2
        """)
    with caplog.at_level(logging.WARNING, logger="hub.config"):
        assert load_yaml(path)["port"] == 2
    assert f"{path}:3: duplicate key 'port' (first on line 1)" in caplog.text


def test_merge_keys_override_without_a_duplicate_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "merge.yaml", """
        base: &base {a: 1, b: 2}
        derived:
          <<: *base
          b: 3
        """)
    with caplog.at_level(logging.WARNING, logger="hub.config"):
        assert load_yaml(path)["derived"] == {"a": 1, "b": 3}
    assert "duplicate" not in caplog.text


def test_input_tag_gives_a_marker_for_blueprints(tmp_path: Path) -> None:
    data = load_yaml(write(tmp_path / "bp.yaml", "entity_id: !input motion_sensor\n"))
    assert data["entity_id"] == Input("motion_sensor")


# --- !secret -----------------------------------------------------------------------------------

def test_a_secret_is_read_from_secrets_yaml(tmp_path: Path) -> None:
    write(tmp_path / "secrets.yaml", "mqtt_password: hunter22\npin: 1234\n")
    path = write(tmp_path / "configuration.yaml", """
        mqtt:
          password: !secret mqtt_password
          code: !secret pin
        """)
    data = load_yaml(path, Secrets(tmp_path))
    assert data["mqtt"]["password"] == "hunter22"
    assert location(data["mqtt"]["password"]) == (str(path), 2)  # where it is used
    assert data["mqtt"]["code"] == 1234 and str(data["mqtt"]["code"]) == "1234"
    # Masked in reprs, so logging a config block cannot leak it.
    assert "hunter22" not in repr(data) and "1234" not in repr(data)


def test_a_secret_is_looked_up_in_parent_directories_up_to_the_config_dir(tmp_path: Path) -> None:
    write(tmp_path / "secrets.yaml", "token: from-root\nshared: root\n")
    write(tmp_path / "packages" / "secrets.yaml", "shared: package\n")
    path = write(tmp_path / "packages" / "deep" / "p.yaml", "a: !secret token\nb: !secret shared\n")
    assert load_yaml(path, Secrets(tmp_path)) == {"a": "from-root", "b": "package"}


def test_a_missing_secret_reports_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "secrets.yaml", "other: x\n")
    path = write(tmp_path / "configuration.yaml", """
        demo:
        mqtt:
          password: !secret nope
        """)
    with pytest.raises(ConfigError) as excinfo:
        load_yaml(path, Secrets(tmp_path))
    assert str(only_issue(excinfo)) == f"{path}:3: secret 'nope' not found in secrets.yaml"
    with pytest.raises(ConfigError, match="secret 'nope' not found"):
        Secrets(tmp_path).get("nope", path)
    assert Secrets(tmp_path).get("other", path) == "x"


def test_a_secret_value_never_appears_in_errors_or_logs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "secrets.yaml", """
        broker_port: not-a-number-s3cr3t
        my_pw: s3cr3t-pw
        login: {user: bob, pw: nested-s3cr3t}
        my_pw: s3cr3t-pw-again
        """)
    write(tmp_path / "configuration.yaml", """
        mqtt:
          port: !secret broker_port
          password: !secret my_pw
          login: !secret login
        http:
          api_password: inline-hunter2
        """)
    with caplog.at_level(logging.DEBUG):
        hub_config = load_configuration(tmp_path)
        schemas = {
            "mqtt": vol.Schema({"port": int, "password": vol.In(["a", "b"]),
                                "login": {"user": str, "pw": int}}),
            "http": vol.Schema({"api_password": int}),
        }
        valid, issues = validate_integration_configs(hub_config, schemas, {"mqtt", "http"})
    assert valid == {}
    text = "\n".join(map(str, issues))
    assert "s3cr3t" not in text and "hunter2" not in text
    assert "s3cr3t" not in caplog.text and "duplicate key" in caplog.text
    assert "s3cr3t" not in repr(hub_config.integrations)  # logging a block is safe too
    assert f"{tmp_path / 'configuration.yaml'}:2: mqtt: expected int" in text
    assert "(got ***)" in text
    assert "configuration.yaml:6: http: expected int" in text


# --- includes ----------------------------------------------------------------------------------

def test_include_loads_a_file_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "lights.yaml", "- kitchen\n- hall\n")
    path = write(tmp_path / "sub" / "main.yaml", "light: !include lights.yaml\n")
    data = load_yaml(path)
    assert data == {"light": ["kitchen", "hall"]}
    assert location(data["light"]) == (str(tmp_path / "sub" / "lights.yaml"), 1)


def test_a_missing_include_is_an_error_at_the_include_line(tmp_path: Path) -> None:
    path = write(tmp_path / "main.yaml", "a: 1\nb: !include missing.yaml\n")
    with pytest.raises(ConfigError) as excinfo:
        load_yaml(path)
    assert str(only_issue(excinfo)) == f"{path}:2: included file 'missing.yaml' not found"


def test_an_include_loop_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "loop.yaml", "again: !include loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_yaml(path)


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    """A directory of YAML files, with files and folders that dir includes must skip."""
    root = tmp_path / "parts"
    write(root / "b.yaml", "- b1\n")
    write(root / "a.yaml", "- a1\n- a2\n")
    write(root / "nested" / "c.yaml", "- c1\n")
    write(root / ".hidden.yaml", "- hidden\n")
    write(root / ".git" / "d.yaml", "- hidden\n")
    write(root / "secrets.yaml", "- hidden\n")
    write(root / "notes.txt", "- hidden\n")
    write(root / "empty.yaml", "")
    return root


def test_include_dir_list_gives_one_item_per_file(tmp_path: Path, packages: Path) -> None:
    data = load_yaml(write(tmp_path / "main.yaml", "x: !include_dir_list parts\n"))
    assert data["x"] == [["a1", "a2"], ["b1"], ["c1"]]
    assert location(data["x"]) == (str(tmp_path / "main.yaml"), 1)


def test_include_dir_merge_list_concatenates_the_files(tmp_path: Path, packages: Path) -> None:
    data = load_yaml(write(tmp_path / "main.yaml", "x: !include_dir_merge_list parts\n"))
    assert data["x"] == ["a1", "a2", "b1", "c1"]
    assert location(data["x"][3]) == (str(packages / "nested" / "c.yaml"), 1)


def test_include_dir_named_maps_file_names_to_contents(tmp_path: Path) -> None:
    write(tmp_path / "scripts" / "wake_up.yaml", "alias: Wake up\n")
    write(tmp_path / "scripts" / "more" / "sleep.yaml", "alias: Sleep\n")
    write(tmp_path / "scripts" / "secrets.yaml", "alias: no\n")
    data = load_yaml(write(tmp_path / "main.yaml", "script: !include_dir_named scripts\n"))
    assert data["script"] == {"wake_up": {"alias": "Wake up"}, "sleep": {"alias": "Sleep"}}


def test_include_dir_merge_named_merges_the_mappings(tmp_path: Path) -> None:
    write(tmp_path / "groups" / "a.yaml", "one: 1\ntwo: 2\n")
    write(tmp_path / "groups" / "b.yaml", "two: 22\nthree: 3\n")
    data = load_yaml(write(tmp_path / "main.yaml", "group: !include_dir_merge_named groups\n"))
    assert data["group"] == {"one": 1, "two": 22, "three": 3}


def test_a_missing_include_dir_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "main.yaml", "a: 1\nx: !include_dir_list nowhere\n")
    with pytest.raises(ConfigError) as excinfo:
        load_yaml(path)
    assert only_issue(excinfo).line == 2


# --- !env_var ----------------------------------------------------------------------------------

def test_env_var_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_HOST", "broker.local")
    monkeypatch.delenv("HUB_TEST_UNSET", raising=False)
    data = load_yaml(write(tmp_path / "a.yaml", """
        host: !env_var HUB_TEST_HOST fallback
        port: !env_var HUB_TEST_UNSET 1883
        """))
    assert data == {"host": "broker.local", "port": "1883"}


def test_env_var_without_default_must_be_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_TEST_UNSET", raising=False)
    path = write(tmp_path / "a.yaml", "a: 1\nhost: !env_var HUB_TEST_UNSET\n")
    with pytest.raises(ConfigError) as excinfo:
        load_yaml(path)
    issue = only_issue(excinfo)
    assert (issue.file, issue.line) == (str(path), 2)
    assert "HUB_TEST_UNSET" in issue.message


# --- configuration.yaml ------------------------------------------------------------------------

def test_core_block_is_validated_with_defaults(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", """
        hub:
          name: Farm
          latitude: 52.1
          time_zone: Europe/Amsterdam
          unit_system: imperial
        demo:
        """)
    hub_config = load_configuration(tmp_path)
    assert hub_config.issues == []
    assert hub_config.core["name"] == "Farm"
    assert hub_config.core["latitude"] == 52.1 and hub_config.core["longitude"] == 0.0
    assert hub_config.core["unit_system"] == "us_customary"
    assert hub_config.core["currency"] == "EUR" and hub_config.core["language"] == "en"
    assert hub_config.integrations == {"demo": None}
    assert hub_config.source["hub"] == (str(tmp_path / "configuration.yaml"), 1)
    assert hub_config.source["demo"] == (str(tmp_path / "configuration.yaml"), 6)


def test_homeassistant_is_an_alias_of_hub(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "homeassistant:\n  name: Old home\n")
    hub_config = load_configuration(tmp_path)
    assert hub_config.issues == [] and hub_config.core["name"] == "Old home"
    assert hub_config.integrations == {}


def test_hub_and_homeassistant_together_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "hub:\n  name: A\nhomeassistant:\n  name: B\n")
    hub_config = load_configuration(tmp_path)
    assert hub_config.core["name"] == "A"
    assert [issue.line for issue in hub_config.issues] == [3]


def test_a_broken_core_block_keeps_the_good_keys_and_the_rest(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", """
        hub:
          name: Workshop
          time_zone: Mars/Olympus
          latitude: 200
          colour: blue
        demo:
          lights: 2
        """)
    hub_config = load_configuration(tmp_path)
    assert hub_config.core["name"] == "Workshop"
    assert hub_config.core["time_zone"] == "UTC" and hub_config.core["latitude"] == 0.0
    assert sorted(issue.line for issue in hub_config.issues) == [3, 4, 5]
    assert all(issue.domain == "hub" for issue in hub_config.issues)
    assert "hub: extra keys not allowed @ data['colour']" in str(hub_config.issues)
    assert hub_config.integrations == {"demo": {"lights": 2}}


def test_customize_takes_the_entity_ids_the_core_accepts(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", """
        hub:
          customize:
            sensor.lawn_2:
              icon: mdi:grass
        """)
    assert load_configuration(tmp_path).core["customize"] == {"sensor.lawn_2": {"icon": "mdi:grass"}}
    write(tmp_path / "configuration.yaml", """
        hub:
          customize:
            sensor.lawn__2:
              icon: mdi:grass
            sensor.lawn_:
              icon: mdi:grass
        """)
    issues = load_configuration(tmp_path).issues
    assert [issue.line for issue in issues] == [3, 5]
    assert all("expected an entity id" in issue.message for issue in issues)


def test_an_empty_configuration_loads_with_defaults(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "")
    hub_config = load_configuration(tmp_path)
    assert hub_config.integrations == {} and hub_config.issues == []
    assert hub_config.core["name"] == "Home" and hub_config.core["time_zone"] == "UTC"


def test_a_syntax_error_no_block_survives_stops_everything(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "mqtt:\n  port: 1\n  broker: [x\n")
    with pytest.raises(ConfigError) as excinfo:
        load_configuration(tmp_path)
    issue = only_issue(excinfo)
    assert issue.file == str(tmp_path / "configuration.yaml") and issue.line == 4


def test_a_list_as_configuration_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "- demo\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_configuration(tmp_path)


def test_a_missing_configuration_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_configuration(tmp_path)


def test_a_broken_included_file_breaks_only_its_own_domain(tmp_path: Path) -> None:
    write(tmp_path / "automations.yaml", "- alias: ok\n- alias: [broken\n")
    write(tmp_path / "configuration.yaml", """
        demo:
        automation: !include automations.yaml
        script: !include missing.yaml
        light:
          - platform: demo
        """)
    hub_config = load_configuration(tmp_path)
    assert hub_config.integrations == {"demo": None, "light": [{"platform": "demo"}]}
    by_domain = {issue.domain: issue for issue in hub_config.issues}
    assert by_domain["automation"].file == str(tmp_path / "automations.yaml")
    assert by_domain["automation"].line == 3
    assert (by_domain["script"].file, by_domain["script"].line) == (
        str(tmp_path / "configuration.yaml"), 3)
    assert "automation" in hub_config.source


def test_a_missing_secret_breaks_only_its_own_domain(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "mqtt:\n  password: !secret nope\ndemo:\n")
    hub_config = load_configuration(tmp_path)
    assert hub_config.integrations == {"demo": None}
    assert [(i.line, i.domain) for i in hub_config.issues] == [(2, "mqtt")]


# --- integration blocks ------------------------------------------------------------------------

DEMO_SCHEMA = vol.Schema(vol.Any(None, {vol.Optional("scan_interval", default=30): int,
                                        vol.Optional("lights", default=1): int}))
MQTT_SCHEMA = vol.Schema({vol.Required("broker"): str, vol.Optional("port", default=1883): int})


def test_an_invalid_value_is_reported_at_its_line_and_other_blocks_stay_valid(
        tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", """
        hub:
          name: Home
        mqtt:
          broker: localhost
        demo:
          lights: 3
          scan_interval: abc
        """)
    hub_config = load_configuration(tmp_path)
    valid, issues = validate_integration_configs(
        hub_config, {"demo": DEMO_SCHEMA, "mqtt": MQTT_SCHEMA}, {"demo", "mqtt"})
    assert valid == {"mqtt": {"broker": "localhost", "port": 1883}}
    assert [str(issue) for issue in issues] == [
        f"{tmp_path / 'configuration.yaml'}:7: demo: expected int for dictionary value "
        "@ data['scan_interval'] (got 'abc')"]
    assert issues[0].domain == "demo"


def test_a_missing_required_key_points_at_the_block(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "demo:\nmqtt:\n  port: 1883\n")
    _, issues = validate_integration_configs(
        load_configuration(tmp_path), {"mqtt": MQTT_SCHEMA}, {"demo", "mqtt"})
    assert [(issue.line, issue.message) for issue in issues] == [
        (3, "mqtt: required key not provided @ data['broker']")]


def test_an_errors_line_inside_an_included_file(tmp_path: Path) -> None:
    write(tmp_path / "mqtt.yaml", "broker: localhost\nport: nope\n")
    write(tmp_path / "configuration.yaml", "mqtt: !include mqtt.yaml\n")
    _, issues = validate_integration_configs(
        load_configuration(tmp_path), {"mqtt": MQTT_SCHEMA}, {"mqtt"})
    assert [(issue.file, issue.line) for issue in issues] == [(str(tmp_path / "mqtt.yaml"), 2)]


def test_a_domain_with_no_value_validates_none(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "demo:\nmqtt:\n")
    valid, issues = validate_integration_configs(
        load_configuration(tmp_path), {"demo": DEMO_SCHEMA, "mqtt": MQTT_SCHEMA}, {"demo", "mqtt"})
    assert valid == {"demo": None}
    assert [(issue.line, issue.domain) for issue in issues] == [(2, "mqtt")]
    assert "expected a dictionary" in issues[0].message


def test_an_unknown_integration_is_reported_with_its_line(tmp_path: Path) -> None:
    write(tmp_path / "configuration.yaml", "demo:\n\nfoo:\n  bar: 1\n")
    valid, issues = validate_integration_configs(load_configuration(tmp_path), {}, {"demo"})
    assert valid == {"demo": None}
    assert [str(issue) for issue in issues] == [
        f"{tmp_path / 'configuration.yaml'}:3: Integration 'foo' not found"]
    assert issues[0].domain == "foo"


def test_a_schema_that_crashes_is_reported_not_raised(tmp_path: Path) -> None:
    def broken(value: object) -> object:
        raise TypeError("bug in plugin")
    write(tmp_path / "configuration.yaml", "demo:\n")
    valid, issues = validate_integration_configs(
        load_configuration(tmp_path), {"demo": broken}, {"demo"})  # type: ignore[dict-item]
    assert valid == {} and issues[0].line == 1 and "TypeError" in issues[0].message


def test_humanize_error_masks_secret_looking_keys() -> None:
    config = {"api_key": "abcdef", "count": "x"}
    schema = vol.Schema({"api_key": int, "count": int})
    with pytest.raises(vol.MultipleInvalid) as excinfo:
        schema(config)
    messages = sorted(i.message for i in humanize_error(excinfo.value, config, "demo", "c.yaml"))
    assert messages == [
        "demo: expected int for dictionary value @ data['api_key'] (got ***)",
        "demo: expected int for dictionary value @ data['count'] (got 'x')",
    ]


# --- the default configuration -----------------------------------------------------------------

def test_the_default_configuration_is_written_once_and_loads_cleanly(tmp_path: Path) -> None:
    config_dir = tmp_path / "new" / "config"
    assert write_default_config(config_dir) is True
    assert (config_dir / "configuration.yaml").read_text() == DEFAULT_CONFIGURATION
    assert stat.S_IMODE((config_dir / "secrets.yaml").stat().st_mode) == 0o600

    (config_dir / "configuration.yaml").write_text(DEFAULT_CONFIGURATION + "# mine\n")
    assert write_default_config(config_dir) is False
    assert (config_dir / "configuration.yaml").read_text().endswith("# mine\n")

    hub_config = load_configuration(config_dir)
    assert isinstance(hub_config, HubConfig)
    assert hub_config.issues == []
    assert hub_config.integrations == {"mqtt": None, "demo": None}
    from integrations.mqtt import CONFIG_SCHEMA as MQTT_SCHEMA

    valid, issues = validate_integration_configs(
        hub_config, {"demo": DEMO_SCHEMA, "mqtt": MQTT_SCHEMA}, {"demo", "mqtt"})
    assert issues == [] and valid["demo"] is None
    assert valid["mqtt"]["broker"] == "embedded"  # the embedded broker, secure by default
    assert valid["mqtt"]["embedded_broker"]["allow_anonymous"] is False


def test_the_commented_examples_in_the_default_configuration_are_valid(tmp_path: Path) -> None:
    examples = re.findall(r"^# ( *[a-z_]+:.*)$|^((?:demo|mqtt):)$", DEFAULT_CONFIGURATION, re.M)
    uncommented = "\n".join(a or b for a, b in examples if "!secret" not in a)
    write(tmp_path / "configuration.yaml", uncommented)
    hub_config = load_configuration(tmp_path)
    assert hub_config.issues == []
    assert hub_config.core["time_zone"] == "Europe/Amsterdam"
    assert hub_config.integrations == {
        "http": {"server_port": 8123},
        "mqtt": {"embedded_broker": {"port": 1883, "tls_port": 8883}},
        "demo": None,
    }


# --- atomic_write ------------------------------------------------------------------------------

def test_atomic_write_replaces_the_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "registry.json"
    atomic_write(target, "first")
    atomic_write(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["registry.json"]


def test_atomic_write_cleans_up_when_it_fails(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        atomic_write(tmp_path / "target", "data")
    assert os.listdir(tmp_path) == ["target"] and os.listdir(tmp_path / "target") == []


def test_a_syntax_slip_inside_one_block_breaks_only_that_block(tmp_path: Path) -> None:
    (tmp_path / "configuration.yaml").write_text(
        "hub:\n  name: Farm\ndemo:\n  update_interval: [1, 2\nfine:\n  x: 1\n"
    )
    config = load_configuration(tmp_path)
    assert config.core["name"] == "Farm"
    assert list(config.integrations) == ["fine"]
    (issue,) = config.issues
    assert issue.domain == "demo" and issue.file.endswith("configuration.yaml")
    assert "line 4" in issue.message or issue.line == 4
