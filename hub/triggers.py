"""Automation trigger types that plugins offer (`trigger: mqtt`, ...).

A plugin returns `{name: TriggerType}` from the `register_trigger_types` hook. The automation
engine validates a trigger config with `schema` and calls `attach(hub, config, action, info)`;
from then on the trigger calls `action(trigger_data, context)` each time it fires, until the
function `attach` returned is called. `trigger_data` is what automations see as `trigger`
(HA's shape: `platform` plus the type's own keys, and `id`, `idx`, `alias` from `info`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Context, Hub

_LOGGER = logging.getLogger(__name__)

TriggerAction = Callable[[dict[str, Any], "Context | None"], Any]
Detach = Callable[[], None]


@dataclass(frozen=True)
class TriggerType:
    schema: Callable[[Any], dict[str, Any]]
    attach: Callable[[Hub, dict[str, Any], TriggerAction, Mapping[str, Any]], Awaitable[Detach]]
    description: str = ""


def trigger_types(hub: Hub) -> dict[str, TriggerType]:
    """Every trigger type the hub's plugins offer; a plugin whose hook fails is disabled."""
    found: dict[str, TriggerType] = {}
    manager = hub.plugin_manager
    if manager is None:
        return found
    for plugin_name, types in manager.call_each("register_trigger_types", hub=hub):
        for name, trigger_type in dict(types).items():
            if name in found:
                _LOGGER.error("Trigger type %s of plugin %s is already offered by another plugin",
                              name, plugin_name)
                continue
            found[name] = trigger_type
    return found


def base_trigger_data(platform: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """The keys every trigger's data has."""
    return {"platform": platform, "id": info.get("id", "0"), "idx": info.get("idx", "0"),
            "alias": info.get("alias")}
