"""End-to-end fixtures: a real hub (demo devices and the HTTP API on an ephemeral port, with no
user yet) and a real headless Chromium driven by Playwright.

The browser is Debian's Chromium (`/usr/bin/chromium`, or `$HUB_CHROMIUM`); no tool downloads a
browser. Without it the tests skip with the reason, except when `CI` is set: in CI a missing
part is a failure (`.ci/run` installs the `chromium` package).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import missing_part

# The REST fixtures of tests/hub/http (a real hub with demo + http, and a client for it).
# conftest files are not importable modules, so this one is loaded from its path.
_spec = importlib.util.spec_from_file_location(
    "_hub_http_fixtures", Path(__file__).parents[1] / "hub" / "http" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_http_fixtures = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_http_fixtures)
start_api = _http_fixtures.start_api  # a fixture: pytest finds it in this module
Api = _http_fixtures.Api

WAIT_MS = 10_000  # the bound on every wait for the page (Playwright's default is 30 s)
# Demo values move five times a second, so the live table has something to show. The ban
# threshold is high: the tests type a wrong password and send a stale token on purpose.
E2E_CONFIG = """\
demo:
  update_interval: 0.2
http:
  server_host: 127.0.0.1
  server_port: 0
  login_attempts_threshold: 1000
"""
# As root in a sandbox with no network: no sandbox, no GPU, and no background traffic to
# Google's hosts (which this machine refuses, many connections at a time).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    path = os.environ.get("HUB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        missing_part(f"Chromium not found at {path}: install Debian's `chromium` package "
                "(or set HUB_CHROMIUM to a Chromium binary)")
    return path


@pytest.fixture
async def e2e_hub(start_api: Any) -> Api:
    """A running hub with the demo devices and no user: what a newcomer finds."""
    return await start_api(E2E_CONFIG, users=False)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """A headless Chromium with a fresh profile (a Playwright BrowserContext), closed after."""
    executable = chromium_path()
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError as err:
        missing_part(f"Playwright is not installed ({err}): pip install -e '.[test]'")
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": 1280, "height": 800},
            locale="en-GB",
            timeout=WAIT_MS,
        )
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def page(e2e_hub: Api, browser: Any) -> AsyncIterator[Any]:
    """A tab of `browser` (set up after the hub, so closed before it stops). The test fails if
    the page throws an uncaught JavaScript error."""
    tab = browser.pages[0] if browser.pages else await browser.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    assert not errors, f"JavaScript errors on the page: {errors}"
