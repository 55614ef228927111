"""Typed keys shared by the HTTP modules (aiohttp AppKey and request keys)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from ..core import Hub

HUB_KEY: Final = web.AppKey("hub", Hub)
# Set on every authenticated request by the auth middleware.
REQUEST_USER: Final = "hub_user"  # hub.auth.User
REQUEST_TOKEN: Final = "hub_refresh_token"  # hub.auth.RefreshToken
