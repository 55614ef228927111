"""`hub scaffold integration NAME`: a working, pip-installable third-party plugin package."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from .config import CORE_KEYS
from .core import valid_entity_id
from .plugins import ENTRY_POINT_GROUP

_MAX_NAME = 40

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "hub-{dist}"
version = "0.1.0"
description = "{title} integration for the hub"
requires-python = ">=3.11"
dependencies = ["iot-hub"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.23"]

# This line is what makes the hub find the plugin: group "hub.plugins", name = the domain.
[project.entry-points."hub.plugins"]
{name} = "hub_{name}"

[tool.setuptools]
packages = ["hub_{name}"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
'''

MODULE = '''\
"""{title}: an integration plugin for the hub.

Enable it by adding to configuration.yaml:

    {name}:
      greeting: hello
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import voluptuous as vol

from hub.core import Hub
from hub.entity import SensorEntity
from hub.hookspecs import hookimpl
from hub.plugins import Integration

DOMAIN = "{name}"

CONFIG_SCHEMA = vol.Any(
    None,
    vol.Schema({{vol.Optional("greeting", default="hello"): str}}),
)


class GreetingSensor(SensorEntity):
    """A sensor whose state is the configured greeting."""

    def __init__(self, greeting: str) -> None:
        self.unique_id = "greeting"
        self.name = "Greeting"
        self.native_value = greeting
        self.device_info = {{
            "identifiers": {{(DOMAIN, "example")}},
            "name": "{title} example",
            "manufacturer": "You",
        }}


@asynccontextmanager
async def setup(hub: Hub, config: dict[str, Any] | None) -> AsyncIterator[None]:
    """Set up on enter, tear down on exit (the hub exits in reverse order at stop)."""
    config = config or {{}}
    sensor = GreetingSensor(config.get("greeting", "hello"))
    hub.entities.add(sensor, DOMAIN)

    async def say_hello(call: Any) -> None:
        sensor.native_value = call.data["greeting"]
        sensor.write_state()

    remove_service = hub.services.register(
        DOMAIN, "set_greeting", say_hello, {{vol.Required("greeting"): str}}
    )
    try:
        yield
    finally:
        remove_service()
        await hub.entities.remove(sensor)


@hookimpl
def register_integrations() -> list[Integration]:
    return [Integration(DOMAIN, "{title}", setup, CONFIG_SCHEMA)]
'''

TEST = '''\
"""Given the plugin is installed and configured, its sensor shows the greeting."""

from pathlib import Path

from hub.core import Hub
from hub.plugins import make_plugin_manager

import hub_{name}


async def test_greeting_sensor_and_service(tmp_path: Path) -> None:
    (tmp_path / "configuration.yaml").write_text("{name}:\\n  greeting: hi there\\n")
    hub = Hub(tmp_path, plugin_manager=make_plugin_manager([hub_{name}], load_entry_points=False))
    await hub.start()
    try:
        state = hub.states.get("sensor.{name}_example_greeting")
        assert state is not None and state.state == "hi there"
        await hub.services.call("{name}", "set_greeting", {{"greeting": "bonjour"}})
        assert hub.states.get("sensor.{name}_example_greeting").state == "bonjour"
    finally:
        await hub.stop()
'''

README = '''\
# hub-{dist}

{title} integration for the hub.

    pip install -e .            # into the hub's virtualenv
    pip install -e '.[test]' && pytest

Then add `{name}:` to `configuration.yaml` and restart the hub (`hub run -c CONFIG_DIR`).
'''


def check_name(name: str) -> None:
    """Raise ValueError unless `name` can be a new integration's domain.

    The rule of entity ids' parts (lower-case letters, digits and single underscores, not at
    either end), starting with a letter; not the core block's key nor an installed domain.
    """
    if not (valid_entity_id(f"{name}.x") and re.match("[a-z]", name) and len(name) <= _MAX_NAME):
        raise ValueError(
            f"{name!r} is not a valid integration domain: use lower-case letters, digits and "
            f"single underscores, starting with a letter, not ending with _ (at most {_MAX_NAME})"
        )
    if name in CORE_KEYS:
        raise ValueError(f"{name!r} is the key of the hub's own configuration: pick another name")
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if name in installed:
        raise ValueError(
            f"{name!r} is already an installed integration domain ({installed[name]}): "
            "pick another name"
        )


def write_integration_package(name: str, parent: Path) -> Path:
    """Write `hub-<name>/` under `parent` and return its path."""
    check_name(name)
    dist = name.replace("_", "-")
    title = name.replace("_", " ").title()
    root = parent / f"hub-{dist}"
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    files = {
        "pyproject.toml": PYPROJECT,
        f"hub_{name}/__init__.py": MODULE,
        f"tests/test_{name}.py": TEST,
        "README.md": README,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=name, dist=dist, title=title))
    return root
