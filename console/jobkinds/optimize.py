"""Optimization jobs: one transform of a version, or the best variant for a device type.

Each produced variant becomes a child version (lineage: parent + transform +
parameters), benchmarked next to its parent in the same process, and then
compatibility-checked like any upload.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from django.core.files import File
from django.db import transaction

from jobs.files import local_path
from jobs.registry import QUEUE_HEAVY, JobKind, PermanentJobError, register
from jobs.tooling import compat
from jobs.tooling.benchmark import benchmark, paired_latency
from jobs.tooling.candidates import candidate_transforms, is_lossy
from jobs.tooling.choose import choose_variant
from jobs.tooling.datasets import DatasetError
from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import evaluate, verify_variant
from jobs.tooling.inputs import InputsNotGenerated, InputsTooLarge
from jobs.tooling.inspect import inspect_model
from jobs.tooling.modelfile import ModelFileError, load_model
from jobs.tooling.transforms import get_transform

LATENCY_RUNS = 50


def _load_parent(job):
    from console.models import ModelVersion

    parent = ModelVersion.objects.select_related("model__project").get(pk=job.input_version_id)
    if not parent.is_servable:
        raise PermanentJobError(f"{parent} is {parent.state}; only a checked (ready) version can be optimized")
    return parent


def _load_dataset(job, parent):
    dataset_id = job.params.get("dataset")
    if not dataset_id:
        return None
    dataset = parent.model.datasets.filter(pk=dataset_id).first()
    if dataset is None:
        raise PermanentJobError(f"dataset {dataset_id} is not attached to {parent.model.name}")
    return dataset


@contextlib.contextmanager
def _dataset_path(dataset):
    if dataset is None:
        yield None
    else:
        with local_path(dataset.file, suffix=f".{dataset.format}") as path:
            yield path


@contextlib.contextmanager
def _measurement_inputs(parent, dataset):
    """What a job measures on: ``(data_path, has_labels, latency_feeds, note)``.

    Fidelity is measured on the picked dataset, else on the model's sample inputs (real tensors, no labels needed),
    else on generated inputs; latency on the sample inputs or generated inputs at the model's typical sizes. The
    note says, in the job's result, when figures come from generated inputs and how to attach real ones.
    """
    from console.catalog import samples

    model = parent.model
    note = samples.inputs_note(model, samples.recorded_input_specs(parent), where="in this job")
    try:
        feeds, _source = samples.representative_inputs(parent)
    except (DatasetError, InputsTooLarge, InputsNotGenerated) as exc:
        feeds, note = None, f"{note} Latency on generated batch-1 inputs: {exc}".strip()
    with _dataset_path(dataset or model.sample_dataset) as data_path:
        has_labels = bool(dataset and dataset.has_labels)
        yield data_path, has_labels, feeds, note


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
):
    """Run one transform and verify the result against its parent. Raises TransformError."""
    transform = get_transform(transform_name)
    params = {k: v for k, v in params.items() if k != "dataset"}  # datasets come from the console, never a path
    if transform.needs_dataset:
        if data_path is None:
            raise TransformError(f"{transform_name} needs a calibration dataset: attach one to the model and pick it")
        params["dataset"] = str(data_path)
    cleaned = transform.clean(params)
    out = workdir / f"{transform_name}-{len(list(workdir.iterdir()))}{transform.suffix}"
    report = transform.function(parent_path, out, **cleaned)
    verification = verify_variant(parent_path, out, data_path, budget_points=budget_points)
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


def register_variant(job, parent, out: Path, transform_name: str, params: dict, metrics: dict, file_format: str):
    """(child version for ``out``, created); an identical file already registered is reused, not stored twice."""
    from console.catalog import services as catalog_services
    from console.catalog.uploads import sha256_of

    with open(out, "rb") as handle:
        source = File(handle, name=out.name)
        sha256 = sha256_of(source)
        existing = parent.model.versions.filter(sha256=sha256).first()
        if existing is not None:
            return existing, False
        return catalog_services.register_version(
            model=parent.model,
            source=source,
            sha256=sha256,
            user=job.created_by,
            filename=out.name,
            parent=parent,
            transform=transform_name,
            transform_params=params,
            file_format=file_format,
            metrics=metrics,
        ), True


def run_optimize(job, progress):
    parent = _load_parent(job)
    dataset = _load_dataset(job, parent)
    name = job.params.get("transform", "")
    with (
        local_path(parent.file) as parent_path,
        _measurement_inputs(parent, dataset) as (data_path, has_labels, feeds, note),
        tempfile.TemporaryDirectory(prefix="mdc-opt-") as tmp,
    ):
        if note:
            progress(5, note)
        progress(10, f"running {name} on {parent}")
        try:
            out, report, verification, params, transform = make_variant(
                name, job.params.get("params", {}), parent_path, data_path, Path(tmp)
            )
            for line in report.log:
                progress(35, line)
            progress(45, f"variant verified ({verification['reason']}); benchmarking parent and variant")
            parent_figures = measure(parent_path, data_path, has_labels, feeds=feeds)
            progress(65, "benchmarking the variant")
            child_figures = measure(out, data_path, has_labels, feeds=feeds)
            progress(80, "timing parent and variant side by side")
            paired = paired_latency(parent_path, out, feeds=feeds)
        except TransformError as exc:
            raise PermanentJobError(str(exc)) from exc
        summary = summarize(parent_figures, child_figures, verification, paired)
        metrics = {
            "benchmark": child_figures,
            "parent_benchmark": parent_figures,
            "verification": verification,
            "vs_parent": summary,
            "transform_report": report.as_dict(),
            "dataset": dataset.pk if dataset else None,
        }
        progress(85, "registering the variant")
        child, created = register_variant(
            job, parent, out, name, params, metrics, "ort" if transform.suffix == ".ort" else "onnx"
        )
    _remember_parent_benchmark(parent, parent_figures)
    result = {"version": child.number, "transform": name, **summary}
    if note:
        result["inputs_note"] = note
    if not created:
        result["note"] = f"the variant is byte-for-byte v{child.number}, which already exists"
    return result, child


def _remember_parent_benchmark(parent, figures: dict) -> None:
    """Merge this job's figures for the parent into what the parent holds now, not what it held when the job
    started: jobs on one parent run at the same time, and each keeps the figures the others measured (an
    accuracy measured on a dataset stays when a later job without one measures latency)."""
    from console.models import ModelVersion

    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().only("metrics").get(pk=parent.pk)
        locked.metrics = {**locked.metrics, "benchmark": {**locked.metrics.get("benchmark", {}), **figures}}
        locked.save(update_fields=["metrics"])


def run_optimize_for_device(job, progress):
    from devices.models import DeviceType

    parent = _load_parent(job)
    dataset = _load_dataset(job, parent)
    slug = job.params.get("device_type", "")
    device_type = DeviceType.objects.visible_to(parent.model.project_id).filter(slug=slug).first()
    if device_type is None:
        raise PermanentJobError(f"no device type {slug!r} in this project or the built-in catalog")
    profile = device_type.profile()
    objective = job.params.get("objective", "size")
    budget = float(job.params.get("accuracy_budget", 1.0))
    accept_unverified = bool(job.params.get("accept_unverified", False))
    rows, made = [], {}
    with (
        local_path(parent.file) as parent_path,
        _measurement_inputs(parent, dataset) as (data_path, has_labels, feeds, note),
        tempfile.TemporaryDirectory(prefix="mdc-dev-") as tmp,
    ):
        if note:
            progress(3, note)
        progress(5, f"measuring {parent} as the baseline")
        try:
            parent_figures = measure(parent_path, data_path, has_labels, feeds=feeds)
        except TransformError as exc:
            raise PermanentJobError(str(exc)) from exc
        baseline = _candidate_row("parent", parent_figures, None, profile, parent.metadata, parent.size_bytes)
        candidates = candidate_transforms(
            profile,
            parent.metadata,
            has_dataset=dataset is not None,
            has_samples=parent.model.sample_dataset_id is not None,
        )
        if not baseline["runnable_on_device"]:
            # The rewrites that make it runnable come first: without them nothing else can reach the device.
            candidates.insert(0, ("make_runnable", {"profile": profile}))
        for index, (name, params) in enumerate(candidates):
            label = _label(name, params)
            progress(10 + int(75 * index / len(candidates)), f"trying {label}")
            try:
                out, report, verification, cleaned, transform = make_variant(
                    name, params, parent_path, data_path, Path(tmp), budget
                )
                figures = measure(out, data_path, has_labels, feeds=feeds)
                paired = paired_latency(parent_path, out, feeds=feeds)
            except TransformError as exc:
                rows.append({"name": label, "transform": name, "params": cleaned_params(params), "error": str(exc)})
                continue
            try:
                facts = inspect_model(load_model(out)) if transform.suffix == ".onnx" else parent.metadata
            except ModelFileError as exc:
                error = own_output_error(name, exc)
                rows.append({"name": label, "transform": name, "params": cleaned, "error": error})
                continue
            row = _candidate_row(label, figures, verification, profile, facts, figures["size_bytes"])
            # The chooser compares latencies: the side-by-side ratio against the parent, with its interval.
            row["latency_ms"] = baseline["latency_ms"] * paired["ratio"]
            row.update(
                {
                    "transform": name,
                    "params": cleaned,
                    "lossy": is_lossy(name, cleaned),
                    "latency_ratio": paired["ratio"],
                    "latency_ci": [paired["ci_low"], paired["ci_high"]],
                    "vs_parent": summarize(parent_figures, figures, verification, paired),
                }
            )
            rows.append(row)
            made[label] = (out, name, cleaned, figures, verification, report, transform, paired)
        measured = [row for row in rows if "error" not in row]
        decision = choose_variant(
            baseline, measured, objective=objective, budget_points=budget, accept_unverified=accept_unverified
        )
        for row in rows:
            row["decision"] = (
                "chosen"
                if row["name"] == decision["choice"]
                else decision["reasons"].get(row["name"], row.get("error", ""))
            )
        result = {
            "device_type": slug,
            "objective": objective,
            "accuracy_budget": budget,
            "parent": baseline,
            "candidates": rows,
            "choice": decision["choice"],
            "unverified": decision["unverified"],
        }
        if note:
            result["inputs_note"] = note
        child = None
        if decision["choice"]:
            out, name, cleaned, figures, verification, report, transform, paired = made[decision["choice"]]
            progress(90, f"registering {decision['choice']} as a new version")
            metrics = {
                "benchmark": figures,
                "parent_benchmark": parent_figures,
                "verification": verification,
                "vs_parent": summarize(parent_figures, figures, verification, paired),
                "transform_report": report.as_dict(),
                "dataset": dataset.pk if dataset else None,
                "chosen_for": slug,
                # Shown wherever the version appears: a lossy variant nobody checked on real inputs.
                "unverified": decision["unverified"],
            }
            child, _ = register_variant(
                job, parent, out, name, cleaned, metrics, "ort" if transform.suffix == ".ort" else "onnx"
            )
            result["version"] = child.number
        else:
            reason = "no variant beat the parent within the budget; keeping the parent"
            if not baseline["runnable_on_device"]:
                reason = f"nothing the console tried runs on {slug} within the budget"
            progress(95, reason)
    _remember_parent_benchmark(parent, parent_figures)
    return result, child


def _label(name: str, params: dict) -> str:
    shown = cleaned_params(params)
    if name == "make_runnable":
        return f"make_runnable(for {params['profile']['slug']})"
    return f"{name}({', '.join(f'{k}={v}' for k, v in shown.items())})"


def cleaned_params(params: dict) -> dict:
    """Parameters as people see them: a device profile is named by its slug elsewhere, not spelled out."""
    return {k: v for k, v in params.items() if k not in ("profile", "dataset")}


def _candidate_row(name, figures, verification, profile, facts, size_bytes) -> dict:
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
        "inputs_source": verification.get("inputs_source"),
        "runnable_on_device": runnable,
        "device_reasons": reasons,
    }


OPTIMIZE = register(JobKind(name="optimize", queue=QUEUE_HEAVY, run=run_optimize, label="Optimize"))
OPTIMIZE_FOR_DEVICE = register(
    JobKind(
        name="optimize_for_device", queue=QUEUE_HEAVY, run=run_optimize_for_device, label="Optimize for a device type"
    )
)
