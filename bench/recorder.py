"""Recorder benchmark: committed samples/second, bytes on disk per raw sample, chart query times
and peak RSS, for a realistic stream run through the real engine with simulated time (issue 5).

The stream: --sensors entities (default 100) reporting every --interval s (default 10) for --days
simulated days (default 30), built with bench/recorder_codec.py's generators: 60 % temperatures
(tenths, daily swing, drift, noise), 25 % humidity, 10 % energy counters (kWh, 3 decimals), 5 %
binary sensors (0/1, as numeric sensors). Timestamps come from its `timestamps()` (jitter, late
and doubled reports, and gaps of minutes to hours when a sensor is away, so a sensor fills about
85 % of its 10 s slots: `samples` reports the exact count). Each entity's series is generated a
day at a time and stitched so it runs on across midnight.

Ingest: one producer (this thread) builds a `State` per sample, in time order across entities,
and hands it to `Recorder.record_state` (waiting when the bounded queue is full); the writer
thread commits with the default settings (commit_interval 1 s, 10 days raw, 2 h hot window).
A fake clock follows the data a few hours behind the producer, so the writer's incremental
5-minute/hourly rollups run during ingest as they would live. After each simulated day, the
clock is set to its end and the engine's full maintenance runs (rollups, compaction into
blocks, retention, vacuum); at the end the clock is set past the last sample plus the hot
window, so every sample is compacted, and maintenance runs once more.

Figures:
- `samples_per_s`: samples committed / wall time of the ingest (producing the States from the
  pre-generated day, queueing, writing, committing; the generators' own time and the
  maintenance excluded). `samples_per_s_with_maintenance` counts maintenance time too.
- `bytes_per_sample`: bytes of the `blocks` table (with its index, from dbstat) per sample it
  holds, after the final compaction and vacuum; `file_bytes_per_sample`: the whole file per
  sample ingested (it also holds the rollups, and raw data older than 10 days is purged).
- `query_ms_1d`, `query_ms_30d`, `query_ms_1y`: one temperature entity's chart answered as the
  statistics API does (`api.rest_statistics` with period=auto: choosing the resolution, then
  reading it), ending at the end of the data; median of --runs; `query_period_*` says which
  resolution auto picked and `query_points_*` how many points came back.
- `peak_rss_mb`: ru_maxrss of the process; it includes the benchmark's own buffers (a day of
  generated values and its time order, and up to `queue_max` queued States).
The default run (25.9 M slots, 22.1 M samples) takes about 7.5 minutes on the 2-core machine:
~250 s ingest, ~140 s maintenance, ~65 s generating the stream.
Run: .venv/bin/python bench/recorder.py [--sensors 100] [--days 30] [--interval 10] [--runs 7]
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import statistics
import sys
import tempfile
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.recorder_codec import binary, counter, humidity, temperature, timestamps
from hub.core import ReadOnlyDict, State
from hub.recorder import Recorder, RecorderSettings
from hub.recorder.api import rest_statistics
from hub.recorder.integration import ReadOnlyDB

DAY = 86_400
HOUR = 3_600

# (kind, share of the entities, generator, decimals, attributes)
KINDS: list[tuple[str, float, Callable[[random.Random, int], list[float]], int, dict[str, str]]] = [
    ("temperature", 0.60, temperature, 1,
     {"unit_of_measurement": "°C", "device_class": "temperature", "state_class": "measurement"}),
    ("humidity", 0.25, humidity, 1,
     {"unit_of_measurement": "%", "device_class": "humidity", "state_class": "measurement"}),
    ("energy", 0.10, counter, 3,
     {"unit_of_measurement": "kWh", "device_class": "energy", "state_class": "total_increasing"}),
    ("occupancy", 0.05, binary, 0, {"state_class": "measurement"}),
]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sensor:
    """One entity: its kind, its own random stream and where its previous day ended."""

    def __init__(self, n: int, kind: int) -> None:
        name, _, self.generate, self.digits, attrs = KINDS[kind]
        self.kind = name
        self.entity_id = f"sensor.bench_{name}_{n}"
        self.attributes = ReadOnlyDict(attrs)  # one object: the writer sees unchanged attributes
        self.rng = random.Random(n)
        self.last: float | None = None

    def day(self, start: float, interval: float) -> tuple[array, array]:
        """This sensor's samples in [start, start + 1 day): µs timestamps and values."""
        rng = self.rng
        n = math.ceil(DAY / interval * 1.3) + 10  # gaps eat slots: generate more, cut at midnight
        ts = timestamps(rng, n, start)
        if interval != 10:
            base = round(start * 1e6)
            ts = [base + round((t - base) * interval / 10) for t in ts]
        end_us = round((start + DAY) * 1e6)
        ts = ts[: bisect_left(ts, end_us)]
        values = self.generate(rng, len(ts))
        if self.last is not None and values and self.kind != "occupancy":
            # Go on from yesterday's last value (a counter keeps counting).
            step = 0.001 if self.kind == "energy" else 0.0
            offset = self.last + step - values[0]
            values = [round(v + offset, self.digits) for v in values]
            if self.kind == "humidity":
                values = [min(100.0, max(0.0, v)) for v in values]
        if values:
            self.last = values[-1]
        return array("q", ts), array("d", values)


def make_sensors(count: int) -> list[Sensor]:
    sensors = []
    bounds = []
    total = 0.0
    for _, share, *_ in KINDS:
        total += share
        bounds.append(total)
    for n in range(count):
        position = (n + 0.5) / count
        kind = next(i for i, bound in enumerate(bounds) if position < bound)
        sensors.append(Sensor(n, kind))
    return sensors


