"""WebSocket benchmark: state changes per second delivered to subscribed clients.

`ws_events_per_s(base_url, token, hub)` connects 10 clients the way Home Assistant clients do
(auth, `supported_features` with coalescing, `subscribe_events` for `state_changed`), then
makes the hub set `changes` state changes over 100 entities and measures the time until the
last client has received the last change. The producer keeps at most `WINDOW` changes ahead of
the slowest client, as real traffic would be; outrunning the clients would only measure how
fast the hub cuts off slow consumers.

Standalone: .venv/bin/python bench/api_ws.py [--clients N] [--changes N] (one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WINDOW = 2000  # changes the producer may be ahead of the slowest client (queue bound is 4096)
ENTITIES = 100


async def _connect(session: aiohttp.ClientSession, url: str,
                   token: str) -> tuple[aiohttp.ClientWebSocketResponse, int]:
    ws = await session.ws_connect(url, max_msg_size=0)
    hello = await ws.receive_json()
    assert hello["type"] == "auth_required", hello
    await ws.send_json({"type": "auth", "access_token": token})
    reply = await ws.receive_json()
    if reply["type"] != "auth_ok":
        raise RuntimeError(f"WebSocket auth failed: {reply}")
    await ws.send_json({"id": 1, "type": "supported_features",
                        "features": {"coalesce_messages": 1}})
    await ws.send_json({"id": 2, "type": "subscribe_events", "event_type": "state_changed"})
    pending = {1, 2}
    while pending:
        frame = orjson.loads((await ws.receive()).data)
        for msg in frame if isinstance(frame, list) else [frame]:
            if msg.get("type") == "result":
                if not msg["success"]:
                    raise RuntimeError(f"WebSocket command failed: {msg}")
                pending.discard(msg["id"])
    return ws, 2


async def _count(ws: aiohttp.ClientWebSocketResponse, sub_id: int, counts: list[int],
                 index: int, target: int, done: asyncio.Event) -> None:
    loads = orjson.loads
    while counts[index] < target:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"client {index} disconnected: {msg.type} {msg.data!r}")
        frame = loads(msg.data)
        for item in frame if isinstance(frame, list) else (frame,):
            if item.get("id") == sub_id and item.get("type") == "event":
                counts[index] += 1
    done.set()


async def ws_events_per_s(base_url: str, token: str, hub: Any, clients: int = 10,
                          changes: int = 20_000) -> float:
    """State changes per second delivered to every one of `clients` subscribed clients."""
    url = base_url.rstrip("/") + "/api/websocket"
    async with aiohttp.ClientSession() as session:
        sockets = [await _connect(session, url, token) for _ in range(clients)]
        counts = [0] * clients
        done = [asyncio.Event() for _ in range(clients)]
        readers = [
            asyncio.create_task(_count(ws, sub_id, counts, i, changes, done[i]))
            for i, (ws, sub_id) in enumerate(sockets)
        ]
        try:
            attributes = {"unit_of_measurement": "W", "device_class": "power"}
            start = time.perf_counter()
            for i in range(changes):
                hub.states.set(f"sensor.ws_bench_{i % ENTITIES}", str(i), attributes)
                if i % 100 == 99:
                    await asyncio.sleep(0)
                    while i + 1 - min(counts) > WINDOW:
                        if any(r.done() for r in readers):
                            break  # a reader failed: gather below raises its error
                        await asyncio.sleep(0.001)
            await asyncio.gather(*(event.wait() for event in done), *readers)
            elapsed = time.perf_counter() - start
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for ws, _ in sockets:
                await ws.close()
    return changes / elapsed


async def _standalone(clients: int, changes: int) -> dict[str, float]:
    from aiohttp import web

    from hub.core import Hub
    from hub.http import websocket
    from hub.http.keys import HUB_KEY
    from hub.plugins import make_plugin_manager

    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "configuration.yaml").write_text("")
        hub = Hub(directory, plugin_manager=make_plugin_manager(load_entry_points=False))
        await hub.start()
        user = await hub.auth.create_user("Bench", "bench", "bench-password", admin=True)
        token = hub.auth.create_long_lived_token(user, "bench", 1)
        app = web.Application()
        app[HUB_KEY] = hub
        websocket.setup(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            rate = await ws_events_per_s(f"http://127.0.0.1:{port}", token, hub, clients, changes)
        finally:
            await runner.cleanup()
            await hub.stop()
    return {"ws_events_per_s": round(rate, 1), "clients": clients, "changes": changes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--changes", type=int, default=20_000)
    args = parser.parse_args()
    print(orjson.dumps(asyncio.run(_standalone(args.clients, args.changes))).decode())


if __name__ == "__main__":
    main()
