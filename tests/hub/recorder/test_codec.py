"""The recorder packs old samples into compact blocks and gets back exactly what went in.

Given a sensor's samples (timestamps in µs, float values), a block holds them in a few bytes
each, and decoding returns the same integers and the same floats bit for bit.
"""

from __future__ import annotations

import math
import random
import struct

import pytest

from bench.recorder_codec import (
    DAY,
    binary,
    counter,
    humidity,
    random_floats,
    temperature,
    timestamps,
)
from hub.recorder.codec import BlockInfo, block_info, decode_block, encode_block

HOUR = 360  # samples in an hour at 10 s
T0 = 1_700_000_000_000_000  # 2023-11-14, in µs


def bits(values: list[float]) -> list[bytes]:
    """Floats as their 8 bytes: -0.0 and 0.0 differ, as they must."""
    return [struct.pack("<d", v) for v in values]


def round_trip(ts: list[int], vs: list[float]) -> bytes:
    """Encode, decode, and check that exactly the same samples come back."""
    blob = encode_block(ts, vs)
    got_ts, got_vs = decode_block(blob)
    assert got_ts == ts
    assert bits(got_vs) == bits(vs)
    assert all(type(v) is float for v in got_vs)
    info = block_info(blob)
    assert (info.count, info.first_us, info.last_us) == (len(ts), ts[0], ts[-1])
    return blob


def humidity_whole(rng: random.Random, n: int) -> list[float]:
    return humidity(rng, n, digits=0)


STREAMS = {
    "temperature": (temperature, "dec1"),
    "humidity": (humidity, "dec1"),
    "humidity_whole": (humidity_whole, "dec0"),
    "counter": (counter, "dec3"),
    "binary": (binary, "dec0"),
    "random_float": (random_floats, "f64"),
}


# --- each kind of stream comes back exactly -----------------------------------------------


@pytest.mark.parametrize("n", [HOUR, DAY])
@pytest.mark.parametrize("kind", STREAMS)
def test_a_sensor_stream_comes_back_exactly(kind: str, n: int) -> None:
    make_values, scheme = STREAMS[kind]
    for seed in range(3):
        rng = random.Random(seed)
        blob = round_trip(timestamps(rng, n), make_values(rng, n))
        # Decimal streams are stored as scaled integers; arbitrary floats as doubles.
        assert block_info(blob).scheme.split(":")[1].startswith(scheme)


def test_mixed_streams_of_any_length_come_back_exactly() -> None:
    """Seeded random blocks: lengths around the sampling thresholds, every kind of value."""
    rng = random.Random(2024)
    specials = [0.0, -0.0, 1e-9, 0.1 + 0.2, 12345678.9, -273.15, 5e-324, 2.0**53, -1e22]
    specials += [1.7976931348623157e308, -1.7976931348623157e308, 9.999999, 123.456789]
    for _ in range(120):
        n = rng.choice([1, 2, 3, 4, 7, 64, 65, 500, 1023, 1024, 1025, 2047, 2048, 3000])
        kind = rng.randrange(6)
        if kind == 0:
            vs = [rng.choice(specials) for _ in range(n)]
        elif kind == 1:
            vs = [round(rng.uniform(-1e4, 1e4), rng.randint(0, 6)) for _ in range(n)]
        elif kind == 2:  # a decimal stream with an odd value now and then
            vs = [rng.choice(specials) if rng.random() < 0.05 else v for v in temperature(rng, n)]
        elif kind == 3:
            vs = [float(rng.randint(-(2**60), 2**60)) for _ in range(n)]
        elif kind == 4:  # any bit pattern that is a finite double
            vs = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(n)]
            vs = [v if math.isfinite(v) else 1.0 for v in vs]
        else:
            vs = [rng.choice([1, 2, 3]) * 10.0 ** rng.randint(-8, 8) for _ in range(n)]
        start = rng.randint(-(2**50), 2**50)
        ts = rng.choice(
            [
                timestamps(rng, n),
                sorted(rng.randint(-(2**59), 2**59) for _ in range(n)),
                [start + i * 10_000_000 for i in range(n)],
                [start] * n,
            ]
        )
        round_trip(ts, vs)


