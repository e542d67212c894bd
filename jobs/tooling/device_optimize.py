"""Optimize a model for one device type: try the candidate transforms, verify and measure each, and choose.

Pure tooling over files (no Django): the optimize-for-device job calls ``optimize_for_profile`` and registers the
chosen variant; ``bench/optimize.py`` calls the same function, so the figures it prints are the job's decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import compat
from .benchmark import benchmark, paired_latency
from .candidates import candidate_transforms, is_lossy
from .choose import choose_variant
from .errors import TransformError
from .evaluate import evaluate, verify_variant
from .inspect import inspect_model
from .modelfile import ModelFileError, load_model
from .transforms import Transform, get_transform

LATENCY_RUNS = 50


def measure(path: Path, data_path: Path | None, has_labels: bool, runs: int = LATENCY_RUNS, feeds=None) -> dict:
    """Size, download size, latency, memory, and accuracy when a labeled dataset is at hand."""
    figures = benchmark(path, runs=runs, feeds=feeds)
    if data_path is not None and has_labels:
        figures["evaluation"] = evaluate(path, data_path)
    return figures


def summarize(parent: dict, child: dict, verification: dict, paired: dict | None = None) -> dict:
    """The figures a person compares: ratios variant/parent (latency with its interval from the alternating
    rounds), fidelity in the output's own metric, and accuracy delta in points."""
    latency_ratio = paired["ratio"] if paired else None

    def ratio(key: str, sub: str | None = None) -> float | None:
        a = parent[key][sub] if sub else parent[key]
        b = child[key][sub] if sub else child[key]
        return round(b / a, 4) if a and b is not None else None

    summary = {
        "size_ratio": ratio("size_bytes"),
        "download_size_ratio": ratio("download_bytes"),
        # Paired (alternating) measurement when available: separate runs drift with machine load.
        "latency_ratio": round(latency_ratio, 4) if latency_ratio else ratio("latency_1_thread", "median_ms"),
        "latency_ratio_default_threads": ratio("latency_default_threads", "median_ms"),
        "latency_ci": [paired["ci_low"], paired["ci_high"]] if paired else None,
        "fidelity_metric": verification.get("primary_metric"),
        "fidelity": verification.get("primary_value"),
        "fidelity_units": verification.get("primary_units"),
        "inputs_source": verification.get("inputs_source"),
        "top1_agreement": verification.get("top1_agreement"),
        "max_abs_diff": verification.get("max_abs_diff"),
        "mean_abs_diff": verification.get("mean_abs_diff"),
    }
    parent_eval, child_eval = parent.get("evaluation"), child.get("evaluation")
    if parent_eval and child_eval and "accuracy" in parent_eval:
        summary["accuracy"] = child_eval["accuracy"]
        summary["accuracy_delta_points"] = round(100 * (child_eval["accuracy"] - parent_eval["accuracy"]), 3)
    elif parent_eval and child_eval and "mae" in parent_eval:
        summary["mae"] = child_eval["mae"]
        summary["mae_delta"] = child_eval["mae"] - parent_eval["mae"]
    return summary


def make_variant(
    transform_name: str,
    params: dict,
    parent_path: Path,
    data_path: Path | None,
    workdir: Path,
    budget_points: float | None = None,
    metrics: dict[str, str] | None = None,
    source_path: Path | None = None,
):
    """Run one transform and verify the result against its parent (``metrics``: a fidelity metric chosen per
    output name, else inferred from each output). ``source_path``: the file the transform runs on when it is not
    the parent (a rewrite of it); the result is still verified against the parent. Raises TransformError."""
    transform = get_transform(transform_name)
    params = {k: v for k, v in params.items() if k != "dataset"}  # datasets come from the console, never a path
    if transform.needs_dataset:
        if data_path is None:
            raise TransformError(f"{transform_name} needs a calibration dataset: attach one to the model and pick it")
        params["dataset"] = str(data_path)
    cleaned = transform.clean(params)
    out = workdir / f"{transform_name}-{len(list(workdir.iterdir()))}{transform.suffix}"
    report = transform.function(source_path or parent_path, out, **cleaned)
    verification = verify_variant(parent_path, out, data_path, budget_points=budget_points, metrics=metrics)
    if not verification["verified"]:
        raise TransformError(f"the {transform_name} variant does not agree with its parent: {verification['reason']}")
    public_params = {k: v for k, v in cleaned.items() if k not in ("dataset", "profile")}
    return out, report, verification, public_params, transform


