"""Rollups: given samples, text states and late or out-of-order values, the 5-minute and hourly
rows hold the time-weighted mean, min, max, last and count that a plain step-function
integration computes independently here."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from hub.core import ReadOnlyDict, State
from hub.recorder import Recorder, RecorderSettings
from hub.recorder.series import compute_buckets

T0 = 1_699_999_200.0  # an hour boundary
UNIT = ReadOnlyDict({"unit_of_measurement": "°C", "state_class": "measurement"})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def expected(
    samples: list[tuple[float, float]], breaks: list[float], start: float, end: float, period: int
) -> dict[int, tuple[float, float, float, float, int]]:
    """Buckets by brute force: the value at any instant is the last sample's unless a break
    came after it; integrate that step function piece by piece inside each bucket."""
    us = 1_000_000
    pts = sorted((round(t * us), v) for t, v in samples)
    brk = sorted(round(t * us) for t in breaks)

    def value_at(x: int) -> float | None:
        before = [p for p in pts if p[0] <= x]
        if not before:
            return None
        t, v = before[-1]
        return None if any(t < b <= x for b in brk) else v

    out = {}
    for b in range(int(start), int(end), period):
        lo, hi = b * us, (b + period) * us
        cuts = sorted({lo, hi} | {t for t, _ in pts if lo < t < hi} | {x for x in brk if lo < x < hi})
        weighted = covered = 0.0
        held = []
        for p, q in pairwise(cuts):
            v = value_at(p)
            if v is not None:
                weighted += v * (q - p)
                covered += q - p
                held.append(v)
        inside = [v for t, v in pts if lo <= t < hi]
        if not held and not inside:
            continue
        values = held + inside
        mean = weighted / covered if covered else sum(inside) / len(inside)
        out[b] = (mean, min(values), max(values), held[-1] if held else inside[-1], len(inside))
    return out


def check(rows: list[dict], want: dict[int, tuple[float, float, float, float, int]]) -> None:
    got = {int(r["start"]): (r["mean"], r["min"], r["max"], r["last"], r["count"]) for r in rows}
    assert sorted(got) == sorted(want)
    for start, (mean, lo, hi, last, count) in want.items():
        g = got[start]
        assert g[0] == pytest.approx(mean, rel=1e-9, abs=1e-9), start
        assert g[1:] == (lo, hi, last, count), start


def stream(rng: random.Random, start: float, end: float) -> Iterator[tuple[float, float]]:
    """A sensor reporting at irregular times: bursts, silences longer than a bucket."""
    t = start + rng.uniform(0, 30)
    while t < end:
        yield t, round(20 + rng.gauss(0, 3), 1)
        t += rng.choice([rng.uniform(1, 20), rng.uniform(20, 200), rng.uniform(300, 1500)])


def test_compute_buckets_matches_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(20):
        samples = list(stream(rng, T0 - 600, T0 + 3 * 3600))
        breaks = sorted(rng.uniform(T0, T0 + 3 * 3600) for _ in range(rng.randint(0, 4)))
        ts = [round(t * 1e6) for t, _ in samples]
        rows = compute_buckets(
            ts, [v for _, v in samples], [round(b * 1e6) for b in breaks],
            int(T0) * 1_000_000, int(T0 + 3 * 3600) * 1_000_000, 300,
        )
        check([r._asdict() for r in rows], expected(samples, breaks, T0, T0 + 3 * 3600, 300))


def state(entity_id: str, value: str, ts: float, attrs: ReadOnlyDict = UNIT) -> State:
    return State(entity_id, value, attrs, ts, ts)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 - 1)


@pytest.fixture
async def recorder(tmp_path: Path, clock: Clock) -> Iterator[Recorder]:
    rec = Recorder(RecorderSettings.for_config_dir(tmp_path, commit_interval=0), clock=clock)
    rec.start()
    yield rec
    await rec.stop()


async def test_rollups_of_samples_text_states_and_rejected_values(
    recorder: Recorder, clock: Clock
) -> None:
    """Given a temperature reporting irregularly, going unavailable once and sending NaN and
    infinities, the rollups match the independent computation and hold no NaN."""
    rng = random.Random(1)
    end = T0 + 3 * 3600
    samples = list(stream(rng, T0, end))
    outage = (T0 + 4000.5, T0 + 4900.25)  # unavailable, then a value again
    samples = [s for s in samples if not outage[0] <= s[0] <= outage[1]]
    samples.append((outage[1], 18.5))
    feed: list[tuple[float, str]] = [(t, str(v)) for t, v in samples]
    feed += [(outage[0], "unavailable"), (T0 + 100.5, "nan"), (T0 + 200.5, "inf"),
             (T0 + 7000.5, "-inf")]
    for t, text in sorted(feed):
        assert recorder.record_state("sensor.temp", state("sensor.temp", text, t))
    assert await recorder.flush(10)
    clock.now = end + 60
    assert await recorder.run_maintenance(60)

    assert recorder.runtime_stats()["rejected_non_finite"] == 3
    assert all(math.isfinite(v) for _, v in recorder.samples("sensor.temp", T0, end))
    check(
        recorder.rollups("sensor.temp", T0, end, "5minute"),
        expected(samples, [outage[0]], T0, end, 300),
    )
    check(
        recorder.rollups("sensor.temp", T0, end, "hour"),
        expected(samples, [outage[0]], T0, end, 3600),
    )


async def test_late_samples_and_backward_clock_recompute_buckets(
    recorder: Recorder, clock: Clock
) -> None:
    """Given rolled-up hours, a sample that arrives late (inside a finished bucket) and values
    stamped after the clock jumped back an hour recompute exactly the buckets they touch."""
    rng = random.Random(2)
    end = T0 + 4 * 3600
    samples = list(stream(rng, T0, end))
    for t, v in samples:
        recorder.record_state("sensor.temp", state("sensor.temp", str(v), t))
    assert await recorder.flush(10)
    clock.now = end + 60
    assert await recorder.run_maintenance(60)
    check(recorder.rollups("sensor.temp", T0, end, "5minute"), expected(samples, [], T0, end, 300))

    # A late value in the middle of the second hour, and one exactly on a bucket boundary.
    late = [(T0 + 3600 + 1234.5, -5.0), (T0 + 2 * 3600, 40.0)]
    # The clock jumps back an hour: the device stamps values an hour in the past.
    clock.now = end - 3600
    jumped = [(clock.now - 30 + i * 7.25, 30.0 + i) for i in range(5)]
    for t, v in late + jumped:
        recorder.record_state("sensor.temp", state("sensor.temp", str(v), t))
    assert await recorder.flush(10)
    assert await recorder.run_maintenance(60)  # the clock is behind: only recomputation
    everything = sorted(samples + late + jumped)
    check(
        recorder.rollups("sensor.temp", T0, end, "5minute"),
        expected(everything, [], T0, end, 300),
    )
    clock.now = end + 60
    assert await recorder.run_maintenance(60)
    check(recorder.rollups("sensor.temp", T0, end, "hour"), expected(everything, [], T0, end, 3600))


async def test_quiet_entity_is_carried_and_restart_breaks_the_hold(
    tmp_path: Path, recorder: Recorder, clock: Clock
) -> None:
    """Given a value that does not change for an hour, every 5-minute bucket of that hour
    carries it; after the recorder restarts, the old value no longer holds."""
    recorder.record_state("sensor.quiet", state("sensor.quiet", "12.5", T0 + 10))
    assert await recorder.flush(10)
    clock.now = T0 + 3600 + 60
    assert await recorder.run_maintenance(60)
    rows = recorder.rollups("sensor.quiet", T0, T0 + 3600, "5minute")
    assert [r["start"] for r in rows] == [T0 + i * 300 for i in range(12)]
    assert rows[0]["count"] == 1 and rows[0]["duration"] == pytest.approx(290)
    assert all(r["mean"] == 12.5 and r["count"] == 0 and r["duration"] == 300 for r in rows[1:])
    (hour,) = recorder.rollups("sensor.quiet", T0, T0 + 3600, "hour")
    assert hour["mean"] == 12.5 and hour["count"] == 1 and hour["duration"] == pytest.approx(3590)
    await recorder.stop()

    restart = T0 + 3600 + 120
    clock.now = restart
    again = Recorder(recorder.settings, clock=clock)
    again.start()
    try:
        clock.now = T0 + 2 * 3600 + 60
        assert await again.run_maintenance(60)
        rows = again.rollups("sensor.quiet", T0 + 3600, T0 + 2 * 3600, "5minute")
        # The value held until the recorder stopped (T0 + 3660), not through the restart.
        assert [r["start"] for r in rows] == [T0 + 3600]
        assert rows[0]["duration"] == pytest.approx(60)
    finally:
        await again.stop()
