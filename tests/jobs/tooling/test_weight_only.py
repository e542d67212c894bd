from __future__ import annotations

import logging
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import iter_graphs
from jobs.tooling.reference_models import mlp
from jobs.tooling.weight_only import quantize_weight_only


def op_types(path) -> list[str]:
    model = onnx.load(str(path))
    return [node.op_type for graph in iter_graphs(model.graph) for node in graph.node]


def relative_error(parent, variant, x: np.ndarray) -> float:
    def run(path):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    expected = run(parent)
    return float(np.linalg.norm(run(variant) - expected) / np.linalg.norm(expected))


@pytest.fixture(scope="module")
def big_path(tmp_path_factory):
    """512 -> 1024 -> 1024 -> 10: two MatMul weights of 0.5M and 1M values, a last one of 10k."""
    path = tmp_path_factory.mktemp("big") / "big.onnx"
    onnx.save(mlp([512, 1024, 1024, 10], low_rank=True), str(path))
    return path


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(7).standard_normal((16, 512)).astype(np.float32)


def test_weight_only__int4__writes_matmulnbits_and_a_much_smaller_file_that_runs(big_path, inputs, tmp_path):
    dst = tmp_path / "int4.onnx"
    report = quantize_weight_only(big_path, dst)
    assert op_types(dst).count("MatMulNBits") == 2 and op_types(dst).count("MatMul") == 1  # the 10k one stays
    assert os.path.getsize(dst) < 0.2 * os.path.getsize(big_path)
    assert report.details["quantized_nodes"] == 2 and report.details["quantized_weights"] == 512 * 1024 + 1024 * 1024
    assert "1 smaller MatMul weights kept in float" in report.log[-1]
    # Round-to-nearest 4-bit steps of about a quarter of a standard deviation: ~8% error per layer, two layers here.
    assert relative_error(big_path, dst, inputs) < 0.2


def test_weight_only__int8__is_closer_to_the_parent_than_int4(big_path, inputs, tmp_path):
    int4, int8 = tmp_path / "int4.onnx", tmp_path / "int8.onnx"
    quantize_weight_only(big_path, int4, block_size=128)
    quantize_weight_only(big_path, int8, bits=8, block_size=128)
    assert os.path.getsize(int4) < os.path.getsize(int8) < 0.35 * os.path.getsize(big_path)
    assert relative_error(big_path, int8, inputs) < relative_error(big_path, int4, inputs) / 4


def test_weight_only__no_matmul_weight_large_enough__is_refused_and_leaves_no_file(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="no MatMul has a constant float 2-D weight of at least 65536 values; "):
        quantize_weight_only(mlp_path, tmp_path / "int4.onnx")
    assert list(tmp_path.iterdir()) == []


def test_weight_only__lower_threshold__quantizes_small_weights_too(mlp_path, tmp_path):
    dst = tmp_path / "int4.onnx"
    quantize_weight_only(mlp_path, dst, min_weight_elements=512, block_size=16)
    assert op_types(dst).count("MatMulNBits") == 3


def test_weight_only__constant_node_weights__are_found(constant_weights_path, tmp_path):
    dst = tmp_path / "int4.onnx"
    report = quantize_weight_only(constant_weights_path, dst, min_weight_elements=1024, block_size=16)
    assert "MatMulNBits" in op_types(dst)
    assert any("moved 6 Constant-node tensors" in line for line in report.log)


def test_weight_only__model_without_matmul__is_refused(cnn_path, tmp_path):
    with pytest.raises(TransformError, match="nothing to quantize weight-only: no MatMul"):
        quantize_weight_only(cnn_path, tmp_path / "int4.onnx")


def test_weight_only__already_quantized_model__is_refused(quantized_path, tmp_path):
    with pytest.raises(TransformError, match="already quantized"):
        quantize_weight_only(quantized_path, tmp_path / "int4.onnx")


@pytest.mark.parametrize(
    ("params", "message"),
    [({"bits": 3}, "bits=3 must be one of"), ({"block_size": 48}, "block_size=48 must be one of")],
)
def test_weight_only__bad_parameters__are_refused_before_any_work(mlp_path, tmp_path, params, message):
    with pytest.raises(TransformError, match=message):
        quantize_weight_only(mlp_path, tmp_path / "int4.onnx", **params)


def test_weight_only__importing_the_quantizer__leaves_the_root_logger_as_it_was(big_path, tmp_path):
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    quantize_weight_only(big_path, tmp_path / "int4.onnx")
    assert (list(root.handlers), root.level) == before
