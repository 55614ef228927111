"""Every extension point of the hub. Plugins implement these with `@hookimpl`.

Hooks wire things up at start-up; device data travels on the event bus, never through hooks.
A hook may return a value or an awaitable. A plugin whose hook raises is logged with its name
and disabled; the hub keeps running.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .core import Hub
    from .http.openapi import ApiRoute
    from .plugins import Integration
    from .triggers import TriggerType

PROJECT = "hub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_integrations() -> list[Integration]:
    """Return the integrations this plugin provides (domain, config schema, setup context)."""


@hookspec
def register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add sub-commands to the `hub` command line; each sets `func=callable(args) -> int`."""


@hookspec
def register_template_extensions(hub: Hub) -> dict[str, dict[str, Any]]:
    """Return extra template `globals`, `filters` and `tests`, as a dict of name -> callable."""


@hookspec
def register_api_routes(hub: Hub) -> list[ApiRoute]:
    """Return REST routes (`hub.http.openapi.ApiRoute`) to serve under /api/<domain>/, each with
    its access level; they appear in /api/openapi.json. Routes are fixed when the HTTP server
    starts, before other integrations: a handler finds its integration's runtime in
    `hub.data[domain]` and answers 404 when the integration is not set up."""


@hookspec
def register_trigger_types(hub: Hub) -> dict[str, TriggerType]:
    """Return automation trigger types by name (`trigger: mqtt`), see `hub.triggers`."""
