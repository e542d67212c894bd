"""Latency sketches kept in the rollups: DDSketch (mergeable, relative-error quantiles) stored as its protobuf.

A rollup row holds one sketch of the latencies it counted; a result merges the rows' sketches, so a p99 over
millions of reports costs one merge per row, and every quantile is within ``RELATIVE_ACCURACY`` of the true one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
    total = new_sketch()
    for blob in blobs:
        if blob:
            total.merge(load(blob))
    return total


def quantiles(sketch: DDSketch, qs: Sequence[float]) -> list[float | None]:
    if sketch.count == 0:
        return [None for _ in qs]
    return [sketch.get_quantile_value(q) for q in qs]
