from __future__ import annotations

import gzip

import numpy as np
import pytest

from jobs.tooling.benchmark import (
    benchmark,
    download_size,
    generated_feeds,
    measure_latency,
    median_interval,
    paired_latency,
    paired_latency_ratio,
)
from jobs.tooling.fp16 import convert_fp16


def test_download_size__equals_the_gzip_level_6_size_of_the_whole_file(mlp_path, tmp_path):
    data = mlp_path.read_bytes()
    assert download_size(mlp_path) == len(gzip.compress(data, compresslevel=6, mtime=0))

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 20_000)  # several read chunks
    assert download_size(big) == len(gzip.compress(big.read_bytes(), compresslevel=6, mtime=0))


def test_measure_latency__reports_median_and_p90_of_the_runs(mlp_path):
    figures = measure_latency(mlp_path, generated_feeds(mlp_path, batch=4), threads=1, runs=5, warmup=1)
    assert 0 < figures["median_ms"] <= figures["p90_ms"]
    assert figures["runs"] == 5 and figures["threads"] == 1


def test_benchmark__measures_sizes_latencies_and_peak_memory_in_a_fresh_process(mlp_path):
    figures = benchmark(mlp_path, runs=3, warmup=1)
    assert figures["size_bytes"] == mlp_path.stat().st_size
    assert 0 < figures["download_bytes"]
    assert figures["latency_default_threads"]["threads"] == "default"
    assert figures["peak_memory_bytes"] > 0


def test_median_interval__nine_rounds__leaves_out_the_lowest_and_highest():
    low, high, coverage = median_interval([1.04, 0.97, 1.01, 0.99, 1.2, 1.0, 0.98, 1.02, 1.03])
    assert (low, high) == (0.98, 1.04)  # 0.97 and the 1.2 of a loaded round fall outside
    assert coverage == pytest.approx(1 - 2 * 10 / 512)  # the sign test's exact coverage for n = 9


def test_median_interval__five_rounds__is_the_full_range_and_says_its_lower_coverage():
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0]) == (1.0, 5.0, pytest.approx(0.9375))


def test_paired_latency__alternating_rounds__give_the_median_ratio_with_its_interval(mlp_path):
    figures = paired_latency(mlp_path, mlp_path, runs=18, warmup=1, rounds=9)
    assert figures["rounds"] == 9 and len(figures["ratios"]) == 9
    assert figures["ci_low"] <= figures["ratio"] <= figures["ci_high"]
    assert figures["confidence"] == pytest.approx(0.961, abs=0.001)
    assert figures["parent_ms"] > 0 and figures["variant_ms"] > 0
    assert paired_latency_ratio(mlp_path, mlp_path, runs=9, warmup=1, rounds=9) > 0


def test_paired_latency__explicit_feeds__are_cast_to_an_fp16_variants_inputs(mlp_path, tmp_path):
    half = tmp_path / "half.onnx"
    convert_fp16(mlp_path, half, keep_io_types=False)
    feeds = {"x": np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)}  # a typical batch
    figures = paired_latency(mlp_path, half, feeds=feeds, runs=9, warmup=1, rounds=3)
    assert figures["rounds"] == 3 and figures["ci_low"] == min(figures["ratios"])