# --- edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [21.3, 0.0, -0.0, 1e-9, 0.1 + 0.2, 5e-324, -1.7976931348623157e308, -12345678.9]
)
def test_a_single_sample_is_a_block(value: float) -> None:
    info = block_info(round_trip([T0], [value]))
    assert (info.count, info.first_us, info.last_us, info.version) == (1, T0, T0, 1)


def test_samples_in_the_same_microsecond() -> None:
    round_trip([T0] * 100, [float(i % 2) for i in range(100)])
    round_trip([T0, T0, T0 + 1, T0 + 1, T0 + 1, T0 + 10_000_000], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


def test_large_gaps_and_timestamps_far_from_now() -> None:
    year = 365 * 24 * 3600 * 10**6
    gaps = [0, 10_000_000, 3600 * 10**6, 10_000_000, year, 1, 10_000_000, 7 * year]
    ts = [T0 + sum(gaps[: i + 1]) for i in range(len(gaps))]
    round_trip(ts, [20.0 + i / 10 for i in range(len(ts))])
    before_1970 = [-(2**59), -(10**15), -1, 0, 1, 2**59]
    round_trip(before_1970, [1.5] * len(before_1970))


def test_negative_values() -> None:
    rng = random.Random(5)
    frost = [round(-5 + rng.gauss(0, 2), 1) for _ in range(DAY)]
    blob = round_trip(timestamps(rng, DAY), frost)
    assert block_info(blob).scheme.split(":")[1].startswith("dec1")
    round_trip(list(range(T0, T0 + 50)), [-rng.random() * 10 ** rng.randint(-5, 5) for _ in range(50)])


def test_negative_zero_keeps_its_sign() -> None:
    ts = [T0 + i * 10_000_000 for i in range(8)]
    round_trip(ts, [0.0, -0.0, 0.1, -0.0, 0.0, -0.1, -0.0, 0.0])
    round_trip(ts, [-0.0] * 8)
    _, (value,) = decode_block(encode_block([T0], [-0.0]))
    assert math.copysign(1.0, value) == -1.0


def test_odd_values_in_a_decimal_stream_stay_exact_and_cheap() -> None:
    rng = random.Random(7)
    ts, vs = timestamps(rng, DAY), temperature(rng, DAY)
    plain = len(encode_block(ts, vs))
    odd = vs.copy()
    for i, value in zip(range(100, DAY, 900), [0.1 + 0.2, 1e-9, 21.35, -0.0, 1e300, 2.0**60]):
        odd[i] = value
    blob = round_trip(ts, odd)
    # The block stays decimal; each odd value costs a few bytes, not the whole block.
    assert block_info(blob).scheme.split(":")[1].startswith("dec1")
    assert len(blob) < plain + 6 * 12


def test_mostly_odd_values_fall_back_to_doubles() -> None:
    rng = random.Random(8)
    ts = timestamps(rng, 1000)
    vs = [rng.random() if i % 2 else round(rng.uniform(0, 30), 1) for i in range(1000)]
    blob = round_trip(ts, vs)
    assert block_info(blob).scheme.split(":")[1] in ("f64", "f64+zlib", "f64xor", "f64xor+zlib")


def test_a_slowly_changing_float_stream_round_trips() -> None:
    """Doubles that share sign, exponent and top bits (the XOR variant's case)."""
    ts = [T0 + i * 10_000_000 for i in range(2000)]
    round_trip(ts, [1000.0 + math.sin(i / 100) * 1e-3 for i in range(2000)])


def test_integer_values_come_back_as_floats() -> None:
    _, vs = decode_block(encode_block([T0, T0 + 1], [1, True]))
    assert vs == [1.0, 1.0]
    assert all(type(v) is float for v in vs)


def test_encoding_is_deterministic() -> None:
    rng = random.Random(3)
    ts, vs = timestamps(rng, HOUR), counter(rng, HOUR)
    assert encode_block(ts, vs) == encode_block(list(ts), list(vs))


# --- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "bound"), [(HOUR, 3.2), (DAY, 2.6)])
def test_a_temperature_block_takes_under_4_bytes_a_sample(n: int, bound: float) -> None:
    """Measured: about 2.7 (1 hour) and 2.3 (1 day) bytes per sample; timestamps jitter by
    milliseconds, which alone costs about 2 bytes a sample."""
    for seed in range(3):
        rng = random.Random(seed)
        blob = encode_block(timestamps(rng, n), temperature(rng, n))
        assert len(blob) / n <= bound


@pytest.mark.parametrize("kind", ["humidity", "humidity_whole", "counter", "binary"])
def test_other_sensor_streams_take_under_4_bytes_a_sample(kind: str) -> None:
    make_values, _ = STREAMS[kind]
    rng = random.Random(11)
    assert len(encode_block(timestamps(rng, DAY), make_values(rng, DAY))) / DAY <= 2.6


def test_samples_on_an_exact_grid_cost_little_more_than_their_values() -> None:
    rng = random.Random(12)
    grid = [T0 + i * 10_000_000 for i in range(DAY)]
    assert len(encode_block(grid, temperature(rng, DAY))) / DAY <= 0.5
    assert len(encode_block(grid, binary(rng, DAY))) / DAY <= 0.1


# --- block_info reads the header only -----------------------------------------------------


def _parses(prefix: bytes) -> bool:
    try:
        block_info(prefix)
    except ValueError:
        return False
    return True


def test_block_info_reads_only_the_header() -> None:
    rng = random.Random(4)
    ts, vs = timestamps(rng, DAY), temperature(rng, DAY)
    blob = encode_block(ts, vs)
    # The header is a few bytes: version, flags, values byte, count, first and span varints.
    header_size = next(size for size in range(len(blob)) if _parses(blob[:size]))
    assert header_size <= 24
    header_only = blob[:header_size]
    info = block_info(header_only)
    assert info == BlockInfo(
        count=DAY, first_us=ts[0], last_us=ts[-1], scheme=info.scheme, version=1
    )
    assert info.scheme == "delta:dec1-delta+zlib"
    with pytest.raises(ValueError, match="corrupt"):
        decode_block(header_only)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "vs", "message"),
    [
        ([], [], "at least one sample"),
        ([T0, T0 + 1], [1.0], "2 timestamps but 1 values"),
        ([T0], [1.0, 2.0], "1 timestamps but 2 values"),
        ([T0, T0 + 10, T0 + 9], [1.0, 2.0, 3.0], "must not decrease"),
        ([T0, T0 + 1], [1.0, math.nan], "finite.*nan.*index 1"),
        ([T0], [math.inf], "finite.*inf"),
        ([T0], [-math.inf], "finite.*-inf"),
        ([2**61], [1.0], "2\\*\\*60"),
        ([2**64], [1.0], "2\\*\\*60"),
    ],
)
def test_bad_samples_are_refused(ts: list[int], vs: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_block(ts, vs)


def test_timestamps_must_be_integers() -> None:
    with pytest.raises(TypeError):
        encode_block([1.5], [1.0])


def test_corrupt_blocks_are_refused() -> None:
    blob = encode_block([T0 + i for i in range(100)], [i / 10 for i in range(100)])
    with pytest.raises(ValueError, match="version 9"):
        decode_block(bytes([9]) + blob[1:])
    with pytest.raises(ValueError, match="version 9"):
        block_info(bytes([9]) + blob[1:])
    for cut in (0, 2, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ValueError, match="corrupt"):
            decode_block(blob[:cut])
    with pytest.raises(ValueError, match="corrupt"):
        decode_block(blob + b"\x00")
