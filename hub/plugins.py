"""Plugin loading and integration lifecycle.

Built-in integrations and third-party ones are found the same way: modules registered in the
`hub.plugins` entry-point group. A plugin that fails to import, whose hook raises, or whose
integration fails to set up is logged with its name, reported as a persistent notification,
and disabled; the hub keeps running with the others.
"""

from __future__ import annotations

import enum
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
import voluptuous as vol

from . import hookspecs
from .exceptions import ConfigError, ConfigIssue, IntegrationError

if TYPE_CHECKING:
    from .core import Hub

_LOGGER = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hub.plugins"
# Comma-separated entry-point names to load (empty: none); unset loads them all.
ENV_LOAD_PLUGINS = "HUB_LOAD_PLUGINS"
# Set to 1 to log every hook call with its arguments and results.
ENV_TRACE_PLUGINS = "HUB_TRACE_PLUGINS"

SetupFactory = Callable[["Hub", Any], AbstractAsyncContextManager[Any]]


@dataclass(frozen=True)
class Integration:
    """What a plugin declares for one integration.

    `setup(hub, config)` returns an async context manager: it sets the integration up on
    enter and tears it down on exit (entered in dependency order, exited in reverse).
    `config_schema` validates the integration's block of configuration.yaml (the value under
    its domain key, not the wrapping mapping). `dependencies` must be set up first and their
    failure fails this one; `after` only orders. With `always`, it is set up even when its
    domain has no block in the configuration (with config None).
    """

    domain: str
    name: str
    setup: SetupFactory
    config_schema: vol.Schema | Callable[[Any], Any] | None = None
    dependencies: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    always: bool = False
    documentation: str = ""


class Status(enum.StrEnum):
    loaded = "loaded"
    failed = "failed"
    not_loaded = "not_loaded"


@dataclass
class IntegrationStatus:
    domain: str
    name: str
    plugin: str
    status: Status = Status.not_loaded
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "name": self.name,
            "plugin": self.plugin,
            "status": str(self.status),
            "error": self.error,
        }


@dataclass
class PluginFailure:
    plugin: str
    error: str


@dataclass
class HubPluginManager:
    """The pluggy manager plus what went wrong while loading plugins."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def plugin_names(self) -> list[str]:
        return sorted(name for name, _ in self.pm.list_name_plugin() if name)

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call one hook plugin by plugin, so that a plugin that raises is disabled alone.

        Returns (plugin name, result) pairs; a result may be an awaitable for the caller to await.
        """
        results = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):  # registration order
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as err:  # noqa: BLE001 - a broken plugin must not stop the hub
                self.disable(impl.plugin_name, f"{hook_name} failed: {err!r}", err)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def disable(self, plugin_name: str, error: str, exc: BaseException | None = None) -> None:
        _LOGGER.error("Plugin %s disabled: %s", plugin_name, error, exc_info=exc)
        self.failures.append(PluginFailure(plugin_name, error))
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is not None:
            self.pm.unregister(plugin)


