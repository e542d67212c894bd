from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from jobs.tooling.benchmark import download_size
from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import verify_variant
from jobs.tooling.prune import prune, prune_array


def test_prune_array__zeroes_exactly_the_smallest_magnitudes():
    weights = np.array([[0.5, -0.1, 3.0], [-2.0, 0.05, 1.0]], np.float32)
    prune_array(weights, 0.5)
    np.testing.assert_array_equal(weights, [[0.0, 0.0, 3.0], [-2.0, 0.0, 1.0]])


def test_prune__mlp__reaches_the_target_sparsity_on_weights_only(mlp_path, tmp_path):
    dst = tmp_path / "pruned.onnx"
    report = prune(mlp_path, dst, sparsity=0.3)
    tensors = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(dst)).graph.initializer}
    for name in ("w0", "w1", "w2"):
        assert np.mean(tensors[name] == 0) == pytest.approx(0.3, abs=0.01)
    assert np.count_nonzero(tensors["b0"] == 0) == 0  # biases untouched
    assert report.details["pruned_tensors"] == 3 and report.details["sparsity"] == pytest.approx(0.3, abs=0.01)
    assert download_size(dst) < download_size(mlp_path)
    assert verify_variant(mlp_path, dst)["top1_agreement"] > 0.5


def test_prune__conv_and_gemm_weights__are_pruned(cnn_path, tmp_path):
    report = prune(cnn_path, tmp_path / "pruned.onnx", sparsity=0.5)
    assert report.details["pruned_tensors"] == 3  # c1, c2, fc


def test_prune__constant_node_weights__are_reached(constant_weights_path, tmp_path):
    report = prune(constant_weights_path, tmp_path / "pruned.onnx", sparsity=0.5)
    assert report.details["pruned_tensors"] == 3
    assert any("Constant-node" in line for line in report.log)


def test_prune__quantized_model__has_nothing_to_prune_and_leaves_no_file(quantized_path, tmp_path):
    with pytest.raises(TransformError, match="nothing to prune"):
        prune(quantized_path, tmp_path / "pruned.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sparsity", [0.0, 1.0, 2])
def test_prune__sparsity_out_of_range__is_refused(mlp_path, tmp_path, sparsity):
    with pytest.raises(TransformError, match="sparsity"):
        prune(mlp_path, tmp_path / "pruned.onnx", sparsity=sparsity)