def own_output_error(transform_name: str, exc: Exception) -> str:
    """A variant the console's own loader refuses is the console's problem, never the user's model's."""
    return (
        f"the console's {transform_name} produced a file its own checks refuse ({exc}); this is a problem of the "
        "console's making, not of your model"
    )


def own_transform_error(transform_name: str, exc: Exception) -> str:
    """A library failing inside one of the console's transforms: that candidate is refused, the others go on."""
    return (
        f"the console's {transform_name} failed ({type(exc).__name__}: {exc}); this is a problem of the console's "
        "making, not of your model, and the other candidates were still tried"
    )


@dataclass
class Made:
    """A verified candidate's file and what was learned making it, kept for the chosen one's registration."""

    out: Path
    transform_name: str
    params: dict
    figures: dict
    verification: dict
    report: Any
    transform: Transform
    paired: dict


@dataclass
class DeviceOptimization:
    parent_figures: dict
    baseline: dict  # the parent's row
    rows: list[dict] = field(default_factory=list)  # one per candidate, with its "decision"
    decision: dict = field(default_factory=dict)  # choose_variant's answer
    made: dict[str, Made] = field(default_factory=dict)  # by row name, the candidates that were measured

    @property
    def chosen(self) -> Made | None:
        return self.made.get(self.decision.get("choice") or "")

    @property
    def chosen_row(self) -> dict | None:
        return next((row for row in self.rows if row["decision"] == "chosen"), None)


