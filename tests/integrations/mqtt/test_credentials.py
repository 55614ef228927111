"""Device credentials for the embedded broker: the store, the topic rules and `hub mqtt user`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import integrations.mqtt as mqtt_integration
from hub.cli import build_parser
from hub.plugins import make_plugin_manager
from integrations.mqtt.credentials import CredentialStore, filter_covers
from tests.support import missing_part


def test_a_new_credential_gets_a_password_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    cred, password = store.add("kitchen_sensor")
    assert len(password) >= 32
    path = tmp_path / ".storage" / "mqtt_credentials"
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert (doc["version"], doc["key"]) == (1, "mqtt_credentials")
    [stored] = doc["data"]["credentials"]
    assert stored["name"] == "kitchen_sensor" and stored["password_hash"].startswith("scrypt$")
    assert password not in path.read_text()
    assert "password_hash" not in repr(cred) and cred.password_hash not in repr(cred)

    assert store.verify("kitchen_sensor", password) == cred
    assert store.verify("kitchen_sensor", password) == cred  # from the cache
    assert store.verify("kitchen_sensor", password + "x") is None
    assert store.verify("nobody", password) is None
    assert store.get("kitchen_sensor") == cred and store.list() == [cred]


def test_names_are_like_discovery_node_ids_and_unique(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.add("a-1_B", password="long enough")
    for bad in ("", "has space", "slash/name", "x" * 65, "plus+", "ünïcode"):
        with pytest.raises(ValueError, match="Invalid name"):
            store.add(bad)
    with pytest.raises(ValueError, match="already exists"):
        store.add("a-1_B")
    with pytest.raises(ValueError, match="password"):
        store.add("short", password="1234")
    with pytest.raises(ValueError, match="pattern"):
        store.add("bad_topic", publish=["a/#/b"])


def test_a_device_cannot_be_named_after_the_discovery_prefix(tmp_path: Path, caplog) -> None:
    # Its default topics (NAME/#) would be the whole discovery tree, the hub's status included.
    store = CredentialStore(tmp_path)
    with pytest.raises(ValueError, match="first level of the discovery prefix 'homeassistant'"):
        store.add("homeassistant")
    for name in ("$SYS", "$share"):
        with pytest.raises(ValueError, match="Invalid name.*broker's own topics"):
            store.add(name)
    nested = CredentialStore(tmp_path, discovery_prefix="ha/discovery")
    with pytest.raises(ValueError, match="discovery prefix 'ha/discovery'"):
        nested.add("ha")
    assert store.list() == []

    # Added under another prefix (the CLI assumes homeassistant), then loaded by a hub whose
    # prefix is "ha": it keeps only the topics it was explicitly given.
    store.add("ha", password="a long password", default_topics=True, publish=["extra/x"])
    hub_store = CredentialStore(tmp_path, discovery_prefix="ha")
    cred = hub_store.get("ha")
    assert cred is not None and cred.publish == ["extra/x"] and cred.subscribe == []
    assert not hub_store.may_publish(cred, "ha/status")
    assert not hub_store.may_publish(cred, "ha/light/kitchen/config")
    assert not hub_store.may_subscribe(cred, "ha/#")
    assert "'ha' gets no default topics" in caplog.text


def test_default_rights_cover_the_device_topics_and_discovery(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    cred, _password = store.add("plug")
    assert store.may_publish(cred, "plug/power")
    assert store.may_publish(cred, "plug/relay/0/state")
    assert store.may_publish(cred, "homeassistant/switch/plug/relay/config")
    assert store.may_publish(cred, "homeassistant/device/plug/config")
    assert not store.may_publish(cred, "homeassistant/switch/other/relay/config")
    assert not store.may_publish(cred, "homeassistant/status")
    assert not store.may_publish(cred, "other/power")
    assert store.may_subscribe(cred, "plug/#")
    assert store.may_subscribe(cred, "plug/x/+")
    assert store.may_subscribe(cred, "homeassistant/status")
    assert not store.may_subscribe(cred, "#")
    assert not store.may_subscribe(cred, "+/power")
    assert not store.may_subscribe(cred, "homeassistant/#")
    assert store.may_receive(cred, "plug/set") and not store.may_receive(cred, "other/set")

    # The defaults follow the hub's discovery prefix, whatever the CLI assumed.
    other_prefix = CredentialStore(tmp_path, discovery_prefix="ha").get("plug")
    assert store.may_publish(other_prefix, "ha/switch/plug/relay/config")
    assert not store.may_publish(other_prefix, "homeassistant/switch/plug/relay/config")


def test_explicit_rights_superusers_and_anonymous_clients(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    tasmota, _ = store.add("tasmota", publish=["tele/tasmota/#", "stat/tasmota/#"],
                           subscribe=["cmnd/tasmota/#"])
    assert store.may_publish(tasmota, "tele/tasmota/SENSOR")
    assert not store.may_publish(tasmota, "tasmota/x")  # exactly the given patterns
    assert store.may_subscribe(tasmota, "cmnd/tasmota/POWER")
    assert not store.may_subscribe(tasmota, "tele/tasmota/#")
    extra, _ = store.add("extra", publish=["shared/x"], subscribe=["shared/x"],
                         default_topics=True)
    assert store.may_publish(extra, "shared/x") and store.may_publish(extra, "extra/y")
    admin, _ = store.add("admin", superuser=True)
    assert store.may_publish(admin, "anything/at/all") and store.may_subscribe(admin, "#")
    # None: an admitted anonymous client; anything but `$` topics
    assert store.may_publish(None, "a/b") and store.may_subscribe(None, "#")
    assert not store.may_publish(None, "$SYS/x") and not store.may_subscribe(None, "$SYS/#")

    reloaded = CredentialStore(tmp_path)
    assert reloaded.list() == store.list()


@pytest.mark.parametrize(("pattern", "topic_filter", "covered"), [
    ("a/#", "a/x/+", True), ("a/#", "a", True), ("a/#", "a/#", True), ("a/#", "#", False),
    ("a/#", "+/x", False), ("a/+", "a/b", True), ("a/+", "a/+", True), ("a/+", "a/#", False),
    ("a/+", "a", False), ("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False), ("#", "#", True),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("a/b", "a/b", True), ("a/b", "a/+", False),
])
def test_a_subscription_must_be_inside_one_allowed_pattern(pattern: str, topic_filter: str,
                                                          covered: bool) -> None:
    assert filter_covers(pattern, topic_filter) is covered


def test_changes_from_another_process_are_seen(tmp_path: Path) -> None:
    hub_store = CredentialStore(tmp_path)
    cli_store = CredentialStore(tmp_path)
    _cred, password = cli_store.add("late")
    assert hub_store.verify("late", password) is not None  # re-read on the next login
    generation = hub_store.generation
    assert cli_store.remove("late")
    assert not cli_store.remove("late")
    assert hub_store.verify("late", password) is None  # the cached success is gone too
    assert hub_store.generation > generation

    # Two writers do not lose each other's credentials.
    hub_store.add("one", password="password-1")
    cli_store.add("two", password="password-2")
    assert [c.name for c in CredentialStore(tmp_path).list()] == ["one", "two"]


def test_an_unreadable_file_is_kept_not_overwritten(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.add("keep", password="password-1")
    path = tmp_path / ".storage" / "mqtt_credentials"
    path.write_text("{not json")
    assert store.refresh() is False
    assert store.get("keep") is not None  # what it had
    with pytest.raises(ValueError, match="cannot be read"):
        store.add("new")
    assert path.read_text() == "{not json"


# -- hub mqtt user ... --------------------------------------------------------------------------

def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "",
            monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    """`hub ARGV`, in-process: the `hub` parser with the mqtt plugin's `register_commands`."""
    manager = make_plugin_manager([mqtt_integration], load_entry_points=False)
    args = build_parser(manager).parse_args(argv)
    args.plugin_manager = manager
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_installed_hub_command_adds_a_device(tmp_path: Path) -> None:
    hub = Path(sys.executable).with_name("hub")
    result = subprocess.run([hub, "mqtt", "user", "add", "porch", "-c", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, check=False)
    if "invalid choice: 'mqtt'" in result.stderr:
        missing_part("the installed `hub` does not have the mqtt plugin's entry point yet "
                    "(pip install -e . registers it)")
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip().splitlines()[-1]
    assert CredentialStore(tmp_path).verify("porch", password) is not None


def test_hub_mqtt_user_add_prints_the_password_alone_on_the_last_line(tmp_path, capsys) -> None:
    code, out, err = run_cli(["mqtt", "user", "add", "heater", "-c", str(tmp_path)], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    password = lines[-1]
    assert " " not in password and len(password) >= 32
    assert "heater/#" in out and "homeassistant/+/heater/+/config" in out
    assert CredentialStore(tmp_path).verify("heater", password) is not None

    code, out, err = run_cli(["mqtt", "user", "add", "heater", "-c", str(tmp_path)], capsys)
    assert code == 1 and "already exists" in err and out == ""
    code, _out, err = run_cli(["mqtt", "user", "add", "bad name", "-c", str(tmp_path)], capsys)
    assert code == 1 and "Invalid name" in err


def test_hub_mqtt_user_add_with_topics_superuser_and_a_given_password(tmp_path, capsys,
                                                                      monkeypatch) -> None:
    code, out, err = run_cli(["mqtt", "user", "add", "sonoff", "-c", str(tmp_path),
                              "--topic", "tele/sonoff/#", "--topic", "cmnd/sonoff/#",
                              "--password-stdin"], capsys, "my secret password\n", monkeypatch)
    assert code == 0, err
    assert "my secret password" not in out
    store = CredentialStore(tmp_path)
    cred = store.verify("sonoff", "my secret password")
    assert cred is not None
    assert store.may_publish(cred, "tele/sonoff/STATE") and store.may_publish(cred, "sonoff/x")
    assert store.may_subscribe(cred, "cmnd/sonoff/POWER")

    code, out, err = run_cli(["mqtt", "user", "add", "only", "-c", str(tmp_path),
                              "--topic", "zigbee/#", "--no-default-topics"], capsys)
    assert code == 0, err
    only = CredentialStore(tmp_path).get("only")
    assert only.publish == ["zigbee/#"] and only.subscribe == ["zigbee/#"]
    code, _out, err = run_cli(["mqtt", "user", "add", "none", "-c", str(tmp_path),
                               "--no-default-topics"], capsys)
    assert code == 1 and "--topic" in err

    code, out, err = run_cli(["mqtt", "user", "add", "root", "-c", str(tmp_path), "--superuser"],
                             capsys)
    assert code == 0 and "superuser" in out
    assert CredentialStore(tmp_path).get("root").superuser


def test_hub_mqtt_user_list_and_remove(tmp_path, capsys) -> None:
    code, out, _err = run_cli(["mqtt", "user", "list", "-c", str(tmp_path)], capsys)
    assert code == 0 and "No MQTT credentials yet" in out
    store = CredentialStore(tmp_path)
    cred, password = store.add("window")
    store.add("admin", superuser=True)

    code, out, _err = run_cli(["mqtt", "user", "list", "-c", str(tmp_path)], capsys)
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "PUBLISH", "SUBSCRIBE", "CREATED"]
    assert "window" in out and "window/#" in out and "(all topics)" in out
    assert cred.created_at in out
    assert "scrypt" not in out and password not in out

    code, out, _err = run_cli(["mqtt", "user", "remove", "window", "-c", str(tmp_path)], capsys)
    assert code == 0 and "Removed" in out
    assert CredentialStore(tmp_path).get("window") is None
    code, out, err = run_cli(["mqtt", "user", "remove", "window", "-c", str(tmp_path)], capsys)
    assert code == 1 and "no MQTT credential 'window'" in err
