"""Recorder codec benchmark: bytes per sample and samples per second, encoding and decoding.

Prints one JSON line: `bytes_per_sample` for 1-day blocks (8,640 samples at 10 s) of each kind
of stream below, `encode_samples_per_s` and `decode_samples_per_s` over all of them (the same
blocks, encoded and decoded repeatedly, best of --rounds), the same two per stream, and all
three for a 1-hour temperature block (encoding a block has a fixed cost of about 0.4 ms).

The streams model what the recorder sees from 100 sensors sampled every 10 s: timestamps on a
10 s grid plus a few ms of delay (exponential, mean 4 ms), 5 % of them up to 1 s late, a gap of
minutes to hours every ~2,000 samples, an extra sample within the same second every ~500.
Values: temperatures in tenths with noise, humidity in tenths, an energy counter in kWh with 3
decimals (reset to 0 now and then), a binary sensor, arbitrary floats. tests/hub/recorder uses
these generators too.
Run: .venv/bin/python bench/recorder_codec.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.recorder.codec import decode_block, encode_block

DAY = 8640  # samples in a day at 10 s
HOUR = 360


def timestamps(rng: random.Random, n: int, start: float = 1_700_000_000.0) -> list[int]:
    """n timestamps (integer µs) of a sensor sampled every 10 s, with jitter, gaps, doubles."""
    out: list[int] = []
    grid = start + rng.random() * 10
    while len(out) < n:
        if rng.random() < 1 / 2000:
            grid += rng.uniform(60, 7200)  # the sensor was away for minutes to hours
        late = rng.expovariate(1 / 0.004) if rng.random() < 0.95 else rng.uniform(0, 1.0)
        t = grid + late
        out.append(round(t * 1e6))
        if rng.random() < 1 / 500 and len(out) < n:
            out.append(round((t + rng.uniform(0.001, 0.5)) * 1e6))  # two in the same second
        grid += 10
    return out[:n]


def temperature(rng: random.Random, n: int) -> list[float]:
    """Tenths of a degree: a daily swing, a slow drift and sensor noise."""
    base = rng.uniform(15, 25)
    drift = 0.0
    out = []
    for i in range(n):
        drift += rng.gauss(0, 0.01)
        day = 2 * math.sin(2 * math.pi * i / DAY)
        out.append(round(base + day + drift + rng.gauss(0, 0.07), 1))
    return out


def humidity(rng: random.Random, n: int, digits: int = 1) -> list[float]:
    """Relative humidity in tenths (or whole percent with digits=0), between 0 and 100."""
    level = rng.uniform(30, 70)
    out = []
    for _ in range(n):
        level = min(100.0, max(0.0, level + rng.gauss(0, 0.1)))
        out.append(float(round(level, digits)))
    return out


def counter(rng: random.Random, n: int) -> list[float]:
    """An energy meter in kWh with 3 decimals: 50 W to 3 kW drawn, reset to 0 now and then."""
    energy = rng.uniform(0, 20_000)
    power = 500.0
    out = []
    for _ in range(n):
        if rng.random() < 1 / 5000:
            energy = 0.0
        power = min(3000.0, max(50.0, power + rng.gauss(0, 50)))
        energy += power * 10 / 3.6e6
        out.append(round(energy, 3))
    return out


def binary(rng: random.Random, n: int) -> list[float]:
    """A binary sensor as 0.0 / 1.0, flipping about once in 100 samples."""
    state = 0.0
    out = []
    for _ in range(n):
        if rng.random() < 0.01:
            state = 1.0 - state
        out.append(state)
    return out


def random_floats(rng: random.Random, n: int) -> list[float]:
    """Arbitrary doubles: full-precision measurements, tiny and huge numbers, negatives."""
    special = [0.1 + 0.2, 1e-9, 12345678.9, -273.15, 2.5e-300, 1.7976931348623157e308, -0.0]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            out.append(rng.gauss(20, 5))
        elif r < 0.8:
            out.append(rng.uniform(-1e9, 1e9))
        elif r < 0.95:
            out.append(rng.random() * 10 ** rng.randint(-12, 12))
        else:
            out.append(rng.choice(special))
    return out


STREAMS: dict[str, Callable[[random.Random, int], list[float]]] = {
    "temperature": temperature,
    "humidity": humidity,
    "counter": counter,
    "binary": binary,
    "random_float": random_floats,
}


def _best_rate(work: Callable[[], object], samples: int, rounds: int) -> float:
    best = math.inf
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return samples / best


def main(rounds: int) -> dict[str, object]:
    blocks = {}
    sizes = {}
    for seed, (name, values) in enumerate(STREAMS.items()):
        rng = random.Random(seed)
        ts, vs = timestamps(rng, DAY), values(rng, DAY)
        blob = encode_block(ts, vs)
        assert decode_block(blob) == (ts, vs)
        blocks[name] = (ts, vs, blob)
        sizes[name] = round(len(blob) / DAY, 3)
    result: dict[str, object] = {"bytes_per_sample": sizes}
    speeds = {}
    for name, (ts, vs, blob) in blocks.items():
        speeds[name] = {
            "encode": round(_best_rate(lambda: encode_block(ts, vs), DAY, rounds)),  # noqa: B023
            "decode": round(_best_rate(lambda: decode_block(blob), DAY, rounds)),  # noqa: B023
        }

    def encode_all() -> None:
        for ts, vs, _ in blocks.values():
            encode_block(ts, vs)

    def decode_all() -> None:
        for _, _, blob in blocks.values():
            decode_block(blob)

    total = DAY * len(blocks)
    result["encode_samples_per_s"] = round(_best_rate(encode_all, total, rounds))
    result["decode_samples_per_s"] = round(_best_rate(decode_all, total, rounds))
    result["per_stream_samples_per_s"] = speeds
    rng = random.Random(0)
    ts, vs = timestamps(rng, HOUR), temperature(rng, HOUR)
    blob = encode_block(ts, vs)
    result["hour_block_temperature"] = {
        "bytes_per_sample": round(len(blob) / HOUR, 3),
        "encode": round(_best_rate(lambda: encode_block(ts, vs), HOUR, rounds)),
        "decode": round(_best_rate(lambda: decode_block(blob), HOUR, rounds)),
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    print(orjson.dumps(main(parser.parse_args().rounds)).decode())
