"""Shared fixtures: a real hub on a temporary config dir, started and stopped per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Awaitable
from pathlib import Path
from typing import Any

import pytest

from hub.core import Hub
from hub.plugins import make_plugin_manager

HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def make_hub(tmp_path: Path) -> AsyncIterator[HubFactory]:
    """Start hubs with a given configuration.yaml text and plugins; all are stopped after."""
    hubs: list[Hub] = []

    async def factory(
        config: str = "", plugins: list[Any] = (), config_dir: Path | None = None, start: bool = True
    ) -> Hub:
        directory = config_dir or tmp_path / f"config{len(hubs)}"
        directory.mkdir(parents=True, exist_ok=True)
        if config or not (directory / "configuration.yaml").exists():
            (directory / "configuration.yaml").write_text(config)
        hub = Hub(directory, plugin_manager=make_plugin_manager(plugins, load_entry_points=False))
        hubs.append(hub)
        if start:
            await hub.start()
        return hub

    yield factory
    for hub in reversed(hubs):
        await hub.stop()


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    """A started hub with no integrations."""
    return await make_hub()
