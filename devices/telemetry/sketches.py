"""Latency sketches kept in the rollups: DDSketch (mergeable, relative-error quantiles), stored compactly.

A rollup row holds one sketch of the latencies it counted; a result merges the rows' sketches, so a p99 over
millions of reports costs one array addition per row, and every quantile is within ``RELATIVE_ACCURACY`` of the
true one. Stored form: the sketch's index mapping (gamma, offset, interpolation), its first bin index and zero
count, then its dense bins as little-endian float64 — the fields of DDSketch's own protobuf, laid out so that
thousands of rows are read with ``numpy.frombuffer`` (parsing the protobuf per row cost most of a results page).
Latencies are never negative, so the sketches have no negative store.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np
from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as SketchMessage
from ddsketch.pb.proto import DDSketchProto

RELATIVE_ACCURACY = 0.01  # 1 %: a p99 of 200 ms is read as 198..202 ms
_HEADER = struct.Struct("<ddiid")  # gamma, index offset, interpolation, first bin index, zero count
_HEADER_WORDS = _HEADER.size // 8  # 4: the bins that follow are aligned as float64


def new_sketch() -> DDSketch:
    return DDSketch(relative_accuracy=RELATIVE_ACCURACY)


def _parts(blob: bytes | memoryview) -> tuple[tuple[float, float, int], int, float, np.ndarray]:
    gamma, index_offset, interpolation, first, zero = _HEADER.unpack_from(blob)
    bins = np.frombuffer(blob, dtype="<f8", offset=_HEADER.size)
    return (gamma, index_offset, interpolation), first, zero, bins


def _sketch(mapping: tuple[float, float, int], first: int, zero: float, bins: np.ndarray) -> DDSketch:
    message = SketchMessage(zeroCount=zero)
    message.mapping.gamma, message.mapping.indexOffset, message.mapping.interpolation = mapping
    message.positiveValues.contiguousBinCounts.extend(bins.tolist())
    message.positiveValues.contiguousBinIndexOffset = first
    return DDSketchProto.from_proto(message)


def load(blob: bytes | memoryview | None) -> DDSketch:
    if not blob:
        return new_sketch()
    return _sketch(*_parts(bytes(blob)))


def dump(sketch: DDSketch) -> bytes:
    message = DDSketchProto.to_proto(sketch)
    if message.negativeValues.contiguousBinCounts or message.negativeValues.binCounts:
        raise ValueError("latency sketches hold no negative values")
    header = _HEADER.pack(
        message.mapping.gamma,
        message.mapping.indexOffset,
        message.mapping.interpolation,
        message.positiveValues.contiguousBinIndexOffset,
        message.zeroCount,
    )
    return header + np.asarray(message.positiveValues.contiguousBinCounts, dtype="<f8").tobytes()


def add(blob: bytes | memoryview | None, values: Iterable[float]) -> bytes:
    """``blob``'s sketch with ``values`` (>= 0) added, serialized."""
    sketch = load(blob)
    for value in values:
        if value < 0:
            raise ValueError(f"latency {value} is negative")
        sketch.add(value)
    return dump(sketch)


def merged(blobs: Iterable[bytes | memoryview | None]) -> DDSketch:
    """The sum of the stored sketches, read as one float64 array: every row's header and bins are found by
    arithmetic on the rows' lengths and the bins added in one ``numpy.bincount`` (a Python loop over thousands
    of rows cost more than the rest of a results page)."""
    stored = [blob for blob in blobs if blob]
    if not stored:
        return new_sketch()
    words = np.frombuffer(b"".join(stored), dtype="<f8")  # the header is 4 float64-sized words
    sizes = np.fromiter(map(len, stored), dtype=np.int64, count=len(stored)) // 8
    starts = np.cumsum(sizes) - sizes
    header = _HEADER_WORDS
    gammas, offsets, zeros = words[starts], words[starts + 1], words[starts + 3]
    interpolations, firsts = (words.view("<i4")[2 * (starts + 2) + i].astype(np.int64) for i in (0, 1))
    if (gammas != gammas[0]).any() or (offsets != offsets[0]).any() or (interpolations != interpolations[0]).any():
        raise ValueError("sketches of different accuracies cannot be merged")
    mapping = (float(gammas[0]), float(offsets[0]), int(interpolations[0]))
    zero = float(sum(zeros.tolist()))
    lengths = sizes - header
    if not lengths.sum():
        return _sketch(mapping, 0, zero, np.zeros(0))
    low, high = int(firsts[lengths > 0].min()), int((firsts + lengths)[lengths > 0].max())
    base = min(low, int(firsts.min()))
    # Word w of a row is its bin w - header, of index first + w - header: counted at first + w - base, so that
    # the row's header words (weighed 0) land just below its bins; the total is cut to the bins' range after.
    weights = words.copy()
    for word in range(header):
        weights[starts + word] = 0.0
    positions = np.arange(len(words)) + np.repeat(firsts - base - starts, sizes)
    total = np.bincount(positions, weights=weights)[header + low - base : header + high - base]
    return _sketch(mapping, low, zero, total)


def quantiles(sketch: DDSketch, qs: Sequence[float]) -> list[float | None]:
    if sketch.count == 0:
        return [None for _ in qs]
    return [sketch.get_quantile_value(q) for q in qs]
