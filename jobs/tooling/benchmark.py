"""Server-side measurements of a model file: size, download size, latency and peak memory.

Peak memory is measured in a fresh Python process: the resident-set high-water mark (``ru_maxrss``) after
creating the session and running it, minus the resident set just before. tracemalloc cannot be used: onnxruntime
allocates in C++, outside Python's allocator. A fresh process is needed because the high-water mark never goes
down, so in a long-lived worker earlier work would hide this model's peak.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from jobs.tooling.common import (
    PathLike,
    is_ort_format,
    load_signature,
    model_input_specs,
    open_session,
    run_session,
)
from jobs.tooling.datasets import cast_feeds
from jobs.tooling.errors import TransformError
from jobs.tooling.inputs import generate_inputs

_CHUNK = 1 << 20
_MEMORY_PROBE = r"""
import json, os, resource, sys
import numpy as np
import onnxruntime as ort

def peak_bytes():
    # ru_maxrss is kilobytes on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

def current_bytes():
    # The resident set now, not its high-water mark: imports may have peaked higher and freed memory since,
    # which would hide a small model's peak. Linux only; elsewhere fall back to the high-water mark.
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_bytes()

args = json.loads(sys.argv[1])
with np.load(args["feeds"], allow_pickle=False) as npz:
    feeds = {name: npz[name] for name in npz.files}
options = ort.SessionOptions()
options.log_severity_level = 3
if args["ort_format"]:
    options.add_session_config_entry("session.load_model_format", "ORT")
before = current_bytes()
session = ort.InferenceSession(args["model"], options, providers=["CPUExecutionProvider"])
for _ in range(args["runs"]):
    session.run(None, feeds)
print(json.dumps({"before": before, "after": peak_bytes()}))
"""


def download_size(path: PathLike, level: int = 6) -> int:
    """Bytes of the gzip stream of the file at ``level``, read in chunks so large models never sit in memory."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip framing, as HTTP delivers it
    total = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


def file_sizes(path: PathLike) -> dict[str, int]:
    return {"size_bytes": Path(path).stat().st_size, "download_bytes": download_size(path)}


def generated_feeds(path: PathLike, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    return generate_inputs(load_signature(path), batch=batch, seed=seed)


def measure_latency(
    path: PathLike, feeds: dict[str, np.ndarray], *, threads: int | None = None, runs: int = 50, warmup: int = 5
) -> dict[str, Any]:
    """Median and p90 milliseconds of ``runs`` runs after ``warmup``; ``threads`` None is onnxruntime's default."""
    session = open_session(path, threads=threads)
    for _ in range(warmup):
        run_session(session, feeds)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        run_session(session, feeds)
        timings.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": float(np.median(timings)),
        "p90_ms": float(np.percentile(timings, 90)),
        "runs": runs,
        "threads": threads or "default",
    }


