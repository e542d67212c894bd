"""Latency sketches: merging serialized rows gives the sketch of all their values, quantiles within 1 %."""

from __future__ import annotations

import numpy as np
import pytest

from devices.telemetry import sketches


def test_merged__equals_one_sketch_of_every_value_and_reads_quantiles_within_relative_accuracy():
    rng = np.random.default_rng(5)
    parts = [rng.lognormal(3, 0.6, int(n)) for n in rng.integers(1, 400, 300)]
    merged = sketches.merged([sketches.add(None, part) for part in parts] + [b"", None])
    values = np.concatenate(parts)
    whole = sketches.load(sketches.add(None, values))
    qs = [0.01, 0.5, 0.9, 0.99]
    assert merged.count == len(values)
    assert sketches.quantiles(merged, qs) == pytest.approx(sketches.quantiles(whole, qs))
    for got, exact in zip(sketches.quantiles(merged, qs), np.quantile(values, qs, method="lower"), strict=True):
        assert abs(got - exact) <= sketches.RELATIVE_ACCURACY * exact * 1.01


def test_merged__of_nothing__has_no_quantiles():
    assert sketches.quantiles(sketches.merged([]), [0.5]) == [None]


def test_merged__rows_of_zeros_or_of_one_far_value_count_like_any_other():
    # A row holding only zero latencies has no bins; rows far apart leave empty bins between them.
    rows = [[0.0, 0.0], [0.002], [], [40.0, 41.0], [90_000.0]]
    merged = sketches.merged([sketches.add(None, row) for row in rows])
    whole = sketches.load(sketches.add(None, [value for row in rows for value in row]))
    assert merged.count == whole.count == 6
    qs = [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]
    assert sketches.quantiles(merged, qs) == sketches.quantiles(whole, qs)


def test_merged__refuses_sketches_of_another_accuracy():
    other = sketches.dump(sketches.DDSketch(relative_accuracy=0.05))
    coarse = sketches.load(other)
    coarse.add(10.0)
    with pytest.raises(ValueError, match="different accuracies"):
        sketches.merged([sketches.add(None, [10.0]), sketches.dump(coarse)])
