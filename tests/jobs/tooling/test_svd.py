from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import verify_variant
from jobs.tooling.reference_models import float_input, make_model
from jobs.tooling.svd import choose_rank, svd
from tests.jobs.tooling.conftest import save


@pytest.fixture(scope="module")
def low_rank_path(tmp_path_factory):
    """x @ W + b with W (64 x 48) of rank 4: SVD at rank 4 reproduces it exactly with 448 instead of 3072 values."""
    rng = np.random.default_rng(3)
    weights = (rng.standard_normal((64, 4)) @ rng.standard_normal((4, 48))).astype(np.float32)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        [float_input("x", ["N", 64])],
        [float_input("y", ["N", 48])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.ones(48, np.float32), "b")],
    )
    return save(model, tmp_path_factory.mktemp("svd"), "low_rank.onnx")


def test_choose_rank__energy__is_the_smallest_rank_keeping_that_share():
    singular_values = np.sqrt(np.array([50.0, 30.0, 15.0, 5.0]))  # squared: 50%, 30%, 15%, 5%
    assert choose_rank(singular_values, None, 0.5) == 1
    assert choose_rank(singular_values, None, 0.8) == 2
    assert choose_rank(singular_values, None, 0.81) == 3
    assert choose_rank(singular_values, None, 1.0) == 4
    assert choose_rank(singular_values, 9, None) == 4


def test_svd__low_rank_matmul_weight__is_split_in_two_and_reproduces_the_outputs(low_rank_path, tmp_path):
    dst = tmp_path / "svd.onnx"
    report = svd(low_rank_path, dst, energy=0.9999, min_weights=1024)
    [factorized] = report.details["factorized"]
    assert factorized["rank"] == 4 and factorized["params_after"] == 4 * (64 + 48)
    model = onnx.load(str(dst))
    assert [n.op_type for n in model.graph.node] == ["MatMul", "MatMul", "Add"]
    assert "w" not in {t.name for t in model.graph.initializer}
    assert verify_variant(low_rank_path, dst)["relative_error"] < 1e-4


def test_svd__gemm_with_transposed_weight__is_factorized_keeping_its_bias(cnn_path, tmp_path):
    dst = tmp_path / "svd.onnx"
    report = svd(cnn_path, dst, rank=5, min_weights=100)  # fc is 10 x 16: rank 5 keeps 130 of 160 values
    assert report.details["factorized"][0]["weight"] == "fc"
    gemm = next(n for n in onnx.load(str(dst)).graph.node if n.op_type == "Gemm")
    assert len(gemm.input) == 3 and all(a.name != "transB" for a in gemm.attribute)
    assert verify_variant(cnn_path, dst)["max_abs_diff"] > 0  # rank 5 < 10 loses a little, but runs


def test_svd__rank_that_saves_nothing__fails_as_nothing_to_factorize_and_leaves_no_file(low_rank_path, tmp_path):
    with pytest.raises(TransformError, match="nothing to factorize"):
        svd(low_rank_path, tmp_path / "svd.onnx", rank=40, min_weights=1024)  # 40 * 112 > 3072
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("params", [{}, {"rank": 4, "energy": 0.9}])
def test_svd__needs_exactly_one_of_rank_or_energy(low_rank_path, tmp_path, params):
    with pytest.raises(TransformError, match="exactly one of rank"):
        svd(low_rank_path, tmp_path / "svd.onnx", **params)
