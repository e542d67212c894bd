from __future__ import annotations

import gzip

from jobs.tooling.benchmark import benchmark, download_size, generated_feeds, measure_latency


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