def paired_latency(
    parent: PathLike,
    variant: PathLike,
    *,
    feeds: dict[str, Any] | None = None,
    runs: int = 99,
    warmup: int = 5,
    rounds: int = 9,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """variant/parent latency at 1 thread, measured in ``rounds`` that alternate the two models, so drifting
    machine load (another job, a browser) weighs on both alike; the order flips every round.

    ``feeds``: the inputs to time (typical sizes, real samples), cast to each model's input types so an fp16-input
    variant is fed fp16; None: generated batch-1 inputs, which say little about a model with dynamic dimensions.
    Returns ``{"ratio": median of the per-round ratios, "ci_low", "ci_high": an interval for that median,
    "confidence": its actual coverage, "rounds", "ratios", "parent_ms", "variant_ms"}``. A ratio below 1 is faster.
    """
    parent_feeds = _cast_to(parent, feeds) if feeds is not None else generated_feeds(parent)
    variant_feeds = _cast_to(variant, feeds) if feeds is not None else generated_feeds(variant)
    # One session each for every round: a fresh session per round would time allocation warm-up, not the model.
    sessions = {"parent": open_session(parent, threads=1), "variant": open_session(variant, threads=1)}
    inputs = {"parent": parent_feeds, "variant": variant_feeds}
    for name, session in sessions.items():
        for _ in range(warmup):
            run_session(session, inputs[name])
    per_round = max(1, runs // rounds)
    medians: dict[str, list[float]] = {"parent": [], "variant": []}
    for index in range(rounds):
        order = ("parent", "variant") if index % 2 == 0 else ("variant", "parent")
        for name in order:
            medians[name].append(_median_ms(sessions[name], inputs[name], per_round))
    ratios = [v / p if p > 0 else 1.0 for p, v in zip(medians["parent"], medians["variant"], strict=True)]
    low, high, coverage = median_interval(ratios, confidence)
    return {
        "ratio": float(np.median(ratios)),
        "ci_low": low,
        "ci_high": high,
        "confidence": coverage,
        "rounds": rounds,
        "ratios": ratios,
        "parent_ms": float(np.median(medians["parent"])),
        "variant_ms": float(np.median(medians["variant"])),
    }


def paired_latency_ratio(
    parent: PathLike,
    variant: PathLike,
    *,
    runs: int = 99,
    warmup: int = 5,
    rounds: int = 9,
    feeds: dict[str, Any] | None = None,
) -> float:
    """``paired_latency``'s median ratio alone (variant/parent), for callers that need no interval."""
    return paired_latency(parent, variant, feeds=feeds, runs=runs, warmup=warmup, rounds=rounds)["ratio"]


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, high, coverage): a distribution-free interval for the median of ``values`` (the sign-test interval:
    order statistics k and n+1-k, with the largest k whose binomial tail stays within (1 - confidence) / 2).

    Order statistics, not a t-interval: one round hit by a load spike widens nothing, and nothing is assumed about
    the shape of the ratios' distribution. With too few values for ``confidence`` it is the full range, and
    ``coverage`` (the interval's exact coverage) says so (5 rounds: 0.9375).
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values to take an interval of")

    def at_most(j: int) -> float:  # P(Binomial(n, 1/2) <= j)
        return sum(math.comb(n, i) for i in range(j + 1)) / 2**n

    k = 1
    while k + 1 <= (n + 1) // 2 and at_most(k) <= (1 - confidence) / 2:
        k += 1
    return float(ordered[k - 1]), float(ordered[n - k]), 1 - 2 * at_most(k - 1)


def _median_ms(session, feeds: dict[str, Any], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        run_session(session, feeds)
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.median(timings))


def _cast_to(path: PathLike, feeds: dict[str, Any]) -> dict[str, Any]:
    """The same values in this model's input types (fp16 for an fp16-input variant); lists go as they are."""
    arrays = {name: value for name, value in feeds.items() if isinstance(value, np.ndarray)}
    return {**feeds, **cast_feeds(arrays, model_input_specs(path))}


def measure_peak_memory(path: PathLike, feeds: dict[str, np.ndarray], *, runs: int = 3, timeout: float = 300) -> int:
    """Bytes the resident set grew by while creating a session and running it ``runs`` times, in a fresh process."""
    with tempfile.TemporaryDirectory() as workdir:
        feeds_path = Path(workdir) / "feeds.npz"
        # String inputs arrive as object arrays, which np.savez could only pickle; unicode arrays need no pickle.
        # allow_pickle=False as the reader above loads them (and so mypy knows no feed name can stand for it).
        arrays = {k: v.astype(str) if v.dtype == object else v for k, v in feeds.items()}
        np.savez(feeds_path, allow_pickle=False, **arrays)
        args = {
            "model": str(Path(path).resolve()),
            "feeds": str(feeds_path),
            "runs": runs,
            "ort_format": is_ort_format(path),
        }
        try:
            completed = subprocess.run(
                [sys.executable, "-c", _MEMORY_PROBE, json.dumps(args)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TransformError(f"measuring memory took longer than {timeout:g} s") from exc
    if completed.returncode != 0:
        raise TransformError(f"the memory probe failed: {completed.stderr.strip()[-500:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return max(0, figures["after"] - figures["before"])


def benchmark(
    path: PathLike,
    *,
    feeds: dict[str, np.ndarray] | None = None,
    runs: int = 50,
    warmup: int = 5,
    memory: bool = True,
) -> dict[str, Any]:
    """Everything the console shows next to a version; generated batch-1 inputs unless ``feeds`` are given."""
    feeds = feeds if feeds is not None else generated_feeds(path)
    figures: dict[str, Any] = file_sizes(path)
    figures["latency_1_thread"] = measure_latency(path, feeds, threads=1, runs=runs, warmup=warmup)
    figures["latency_default_threads"] = measure_latency(path, feeds, runs=runs, warmup=warmup)
    figures["peak_memory_bytes"] = measure_peak_memory(path, feeds) if memory else None
    return figures
