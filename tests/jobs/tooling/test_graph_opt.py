from __future__ import annotations

import pytest

from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import verify_variant
from jobs.tooling.graph_opt import optimize_graph
from jobs.tooling.ort_format import to_ort


@pytest.mark.parametrize("level", ["basic", "extended"])
def test_optimize_graph__mlp__fuses_nodes_and_agrees_with_its_parent(mlp_path, tmp_path, level):
    dst = tmp_path / f"{level}.onnx"
    report = optimize_graph(mlp_path, dst, level=level)
    assert report.details["nodes_after"] < report.details["nodes_before"]
    assert verify_variant(mlp_path, dst)["relative_error"] < 1e-5


def test_optimize_graph__extended_level__reports_onnxruntime_only_ops(cnn_path, tmp_path):
    report = optimize_graph(cnn_path, tmp_path / "extended.onnx", level="extended")
    assert report.details["contrib_ops"] == ["com.microsoft.FusedConv"]
    assert any("device must run onnxruntime" in line for line in report.log)


def test_optimize_graph__unknown_level__is_refused(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="level='all' must be one of 'basic', 'extended'"):
        optimize_graph(mlp_path, tmp_path / "x.onnx", level="all")
    assert list(tmp_path.iterdir()) == []


def test_optimize_graph__ort_format_source__is_refused_and_leaves_no_file(mlp_path, tmp_path):
    ort_path = tmp_path / "model.ort"
    to_ort(mlp_path, ort_path)
    with pytest.raises(TransformError, match="already in ORT format"):
        optimize_graph(ort_path, tmp_path / "optimized.onnx")
    assert list(tmp_path.iterdir()) == [ort_path]
