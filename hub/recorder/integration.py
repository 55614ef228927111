"""The `recorder` integration: runs the storage engine on the hub's bus, serves history,
logbook and statistics over REST and WebSocket, and gives entities their last state back.

It is always on (`recorder:` configures it, see docs/recorder.md). Its runtime is
`hub.data["recorder"]`, a `RecorderRuntime`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..core import State
from ..hookspecs import hookimpl
from ..plugins import Integration
from .config import CONFIG_SCHEMA, settings_from_config
from .engine import Recorder

if TYPE_CHECKING:
    from ..core import Hub

_LOGGER = logging.getLogger(__name__)

DOMAIN: Final = "recorder"


class RecorderRuntime:
    """Everything the integration runs, in `hub.data["recorder"]`."""

    def __init__(self, hub: Hub, config: dict[str, Any], recorder: Recorder, started: float) -> None:
        self.hub = hub
        self.config = config
        self.recorder = recorder
        self.settings = recorder.settings
        self.started = started  # this run's start: restore reads states recorded before it
        self.db = recorder.reader  # read-only SQL for what the reader has no helper for
        self._ready = False

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once the writer has opened (and migrated) the database: a reader that comes
        earlier finds an empty file. Waits at most `timeout` seconds."""
        if not self._ready:
            self._ready = await self.recorder.flush(timeout)
        return self._ready

    async def last_state(self, entity_id: str) -> State | None:
        """The entity's last state recorded before this run of the hub (skipping unavailable,
        unknown and removal), with its original attributes and times; None if there is none."""
        from .restore import read_last_state

        if not await self.wait_ready():
            return None
        return await self.hub.run_in_executor(
            read_last_state, self.recorder, entity_id.lower(), self.started
        )


@asynccontextmanager
async def setup(hub: Hub, config: dict[str, Any] | None) -> AsyncIterator[RecorderRuntime]:
    from . import api, restore

    config = CONFIG_SCHEMA(config)
    settings = settings_from_config(config, Path(hub.config_dir))
    recorder = Recorder(settings)
    # Integrations set up before us already wrote states: record them as they are, or an
    # entity that does not change again would have no history for this run. The state machine
    # starts empty each run, so this run began before the oldest of them: restore reads what
    # was recorded before that.
    current = hub.states.all()
    started = min([time.time(), *(state.last_updated_ts for state in current)]) - 1e-6
    recorder.start(hub)
    # A type listener runs before the engine's `*` one, whenever it subscribed.
    keep_ids = api.keep_context_ids(hub)
    runtime = RecorderRuntime(hub, config, recorder, started)
    unregister = stop_restore = None
    try:
        for state in current:
            recorder.record_state(state.entity_id, state)
        hub.data[DOMAIN] = runtime
        unregister = api.register_websocket_commands()
        stop_restore = restore.start(runtime)
        yield runtime
    finally:
        if stop_restore is not None:
            stop_restore()
        if unregister is not None:
            unregister()
        keep_ids()
        hub.data.pop(DOMAIN, None)
        await recorder.stop()


@hookimpl
def register_integrations() -> list[Integration]:
    return [Integration(DOMAIN, "Recorder", setup, CONFIG_SCHEMA, always=True,
                        documentation="docs/recorder.md")]


@hookimpl
def register_commands(subparsers: Any) -> None:
    from .cli import add_commands

    add_commands(subparsers)


@hookimpl
def register_api_routes(hub: Hub) -> list[Any]:
    from .api import ROUTES

    return list(ROUTES)
