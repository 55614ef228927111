"""REST read throughput: `GET /api/states/<entity_id>` per second over 4 keep-alive connections.

Imported by bench/api.py (`rest_states_per_s`); also runnable alone against a running hub:

    python bench/api_rest.py http://127.0.0.1:8123 "$TOKEN"
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp

CONNECTIONS = 4


async def _pick_entity(session: aiohttp.ClientSession, base_url: str) -> str:
    async with session.get(f"{base_url}/api/states") as resp:
        resp.raise_for_status()
        states = await resp.json()
    if states:
        return states[0]["entity_id"]
    # An empty hub: make an entity to read.
    async with session.post(f"{base_url}/api/states/sensor.bench_rest", json={"state": "1"}) as resp:
        resp.raise_for_status()
    return "sensor.bench_rest"


async def rest_states_per_s(base_url: str, token: str, seconds: float = 3.0) -> float:
    """Successful `GET /api/states/<id>` per second, 4 concurrent keep-alive connections."""
    base_url = base_url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=False)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        url = f"{base_url}/api/states/{await _pick_entity(session, base_url)}"
        async def fetch() -> None:
            async with session.get(url) as resp:
                await resp.read()

        await asyncio.gather(*(fetch() for _ in range(CONNECTIONS)))  # open the connections
        deadline = time.perf_counter() + seconds
        counts = [0] * CONNECTIONS

        async def worker(index: int) -> None:
            while time.perf_counter() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status == 200:
                        counts[index] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
        elapsed = time.perf_counter() - start
    return sum(counts) / elapsed


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: api_rest.py BASE_URL TOKEN [SECONDS]")
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    print(round(asyncio.run(rest_states_per_s(sys.argv[1], sys.argv[2], seconds)), 1))
