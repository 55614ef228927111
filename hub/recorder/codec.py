"""Pack raw numeric samples into compressed blocks, and unpack them exactly.

A block holds the samples of one entity over one time span: integer timestamps in microseconds
(non-decreasing) and float64 values. `decode_block(encode_block(ts, vs))` returns the same
integers and the same floats bit for bit (-0.0 included); `block_info` reads only the header.

Format, version 1 (integers little-endian; "varint" is LEB128, "zvarint" a zigzag varint):

    header   u8 version | u8 flags | u8 values | varint count | zvarint first_us | varint span_us
    payload  timestamps section | values section, raw-deflated (zlib level 6) if flags & 1

flags: 1 = payload deflated (only when that is smaller), 2 = timestamps as deltas-of-deltas.
values: high nibble the kind, low nibble the decimal scale d (0..6):
    0 f64     the doubles' bytes in 8 planes
    1 f64xor  each double's bits XOR the previous one's (Gorilla's idea), in 8 planes
    2 decN    value == k / 10**d for an integer |k| < 2**53; the k as deltas
    3 decN    the k as deltas-of-deltas
Timestamps section (count >= 2): the deltas t[i] - t[i-1] as a lane, or zvarint first delta
and the deltas-of-deltas as a lane. Values section, decimal kinds: zvarint k[0], the k like
the timestamps, then varint m, m varint index gaps and m raw doubles: the exceptions, values
that are not k / 10**d (-0.0, 0.1 + 0.2, 1e-9 among tenths), whose k repeats a neighbour's.
A lane holds a list of ints in fixed width w, above an offset o:

    u8 w (0..8) | zvarint o | varint m | m x (varint index gap, zvarint x - o) | w planes

Plane j holds byte j of every x - o, n bytes. The m outliers, items outside [o, o + 256**w)
(a gap of hours, a counter reset, a late sample), are stored apart and their planes hold 0.
Deflate gives each plane a block of its own (Huffman codes fit for it): the random low bytes
stay ~8 bits, the nearly constant high bytes nearly vanish. The encoder picks per block, from
a sample and an entropy estimate: deltas or deltas-of-deltas (for timestamps and for values),
the decimal scale (the smallest that fits, or one with a few exceptions if cheaper, or f64 /
f64xor), each lane's width and offset (the bulk of the items is centred in a run of 256**k
values so that planes k and up are nearly constant), and deflate or not. Decoding runs in C:
zlib, slice assignment, array, itertools.accumulate and map; no Python loop per sample.

Measured with bench/recorder_codec.py: 1-day blocks (8,640 samples at 10 s; timestamps 4 ms
late on average, 5 % up to 1 s, gaps of minutes to hours, same-second pairs), CPython 3.11 on a
shared VM that runs `sum(range(1000))` in 13 µs (about half a desktop's speed):
    bytes per sample  temperature 2.30, humidity 2.34, counter 2.19, binary 2.03, random
                      floats 9.15; 1-hour blocks 0.3 to 0.6 more (temperature 2.7)
    samples per s     encode 1.4 M, decode 7.4 M (best of 20 rounds); 1-hour blocks encode
                      0.56 M (a fixed ~0.4 ms per block), decode 3.5 to 6 M
Timestamps are 2.0 of those bytes: ms jitter at µs resolution is ~15 random bits a sample. On
an exact 10 s grid, temperature takes 0.31 bytes a sample, binary 0.03. Measured too:
  - zigzag varints + zlib in a tight Python loop: 2.52 bytes a sample (deltas) or 2.70
    (dods); encode 2.3 M/s, decode 2.1 M/s: 10-17 % bigger, decoding 3x slower;
  - one deflate block over all planes instead of one per plane: 5 % bigger;
  - lzma instead of zlib: within 1 % at 1 day, 1-5 % smaller at 1 hour, decoding 1.7x slower;
  - timestamps as residuals from a 10 s grid (ideal, known grid): 0.1 bytes a sample smaller.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, filterfalse, repeat
from math import floor, isfinite, log2
from operator import add, gt, lt, mul, ne, sub, truediv
from typing import NamedTuple

__all__ = ["BlockInfo", "block_info", "decode_block", "encode_block"]

VERSION = 1

_DEFLATED = 1
_TS_DOD = 2

_F64 = 0
_F64XOR = 1
_DEC_DELTA = 2
_DEC_DOD = 3
_KIND_NAMES = {_F64: "f64", _F64XOR: "f64xor", _DEC_DELTA: "delta", _DEC_DOD: "dod"}

_MAX_SCALE = 6
_POW = [10.0**d for d in range(_MAX_SCALE + 1)]
_MAX_K = 2**53  # |k| below this: k / 10**d and float(k) are exact
_MAX_TS = 2**60  # deltas-of-deltas of such timestamps, minus an offset, fit in 64 bits
_MAX_COUNT = 2**26  # samples in a block: 21 years at 10 s
_OUTLIER_COST = 9  # bytes an outlier or exception costs, roughly
_DIGIT_COST = 0.42  # bytes one more decimal digit costs per changing value (log2(10) / 8)
_SAMPLE = 512  # items sampled to choose a lane width or a decimal scale
_CHUNK = 64  # lanes are sampled in runs of consecutive items: their deltas are samples too
_C_LOG_C = [0.0] + [c * log2(c) for c in range(1, 2 * _SAMPLE)]  # samples are shorter

_BIG_ENDIAN = sys.byteorder == "big"
_TYPECODE = [""] + ["B", "H", "I", "I", "Q", "Q", "Q", "Q"]  # array typecode holding w bytes
assert [array(code).itemsize for code in "BHIQ"] == [1, 2, 4, 8]


class _Payload(bytearray):
    """A block's payload, with where each byte plane starts and ends: deflate gives every
    plane a block of its own, with its own Huffman codes (a plane of random low bytes and one
    of mostly zeros are best coded apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.cuts: list[int] = []

    def put_plane(self, plane: bytes) -> None:
        self.cuts.append(len(self))
        self += plane
        self.cuts.append(len(self))

    def truncate(self, size: int) -> None:
        del self[size:]
        self.cuts = [cut for cut in self.cuts if cut <= size]

    def deflate(self) -> bytes:
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        parts = []
        start = 0
        with memoryview(self) as view:
            for cut in self.cuts:
                if cut > start:
                    parts.append(deflater.compress(view[start:cut]))
                    parts.append(deflater.flush(zlib.Z_BLOCK))
                    start = cut
            parts.append(deflater.compress(view[start:]))
        parts.append(deflater.flush())
        return b"".join(parts)


class _Plan(NamedTuple):
    """How a lane packs its items: `width` bytes each above `offset`; estimated size."""

    width: int
    offset: int
    lo: int
    hi: int
    cost: float


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """What a block's header says: sample count, first and last timestamp, how it is packed."""

    count: int
    first_us: int
    last_us: int
    scheme: str
    version: int


# --- varints ------------------------------------------------------------------------------


def _put_varint(out: bytearray, x: int) -> None:
    while x > 0x7F:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)


