"""The WebSocket API at `/api/websocket`, in Home Assistant's message shapes.

Protocol (what existing Home Assistant clients expect):

1. server -> `{"type": "auth_required", "ha_version": ...}`
2. client -> `{"type": "auth", "access_token": ...}` within 10 s
3. server -> `{"type": "auth_ok", ...}`, or `{"type": "auth_invalid", "message": ...}` and close
4. commands `{"id": <increasing int>, "type": ..., ...}`; replies
   `{"id", "type": "result", "success": true, "result": ...}` or
   `{"id", "type": "result", "success": false, "error": {"code", "message"}}`;
   subscriptions stream `{"id", "type": "event", "event": ...}`.

Each connection has one reader (this handler) and one writer task draining a bounded queue of
serialized messages. A client that stops reading is cut off once the queue passes
`MAX_PENDING_MESSAGES` or `MAX_PENDING_BYTES`; memory never grows without bound. Clients that
announce `coalesce_messages` get queued messages as JSON arrays (one frame per batch), and
`subscribe_entities` folds state changes per entity while the queue is backing up.

Commands live in a registry (`register_command`); the built-in ones are in `ws_commands.py`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import orjson
import voluptuous as vol
import voluptuous.humanize
from aiohttp import WSCloseCode, WSMsgType, web

from .. import __version__
from ..core import EVENT_HUB_STOP, Context, Event
from ..exceptions import (
    HubError,
    ServiceNotFound,
    ServiceValidationError,
    TemplateError,
    Unauthorized,
)
from .keys import HUB_KEY

if TYPE_CHECKING:
    from ..core import Hub

_LOGGER = logging.getLogger(__name__)

URL: Final = "/api/websocket"
# The Home Assistant release whose WebSocket API this one matches. Clients gate features on
# `ha_version` (home-assistant-js-websocket uses subscribe_entities from 2022.4 and coalescing
# from 2022.9; Node-RED refuses old versions), so our own version number would break them.
HA_VERSION: Final = "2025.1.0"
AUTH_TIMEOUT: Final = 10.0
MAX_MESSAGE_SIZE: Final = 1024 * 1024  # incoming frames above this close the connection (1009)
MAX_PENDING_MESSAGES: Final = 4096  # outgoing queue bound per connection
MAX_PENDING_BYTES: Final = 16 * 1024 * 1024
COALESCE_THRESHOLD: Final = 256  # queue length from which subscribe_entities folds changes
MAX_BATCH_MESSAGES: Final = 512  # messages per coalesced frame
MAX_BATCH_BYTES: Final = 256 * 1024
MAX_BAD_MESSAGES: Final = 10  # malformed messages tolerated before the connection is closed
TOKEN_CHECK_INTERVAL: Final = 5.0  # how often a connection re-checks its token is not revoked
MAX_ID_DIGITS: Final = 15  # a numeric string id longer than this is not an id

# Home Assistant's error codes.
ERR_ID_REUSE: Final = "id_reuse"
ERR_INVALID_FORMAT: Final = "invalid_format"
ERR_NOT_FOUND: Final = "not_found"
ERR_NOT_SUPPORTED: Final = "not_supported"
ERR_HOME_ASSISTANT_ERROR: Final = "home_assistant_error"
ERR_SERVICE_VALIDATION_ERROR: Final = "service_validation_error"
ERR_UNKNOWN_COMMAND: Final = "unknown_command"
ERR_UNKNOWN_ERROR: Final = "unknown_error"
ERR_UNAUTHORIZED: Final = "unauthorized"
ERR_TIMEOUT: Final = "timeout"
ERR_TEMPLATE_ERROR: Final = "template_error"

FEATURE_COALESCE_MESSAGES: Final = "coalesce_messages"


# --- serialization -------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    """What orjson cannot encode natively: sets, tuples, objects with as_dict, else str()."""
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    return str(obj)


_DUMPS_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """JSON bytes of a message; anything odd in attributes degrades to a string, never fails."""
    return orjson.dumps(obj, default=_json_default, option=_DUMPS_OPTIONS)


def result_message(msg_id: int, result: Any = None) -> dict[str, Any]:
    return {"id": msg_id, "type": "result", "success": True, "result": result}


def error_message(msg_id: int | None, code: str, message: str) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "result",
        "success": False,
        "error": {"code": code, "message": message},
    }


def event_message(msg_id: int, event: Any) -> dict[str, Any]:
    return {"id": msg_id, "type": "event", "event": event}


@lru_cache(maxsize=256)
def _event_fragment(event: Event) -> bytes:
    # One serialization per event, shared by every subscribed connection (events hash by
    # identity). Cached without the closing brace so each connection appends its own id.
    return dumps({"type": "event", "event": event.as_dict()})[:-1]


def cached_event_message(msg_id_bytes: bytes, event: Event) -> bytes:
    """`{"type": "event", "event": event.as_dict(), "id": N}` serialized once per event."""
    return b"".join((_event_fragment(event), b',"id":', msg_id_bytes, b"}"))


# --- the command registry ------------------------------------------------------------------

Handler = Callable[["ActiveConnection", dict[str, Any]], Any]


@dataclass(slots=True, frozen=True)
class Command:
    type: str
    handler: Handler
    schema: vol.Schema
    admin_only: bool
    write: bool


COMMANDS: dict[str, Command] = {}
# Returned by a handler that already sent its own result (e.g. a subscription that must send
# its result before the first event). A handler that calls `send_result` itself may also just
# return None; the result is sent only once.
RESPONDED: Final = object()


def register_command(
    type: str,
    handler: Handler,
    schema: Mapping[Any, Any] | None = None,
    *,
    admin_only: bool = False,
    write: bool = False,
) -> Callable[[], None]:
    """Add the WebSocket command `type`. Returns the function that removes it again.

    `handler(connection, msg)` may be plain or async; its return value becomes the result
    (`{"success": true, "result": value}`); exceptions become error results (HubError and its
    kinds map to Home Assistant's codes). `schema` validates the message's other keys (`id`
    and `type` are added); unknown keys are dropped. `admin_only`: only admins may call it;
    `write`: read-only users may not call it.
    """
    if type in COMMANDS:
        raise ValueError(f"WebSocket command {type!r} is already registered")
    full = vol.Schema(
        {vol.Required("id"): int, vol.Required("type"): str, **dict(schema or {})},
        extra=vol.REMOVE_EXTRA,  # newer clients may send fields we do not know: ignore them
    )
    COMMANDS[type] = Command(type, handler, full, admin_only, write)

    def remove() -> None:
        if COMMANDS.get(type) is not None and COMMANDS[type].handler is handler:
            del COMMANDS[type]

    return remove


def websocket_command(
    type: str, schema: Mapping[Any, Any] | None = None, *, admin_only: bool = False,
    write: bool = False,
) -> Callable[[Handler], Handler]:
    """Decorator form of `register_command`."""

    def decorate(handler: Handler) -> Handler:
        register_command(type, handler, schema, admin_only=admin_only, write=write)
        return handler

    return decorate


# --- one connection ------------------------------------------------------------------------

_ACTIVE: set[ActiveConnection] = set()
_BY_TOKEN: dict[str, set[ActiveConnection]] = {}  # refresh token id -> its open connections
Outgoing = bytes | Callable[[], bytes | None]  # a callable is built when the writer gets to it


def active_connections(hub: Hub | None = None) -> list[ActiveConnection]:
    """The authenticated connections (of `hub`, or of every hub in this process)."""
    return [conn for conn in _ACTIVE if hub is None or conn.hub is hub]


def close_token_connections(hub: Hub, token_id: str, *, keep: Any = None) -> None:
    """End `hub`'s connections that use the refresh token `token_id` (revoked), but `keep`."""
    for connection in list(_BY_TOKEN.get(token_id, ())):
        if connection.hub is hub and connection is not keep:
            _LOGGER.info("Closing WebSocket connection from %s: token revoked", connection.remote)
            connection.cancel(WSCloseCode.POLICY_VIOLATION)


def _register(connection: ActiveConnection) -> None:
    _ACTIVE.add(connection)
    _BY_TOKEN.setdefault(connection.refresh_token.id, set()).add(connection)


def _unregister(connection: ActiveConnection) -> None:
    _ACTIVE.discard(connection)
    token_id = connection.refresh_token.id
    same_token = _BY_TOKEN.get(token_id)
    if same_token is not None:
        same_token.discard(connection)
        if not same_token:
            del _BY_TOKEN[token_id]


class ActiveConnection:
    """An authenticated client: its user, subscriptions and outgoing queue."""

    def __init__(
        self, hub: Hub, ws: web.WebSocketResponse, remote: str | None, user: Any,
        refresh_token: Any,
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.remote = remote or "?"
        self.user = user
        self.refresh_token = refresh_token
        self.subscriptions: dict[int, Callable[[], Any]] = {}
        self.supported_features: dict[str, Any] = {}
        self.last_id = 0
        self.closed = False
        self.queue: deque[Outgoing] = deque()
        self.queued_bytes = 0
        self.max_queue_seen = 0  # the longest the queue has been (tests assert the bound)
        self.bad_messages = 0
        self.template_subscriptions = 0  # render_template subscriptions, running or starting
        self._awaiting: set[int] = set()  # command ids whose result is not sent yet
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wakeup = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._reader_task: asyncio.Task[Any] | None = None
        self._stop_writer = False
        self._overflowed = False
        self._cancel_requested = False
        self.close_code = WSCloseCode.OK
        self._token_timer: asyncio.TimerHandle | None = None
        self._coalesce = False
        self._msg_id_bytes: dict[int, bytes] = {}

    # -- sending ---------------------------------------------------------------------------

    @property
    def backlogged(self) -> bool:
        """True when the client is falling behind: subscriptions should fold what they send."""
        return len(self.queue) >= COALESCE_THRESHOLD

    def send_message(self, message: bytes | dict[str, Any] | Callable[[], bytes | None]) -> None:
        """Queue a message for the writer. Never blocks; closes a client that does not read."""
        if self.closed:
            return
        if type(message) is dict:
            message = dumps(message)
        queue = self.queue
        queue.append(message)  # type: ignore[arg-type]
        if type(message) is bytes:
            self.queued_bytes += len(message)
        size = len(queue)
        self.max_queue_seen = max(self.max_queue_seen, size)
        if size > MAX_PENDING_MESSAGES or self.queued_bytes > MAX_PENDING_BYTES:
            self._overflow()
            return
        self._wakeup.set()

    def send_result(self, msg_id: int, result: Any = None) -> None:
        self._awaiting.discard(msg_id)
        self.send_message(result_message(msg_id, result))

    def send_error(self, msg_id: int | None, code: str, message: str) -> None:
        if msg_id is not None:
            self._awaiting.discard(msg_id)
        self.send_message(error_message(msg_id, code, message))

    def send_event(self, msg_id: int, event: Any) -> None:
        """Send `{"id": msg_id, "type": "event", "event": event}` (a subscription's update)."""
        self.send_message(event_message(msg_id, event))

    def id_bytes(self, msg_id: int) -> bytes:
        """The id as JSON bytes, for handlers that splice cached fragments."""
        cached = self._msg_id_bytes.get(msg_id)
        if cached is None:
            cached = self._msg_id_bytes[msg_id] = str(msg_id).encode()
        return cached

    def context(self) -> Context:
        """A context for what this client causes (service calls, fired events)."""
        return Context(user_id=self.user.id)

    def subscribe(self, msg_id: int, unsubscribe: Callable[[], Any]) -> None:
        """Keep a subscription's remover; it runs on `unsubscribe_events` or when closing."""
        if self.closed:
            unsubscribe()
            return
        self.subscriptions[msg_id] = unsubscribe

    def _overflow(self) -> None:
        if self._overflowed:
            return
        self._overflowed = True
        _LOGGER.warning(
            "Closing WebSocket connection from %s (user %s): it is not reading its messages "
            "(%d pending, %d bytes)", self.remote, self.user.name, len(self.queue),
            self.queued_bytes,
        )
        self.closed = True  # queue nothing more; the reader task's cleanup unsubscribes
        self.queue.clear()
        self.queued_bytes = 0
        self.cancel(WSCloseCode.TRY_AGAIN_LATER)

    def cancel(self, code: WSCloseCode = WSCloseCode.OK) -> None:
        """Stop this connection from any callback: the reader task cleans up and closes the
        socket with `code`."""
        task = self._reader_task
        if task is not None and not task.done() and not self._cancel_requested:
            self._cancel_requested = True
            self.close_code = code
            task.cancel()

    async def _writer(self) -> None:
        queue, ws, wakeup = self.queue, self.ws, self._wakeup
        send = _frame_sender(ws)
        while True:
            await wakeup.wait()
            wakeup.clear()
            while queue:
                if self._coalesce and len(queue) > 1:
                    payload = self._take_batch()
                else:
                    payload = self._take_one()
                if payload is not None:
                    await send(payload)
            if self._stop_writer or ws.closed:
                return

    def _take_one(self) -> bytes | None:
        item = self.queue.popleft()
        if type(item) is bytes:
            self.queued_bytes -= len(item)
            return item
        return item()  # type: ignore[operator]

    def _take_batch(self) -> bytes | None:
        # Home Assistant's coalescing: several messages as one JSON array in one frame.
        queue = self.queue
        parts: list[bytes] = []
        size = 0
        while queue and len(parts) < MAX_BATCH_MESSAGES and size < MAX_BATCH_BYTES:
            item = self._take_one()
            if item is not None:
                parts.append(item)
                size += len(item)
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return b"[" + b",".join(parts) + b"]"

    # -- receiving -------------------------------------------------------------------------

    def handle(self, msg: Any) -> None:
        """Validate one incoming command and run it."""
        if type(msg) is not dict:
            self._bad_message(None)
            return
        msg_id = msg.get("id")
        if (type(msg_id) is str and len(msg_id) <= MAX_ID_DIGITS and msg_id.isascii()
                and msg_id.isdigit()):  # Home Assistant coerces "5" to 5
            msg_id = int(msg_id)
        msg_type = msg.get("type")
        if type(msg_id) is not int or msg_id < 0 or type(msg_type) is not str:
            self._bad_message(msg_id if type(msg_id) is int else None)
            return
        if msg_id <= self.last_id:
            self.send_error(msg_id, ERR_ID_REUSE, "Identifier values have to increase.")
            return
        command = COMMANDS.get(msg_type)
        if command is None:
            _LOGGER.info("Received unknown command %r from %s", msg_type[:100], self.remote)
            self.send_error(msg_id, ERR_UNKNOWN_COMMAND, "Unknown command.")
            return
        self.last_id = msg_id
        if (command.admin_only and not self.user.is_admin) or (
            command.write and not self.user.can_write
        ):
            self.send_error(msg_id, ERR_UNAUTHORIZED, "Unauthorized")
            return
        msg = dict(msg, id=msg_id)
        try:
            msg = command.schema(msg)
        except vol.Invalid as err:
            self.send_error(msg_id, ERR_INVALID_FORMAT, vol.humanize.humanize_error(msg, err))
            return
        self._awaiting.add(msg_id)
        try:
            result = command.handler(self, msg)
        except Exception as err:  # noqa: BLE001 - every failure becomes an error result
            self._handle_exception(msg, err)
            return
        if inspect.isawaitable(result):
            # Async commands run side by side, so a slow service call does not hold up pings.
            task = asyncio.ensure_future(self._finish(msg, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._respond(msg_id, result)

    async def _finish(self, msg: dict[str, Any], awaitable: Any) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001
            self._handle_exception(msg, err)
        else:
            self._respond(msg["id"], result)

    def _respond(self, msg_id: int, result: Any) -> None:
        if result is RESPONDED or msg_id not in self._awaiting:
            self._awaiting.discard(msg_id)
            return
        self.send_result(msg_id, result)

    def _handle_exception(self, msg: dict[str, Any], err: Exception) -> None:
        msg_id = msg["id"]
        if isinstance(err, Unauthorized):
            code, text = ERR_UNAUTHORIZED, str(err) or "Unauthorized"
        elif isinstance(err, vol.Invalid):
            code, text = ERR_INVALID_FORMAT, vol.humanize.humanize_error(msg, err)
        elif isinstance(err, ServiceNotFound):
            code, text = ERR_NOT_FOUND, f"{err}."
        elif isinstance(err, ServiceValidationError):
            code, text = ERR_SERVICE_VALIDATION_ERROR, f"Validation error: {err}"
        elif isinstance(err, TemplateError):
            code, text = ERR_TEMPLATE_ERROR, str(err)
        elif isinstance(err, (TimeoutError, asyncio.TimeoutError)):
            code, text = ERR_TIMEOUT, "Timeout"
        elif isinstance(err, HubError):
            code, text = ERR_HOME_ASSISTANT_ERROR, str(err) or type(err).__name__
        else:
            _LOGGER.exception("Error handling WebSocket command %s from %s", msg["type"],
                              self.remote, exc_info=err)
            code, text = ERR_UNKNOWN_ERROR, str(err) or "Unknown error"
        if msg_id in self._awaiting:
            self.send_error(msg_id, code, text)
        else:  # a subscription failing after its result went out: say so on its id
            self.send_message(error_message(msg_id, code, text))

    def _bad_message(self, msg_id: int | None) -> None:
        self.bad_messages += 1
        self.send_error(msg_id, ERR_INVALID_FORMAT, "Message incorrectly formatted.")
        if self.bad_messages >= MAX_BAD_MESSAGES:
            _LOGGER.warning("Closing WebSocket connection from %s: %d malformed messages",
                            self.remote, self.bad_messages)
            self.cancel(WSCloseCode.POLICY_VIOLATION)

    def token_revoked(self) -> bool:
        getter = getattr(self.hub.auth, "get_refresh_token", None)
        return getter is not None and getter(self.refresh_token.id) is None

    # -- closing ---------------------------------------------------------------------------

    def close_subscriptions(self) -> None:
        """Cancel every subscription and running command: no listener stays on the bus."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        subscriptions, self.subscriptions = self.subscriptions, {}
        for unsubscribe in subscriptions.values():
            try:
                unsubscribe()
            except Exception:
                _LOGGER.exception("Error removing a WebSocket subscription")


def _frame_sender(ws: web.WebSocketResponse) -> Callable[[bytes], Any]:
    # Text frames straight from bytes (aiohttp >= 3.11); decoding to str first costs a copy.
    if hasattr(ws, "send_frame"):
        return lambda payload: ws.send_frame(payload, WSMsgType.TEXT)
    return lambda payload: ws.send_str(payload.decode())


# --- the handler ---------------------------------------------------------------------------


class _Disconnect(Exception):
    """End the connection (after the reason was logged or sent)."""


def _auth_message(message_type: str, **extra: Any) -> bytes:
    return dumps({"type": message_type, **extra})


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    """`GET /api/websocket`: authenticate in-band, then serve commands until the client leaves.

    Mounted without the HTTP bearer-token check: the token comes in the `auth` message.
    """
    hub: Hub = request.app[HUB_KEY]
    remote = request.remote or "?"
    ws = web.WebSocketResponse(heartbeat=55, max_msg_size=MAX_MESSAGE_SIZE)
    await ws.prepare(request)
    send = _frame_sender(ws)
    connection: ActiveConnection | None = None
    unsub_stop: Callable[[], None] | None = None
    try:
        await send(_auth_message("auth_required", ha_version=HA_VERSION))
        connection = await _authenticate(hub, ws, remote, send)
        connection._reader_task = asyncio.current_task()
        _register(connection)
        unsub_stop = hub.bus.listen(EVENT_HUB_STOP, lambda _event: connection.cancel(WSCloseCode.GOING_AWAY))
        connection._writer_task = asyncio.ensure_future(connection._writer())
        _schedule_token_check(connection)
        await send(_auth_message("auth_ok", ha_version=HA_VERSION, hub_version=__version__))
        await _read_commands(connection)
    except _Disconnect:
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if connection is None or not connection._cancel_requested or task is None:
            # Cancelled by aiohttp (server shutdown): clean up, then let the cancel through.
            await asyncio.shield(_cleanup(connection, ws, unsub_stop, abort=True))
            raise
        # Our own cancel (overflow, garbage, hub stop, revoked token): clean up and return.
        task.uncancel()
    except Exception:
        _LOGGER.exception("Unexpected error in WebSocket connection from %s", remote)
    await _cleanup(connection, ws, unsub_stop,
                   abort=connection is not None and connection._overflowed)
    return ws


async def _authenticate(
    hub: Hub, ws: web.WebSocketResponse, remote: str, send: Callable[[bytes], Any]
) -> ActiveConnection:
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
    except TimeoutError:
        _LOGGER.info("WebSocket client %s sent no auth message within %g s", remote, AUTH_TIMEOUT)
        raise _Disconnect from None
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        raise _Disconnect
    if msg.type != WSMsgType.TEXT:
        await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"Text frames only")
        raise _Disconnect
    try:
        data = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        data = None
    if (
        type(data) is not dict
        or data.get("type") != "auth"
        or type(data.get("access_token")) is not str
    ):
        text = "Auth message incorrectly formatted: expected type auth and an access_token"
        await send(_auth_message("auth_invalid", message=text))
        raise _Disconnect
    token = data["access_token"]
    found = hub.auth.validate_access_token(token, remote)
    if found is None:
        # As over HTTP: a ban stops guessing but never a valid token, and a merely expired
        # token is not counted as a guess.
        _LOGGER.warning("WebSocket login from %s failed: invalid access token", remote)
        if hub.auth.is_banned(remote):
            await send(_auth_message("auth_invalid", message="Too many failed logins; try again later"))
            raise _Disconnect
        if not hub.auth.is_expired_token(token):
            hub.auth.record_failed_login(remote)
        await send(_auth_message("auth_invalid", message="Invalid access token or password"))
        raise _Disconnect
    user, refresh_token = found
    clear = getattr(hub.auth, "clear_failed_logins", None)
    if clear is not None:
        clear(remote)
    return ActiveConnection(hub, ws, remote, user, refresh_token)


async def _read_commands(connection: ActiveConnection) -> None:
    ws = connection.ws
    while not ws.closed:
        msg = await ws.receive()
        if msg.type == WSMsgType.TEXT:
            if connection.token_revoked():
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"Token revoked")
                return
            try:
                data = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                connection._bad_message(None)
                continue
            if type(data) is list:  # Home Assistant accepts a batch of commands as an array
                for item in data:
                    connection.handle(item)
            else:
                connection.handle(data)
        elif msg.type == WSMsgType.BINARY:
            _LOGGER.info("Closing WebSocket connection from %s: binary frame", connection.remote)
            await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"Text frames only")
            return
        elif msg.type == WSMsgType.ERROR:
            # aiohttp already closed it (e.g. 1009 for a frame over max_msg_size).
            _LOGGER.info("WebSocket connection from %s closed: %s", connection.remote,
                         ws.exception())
            return
        else:  # CLOSE, CLOSING, CLOSED
            return


def _schedule_token_check(connection: ActiveConnection) -> None:
    # A revoked token ends its connections even when the client only listens.
    loop = asyncio.get_running_loop()

    def check() -> None:
        if connection.closed:
            return
        if connection.token_revoked():
            _LOGGER.info("Closing WebSocket connection from %s: token revoked", connection.remote)
            connection.cancel(WSCloseCode.POLICY_VIOLATION)
            return
        connection._token_timer = loop.call_later(TOKEN_CHECK_INTERVAL, check)

    connection._token_timer = loop.call_later(TOKEN_CHECK_INTERVAL, check)


async def _cleanup(
    connection: ActiveConnection | None,
    ws: web.WebSocketResponse,
    unsub_stop: Callable[[], None] | None,
    *,
    abort: bool,
) -> None:
    if unsub_stop is not None:
        unsub_stop()
    if connection is not None:
        connection._cancel_requested = True  # from here on nothing may cancel the cleanup
        if connection._token_timer is not None:
            connection._token_timer.cancel()
        _unregister(connection)
        connection.close_subscriptions()
        writer = connection._writer_task
        if writer is not None:
            if abort:
                writer.cancel()
            else:
                # Let queued results (an error, the last events) go out before the close.
                connection._stop_writer = True
                connection._wakeup.set()
            try:
                await asyncio.wait_for(writer, 2.0)
            except (TimeoutError, asyncio.CancelledError, ConnectionError, RuntimeError):
                writer.cancel()
            except Exception:
                _LOGGER.debug("WebSocket writer of %s ended with an error", connection.remote,
                              exc_info=True)
    if not ws.closed:
        code = connection.close_code if connection is not None else WSCloseCode.OK
        try:
            await asyncio.wait_for(ws.close(code=code), 1.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            # A client that does not read cannot take a close frame either: drop the TCP link.
            transport = ws._req.transport if ws._req is not None else None
            if transport is not None:
                transport.abort()


async def close_all(hub: Hub | None = None) -> None:
    """Close every WebSocket connection (of `hub`): for the HTTP server's shutdown."""
    for connection in active_connections(hub):
        connection.cancel(WSCloseCode.GOING_AWAY)
    await asyncio.sleep(0)


def setup(app: web.Application) -> None:
    """Mount the WebSocket API at /api/websocket and close its sockets on shutdown."""
    app.router.add_get(URL, websocket_handler)

    async def on_shutdown(app: web.Application) -> None:
        await close_all(app[HUB_KEY])

    app.on_shutdown.append(on_shutdown)


# The built-in commands register themselves on import.
from . import ws_commands  # noqa: F401
