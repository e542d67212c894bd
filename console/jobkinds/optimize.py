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
from jobs.tooling.benchmark import paired_latency
from jobs.tooling.datasets import DatasetError
from jobs.tooling.device_optimize import make_variant, measure, optimize_for_profile, summarize
from jobs.tooling.errors import TransformError
from jobs.tooling.inputs import InputsNotGenerated, InputsTooLarge


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
                name,
                job.params.get("params", {}),
                parent_path,
                data_path,
                Path(tmp),
                metrics=job.params.get("fidelity_metrics") or None,
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
    objective = job.params.get("objective", "size")
    budget = float(job.params.get("accuracy_budget", 1.0))
    with (
        local_path(parent.file) as parent_path,
        _measurement_inputs(parent, dataset) as (data_path, has_labels, feeds, note),
        tempfile.TemporaryDirectory(prefix="mdc-dev-") as tmp,
    ):
        if note:
            progress(3, note)
        try:
            outcome = optimize_for_profile(
                parent_path,
                device_type.profile(),
                parent.metadata,
                workdir=Path(tmp),
                data_path=data_path,
                has_labels=has_labels,
                has_samples=dataset is None and parent.model.sample_dataset_id is not None,
                feeds=feeds,
                objective=objective,
                budget_points=budget,
                accept_unverified=bool(job.params.get("accept_unverified", False)),
                metrics=job.params.get("fidelity_metrics") or None,
                progress=progress,
            )
        except TransformError as exc:
            raise PermanentJobError(str(exc)) from exc
        result = {
            "device_type": slug,
            "objective": objective,
            "accuracy_budget": budget,
            "parent": outcome.baseline,
            "candidates": outcome.rows,
            "choice": outcome.decision["choice"],
            "unverified": outcome.decision["unverified"],
        }
        if note:
            result["inputs_note"] = note
        child = None
        chosen = outcome.chosen
        if chosen is not None:
            progress(90, f"registering {outcome.decision['choice']} as a new version")
            metrics = {
                "benchmark": chosen.figures,
                "parent_benchmark": outcome.parent_figures,
                "verification": chosen.verification,
                "vs_parent": summarize(outcome.parent_figures, chosen.figures, chosen.verification, chosen.paired),
                "transform_report": chosen.report.as_dict(),
                "dataset": dataset.pk if dataset else None,
                "chosen_for": slug,
                # Shown wherever the version appears: a lossy variant nobody checked on real inputs.
                "unverified": outcome.decision["unverified"],
            }
            file_format = "ort" if chosen.transform.suffix == ".ort" else "onnx"
            child, _ = register_variant(
                job, parent, chosen.out, chosen.transform_name, chosen.params, metrics, file_format
            )
            result["version"] = child.number
        elif not outcome.baseline["runnable_on_device"]:
            progress(95, f"nothing the console tried runs on {slug} within the budget")
        else:
            progress(95, "no variant beat the parent within the budget; keeping the parent")
    _remember_parent_benchmark(parent, outcome.parent_figures)
    return result, child


OPTIMIZE = register(JobKind(name="optimize", queue=QUEUE_HEAVY, run=run_optimize, label="Optimize"))
OPTIMIZE_FOR_DEVICE = register(
    JobKind(
        name="optimize_for_device", queue=QUEUE_HEAVY, run=run_optimize_for_device, label="Optimize for a device type"
    )
)