def _put_zvarint(out: bytearray, x: int) -> None:
    _put_varint(out, (x << 1) if x >= 0 else ((-x) << 1) - 1)


def _get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        x |= (byte & 0x7F) << shift
        if byte < 0x80:
            return x, pos
        shift += 7


def _get_zvarint(buf: bytes, pos: int) -> tuple[int, int]:
    x, pos = _get_varint(buf, pos)
    return (x >> 1) if not x & 1 else -((x + 1) >> 1), pos


# --- lanes: lists of ints in fixed width, byte planes, outliers apart ---------------------


def _bits(plane: bytes) -> float:
    """Order-0 entropy of a byte string, in bits: about what deflate makes of it."""
    counts = Counter(plane).values()
    if len(counts) == 1:
        return 0.0
    return _C_LOG_C[len(plane)] - sum(map(_C_LOG_C.__getitem__, counts))


def _chunks(items: list) -> list[list]:
    """About _SAMPLE items of a list, in runs of _CHUNK consecutive ones spread evenly."""
    n = len(items)
    if n < 2 * _SAMPLE:
        return [items]
    runs = _SAMPLE // _CHUNK
    step = (n - _CHUNK) // (runs - 1)
    return [items[i : i + _CHUNK] for i in range(0, step * runs, step)]


