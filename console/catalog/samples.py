"""A model's representative inputs: its sample dataset and typical sizes, and the note shown where they are missing.

Checks, latency measurements and agreement run on what a model's owner says its inputs look like: rows of the
sample dataset (real tensors) when one is set, else generated inputs at the typical sizes of its dynamic
dimensions. Every figure that still comes from generated inputs says so (``inputs_note``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from console.models import Dataset, Model, ModelVersion
from jobs.files import local_path
from jobs.tooling.inputs import InputsSource, TensorSpec, describe_generated, representative_feeds


def latest_checked_version(model: Model) -> ModelVersion | None:
    """The version typical sizes are checked against: the newest ready one (datasets are checked the same way)."""
    return model.versions.servable().order_by("-number").first()


def recorded_input_specs(version: ModelVersion | None) -> list[TensorSpec]:
    """The inputs the version's check recorded; empty when there are none (no version, or nothing recorded)."""
    if version is None:
        return []
    return [TensorSpec.from_dict(entry) for entry in (version.metadata or {}).get("inputs") or []]


def inputs_note(model: Model, specs: list[TensorSpec] | None = None, *, where: str = "on this page") -> str:
    """The sentence that labels figures measured on generated inputs; "" when the model has sample inputs.

    ``specs`` (the version's recorded inputs) lets the note name the shapes and the typical sizes that applied;
    ``where`` says which figures ("on this page", "in this job").
    """
    if model.sample_dataset_id is not None:
        return ""
    generated = describe_generated(specs or None, model.typical_dims or None)
    return (
        f"Figures {where} come from generated inputs ({generated}). "
        "Attach sample inputs on the model page to measure on real ones."
    )


@contextlib.contextmanager
def sample_file(model: Model) -> Iterator[tuple[Path, Dataset] | None]:
    """A local path to the model's sample dataset (a temporary copy on object storage) and its row; None if unset."""
    dataset = model.sample_dataset
    if dataset is None:
        yield None
        return
    with local_path(dataset.file, suffix=f".{dataset.format}") as path:
        yield path, dataset


def sample_feed_options(model: Model, path_and_dataset: tuple[Path, Dataset] | None) -> dict[str, Any]:
    """Keyword arguments for ``representative_feeds`` and ``live_runtime.smoke_run`` from the model's settings."""
    from console.catalog.datasets import dataset_limits

    if path_and_dataset is None:
        return {"typical_dims": model.typical_dims or None}
    path, dataset = path_and_dataset
    return {
        "sample_path": path,
        "sample_name": dataset.name,
        "label_column": dataset.label_column or "label",
        "limits": dataset_limits(),
    }


def representative_inputs(version: ModelVersion, *, rows: int = 1, seed: int = 0) -> tuple[dict, InputsSource]:
    """One feed dict for ``version`` from its model's representative inputs, and where it came from.

    Reads the sample dataset (DatasetError when it does not fit this version's recorded inputs) or generates at
    the typical sizes (InputsTooLarge / InputsNotGenerated as ``generate_feeds``).
    """
    model = version.model
    specs = recorded_input_specs(version)
    with sample_file(model) as sample:
        return representative_feeds(specs, rows=rows, seed=seed, **sample_feed_options(model, sample))