def make_plugin_manager(
    plugins: Iterable[ModuleType | object] = (),
    *,
    load_entry_points: bool = True,
) -> HubPluginManager:
    """A fresh plugin manager: one per hub, one per test (never a global)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    manager = HubPluginManager(pm)
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or repr(plugin)
        pm.register(plugin, name=name)
    if load_entry_points:
        _load_entry_points(manager)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        plugin = err.plugin
        manager.disable(pm.get_name(plugin) or repr(plugin), f"unknown hook: {err}")
    if os.environ.get(ENV_TRACE_PLUGINS) == "1":
        pm.trace.root.setwriter(lambda message: _LOGGER.info("hook: %s", message.rstrip()))
        pm.enable_tracing()
    return manager


def _load_entry_points(manager: HubPluginManager) -> None:
    wanted = os.environ.get(ENV_LOAD_PLUGINS)
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if manager.pm.has_plugin(entry_point.name):
            continue  # the same distribution seen twice on sys.path
        try:
            plugin = entry_point.load()
            manager.pm.register(plugin, name=entry_point.name)
        except Exception as err:  # noqa: BLE001 - an import error is that plugin's problem only
            manager.disable(entry_point.name, f"failed to load: {err!r}", err)


def collect_integrations(manager: HubPluginManager) -> dict[str, tuple[str, Integration]]:
    """domain -> (plugin name, Integration); a second plugin claiming a domain is refused.

    `register_integrations` must return a list (or a single Integration) synchronously: a plugin
    that returns anything else is disabled with a message saying so.
    """
    found: dict[str, tuple[str, Integration]] = {}
    for plugin_name, result in manager.call_each("register_integrations"):
        if isinstance(result, Integration):
            result = [result]
        if inspect.isawaitable(result) or not isinstance(result, (list, tuple)) or not all(
            isinstance(item, Integration) for item in result
        ):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: close it to avoid a "never awaited" warning
            manager.disable(
                plugin_name,
                f"register_integrations must return a list of Integration, not {result!r}",
            )
            continue
        for integration in result:
            if integration.domain in found:
                other = found[integration.domain][0]
                message = f"domain {integration.domain!r} already provided by {other}"
                manager.failures.append(PluginFailure(plugin_name, message))
                _LOGGER.error("Plugin %s: %s; ignored", plugin_name, message)
                continue
            found[integration.domain] = (plugin_name, integration)
    return found


def setup_order(integrations: dict[str, Integration], wanted: Iterable[str]) -> list[str]:
    """Domains in an order where each comes after its dependencies and `after` domains.

    Dependencies of wanted domains are pulled in; a dependency cycle raises IntegrationError.
    """
    order: list[str] = []
    visiting: list[str] = []
    done: set[str] = set()
    wanted = list(wanted)
    needed = set(wanted)

    def pull(domain: str) -> None:
        integration = integrations.get(domain)
        for dep in integration.dependencies if integration else ():
            if dep not in needed:
                needed.add(dep)
                pull(dep)

    for domain in wanted:
        pull(domain)

    def visit(domain: str) -> None:
        if domain in done:
            return
        if domain in visiting:
            cycle = " -> ".join([*visiting[visiting.index(domain) :], domain])
            raise IntegrationError(f"Dependency cycle: {cycle}")
        visiting.append(domain)
        integration = integrations.get(domain)
        if integration is not None:
            for dep in (*integration.dependencies, *integration.after):
                if dep in needed:
                    visit(dep)
        visiting.pop()
        done.add(domain)
        if integration is not None:  # a missing dependency is reported by the caller
            order.append(domain)

    for domain in sorted(needed):
        visit(domain)
    return order


@dataclass
class SetupPlan:
    """What `hub run` will set up, decided from the configuration and the plugins alone: shared
    by `setup_integrations` and `check_configuration`, so check-config finds what run would."""

    found: dict[str, tuple[str, Integration]]
    valid: dict[str, Any]
    issues: list[ConfigIssue]
    order: list[str]


def plan_setup(hub_config: Any, manager: HubPluginManager,
               found: dict[str, tuple[str, Integration]] | None = None) -> SetupPlan:
    from . import config as config_module

    if found is None:
        found = collect_integrations(manager)
    integrations = {domain: integration for domain, (_, integration) in found.items()}
    schemas = {domain: integration.config_schema for domain, integration in integrations.items()}
    valid, issues = config_module.validate_integration_configs(hub_config, schemas, integrations)
    issues = [*hub_config.issues, *issues]
    # Configured and valid, or always-on and not configured (an invalid block stays out).
    wanted = [
        domain
        for domain, integration in integrations.items()
        if domain in valid or (integration.always and domain not in hub_config.integrations)
    ]
    default_file = str(hub_config.config_dir / config_module.CONFIG_YAML)
    try:
        order = setup_order(integrations, wanted)
    except IntegrationError as err:
        issues.append(ConfigIssue(default_file, None, str(err)))
        return SetupPlan(found, valid, issues, [])
    for domain in order:
        missing = [dep for dep in integrations[domain].dependencies if dep not in integrations]
        if missing:
            file, line = hub_config.source.get(domain, (default_file, None))
            issues.append(ConfigIssue(
                file, line,
                f"{domain}: needs integration {', '.join(missing)}, which is not installed "
                "or failed to load", domain,
            ))
    return SetupPlan(found, valid, issues, order)


def _merge(block: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` laid over `block`, nested mappings merged too (keeping the loader's type, which
    carries file and line)."""
    merged = type(block)(block)
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, Mapping) and merged.get(key) is None:
            merged[key] = dict(value)
        else:
            merged[key] = value
    return merged


