"""A real hub with the demo devices and the HTTP API on an ephemeral port, and users of every
role with long-lived tokens, reached over real TCP with aiohttp's client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

import hub.http
import integrations.demo
from hub.core import Hub

# A high ban threshold: tests that send bad tokens on purpose must not ban 127.0.0.1 for the
# others. The ban test starts its own hub with a low one.
CONFIG = """\
demo:
  update_interval: 3600
http:
  server_host: 127.0.0.1
  server_port: 0
  login_attempts_threshold: 1000
  max_body_bytes: 65536
"""
PASSWORD = "correct horse battery"


@dataclass
class Api:
    """A running hub and a client for it; `headers(role)` authenticates as that role."""

    hub: Hub
    base: str
    session: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)
    password: str = PASSWORD

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    async def request(
        self, method: str, path: str, role: str | None = "admin", **kwargs: Any
    ) -> tuple[int, Any]:
        """(status, body): JSON decoded when the response is JSON, else text."""
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        async with self.session.request(method, self.base + path, headers=headers, **kwargs) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()


async def add_users(hub: Hub) -> dict[str, str]:
    """An owner, an admin, a user and a read-only user, each with a long-lived token."""
    tokens = {}
    for role, kwargs in {
        "owner": {"owner": True},
        "admin": {"admin": True},
        "user": {},
        "read_only": {"read_only": True},
    }.items():
        user = await hub.auth.create_user(role.title(), role, PASSWORD, **kwargs)
        tokens[role] = hub.auth.create_long_lived_token(user, "tests")
    return tokens


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(make_hub: Callable[..., Awaitable[Hub]]) -> AsyncIterator[StartApi]:
    sessions: list[aiohttp.ClientSession] = []

    async def start(config: str = CONFIG, users: bool = True) -> Api:
        hub_ = await make_hub(config, [integrations.demo, hub.http])
        assert hub_.integrations["http"].status == "loaded", hub_.integrations["http"].error
        session = aiohttp.ClientSession()
        sessions.append(session)
        api = Api(hub_, hub_.urls[0], session)
        if users:
            api.tokens = await add_users(hub_)
        return api

    yield start
    for session in sessions:
        await session.close()


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    return await start_api()