def optimize_for_profile(
    parent_path: Path,
    profile: dict,
    facts: dict,
    *,
    workdir: Path,
    data_path: Path | None = None,
    has_labels: bool = False,
    has_samples: bool = False,
    feeds: dict | None = None,
    objective: str = "size",
    budget_points: float = 1.0,
    accept_unverified: bool = False,
    metrics: dict[str, str] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> DeviceOptimization:
    """Measure the parent, try every candidate for ``profile``, and choose (see ``choose.choose_variant``).

    ``data_path``: the dataset or sample inputs fidelity is measured on (labeled when ``has_labels``), None for
    generated inputs; ``feeds``: the inputs latency is timed on (typical sizes, real samples). Raises
    TransformError when the parent itself cannot be measured.
    """
    say = progress or (lambda _pct, _msg: None)
    say(5, "measuring the parent as the baseline")
    parent_figures = measure(parent_path, data_path, has_labels, feeds=feeds)
    size = parent_path.stat().st_size
    result = DeviceOptimization(parent_figures, candidate_row("parent", parent_figures, None, profile, facts, size))
    candidates = candidate_transforms(
        profile, facts, has_dataset=data_path is not None and not has_samples, has_samples=has_samples
    )
    if not result.baseline["runnable_on_device"]:
        # The rewrites that make it runnable come first: without them nothing else can reach the device.
        candidates.insert(0, ("make_runnable", {"profile": profile}))
    runnable_base: Path | None = None  # the made-runnable rewrite, once it runs on the device type
    for index, (name, params) in enumerate(candidates):
        label = candidate_label(name, params)
        if runnable_base is not None:
            label = f"make_runnable + {label}"
        say(10 + int(75 * index / len(candidates)), f"trying {label}")
        try:
            out, report, verification, cleaned, transform = make_variant(
                name, params, parent_path, data_path, workdir, budget_points, metrics, source_path=runnable_base
            )
            figures = measure(out, data_path, has_labels, feeds=feeds)
            paired = paired_latency(parent_path, out, feeds=feeds)
        except TransformError as exc:
            result.rows.append({"name": label, "transform": name, "params": cleaned_params(params), "error": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - a library failing inside one candidate must not end the job
            error = own_transform_error(name, exc)
            result.rows.append({"name": label, "transform": name, "params": cleaned_params(params), "error": error})
            continue
        try:
            variant_facts = inspect_model(load_model(out)) if transform.suffix == ".onnx" else facts
        except ModelFileError as exc:
            error = own_output_error(name, exc)
            result.rows.append({"name": label, "transform": name, "params": cleaned, "error": error})
            continue
        if runnable_base is not None:
            # The version's lineage says what its file was made from: the parent's runnable rewrite, not the parent
            # (its transform stays the one applied last, which says whether it is lossy).
            cleaned = {**cleaned, "built_on": f"make_runnable(for {profile.get('slug')})"}
            if hasattr(report, "log"):
                report.log.insert(0, f"built on make_runnable(for {profile.get('slug')})'s rewrite of the parent")
                report.details["built_on"] = "make_runnable"
        row = candidate_row(label, figures, verification, profile, variant_facts, figures["size_bytes"])
        if name == "make_runnable" and row["runnable_on_device"] and transform.suffix == ".onnx":
            # The parent cannot run there, so the other candidates are built on the rewrite that can (quantizing
            # the parent would keep what stops it: an IR version, an operator the package lacks), and are still
            # verified and timed against the parent.
            runnable_base = out
        # The chooser compares latencies: the side-by-side ratio against the parent, with its interval.
        row["latency_ms"] = result.baseline["latency_ms"] * paired["ratio"]
        row.update(
            {
                "transform": name,
                "params": cleaned,
                "lossy": is_lossy(name, cleaned),
                "latency_ratio": paired["ratio"],
                "latency_ci": [paired["ci_low"], paired["ci_high"]],
                "paired_parent_ms": paired["parent_ms"],
                "vs_parent": summarize(parent_figures, figures, verification, paired),
            }
        )
        result.rows.append(row)
        result.made[label] = Made(out, name, cleaned, figures, verification, report, transform, paired)
    measured = [row for row in result.rows if "error" not in row]
    result.decision = choose_variant(
        result.baseline,
        measured,
        objective=objective,
        budget_points=budget_points,
        accept_unverified=accept_unverified,
    )
    for row in result.rows:
        row["decision"] = (
            "chosen"
            if row["name"] == result.decision["choice"]
            else result.decision["reasons"].get(row["name"], row.get("error", ""))
        )
    return result


def candidate_label(name: str, params: dict) -> str:
    shown = cleaned_params(params)
    if name == "make_runnable":
        return f"make_runnable(for {params['profile']['slug']})"
    return f"{name}({', '.join(f'{k}={v}' for k, v in shown.items())})"


def cleaned_params(params: dict) -> dict:
    """Parameters as people see them: a device profile is named by its slug elsewhere, not spelled out."""
    return {k: v for k, v in params.items() if k not in ("profile", "dataset")}


def candidate_row(name, figures, verification, profile, facts, size_bytes) -> dict:
    runnable, reasons = compat.check_device(facts, size_bytes, profile) if facts else (True, [])
    evaluation = figures.get("evaluation") or {}
    verification = verification or {}
    return {
        "name": name,
        "size_bytes": figures["size_bytes"],
        "download_size_bytes": figures["download_bytes"],
        "latency_ms": figures["latency_1_thread"]["median_ms"],
        "latency_p90_ms": figures["latency_1_thread"]["p90_ms"],
        "accuracy": evaluation.get("accuracy"),
        "agreement": verification.get("top1_agreement"),
        "fidelity_metric": verification.get("primary_metric"),
        "fidelity": verification.get("primary_value"),
        "fidelity_units": verification.get("primary_units"),
        "inputs_source": verification.get("inputs_source"),
        "runnable_on_device": runnable,
        "device_reasons": reasons,
    }
