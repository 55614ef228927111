"""Typed keys shared by the HTTP modules (aiohttp AppKey and request keys)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from ..auth import RefreshToken, User
from ..core import Hub

HUB_KEY: Final = web.AppKey("hub", Hub)
# Set on every authenticated request by the auth middleware.
REQUEST_USER: Final = web.RequestKey("hub_user", User)
REQUEST_TOKEN: Final = web.RequestKey("hub_refresh_token", RefreshToken)
