"""The `http` integration: the REST API, the login flow, onboarding, the WebSocket API and the
minimal web pages, served by one aiohttp application.

It is always set up (the API is how users reach the hub); an `http:` block in
configuration.yaml changes its defaults.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import voluptuous as vol
from aiohttp import web

from ..exceptions import IntegrationError
from ..hookspecs import hookimpl
from ..plugins import Integration
from ..services import ServiceCall
from .server import make_app

if TYPE_CHECKING:
    from ..core import Hub

_LOGGER = logging.getLogger(__name__)
DOMAIN: Final = "http"
DEFAULT_PORT: Final = 8123


def _ensure_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


HTTP_SCHEMA: Final = vol.Schema(
    {
        vol.Optional("server_host", default="0.0.0.0"): str,
        vol.Optional("server_port", default=DEFAULT_PORT): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=65535)
        ),
        vol.Inclusive("ssl_certificate", "tls", msg="ssl_certificate and ssl_key go together"): str,
        vol.Inclusive("ssl_key", "tls", msg="ssl_certificate and ssl_key go together"): str,
        vol.Optional("login_attempts_threshold", default=5): vol.All(
            vol.Coerce(int), vol.Range(min=1)
        ),
        vol.Optional("ip_ban_duration", default=900): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("max_body_bytes", default=1024 * 1024): vol.All(
            vol.Coerce(int), vol.Range(min=1024)
        ),
        vol.Optional("cors_allowed_origins", default=list): vol.All(_ensure_list, [str]),
    }
)
# An empty `http:` block is None in YAML: it means "all defaults", like no block at all.
CONFIG_SCHEMA: Final = vol.Any(None, HTTP_SCHEMA)


@dataclass
class HttpServer:
    """What the integration's setup yields: the app, where it listens, and how to reach it."""

    app: web.Application
    runner: web.AppRunner
    port: int
    urls: list[str] = field(default_factory=list)


@hookimpl
def register_integrations() -> list[Integration]:
    return [
        Integration(
            DOMAIN, "HTTP API", setup, CONFIG_SCHEMA, always=True, documentation="docs/api.md"
        )
    ]


def _ssl_context(config: dict[str, Any]) -> ssl.SSLContext | None:
    if "ssl_certificate" not in config:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config["ssl_certificate"], config["ssl_key"])
    except (OSError, ssl.SSLError) as err:
        raise IntegrationError(f"Cannot load the TLS certificate or key: {err}") from err
    return context


def _lan_ip() -> str | None:
    """The address other machines may reach us on: this host name's first non-loopback IPv4
    address (a local look-up; nothing is sent on the network)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    addresses = [str(info[4][0]) for info in infos]
    return next((a for a in addresses if not a.startswith("127.")), None)


def _urls(host: str, port: int, scheme: str) -> list[str]:
    if host in ("0.0.0.0", "::", ""):
        hosts = ["127.0.0.1"]
        if (lan := _lan_ip()) is not None:
            hosts.append(lan)
    else:
        hosts = [host]
    return [f"{scheme}://{f'[{h}]' if ':' in h else h}:{port}" for h in hosts]


def _register_notification_services(hub: Hub) -> list[Any]:
    """`persistent_notification.create|dismiss`: part of the API surface clients expect."""
    removers = []

    def create(call: ServiceCall) -> None:
        data = call.data
        hub.notifications.create(data["message"], data.get("title"), data.get("notification_id"))

    def dismiss(call: ServiceCall) -> None:
        hub.notifications.dismiss(call.data["notification_id"])

    specs = {
        "create": (
            create,
            {
                vol.Required("message"): vol.All(str, vol.Length(max=10_000)),
                vol.Optional("title"): vol.Any(None, vol.All(str, vol.Length(max=255))),
                vol.Optional("notification_id"): vol.All(str, vol.Length(min=1, max=255)),
            },
            "Show a notification in the notification list until it is dismissed.",
            {
                "message": {"description": "The notification's text.", "required": True},
                "title": {"description": "Its title."},
                "notification_id": {"description": "An id; a second notification with it replaces the first."},
            },
        ),
        "dismiss": (
            dismiss,
            {vol.Required("notification_id"): vol.All(str, vol.Length(min=1, max=255))},
            "Remove a notification.",
            {"notification_id": {"description": "The notification to remove.", "required": True}},
        ),
    }
    for service, (handler, schema, description, fields) in specs.items():
        if not hub.services.has("persistent_notification", service):
            removers.append(
                hub.services.register(
                    "persistent_notification", service, handler, schema,
                    description=description, fields=fields,
                )
            )
    return removers


@asynccontextmanager
async def setup(hub: Hub, config: dict[str, Any] | None) -> AsyncIterator[HttpServer]:
    config = HTTP_SCHEMA(config or {})
    if getattr(hub, "auth", None) is None:
        raise IntegrationError("The hub has no auth manager (hub.auth)")
    # The ban policy is the http block's to set: it is where HA users look for it.
    hub.auth.ban_threshold = config["login_attempts_threshold"]
    hub.auth.ban_duration_s = config["ip_ban_duration"]
    ssl_context = _ssl_context(config)
    app = make_app(hub, config)
    # A short shutdown: open WebSockets and long polls must not hold up `hub stop`.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, handle_signals=False)
    await runner.setup()
    removers = _register_notification_services(hub)
    try:
        site = web.TCPSite(
            runner, config["server_host"], config["server_port"], ssl_context=ssl_context
        )
        try:
            await site.start()
        except OSError as err:
            raise IntegrationError(
                f"Cannot listen on {config['server_host']}:{config['server_port']}: {err}"
            ) from err
        port = runner.addresses[0][1]
        urls = _urls(config["server_host"], port, "https" if ssl_context else "http")
        hub.urls.extend(urls)
        _LOGGER.info("Web UI and API at %s", ", ".join(urls))
        try:
            yield HttpServer(app, runner, port, urls)
        finally:
            for url in urls:
                if url in hub.urls:
                    hub.urls.remove(url)
    finally:
        for remove in removers:
            remove()
        await runner.cleanup()


__all__ = ["CONFIG_SCHEMA", "DOMAIN", "HttpServer", "make_app", "register_integrations", "setup"]