async def setup_integrations(hub: Hub, stack: AsyncExitStack) -> None:
    """Load the configuration, validate each integration's block, and set up every configured
    integration in dependency order. Problems are reported; only the integrations concerned
    (and those depending on them) are left out."""
    from . import config as config_module

    manager: HubPluginManager = hub.plugin_manager
    hub_config = await hub.run_in_executor(config_module.load_configuration, hub.config_dir)
    hub.config.update(hub_config.core)
    found = collect_integrations(manager)
    for domain, values in hub.overrides.items():
        # An override changes a configured integration (or one that is always on); it never
        # turns on one the user left out.
        configured = domain in hub_config.integrations
        if not configured and not (domain in found and found[domain][1].always):
            continue
        block = hub_config.integrations.get(domain)
        if block is None or isinstance(block, dict):
            hub_config.integrations[domain] = _merge(block or {}, values)
    plan = plan_setup(hub_config, manager, found)
    for domain, (plugin_name, integration) in plan.found.items():
        hub.integrations[domain] = IntegrationStatus(domain, integration.name, plugin_name)
    for failure in manager.failures:
        _notify(hub, f"Plugin {failure.plugin} is disabled: {failure.error}", "Plugin failed")
    for issue in plan.issues:
        _LOGGER.error("Invalid configuration: %s", issue)
        if issue.domain and issue.domain in hub.integrations:
            _fail(hub, issue.domain, f"invalid configuration: {issue}")
    if plan.issues:
        _notify(
            hub,
            "The configuration has problems; the integrations concerned were not set up:\n"
            + "\n".join(f"- {issue}" for issue in plan.issues),
            "Invalid configuration",
            "invalid_config",
        )
    await _add_template_extensions(hub, manager)

    for domain in plan.order:
        if hub.stop_requested:
            _LOGGER.info("Stop requested: integrations from %s on are not set up", domain)
            return
        status = hub.integrations[domain]
        if status.status is Status.failed:
            continue  # its configuration is invalid: reported above
        integration = plan.found[domain][1]
        failed_deps = [
            dep
            for dep in integration.dependencies
            if dep not in hub.integrations or hub.integrations[dep].status is not Status.loaded
        ]
        if failed_deps:
            _fail(hub, domain, f"dependency not available: {', '.join(failed_deps)}")
            continue
        context = integration.setup(hub, plan.valid.get(domain))
        try:
            await context.__aenter__()
        except Exception as err:  # noqa: BLE001 - one integration's failure is its own
            _LOGGER.exception("Integration %s failed to set up", domain)
            _fail(hub, domain, f"set-up failed: {err}")
            # Entities it added before failing would otherwise stay on the hub, orphaned.
            await hub.entities.remove_all(domain)
            continue
        stack.push_async_callback(_teardown, domain, context)
        status.status = Status.loaded
        _LOGGER.info("Integration %s set up", domain)


async def _teardown(domain: str, context: AbstractAsyncContextManager[Any]) -> None:
    # Each integration is exited on its own: one that fails to unload must not pass its
    # exception into the others' teardown.
    try:
        await context.__aexit__(None, None, None)
    except Exception:  # noqa: BLE001
        _LOGGER.exception("Integration %s failed to unload", domain)


async def _add_template_extensions(hub: Hub, manager: HubPluginManager) -> None:
    from . import template

    for plugin_name, extensions in manager.call_each("register_template_extensions", hub=hub):
        try:
            if inspect.isawaitable(extensions):
                extensions = await extensions
            if not isinstance(extensions, dict) or set(extensions) - {"globals", "filters", "tests"}:
                raise TypeError(
                    f"expected a dict with keys globals, filters, tests; got {extensions!r}"
                )
            template.add_extensions(**extensions, hub=hub)
        except Exception as err:  # noqa: BLE001 - that plugin's problem only
            manager.disable(plugin_name, f"register_template_extensions failed: {err!r}", err)
            _notify(hub, f"Plugin {plugin_name} is disabled: {err}", "Plugin failed")


def _fail(hub: Hub, domain: str, error: str) -> None:
    status = hub.integrations[domain]
    if status.status is Status.failed:
        return
    status.status = Status.failed
    status.error = error
    _notify(
        hub,
        f"Integration {status.name} ({domain}) is not running: {error}",
        "Integration failed",
        f"integration_{domain}",
    )


def _notify(hub: Hub, message: str, title: str, notification_id: str | None = None) -> None:
    hub.notifications.create(message, title, notification_id)


def check_configuration(config_dir: Any, manager: HubPluginManager | None = None) -> list[ConfigIssue]:
    """Every problem in a config dir, as ConfigIssues (empty list: valid)."""
    from . import config as config_module

    manager = manager or make_plugin_manager()
    try:
        hub_config = config_module.load_configuration(config_dir)
    except ConfigError as err:
        return list(err.issues)
    plan = plan_setup(hub_config, manager)
    # The same manager may be asked again (the API's check_config): report each failure once.
    failures = dict.fromkeys((f.plugin, f.error) for f in manager.failures)
    plugin_issues = [
        ConfigIssue("<plugins>", None, f"plugin {plugin}: {error}") for plugin, error in failures
    ]
    return [*plan.issues, *plugin_issues]


__all__ = [
    "ENTRY_POINT_GROUP",
    "HubPluginManager",
    "Integration",
    "IntegrationStatus",
    "Status",
    "check_configuration",
    "collect_integrations",
    "make_plugin_manager",
    "plan_setup",
    "setup_integrations",
    "setup_order",
]
