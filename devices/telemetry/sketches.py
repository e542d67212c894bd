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
    """The sum of the stored sketches: every row's bins placed by index and added in one ``numpy.bincount``
    (a Python loop over thousands of rows cost more than the rest of a results page)."""
    stored = [bytes(blob) for blob in blobs if blob]
    if not stored:
        return new_sketch()
    headers = [_HEADER.unpack_from(blob) for blob in stored]
    mappings = {header[:3] for header in headers}
    if len(mappings) > 1:
        raise ValueError("sketches of different accuracies cannot be merged")
    mapping = next(iter(mappings))
    zero = sum(header[4] for header in headers)
    lengths = np.fromiter(((len(blob) - _HEADER.size) // 8 for blob in stored), dtype=np.int64, count=len(stored))
    if not lengths.sum():
        return _sketch(mapping, 0, zero, np.zeros(0))
    firsts = np.fromiter((header[3] for header in headers), dtype=np.int64, count=len(stored))
    low = int(firsts[lengths > 0].min())
    bins = np.frombuffer(b"".join(memoryview(blob)[_HEADER.size :] for blob in stored), dtype="<f8")
    # Bin j of a row whose first index is f sits at f + j - low in the total.
    starts = np.cumsum(lengths) - lengths
    positions = np.arange(len(bins)) + np.repeat(firsts - low - starts, lengths)
    return _sketch(mapping, low, zero, np.bincount(positions, weights=bins))


def quantiles(sketch: DDSketch, qs: Sequence[float]) -> list[float | None]:
    if sketch.count == 0:
        return [None for _ in qs]
    return [sketch.get_quantile_value(q) for q in qs]
