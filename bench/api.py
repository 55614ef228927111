"""API benchmark: REST state reads per second and WebSocket state changes delivered per second.

Prints one JSON line with `rest_states_per_s` and `ws_events_per_s`. A real hub (demo devices,
the http integration on 127.0.0.1, a free port) runs in this process. The REST load comes from a
second process (`bench/api_rest.py`: `GET /api/states/<id>`, 4 keep-alive connections), so
client and server each have a core. The WebSocket figure is state changes per second set in the
hub and delivered to each of 10 subscribed clients (`bench/api_ws.py`); those clients run in
this process, so their JSON parsing shares the hub's core.
Run: .venv/bin/python bench/api.py [--seconds 3] [--changes 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hub.http  # noqa: E402
import integrations.demo  # noqa: E402
from bench.api_ws import ws_events_per_s  # noqa: E402
from hub.core import Hub  # noqa: E402
from hub.plugins import make_plugin_manager  # noqa: E402

CONFIG = "demo:\n  update_interval: 3600\nhttp:\n  server_host: 127.0.0.1\n  server_port: 0\n"


async def main(seconds: float, changes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "configuration.yaml").write_text(CONFIG)
        plugins = make_plugin_manager([integrations.demo, hub.http], load_entry_points=False)
        the_hub = Hub(directory, plugin_manager=plugins)
        await the_hub.start()
        try:
            user = await the_hub.auth.create_user("Bench", "bench", "bench-password", admin=True)
            token = the_hub.auth.create_long_lived_token(user, "bench", 1)
            base_url = the_hub.urls[0]
            client = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "bench" / "api_rest.py"), base_url, token, str(seconds),
                stdout=subprocess.PIPE,
            )
            out, _ = await client.communicate()
            if client.returncode != 0:
                raise RuntimeError("the REST client failed")
            rest = float(out.decode().strip().splitlines()[-1])
            ws = await ws_events_per_s(base_url, token, the_hub, clients=10, changes=changes)
        finally:
            await the_hub.stop()
    return {"rest_states_per_s": round(rest), "ws_events_per_s": round(ws)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--changes", type=int, default=20_000)
    args = parser.parse_args()
    print(orjson.dumps(asyncio.run(main(args.seconds, args.changes))).decode())
