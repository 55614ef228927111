"""Numeric series: which states are numbers, and how samples become rollup buckets.

Pure functions, no I/O: the writer and the tests both use them.

A value holds from its sample's time until the entity's next record: the next sample, a text
state (`unavailable`, `unknown`, anything non-numeric, or removal), or a restart of the
recorder (the hub did not see the entity meanwhile). A bucket `[start, start + period)` gets:

- mean: time-weighted over the part of the bucket where a value held (Home Assistant's
  statistics use time weighting for measurements), starting from the value carried in from
  before the bucket; if no time was covered (a value followed at once by a text state), the
  plain mean of the bucket's samples;
- min, max: over every value that held in the bucket, the carried-in one included;
- last: the value holding at the end of the bucket's covered time;
- count: the samples whose timestamps fall in the bucket (not the carried-in one);
- duration: the seconds covered.

A bucket where no value held and no sample fell gets no row, so an entity that is unavailable,
removed or not running leaves gaps instead of invented values.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

__all__ = [
    "NUMERIC_DOMAINS",
    "Bucket",
    "combine_buckets",
    "compute_buckets",
    "format_value",
    "merge_points",
    "numeric_candidate",
    "parse_number",
]

# Domains whose state is a number whatever their attributes say.
NUMERIC_DOMAINS: Final = frozenset({"number", "input_number", "counter"})

_INF: Final = float("inf")


class Bucket(NamedTuple):
    start: int  # epoch seconds, aligned to the period
    mean: float
    min: float
    max: float
    last: float
    count: int
    duration: float  # seconds covered


def numeric_candidate(domain: str, attributes: Mapping[str, Any]) -> bool:
    """Whether an entity's states go to `samples` when they parse as numbers.

    Numeric: a `state_class` or `unit_of_measurement` attribute, or a numeric domain. A sensor
    without either (a firmware version "1.10", an id "0042") stays text, so its string is kept
    exactly as it was.
    """
    return (
        "state_class" in attributes
        or "unit_of_measurement" in attributes
        or domain in NUMERIC_DOMAINS
    )


def parse_number(state: str) -> float | None:
    """The state as a float (NaN and infinities included: the caller rejects them), or None."""
    try:
        return float(state)
    except ValueError:
        return None


def format_value(value: float) -> str:
    """A sample as a state string: integral values without ".0" ("20"), others by repr ("21.5").

    The original spelling ("21.50") is not kept: numeric states come back canonical.
    """
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def merge_points(
    *parts: Iterable[tuple[int, float]],
) -> tuple[list[int], list[float]]:
    """Sorted timestamps and values from several sources; on equal timestamps the later source
    wins (blocks first, then the `samples` table, whose rows are newer)."""
    merged: dict[int, float] = {}
    for part in parts:
        merged.update(part)
    ordered = sorted(merged.items())
    return [t for t, _ in ordered], [v for _, v in ordered]


def compute_buckets(
    timestamps: Sequence[int],
    values: Sequence[float],
    breaks: Sequence[int],
    start_us: int,
    end_us: int,
    period: int,
) -> list[Bucket]:
    """Buckets of `period` seconds covering [start_us, end_us) (both aligned to the period).

    `timestamps` (µs, sorted, unique) and `values` are the entity's samples in the range plus,
    if any, the last one before `start_us` (the value carried in). `breaks` (µs, sorted) are the
    times a held value ends without a new sample (text states, recorder restarts).
    """
    period_us = period * 1_000_000
    n = len(timestamps)
    first = bisect_left(timestamps, start_us)
    if first > 0:
        first -= 1  # the carried-in value
    # Per bucket start (µs): [weighted sum, covered µs, min, max, last, count, sum of samples]
    acc: dict[int, list[Any]] = {}
    for i in range(first, n):
        t = timestamps[i]
        if t >= end_us:
            break
        v = values[i]
        nxt = timestamps[i + 1] if i + 1 < n else end_us
        b = bisect_right(breaks, t)
        hold_end = min(nxt, breaks[b] if b < len(breaks) else _INF, end_us)
        if t >= start_us:
            bucket = t - t % period_us
            a = acc.get(bucket)
            if a is None:
                acc[bucket] = [0.0, 0, v, v, v, 1, v]
            else:
                a[2] = min(a[2], v)
                a[3] = max(a[3], v)
                a[4] = v
                a[5] += 1
                a[6] += v
        s = max(start_us, t)
        while s < hold_end:
            bucket = s - s % period_us
            e = bucket + period_us
            e = min(e, hold_end)
            a = acc.get(bucket)
            if a is None:
                acc[bucket] = [v * (e - s), e - s, v, v, v, 0, 0.0]
            else:
                a[0] += v * (e - s)
                a[1] += e - s
                a[2] = min(a[2], v)
                a[3] = max(a[3], v)
                a[4] = v
            s = e
    out = []
    for bucket in sorted(acc):
        wsum, covered, lo, hi, last, count, ssum = acc[bucket]
        mean = wsum / covered if covered else ssum / count
        out.append(Bucket(bucket // 1_000_000, mean, lo, hi, last, count, covered / 1e6))
    return out


def combine_buckets(rows: Iterable[Bucket], period: int) -> list[Bucket]:
    """Coarser buckets from finer ones (hours from 5-minute rows), exactly: means weighted by
    the covered duration, counts and durations summed. `rows` sorted by start."""
    groups: dict[int, list[Bucket]] = {}
    for row in rows:
        groups.setdefault(row.start - row.start % period, []).append(row)
    out = []
    for start, group in groups.items():
        duration = sum(r.duration for r in group)
        count = sum(r.count for r in group)
        if duration:
            mean = sum(r.mean * r.duration for r in group) / duration
        else:
            mean = sum(r.mean for r in group) / len(group)
        out.append(
            Bucket(
                start,
                mean,
                min(r.min for r in group),
                max(r.max for r in group),
                group[-1].last,
                count,
                duration,
            )
        )
    return out
