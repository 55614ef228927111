"""Plugins: loading, isolation of failures, dependency order, and every hook exercised."""

from __future__ import annotations

import argparse
import inspect
import sys
import textwrap
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol

from hub import hookspecs
from hub.core import Hub
from hub.exceptions import IntegrationError
from hub.hookspecs import hookimpl
from hub.plugins import Integration, make_plugin_manager, setup_order

LOG: list[str] = []


def make_plugin(domain: str, *, dependencies: tuple[str, ...] = (), fail: bool = False,
                schema: Any = None, always: bool = False) -> types.ModuleType:
    """A plugin module declaring one integration that records its set-up and teardown."""

    @asynccontextmanager
    async def setup(hub: Hub, config: Any) -> AsyncIterator[None]:
        if fail:
            raise RuntimeError(f"{domain} cannot reach its device")
        LOG.append(f"setup {domain} {config}")
        hub.states.set(f"sensor.{domain}_status", "ok")
        yield
        LOG.append(f"teardown {domain}")

    module = types.ModuleType(f"plugin_{domain}")

    @hookimpl
    def register_integrations() -> list[Integration]:
        return [Integration(domain, domain.title(), setup, schema, dependencies, always=always)]

    module.register_integrations = register_integrations  # type: ignore[attr-defined]
    return module


@pytest.fixture(autouse=True)
def clear_log() -> None:
    LOG.clear()


async def test_integrations_set_up_in_dependency_order_and_torn_down_in_reverse(make_hub) -> None:
    plugins = [make_plugin("chirp", dependencies=("mqtt",)), make_plugin("mqtt")]
    hub = await make_hub("chirp:\nmqtt:\n", plugins)
    assert LOG == ["setup mqtt None", "setup chirp None"]
    await hub.stop()
    assert LOG[-2:] == ["teardown chirp", "teardown mqtt"]


async def test_a_dependency_is_pulled_in_even_when_not_configured(make_hub) -> None:
    hub = await make_hub("chirp:\n", [make_plugin("chirp", dependencies=("mqtt",)), make_plugin("mqtt")])
    assert hub.integrations["mqtt"].status == "loaded"
    assert hub.integrations["chirp"].status == "loaded"


async def test_unconfigured_integrations_stay_off_unless_always(make_hub) -> None:
    hub = await make_hub("", [make_plugin("quiet"), make_plugin("core_ui", always=True)])
    assert hub.integrations["quiet"].status == "not_loaded"
    assert hub.integrations["core_ui"].status == "loaded"


async def test_a_failing_integration_is_reported_and_the_rest_runs(make_hub) -> None:
    plugins = [make_plugin("broken", fail=True), make_plugin("needs_broken", dependencies=("broken",)), make_plugin("fine")]
    hub = await make_hub("broken:\nneeds_broken:\nfine:\n", plugins)
    assert hub.integrations["fine"].status == "loaded"
    assert hub.states.get("sensor.fine_status").state == "ok"
    assert hub.integrations["broken"].status == "failed"
    assert "cannot reach its device" in hub.integrations["broken"].error
    assert hub.integrations["needs_broken"].status == "failed"
    assert "broken" in hub.integrations["needs_broken"].error
    messages = " ".join(n["message"] for n in hub.notifications.all())
    assert "Broken" in messages and "cannot reach its device" in messages


async def test_invalid_config_of_one_integration_leaves_the_others_running(make_hub) -> None:
    schema = vol.Schema({vol.Required("port"): int})
    config = "good:\nstrict:\n  port: not-a-number\n"
    hub = await make_hub(config, [make_plugin("good"), make_plugin("strict", schema=schema)])
    assert hub.integrations["good"].status == "loaded"
    assert hub.integrations["strict"].status == "failed"
    assert "configuration.yaml:3" in hub.integrations["strict"].error
    assert hub.notifications.get("invalid_config") is not None