def _lane_plan(sample: list[int], n: int, lo: int, hi: int) -> _Plan:
    """Choose the width and offset for a lane of n items in [lo, hi] from a sample of them.

    Returns the plan with the lane's estimated size in bytes.
    """
    if lo == hi:
        return _Plan(0, lo, lo, hi, 0.0)
    scale = n / len(sample)
    if hi - lo < 256:  # the common case: one byte, no outliers
        return _Plan(1, lo, lo, hi, _bits(bytes(map(sub, sample, repeat(lo)))) * scale / 8)
    ordered = sorted(sample)
    middle = ordered[len(ordered) // 2]
    # The bulk (the central 80 %) should sit in the middle of a run of 256**k values that
    # share their high bytes, so that the lane's high byte planes are nearly constant: deflate
    # all but erases those. Plane k and up then tell which run an item is in.
    reach = max(middle - ordered[len(ordered) // 10], ordered[len(ordered) * 9 // 10] - middle)
    run = 256 ** ((reach.bit_length() + 8) // 8)
    candidates = []
    for width in range(1, 9):
        span = 256**width
        offset = max(lo, min(middle - span // 2, hi - span + 1))
        if span > run:  # move the window down, by less than a run, to align the runs
            offset -= (offset - (middle - run // 2)) % run
        top = offset + span - 1
        outliers = len(ordered) - bisect_right(ordered, top) + bisect_left(ordered, offset)
        candidates.append((width, offset, outliers))
        if not outliers:
            break
    # The widest window holds every item: estimate its planes' entropy, and take it for the
    # narrower windows' planes too (their outliers move to the outlier list instead).
    width, offset, _ = candidates[-1]
    packed = array(_TYPECODE[width], map(sub, sample, repeat(offset)))
    raw = packed.tobytes()
    size = packed.itemsize
    plane_bytes = list(accumulate(_bits(raw[j::size]) / 8 for j in range(width)))
    best = _Plan(8, lo, lo, hi, 8.0 * n)
    for width, offset, outliers in candidates:
        cost = (plane_bytes[width - 1] + outliers * _OUTLIER_COST) * scale
        if cost < best.cost:
            best = _Plan(width, offset, lo, hi, cost)
    return best


def _put_lane(out: _Payload, items: list[int], plan: _Plan) -> None:
    width, offset = plan.width, plan.offset
    out.append(width)
    _put_zvarint(out, offset)
    top = offset + (256**width - 1 if width else 0)
    outliers: list[int] = []
    if plan.lo < offset:
        outliers += compress(range(len(items)), map(lt, items, repeat(offset)))
    if plan.hi > top:
        outliers += compress(range(len(items)), map(gt, items, repeat(top)))
        outliers.sort()
    _put_varint(out, len(outliers))
    if outliers:
        items = items.copy()
        last = 0
        for index in outliers:
            _put_varint(out, index - last)
            _put_zvarint(out, items[index] - offset)
            items[index] = offset
            last = index
    if width:
        packed = array(_TYPECODE[width], map(sub, items, repeat(offset)) if offset else items)
        if _BIG_ENDIAN:
            packed.byteswap()
        raw = packed.tobytes()
        size = packed.itemsize
        for j in range(width):
            out.put_plane(raw[j::size])


def _get_lane(buf: bytes, pos: int, n: int) -> tuple[Iterable[int], int]:
    """The n items a `_put_lane` put, and the position after them."""
    width = buf[pos]
    offset, pos = _get_zvarint(buf, pos + 1)
    m, pos = _get_varint(buf, pos)
    outliers = []
    index = 0
    for _ in range(m):
        gap, pos = _get_varint(buf, pos)
        value, pos = _get_zvarint(buf, pos)
        index += gap
        outliers.append((index, offset + value))
    if not width:
        items = [offset] * n
    else:
        if pos + width * n > len(buf):
            raise ValueError("corrupt block: a lane is truncated")
        packed = array(_TYPECODE[width])
        size = packed.itemsize
        if size == 1:
            joined = buf[pos : pos + n]
        else:
            joined = bytearray(n * size)  # the planes above `width` stay zero
            for j in range(width):
                joined[j::size] = buf[pos + j * n : pos + (j + 1) * n]
        pos += width * n
        packed.frombytes(joined)
        if _BIG_ENDIAN:
            packed.byteswap()
        items = map(add, packed, repeat(offset)) if offset else packed
    if outliers:
        items = list(items)
        for index, value in outliers:
            items[index] = value
    return items, pos


def _put_series(out: _Payload, deltas: list[int]) -> bool:
    """Put the deltas of a series, or their deltas (dods) when that looks smaller.

    Returns True for deltas-of-deltas.
    """
    n = len(deltas)
    chunks = _chunks(deltas)
    plan = _lane_plan([x for chunk in chunks for x in chunk], n, min(deltas), max(deltas))
    if n >= 3 and plan.width:
        # Estimate the dods from the sample's runs first: computing them all is often moot.
        sample = [x for chunk in chunks for x in map(sub, chunk[1:], chunk[:-1])]
        if _lane_plan(sample, n - 1, min(sample), max(sample)).cost < plan.cost:
            dods = list(map(sub, deltas[1:], deltas[:-1]))
            lo, hi = min(dods), max(dods)
            dod_sample = [x for chunk in _chunks(dods) for x in chunk]
            dod_plan = _lane_plan(dod_sample, n - 1, lo, hi)
            if dod_plan.cost < plan.cost:
                _put_zvarint(out, deltas[0])
                _put_lane(out, dods, dod_plan)
                return True
    _put_lane(out, deltas, plan)
    return False


def _get_series(
    buf: bytes, pos: int, first: int, n: int, dod: bool
) -> tuple[Iterable[int], int]:
    """The n items a `_put_series` put, given the first one."""
    if n == 1:
        return [first], pos
    if dod:
        first_delta, pos = _get_zvarint(buf, pos)
        dods, pos = _get_lane(buf, pos, n - 2)
        return accumulate(accumulate(dods, initial=first_delta), initial=first), pos
    deltas, pos = _get_lane(buf, pos, n - 1)
    return accumulate(deltas, initial=first), pos


# --- values -------------------------------------------------------------------------------


def _scale(sample: list[float]) -> int:
    """The cheapest decimal scale for (a sample of) the values; -1 when too few fit any."""
    changes = sum(map(ne, sample[1:], sample[:-1]))
    rest = list(filterfalse(float.is_integer, sample))
    hopeless = 0
    counts = [len(rest)]
    for d in range(1, _MAX_SCALE + 1):
        if not rest:
            break
        p = _POW[d]
        limit = _MAX_K / p
        if max(map(abs, rest)) >= limit:
            fitting = [v for v in rest if abs(v) < limit]
            hopeless += len(rest) - len(fitting)
            rest = fitting
        back = map(truediv, map(round, map(mul, rest, repeat(p))), repeat(p))
        rest = list(compress(rest, map(ne, back, rest)))
        counts.append(hopeless + len(rest))
    costs = [changes * _DIGIT_COST * d + count * _OUTLIER_COST for d, count in enumerate(counts)]
    d = costs.index(min(costs))
    return -1 if counts[d] * 4 > len(sample) else d


def _put_decimal(out: _Payload, values: list[float], bits: array, d: int) -> int | None:
    """Put the values as k / 10**d; return the kind, or None when too many do not fit."""
    n = len(values)
    p = _POW[d]
    limit = _MAX_K / p
    work = values
    if max(values) >= limit or min(values) <= -limit:
        work = [v if abs(v) < limit else 0.0 for v in values]  # a misfit, found below
    if d:  # any rounding will do: k is checked below
        ks = list(map(floor, map(add, map(mul, work, repeat(p)), repeat(0.5))))
    else:
        ks = list(map(int, work))
    back = list(map(truediv, ks, repeat(p)))
    misfits: list[int] = []
    # Compare bits, not floats, where it matters: -0.0 == 0.0 but must come back as -0.0.
    if back != values or (0.0 in values and array("d", back).tobytes() != bits.tobytes()):
        back_bits = memoryview(array("d", back)).cast("B").cast("Q")
        misfits = list(compress(range(n), map(ne, back_bits, memoryview(bits).cast("B").cast("Q"))))
        if len(misfits) * 4 > n:
            return None
        misfit_set = set(misfits)
        first_fit = next(i for i in range(n) if i not in misfit_set)
        for i in misfits:  # ascending: ks[i - 1] is already a fitting k
            ks[i] = ks[first_fit] if i < first_fit else ks[i - 1]
    _put_zvarint(out, ks[0])
    kind = _DEC_DELTA
    if n >= 2 and _put_series(out, list(map(sub, ks[1:], ks[:-1]))):
        kind = _DEC_DOD
    _put_varint(out, len(misfits))
    last = 0
    for i in misfits:
        _put_varint(out, i - last)
        last = i
    out += struct.pack(f"<{len(misfits)}d", *[values[i] for i in misfits])
    return kind


def _get_decimal(buf: bytes, pos: int, n: int, d: int, dod: bool) -> tuple[list[float], int]:
    first, pos = _get_zvarint(buf, pos)
    ks, pos = _get_series(buf, pos, first, n, dod)
    values = list(map(truediv, ks, repeat(_POW[d]))) if d else list(map(float, ks))
    m, pos = _get_varint(buf, pos)
    if m:
        index = 0
        indexes = []
        for _ in range(m):
            gap, pos = _get_varint(buf, pos)
            index += gap
            indexes.append(index)
        exact = struct.unpack_from(f"<{m}d", buf, pos)
        pos += 8 * m
        for i, value in zip(indexes, exact, strict=True):
            values[i] = value
    return values, pos


def _put_floats(out: _Payload, bits: array) -> int:
    """Put the doubles' bytes in 8 planes, XORed with the previous double's if that looks
    smaller (slowly changing values share sign, exponent and high mantissa bits); return
    the kind."""
    raw = bits.tobytes()
    if _BIG_ENDIAN:
        swapped = array("d", bits)
        swapped.byteswap()
        raw = swapped.tobytes()
    whole = int.from_bytes(raw, "little")  # every double XOR the one before, at once:
    xored = (whole ^ (whole << 64)).to_bytes(len(raw) + 8, "little")[: len(raw)]
    step = 8 * max(1, len(bits) // _SAMPLE)
    if sum(map(_bits, (xored[j::step] for j in range(8)))) < sum(
        map(_bits, (raw[j::step] for j in range(8)))
    ):
        raw, kind = xored, _F64XOR
    else:
        kind = _F64
    for j in range(8):
        out.put_plane(raw[j::8])
    return kind


def _get_floats(buf: bytes, pos: int, n: int, xor: bool) -> tuple[list[float], int]:
    if pos + 8 * n > len(buf):
        raise ValueError("corrupt block: values are truncated")
    raw = bytearray(8 * n)
    for j in range(8):
        raw[j::8] = buf[pos + j * n : pos + (j + 1) * n]
    pos += 8 * n
    if xor:  # undo: prefix XOR by doubling strides, a few big-int operations
        whole = int.from_bytes(raw, "little")
        mask = (1 << (64 * n)) - 1
        shift = 64
        while shift < 64 * n:
            whole = (whole ^ (whole << shift)) & mask
            shift <<= 1
        raw = whole.to_bytes(8 * n, "little")
    values = array("d", raw)
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tolist(), pos


# --- blocks -------------------------------------------------------------------------------


def encode_block(timestamps_us: Sequence[int], values: Sequence[float]) -> bytes:
    """Pack samples (timestamps in integer microseconds, non-decreasing) into one block."""
    n = len(timestamps_us)
    if n != len(values):
        raise ValueError(f"{n} timestamps but {len(values)} values")
    if not n:
        raise ValueError("a block needs at least one sample")
    if n > _MAX_COUNT:
        raise ValueError(f"a block holds at most {_MAX_COUNT} samples, not {n}")
    try:
        timestamps = array("q", timestamps_us).tolist()  # ints (TypeError otherwise)
    except OverflowError:
        raise ValueError("timestamps must lie within ±2**60 µs") from None
    deltas = list(map(sub, timestamps[1:], timestamps[:-1]))
    if deltas and min(deltas) < 0:
        raise ValueError("timestamps must not decrease")
    if timestamps[0] <= -_MAX_TS or timestamps[-1] >= _MAX_TS:
        raise ValueError(f"timestamps must lie within ±2**60 µs: {timestamps[0]}, {timestamps[-1]}")
    bits = array("d", values)
    if not all(map(isfinite, bits)):
        index, bad = next((i, v) for i, v in enumerate(bits) if not isfinite(v))
        raise ValueError(f"values must be finite numbers, got {bad!r} at index {index}")
    floats = bits.tolist()

    payload = _Payload()
    flags = 0
    if deltas and _put_series(payload, deltas):
        flags |= _TS_DOD
    values_start = len(payload)
    chunks = _chunks(floats)
    d = _scale([v for chunk in chunks for v in chunk])
    kind = None if d < 0 else _put_decimal(payload, floats, bits, d)
    if kind is None and d >= 0 and len(chunks) > 1:  # the sample misled: look at every value
        payload.truncate(values_start)
        d = _scale(floats)
        kind = None if d < 0 else _put_decimal(payload, floats, bits, d)
    if kind is None:
        payload.truncate(values_start)
        d = 0
        kind = _put_floats(payload, bits)

    body = payload.deflate()
    if len(body) < len(payload):
        flags |= _DEFLATED
    else:
        body = payload

    header = bytearray((VERSION, flags, kind << 4 | d))
    _put_varint(header, n)
    _put_zvarint(header, timestamps[0])
    _put_varint(header, timestamps[-1] - timestamps[0])
    return bytes(header + body)


def _read_header(blob: bytes) -> tuple[BlockInfo, int, int, int, int]:
    """The header's BlockInfo, then flags, value kind, decimal scale and the payload's start."""
    try:
        version, flags, value_byte = blob[0], blob[1], blob[2]
        if version != VERSION:
            raise ValueError(f"unknown block version {version} (this codec reads {VERSION})")
        count, pos = _get_varint(blob, 3)
        first, pos = _get_zvarint(blob, pos)
        span, pos = _get_varint(blob, pos)
    except IndexError:
        raise ValueError("corrupt block: the header is truncated") from None
    kind, d = value_byte >> 4, value_byte & 0x0F
    if kind not in _KIND_NAMES or d > _MAX_SCALE or not 1 <= count <= _MAX_COUNT:
        raise ValueError("corrupt block: bad header")
    values = f"dec{d}-{_KIND_NAMES[kind]}" if kind >= _DEC_DELTA else _KIND_NAMES[kind]
    times = "dod" if flags & _TS_DOD else "delta"
    scheme = f"{times}:{values}" + ("+zlib" if flags & _DEFLATED else "")
    info = BlockInfo(count=count, first_us=first, last_us=first + span, scheme=scheme, version=version)
    return info, flags, kind, d, pos


def block_info(blob: bytes) -> BlockInfo:
    """Count, first and last timestamp and packing scheme of a block, from its header alone.

    The scheme reads `<timestamps>:<values>[+zlib]`, e.g. "delta:dec1-delta+zlib": timestamps
    as deltas or deltas-of-deltas ("dod"); values as decimals with d digits after the point
    (themselves as deltas or dods), or as doubles ("f64", "f64xor").
    """
    return _read_header(blob)[0]


def decode_block(blob: bytes) -> tuple[list[int], list[float]]:
    """Unpack a block: the exact timestamps (µs) and values that went into `encode_block`."""
    info, flags, kind, d, pos = _read_header(blob)
    n = info.count
    try:
        payload = zlib.decompress(blob[pos:], -15) if flags & _DEFLATED else blob[pos:]
        times, pos = _get_series(payload, 0, info.first_us, n, bool(flags & _TS_DOD))
        timestamps = list(times)
        if kind >= _DEC_DELTA:
            values, pos = _get_decimal(payload, pos, n, d, kind == _DEC_DOD)
        else:
            values, pos = _get_floats(payload, pos, n, kind == _F64XOR)
    except (IndexError, struct.error, zlib.error) as err:
        raise ValueError(f"corrupt block: {err}") from None
    if pos != len(payload) or timestamps[-1] != info.last_us or len(timestamps) != n:
        raise ValueError("corrupt block: contents do not match the header")
    return timestamps, values
