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
    from .plugins import Integration

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