async def test_a_plugin_whose_hook_raises_is_disabled_alone(make_hub) -> None:
    bad = types.ModuleType("bad_plugin")

    @hookimpl
    def register_integrations() -> list[Integration]:
        raise ValueError("oops")

    bad.register_integrations = register_integrations  # type: ignore[attr-defined]
    hub = await make_hub("fine:\n", [bad, make_plugin("fine")])
    assert hub.integrations["fine"].status == "loaded"
    assert any("bad_plugin" in n["message"] and "oops" in n["message"] for n in hub.notifications.all())
    assert "bad_plugin" not in hub.plugin_manager.plugin_names()


def test_a_dependency_cycle_is_an_error() -> None:
    a = Integration("a", "A", lambda h, c: None, dependencies=("b",))  # type: ignore[arg-type]
    b = Integration("b", "B", lambda h, c: None, dependencies=("a",))  # type: ignore[arg-type]
    with pytest.raises(IntegrationError, match="cycle"):
        setup_order({"a": a, "b": b}, ["a"])


def test_entry_point_plugins_load_and_a_broken_one_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Third-party plugins are found through the `hub.plugins` entry-point group."""
    (tmp_path / "good_ext.py").write_text(textwrap.dedent('''
        from hub.hookspecs import hookimpl
        @hookimpl
        def register_integrations():
            return []
    '''))
    (tmp_path / "broken_ext.py").write_text("raise ImportError('missing dependency foo')\n")
    dist = tmp_path / "ext_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ext-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hub.plugins]\ngood_ext = good_ext\nbroken_ext = broken_ext\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HUB_LOAD_PLUGINS", "good_ext,broken_ext")
    manager = make_plugin_manager()
    assert manager.plugin_names() == ["good_ext"]
    assert [f.plugin for f in manager.failures] == ["broken_ext"]
    assert "missing dependency foo" in manager.failures[0].error
    for name in ("good_ext", "broken_ext"):
        sys.modules.pop(name, None)


# One test per hook (a meta-test below checks that every hookspec has one).


async def test_hook_register_integrations(make_hub) -> None:
    hub = await make_hub("thing:\n  level: 3\n", [make_plugin("thing", schema=vol.Schema({"level": int}))])
    assert LOG == ["setup thing {'level': 3}"]
    assert hub.integrations["thing"].status == "loaded"


def test_hook_register_commands() -> None:
    from hub.cli import build_parser

    plugin = types.ModuleType("cmd_plugin")

    @hookimpl
    def register_commands(subparsers: argparse._SubParsersAction) -> None:
        parser = subparsers.add_parser("hello", help="say hello")
        parser.add_argument("who")
        parser.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)

    plugin.register_commands = register_commands  # type: ignore[attr-defined]
    parser = build_parser(make_plugin_manager([plugin], load_entry_points=False))
    args = parser.parse_args(["hello", "world"])
    assert args.who == "world" and args.func(args) == 0


async def test_hook_register_template_extensions(make_hub) -> None:
    from hub.template import Template

    plugin = types.ModuleType("tpl_plugin")

    @hookimpl
    def register_template_extensions(hub: Hub) -> dict[str, dict[str, Any]]:
        return {"globals": {"site_code": lambda: "FARM-1"}, "filters": {"shout": lambda s: s.upper() + "!"}}

    plugin.register_template_extensions = register_template_extensions  # type: ignore[attr-defined]
    hub = await make_hub("", [plugin])
    assert Template("{{ site_code() }} {{ 'hi' | shout }}", hub).render(parse_result=False) == "FARM-1 HI!"


async def test_hook_register_api_routes(make_hub) -> None:
    import aiohttp

    import hub.http
    from hub.http.openapi import Access, ApiRoute
    from hub.http.rest import json_response

    plugin = types.ModuleType("route_plugin")

    async def get_garden(request: Any) -> Any:
        return json_response({"rain_mm": 3})

    @hookimpl
    def register_api_routes(hub: Hub) -> list[ApiRoute]:
        return [ApiRoute("GET", "/api/garden", get_garden, "Garden status", Access.read, "garden")]

    plugin.register_api_routes = register_api_routes  # type: ignore[attr-defined]
    clash = types.ModuleType("clash_plugin")

    @hookimpl
    def register_api_routes_clash(hub: Hub) -> list[ApiRoute]:
        return [ApiRoute("GET", "/api/states", get_garden, "Steal states", Access.public, "x")]

    clash.register_api_routes = register_api_routes_clash  # type: ignore[attr-defined]
    hub_ = await make_hub("", [hub.http, plugin, clash])
    token = hub_.auth.create_long_lived_token(
        await hub_.auth.create_user("Owner", "owner", "a long password 1", owner=True), "test")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{hub_.urls[0]}/api/garden") as response:
            assert response.status == 401  # the plugin's route is behind the same auth
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{hub_.urls[0]}/api/garden", headers=headers) as response:
            assert response.status == 200 and await response.json() == {"rain_mm": 3}
        async with session.get(f"{hub_.urls[0]}/api/openapi.json", headers=headers) as response:
            assert "/api/garden" in (await response.json())["paths"]
        async with session.get(f"{hub_.urls[0]}/api/states", headers=headers) as response:
            assert isinstance(await response.json(), list)  # the clash did not replace it
    assert "clash_plugin" not in hub_.plugin_manager.plugin_names()


async def test_hook_register_trigger_types(make_hub) -> None:
    import voluptuous as vol

    from hub.triggers import TriggerType, base_trigger_data, trigger_types

    plugin = types.ModuleType("trigger_plugin")
    fired: list[dict[str, Any]] = []

    async def attach(hub: Hub, config: dict[str, Any], action: Any, info: Any) -> Any:
        remove = hub.bus.listen("rain", lambda event: action(
            {**base_trigger_data("rain", info), "mm": event.data["mm"]}, event.context))
        return remove

    @hookimpl
    def register_trigger_types(hub: Hub) -> dict[str, TriggerType]:
        return {"rain": TriggerType(vol.Schema({"trigger": "rain"}), attach)}

    plugin.register_trigger_types = register_trigger_types  # type: ignore[attr-defined]
    hub_ = await make_hub("", [plugin])
    types_ = trigger_types(hub_)
    config = types_["rain"].schema({"trigger": "rain"})
    detach = await types_["rain"].attach(hub_, config, lambda data, ctx: fired.append(data), {"id": "r"})
    hub_.bus.fire("rain", {"mm": 4})
    detach()
    hub_.bus.fire("rain", {"mm": 5})
    assert [(d["platform"], d["id"], d["mm"]) for d in fired] == [("rain", "r", 4)]


def test_every_hook_has_a_test() -> None:
    source = Path(__file__).read_text()
    hooks = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(getattr(hookspecs, name), "hub_spec")]
    assert hooks, "no hookspecs found"
    missing = [name for name in hooks if f"def test_hook_{name}(" not in source]
    assert not missing, f"hooks without a test: {missing}"


def test_every_hook_is_documented_with_its_signature() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(func, "hub_spec"):
            continue
        signature = f"{name}({', '.join(inspect.signature(func).parameters)})"
        assert signature in docs, f"docs/plugins.md does not document {signature}"
        assert func.__doc__, f"hookspec {name} has no docstring"


async def test_a_missing_dependency_fails_only_its_dependents(make_hub, tmp_path: Path) -> None:
    from hub.plugins import check_configuration

    plugins = [make_plugin("chirp", dependencies=("mqtt",)), make_plugin("fine")]
    hub = await make_hub("chirp:\nfine:\n", plugins)
    assert hub.integrations["fine"].status == "loaded"
    assert hub.integrations["chirp"].status == "failed"
    assert "mqtt" in hub.integrations["chirp"].error
    (tmp_path / "configuration.yaml").write_text("fine:\nchirp:\n")
    issues = check_configuration(tmp_path, make_plugin_manager(plugins, load_entry_points=False))
    assert [(issue.line, issue.domain) for issue in issues] == [(2, "chirp")]
    assert "needs integration mqtt" in issues[0].message


async def test_a_dependency_with_an_invalid_block_is_not_set_up(make_hub) -> None:
    plugins = [make_plugin("chirp", dependencies=("mqtt",)), make_plugin("mqtt", schema=vol.Schema({"port": int}))]
    hub = await make_hub("chirp:\nmqtt:\n  port: abc\n", plugins)
    assert LOG == []
    assert hub.integrations["mqtt"].status == "failed"
    assert hub.integrations["chirp"].status == "failed"


async def test_plugins_returning_the_wrong_thing_are_disabled_alone(make_hub) -> None:
    async_plugin = types.ModuleType("async_plugin")
    bare_plugin = types.ModuleType("bare_plugin")
    bad_extensions = types.ModuleType("bad_extensions")

    @hookimpl
    async def register_integrations_async() -> list[Integration]:
        return []

    @hookimpl
    def register_template_extensions(hub: Hub) -> dict[str, Any]:
        return {"nonsense": {}}

    async_plugin.register_integrations = register_integrations_async  # type: ignore[attr-defined]
    (bare,) = make_plugin("bare").register_integrations()  # type: ignore[attr-defined]
    bare_plugin.register_integrations = hookimpl(lambda: bare)  # type: ignore[attr-defined]
    bad_extensions.register_template_extensions = register_template_extensions  # type: ignore[attr-defined]
    hub = await make_hub("bare:\nfine:\n", [async_plugin, bare_plugin, bad_extensions, make_plugin("fine")])
    assert hub.integrations["fine"].status == "loaded"
    assert hub.integrations["bare"].status == "loaded"  # a single Integration is accepted
    disabled = {f.plugin for f in hub.plugin_manager.failures}
    assert disabled == {"async_plugin", "bad_extensions"}


async def test_a_failed_set_up_leaves_no_entities_behind(make_hub) -> None:
    from hub.entity import SensorEntity

    plugin = types.ModuleType("half_plugin")

    class Half(SensorEntity):
        unique_id = "half"
        name = "Half"
        native_value = 1

    @asynccontextmanager
    async def setup(hub: Hub, config: Any) -> AsyncIterator[None]:
        hub.entities.add(Half(), "half")
        raise RuntimeError("device went away half-way")
        yield

    plugin.register_integrations = hookimpl(lambda: [Integration("half", "Half", setup)])  # type: ignore[attr-defined]
    hub = await make_hub("half:\n", [plugin])
    assert hub.integrations["half"].status == "failed"
    assert hub.states.get("sensor.half") is None


async def test_one_failing_teardown_does_not_stop_the_others(make_hub) -> None:
    plugin = types.ModuleType("teardown_plugin")

    @asynccontextmanager
    async def careless(hub: Hub, config: Any) -> AsyncIterator[None]:
        yield  # no try/finally: an exception thrown in here would skip the line below
        LOG.append("careless torn down")

    @asynccontextmanager
    async def broken(hub: Hub, config: Any) -> AsyncIterator[None]:
        yield
        raise RuntimeError("cannot unload")

    plugin.register_integrations = hookimpl(lambda: [  # type: ignore[attr-defined]
        Integration("careless", "Careless", careless),
        Integration("broken", "Broken", broken, after=("careless",)),
    ])
    hub = await make_hub("careless:\nbroken:\n", [plugin])
    await hub.stop()
    assert LOG == ["careless torn down"]


async def test_a_stop_during_start_sets_up_nothing_more_and_unloads_what_was_set_up(make_hub) -> None:
    import asyncio

    plugin = types.ModuleType("slow_plugin")
    entered = asyncio.Event()

    @asynccontextmanager
    async def slow(hub: Hub, config: Any) -> AsyncIterator[None]:
        entered.set()
        await asyncio.sleep(0.2)  # a slow connect, during which the user presses Ctrl-C
        LOG.append("setup slow")
        yield
        LOG.append("teardown slow")

    plugin.register_integrations = hookimpl(lambda: [Integration("slow", "Slow", slow)])  # type: ignore[attr-defined]
    hub = await make_hub("slow:\nlater:\n", [plugin, make_plugin("later", dependencies=("slow",))], start=False)
    starting = asyncio.create_task(hub.start())
    await entered.wait()
    await hub.stop()
    await starting
    assert LOG == ["setup slow", "teardown slow"]
    assert hub.state == "STOPPED"
