from __future__ import annotations

import pytest

from jobs.tooling.benchmark import benchmark
from jobs.tooling.common import is_ort_format, model_input_specs
from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import evaluate, verify_variant
from jobs.tooling.ort_format import to_ort


def test_to_ort__mlp__writes_an_ort_file_that_runs_and_agrees(mlp_path, tmp_path):
    dst = tmp_path / "mlp.ort"
    report = to_ort(mlp_path, dst)
    assert is_ort_format(dst) and report.details["format"] == "ORT"
    assert verify_variant(mlp_path, dst)["relative_error"] < 1e-5


def test_to_ort__any_file_name__still_loads_as_ort_format(digits, tmp_path):
    dst = tmp_path / "variant-17.bin"
    to_ort(digits.model, dst)
    assert [spec.name for spec in model_input_specs(dst)] == ["input"]
    assert evaluate(dst, digits.npz)["accuracy"] == evaluate(digits.model, digits.npz)["accuracy"]
    assert benchmark(dst, runs=3, warmup=1, memory=False)["size_bytes"] > 0


def test_to_ort__ort_source__is_refused(mlp_path, tmp_path):
    first = tmp_path / "mlp.ort"
    to_ort(mlp_path, first)
    with pytest.raises(TransformError, match="already in ORT format"):
        to_ort(first, tmp_path / "again.ort")
    assert not (tmp_path / "again.ort").exists()
