"""Core benchmark: event bus throughput, state writes, memory per entity.

Prints one JSON line. Method (issue 2): 200k events fired with 0, 1 and 10 listeners, one
match-all listener and one coroutine listener, timed until every listener has run; 200k state
writes over 1,000 entities round-robin with changing floats and a small attributes dict; peak
RSS growth per entity with 10,000 sensor entities added through the entity registry.
Run: .venv/bin/python bench/core.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.core import EVENT_STATE_CHANGED, MATCH_ALL, Hub  # noqa: E402
from hub.entity import SensorEntity  # noqa: E402
from hub.plugins import make_plugin_manager  # noqa: E402


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _new_hub(directory: str) -> Hub:
    return Hub(directory, plugin_manager=make_plugin_manager(load_entry_points=False))


class BenchSensor(SensorEntity):
    def __init__(self, n: int) -> None:
        self.unique_id = f"bench_{n}"
        self.name = f"Bench sensor {n}"
        self.native_value = float(n)
        self.device_class = "temperature"
        self.unit_of_measurement = "°C"
        self.state_class = "measurement"


async def rss_per_entity(directory: str, count: int = 10_000) -> float:
    hub = _new_hub(directory)
    gc.collect()
    before = _peak_rss_bytes()
    for n in range(count):
        hub.entities.add(BenchSensor(n), "bench")
    await asyncio.sleep(0)
    gc.collect()
    after = _peak_rss_bytes()
    await hub.tasks.cancel_all()
    return (after - before) / count


async def events_per_second(directory: str, n_events: int, listeners: int, kind: str) -> float:
    hub = _new_hub(directory)
    counter = [0]

    def callback(event: object) -> None:
        counter[0] += 1

    async def coroutine(event: object) -> None:
        counter[0] += 1

    for _ in range(listeners):
        if kind == "coro":
            hub.bus.listen("bench_event", coroutine)
        elif kind == "matchall":
            hub.bus.listen(MATCH_ALL, callback)
        else:
            hub.bus.listen("bench_event", callback)
    expected = n_events * listeners
    fire = hub.bus.fire
    data = {"value": 1}
    start = time.perf_counter()
    for i in range(n_events):
        fire("bench_event", data)
        if kind == "coro" and i % 1000 == 999:
            await asyncio.sleep(0)  # let scheduled listeners run, as a live loop would
    while counter[0] < expected:
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    await hub.tasks.cancel_all()
    return n_events / elapsed


async def state_writes_per_second(directory: str, n_writes: int, entities: int = 1000) -> float:
    hub = _new_hub(directory)
    seen = [0]
    hub.bus.listen(EVENT_STATE_CHANGED, lambda event: seen.__setitem__(0, seen[0] + 1))
    ids = [f"sensor.bench_{i}" for i in range(entities)]
    for entity_id in ids:
        hub.states.set(entity_id, "0.0", {"unit_of_measurement": "°C", "friendly_name": entity_id})
    set_state = hub.states.set
    start = time.perf_counter()
    for i in range(n_writes):
        entity_id = ids[i % entities]
        set_state(
            entity_id,
            str(20.0 + (i % 977) / 100),
            {"unit_of_measurement": "°C", "friendly_name": entity_id, "rssi": -60 - i % 7},
        )
    elapsed = time.perf_counter() - start
    assert seen[0] >= n_writes * 0.9, "state_changed did not fire"
    return n_writes / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory() as directory:
        rss = await rss_per_entity(directory)  # first: peak RSS only grows
        figures = {
            "events_per_s_l0": await events_per_second(directory, n, 0, "callback"),
            "events_per_s_l1": await events_per_second(directory, n, 1, "callback"),
            "events_per_s_l10": await events_per_second(directory, n, 10, "callback"),
            "events_per_s_matchall": await events_per_second(directory, n, 1, "matchall"),
            "events_per_s_coro1": await events_per_second(directory, n, 1, "coro"),
            "state_writes_per_s": await state_writes_per_second(directory, n),
            "rss_bytes_per_entity": rss,
        }
    print(orjson.dumps({k: round(v) for k, v in figures.items()}).decode())


if __name__ == "__main__":
    asyncio.run(main())
