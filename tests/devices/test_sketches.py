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
