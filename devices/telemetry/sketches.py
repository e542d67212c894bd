"""Latency sketches kept in the rollups: DDSketch (mergeable, relative-error quantiles) stored as its protobuf.

A rollup row holds one sketch of the latencies it counted; a result merges the rows' sketches, so a p99 over
millions of reports costs one merge per row, and every quantile is within ``RELATIVE_ACCURACY`` of the true one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as SketchMessage
from ddsketch.pb.proto import DDSketchProto

RELATIVE_ACCURACY = 0.01  # 1 %: a p99 of 200 ms is read as 198..202 ms


def new_sketch() -> DDSketch:
    return DDSketch(relative_accuracy=RELATIVE_ACCURACY)


def load(blob: bytes | memoryview | None) -> DDSketch:
    if not blob:
        return new_sketch()
    return DDSketchProto.from_proto(SketchMessage.FromString(bytes(blob)))


def dump(sketch: DDSketch) -> bytes:
    return DDSketchProto.to_proto(sketch).SerializeToString()


def add(blob: bytes | memoryview | None, values: Iterable[float]) -> bytes:
    """``blob``'s sketch with ``values`` added, serialized."""
    sketch = load(blob)
    for value in values:
        sketch.add(value)
    return dump(sketch)


def merged(blobs: Iterable[bytes | memoryview | None]) -> DDSketch:
    """The sum of the serialized sketches: their bins added as arrays (thousands of rows merge in milliseconds),
    then one sketch built from the total."""
    parts: list[tuple[int, np.ndarray]] = []
    zero = 0.0
    mapping = None
    slow = new_sketch()
    for blob in blobs:
        if not blob:
            continue
        message = SketchMessage.FromString(bytes(blob))
        if message.negativeValues.contiguousBinCounts or message.negativeValues.binCounts:
            slow.merge(DDSketchProto.from_proto(message))  # latencies are never negative; keep it right anyway
            continue
        mapping = mapping or message.mapping
        zero += message.zeroCount
        bins = message.positiveValues.contiguousBinCounts
        if len(bins):
            parts.append((message.positiveValues.contiguousBinIndexOffset, np.asarray(bins, dtype=float)))
    if mapping is None:
        return slow
    total = SketchMessage(mapping=mapping, zeroCount=zero)
    if parts:
        low = min(start for start, _ in parts)
        counts = np.zeros(max(start + len(bins) for start, bins in parts) - low)
        for start, bins in parts:
            counts[start - low : start - low + len(bins)] += bins
        total.positiveValues.contiguousBinCounts.extend(counts.tolist())
        total.positiveValues.contiguousBinIndexOffset = low
    sketch = DDSketchProto.from_proto(total)
    if slow.count:
        sketch.merge(slow)
    return sketch


def quantiles(sketch: DDSketch, qs: Sequence[float]) -> list[float | None]:
    if sketch.count == 0:
        return [None for _ in qs]
    return [sketch.get_quantile_value(q) for q in qs]
