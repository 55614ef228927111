"""MQTT ingest benchmark: end-to-end messages/second from devices until states are updated in
the hub, and publish-to-state latency, with the embedded broker and with Mosquitto.

Simulated devices (bench/mqtt_devices.py, a second process so the hub keeps its own core)
announce themselves with HA discovery, then publish JSON readings with paho. The hub counts
state writes of their sensors (`force_update`, so every reading is one). Figures:
- `embedded_msgs_per_s`, `mosquitto_msgs_per_s`: readings sent flat out; the rate at which the
  hub turned them into states.
- `mosquitto_ceiling_msgs_per_s`: the same load received by a bare paho subscriber on
  Mosquitto (no hub): what the broker and one client can do on this machine.
- `latency_p50_ms`, `latency_p99_ms` (embedded) and `mosquitto_latency_*`: readings at a fixed
  moderate rate; time from the device's publish to the state being set.
Run: .venv/bin/python bench/mqtt_ingest.py [--count 100000] [--devices 100] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import integrations.mqtt
from bench.mosquitto import Mosquitto
from hub.core import Hub
from hub.plugins import make_plugin_manager

DEVICES_SCRIPT = str(ROOT / "bench" / "mqtt_devices.py")
EMBEDDED = ("mqtt:\n  embedded_broker:\n    host: 127.0.0.1\n    port: 0\n    allow_anonymous: true\n"
            "    max_messages_per_second: 10000000\n  diagnostics_messages: 10\n")


async def _devices(port: int, devices: int, count: int, rate: float) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, DEVICES_SCRIPT, "publish", str(port), str(devices), str(count), str(rate),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = await asyncio.wait_for(process.stdout.readline(), 60)  # type: ignore[union-attr]
    if line.strip() != b"announced":
        raise RuntimeError(f"the devices did not start: {line!r}")
    return process


async def _run_hub(config: str, port_of: Any, devices: int, count: int, rate: float) -> dict[str, float]:
    """One hub: a flat-out run for throughput, then a fixed-rate run for latency."""
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "configuration.yaml").write_text(config)
        hub = Hub(directory, plugin_manager=make_plugin_manager([integrations.mqtt], load_entry_points=False))
        await hub.start()
        try:
            if hub.integrations["mqtt"].status != "loaded":
                raise RuntimeError(hub.integrations["mqtt"].error)
            port = port_of(hub)
            written = 0
            first = last = 0.0
            latencies: list[float] = []
            measure_latency = False

            def on_state(event: Any) -> None:
                nonlocal written, first, last
                new = event.data["new_state"]
                if new is None or not new.entity_id.startswith("sensor.bench_device"):
                    return
                now = time.time()
                if written == 0:
                    first = now
                written += 1
                last = now
                if measure_latency:
                    latencies.append(now - float(new.state))

            hub.bus.listen("state_changed", on_state)
            result: dict[str, float] = {}
            for phase, phase_count, phase_rate in (("throughput", count, 0.0),
                                                   ("latency", max(200, int(rate * 3)), rate)):
                measure_latency = phase == "latency"
                process = await _devices(port, devices, phase_count, phase_rate)
                deadline = time.monotonic() + 120
                while len(hub.states.entity_ids("sensor")) < devices:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the devices were not discovered")
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)  # the discovered sensors' first states are written
                written, latencies[:] = 0, []
                process.stdin.write(b"go\n")  # type: ignore[union-attr]
                await process.stdin.drain()  # type: ignore[union-attr]
                # Until every reading is a state, or nothing has moved for 3 s (lost ones).
                seen, idle_since = -1, time.monotonic()
                while written < phase_count and time.monotonic() - idle_since < 3.0:
                    await asyncio.sleep(0.02)
                    if written != seen:
                        seen, idle_since = written, time.monotonic()
                await process.wait()
                if phase == "throughput":
                    result["msgs_per_s"] = round(written / max(last - first, 1e-9))
                    result["received"] = written
                else:
                    ordered = sorted(latencies)
                    result["latency_p50_ms"] = round(statistics.median(ordered) * 1000, 2)
                    result["latency_p99_ms"] = round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2)
            return result
        finally:
            await hub.stop()


async def _ceiling(port: int, devices: int, count: int) -> float:
    """A bare paho subscriber on the broker receiving the same flat-out load."""
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable, DEVICES_SCRIPT, "subscribe", str(port), str(count),
        stdout=subprocess.PIPE)
    line = await asyncio.wait_for(subscriber.stdout.readline(), 30)  # type: ignore[union-attr]
    if line.strip() != b"subscribed":
        raise RuntimeError(f"the subscriber did not start: {line!r}")
    process = await _devices(port, devices, count, 0)
    process.stdin.write(b"go\n")  # type: ignore[union-attr]
    await process.stdin.drain()  # type: ignore[union-attr]
    out, _ = await asyncio.wait_for(subscriber.communicate(), 180)
    await process.wait()
    return float(out.decode().strip().splitlines()[-1])


async def main(count: int, devices: int, rate: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    embedded = await _run_hub(EMBEDDED, lambda hub: hub.data["mqtt"].broker.ports["mqtt"], devices, count, rate)
    figures["embedded_msgs_per_s"] = embedded["msgs_per_s"]
    figures["latency_p50_ms"] = embedded["latency_p50_ms"]
    figures["latency_p99_ms"] = embedded["latency_p99_ms"]
    with tempfile.TemporaryDirectory() as directory:
        mosquitto = Mosquitto(Path(directory))
        mosquitto.start()
        try:
            external = await _run_hub(f"mqtt:\n  broker: {mosquitto.url}\n", lambda hub: mosquitto.port,
                                      devices, count, rate)
            figures["mosquitto_msgs_per_s"] = external["msgs_per_s"]
            figures["mosquitto_ceiling_msgs_per_s"] = round(await _ceiling(mosquitto.port, devices, count))
            figures["mosquitto_latency_p50_ms"] = external["latency_p50_ms"]
            figures["mosquitto_latency_p99_ms"] = external["latency_p99_ms"]
        finally:
            mosquitto.stop()
    figures["count"] = count
    figures["devices"] = devices
    figures["latency_rate_per_s"] = rate
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    print(orjson.dumps(asyncio.run(main(args.count, args.devices, args.rate))).decode())
