"""Attaching datasets to models: checked against the model's input signature at upload.

The check runs in the web request, bounded by the MAX_DATASET_* settings: the file is refused from its size,
its zip directory and array headers (NPZ) or its header row and line count (CSV) before any values are read.
The model's inputs come from the facts its check job recorded, so the model file itself is not read at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from console.catalog.uploads import sha256_of, too_large_message
from console.models import Dataset, Model, ModelVersion
from jobs.tooling.datasets import LABELS_KEY, DatasetLimits, is_npz, load_dataset
from jobs.tooling.errors import DatasetError
from jobs.tooling.inputs import TensorSpec


class DatasetRefused(ValueError):
    """The dataset cannot be attached; ``problems`` says exactly why, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def reference_version(model: Model, number: int | None = None) -> ModelVersion:
    versions = model.versions.servable()
    version = versions.filter(number=number).first() if number else versions.order_by("-number").first()
    if version is None:
        if number:
            raise DatasetRefused([f"v{number} is not a checked (ready) version of {model.name}"])
        raise DatasetRefused(
            [
                f"{model.name} has no checked version yet: upload a model first, the dataset is "
                "checked against its inputs"
            ]
        )
    return version


def dataset_limits() -> DatasetLimits:
    return DatasetLimits(
        max_bytes=settings.MAX_DATASET_BYTES,
        max_elements=settings.MAX_DATASET_ELEMENTS,
        max_rows=settings.MAX_DATASET_ROWS,
        max_columns=settings.MAX_DATASET_COLUMNS,
    )


def version_input_specs(version: ModelVersion) -> list[TensorSpec]:
    """The inputs the version's check recorded (ORT-format versions record their parent's, which they keep)."""
    recorded = (version.metadata or {}).get("inputs")
    if recorded is None:
        raise DatasetRefused([f"v{version.number} has no recorded inputs; check it again, then attach the dataset"])
    return [TensorSpec.from_dict(entry) for entry in recorded]


def attach_dataset(
    *, model: Model, uploaded, name: str = "", label_column: str = "label", user=None, version_number: int | None = None
) -> Dataset:
    """Check ``uploaded`` against a ready version's inputs, then store it. Nothing is stored when refused."""
    if uploaded.size > settings.MAX_DATASET_BYTES:  # HTTP uploads stop at this in the handler already
        raise DatasetRefused([too_large_message("MAX_DATASET_BYTES")])
    sha256 = sha256_of(uploaded)
    existing = model.datasets.filter(sha256=sha256).first()
    if existing is not None:
        raise DatasetRefused([f"this file is already attached as dataset {existing.name!r} (id {existing.pk})"])
    version = reference_version(model, version_number)
    specs = version_input_specs(version)
    path = uploaded.temporary_file_path()
    try:
        dataset = load_dataset(path, specs, label_column=label_column or "label", limits=dataset_limits())
    except DatasetError as exc:
        raise DatasetRefused(exc.problems) from exc
    file_format = "npz" if is_npz(Path(path)) else "csv"
    stored = default_storage.save(
        f"projects/{model.project_id}/models/{model.pk}/datasets/{sha256}.{file_format}", File(uploaded)
    )
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                model=model,
                name=(name or uploaded.name or f"dataset-{sha256[:8]}")[:200],
                file=stored,
                format=file_format,
                label_column=label_column if file_format == "csv" else LABELS_KEY,
                sha256=sha256,
                size_bytes=default_storage.size(stored),
                rows=dataset.rows,
                has_labels=dataset.labels is not None,
                summary={
                    "checked_against": version.number,
                    "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in dataset.inputs.items()},
                    "label_classes": int(len(np.unique(dataset.labels))) if dataset.labels is not None else None,
                },
                created_by=user if user is not None and user.is_authenticated else None,
            )
    except BaseException as exc:
        default_storage.delete(stored)
        if isinstance(exc, IntegrityError):
            raise DatasetRefused(["this file was attached by someone else a moment ago"]) from exc
        raise