def produce_day(recorder: Recorder, clock: Clock, sensors: list[Sensor],
                day: list[tuple[array, array]], lag: float) -> int:
    """Queue one day of samples in time order across sensors; the clock follows `lag` behind."""
    width = max(1, len(sensors) - 1).bit_length()
    mask = (1 << width) - 1
    order = array("q", sorted(t << width | s for s, (ts, _) in enumerate(day) for t in ts))
    positions = [0] * len(sensors)
    ids = [s.entity_id for s in sensors]
    attrs = [s.attributes for s in sensors]
    reprs = [(lambda v: "1" if v else "0") if s.kind == "occupancy" else repr for s in sensors]
    record = recorder.record_state
    room = recorder.settings.queue_max - 2_000
    next_tick = 0
    sent = 0
    for key in order:
        s = key & mask
        t_us = key >> width
        if t_us >= next_tick:  # once per simulated 5 minutes
            clock.now = max(clock.now, t_us / 1e6 - lag)
            next_tick = t_us + 300_000_000
        i = positions[s]
        positions[s] = i + 1
        t = t_us / 1e6
        state = State(ids[s], reprs[s](day[s][1][i]), attrs[s], t, t, validate=False)
        if sent % 1000 == 0:  # a nearly full queue: let the writer catch up, drop nothing
            while recorder.runtime_stats()["queue_length"] > room:
                time.sleep(0.001)
        if not record(ids[s], state):
            raise RuntimeError("the recorder dropped a sample")
        sent += 1
    return sent


def time_query(runtime: Any, entity_id: str, start: float, end: float,
               runs: int) -> tuple[float, str, int]:
    times = []
    answer: dict[str, Any] = {}
    for _ in range(runs):
        began = time.perf_counter()
        answer = rest_statistics(runtime, [entity_id], start, end, "auto",
                                 ["mean", "min", "max"], UTC)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, answer["period"], len(answer["statistics"][entity_id])


def main(sensors_count: int, days: int, interval: float, runs: int) -> dict[str, Any]:
    # The data ends at a midnight before the real time, so that `auto`, which asks time.time()
    # whether a tier still covers the range, sees the same "now" as the fake clock.
    end = (time.time() - 6 * HOUR) // DAY * DAY
    start = end - days * DAY
    clock = Clock(start)
    sensors = make_sensors(sensors_count)
    with tempfile.TemporaryDirectory() as directory:
        settings = RecorderSettings.for_config_dir(directory)
        recorder = Recorder(settings, clock=clock)
        recorder.start()
        # The queue holds this much simulated time: rollups stay behind what is still queued.
        lag = settings.queue_max * interval / sensors_count + HOUR
        ingest = maintenance = generate = 0.0
        produced = 0
        try:
            for d in range(days):
                day_start = start + d * DAY
                began = time.perf_counter()
                day = [sensor.day(day_start, interval) for sensor in sensors]
                generate += time.perf_counter() - began
                began = time.perf_counter()
                produced += produce_day(recorder, clock, sensors, day, lag)
                if not recorder.flush_blocking(600):
                    raise RuntimeError("the recorder did not commit")
                ingest += time.perf_counter() - began
                del day
                # The day is over: set the clock after its last sample, then maintenance.
                clock.now = day_start + DAY if d < days - 1 else end + settings.hot_window_hours * HOUR + 60
                began = time.perf_counter()
                if not recorder.run_maintenance_blocking(1800):
                    raise RuntimeError("maintenance failed")
                maintenance += time.perf_counter() - began
            stats = recorder.stats(per_entity=False)
            db = stats["database"]
            blocks = db["tables"]["blocks"]
            runtime = SimpleNamespace(recorder=recorder, settings=settings,
                                      db=ReadOnlyDB(settings.db_path))
            entity = sensors[0].entity_id
            figures: dict[str, Any] = {}
            for label, span in (("1d", DAY), ("30d", 30 * DAY), ("1y", 365 * DAY)):
                ms, period, points = time_query(runtime, entity, end - span, end, runs)
                figures[f"query_ms_{label}"] = round(ms, 2)
                figures[f"query_period_{label}"] = period
                figures[f"query_points_{label}"] = points
            runtime.db.close()
        finally:
            recorder.stop_blocking(600)
    written = stats["written_samples"]
    result: dict[str, Any] = {
        "samples_per_s": round(written / ingest),
        "samples_per_s_with_maintenance": round(written / (ingest + maintenance)),
        "bytes_per_sample": round(blocks["bytes"] / max(blocks["samples"], 1), 3),
        **{k: v for k, v in figures.items() if k.startswith("query_ms")},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "samples": written,
        "produced": produced,
        "lost": produced - written,
        "sensors": sensors_count,
        "days": days,
        "interval_s": interval,
        "ingest_s": round(ingest, 1),
        "maintenance_s": round(maintenance, 1),
        "generate_s": round(generate, 1),
        "commits": stats["commits"],
        "block_samples": blocks["samples"],
        "blocks": blocks["rows"],
        "blocks_mb": round(blocks["bytes"] / 1e6, 2),
        "hot_samples": db["tables"]["samples"]["rows"],
        "rollup_5m_rows": db["tables"]["rollup_5m"]["rows"],
        "rollup_1h_rows": db["tables"]["rollup_1h"]["rows"],
        "file_mb": round(db["file_bytes"] / 1e6, 2),
        "file_bytes_per_sample": round(db["file_bytes"] / max(written, 1), 3),
        **{k: v for k, v in figures.items() if not k.startswith("query_ms")},
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=7, help="query repetitions (median)")
    args = parser.parse_args()
    print(orjson.dumps(main(args.sensors, args.days, args.interval, args.runs)).decode())
