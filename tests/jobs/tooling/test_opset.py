from __future__ import annotations

import onnx
import pytest

from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import verify_variant
from jobs.tooling.opset import convert_opset, default_opset


def test_convert_opset__up_to_a_newer_opset__converts_and_agrees(mlp_path, tmp_path):
    dst = tmp_path / "opset18.onnx"
    report = convert_opset(mlp_path, dst, target_opset=18)
    assert default_opset(onnx.load(str(dst))) == 18
    assert report.details == {"from_opset": 17, "to_opset": 18}
    assert verify_variant(mlp_path, dst)["relative_error"] == 0


def test_convert_opset__digits__leaves_the_ml_domain_alone_and_says_so(digits, tmp_path):
    report = convert_opset(digits.model, tmp_path / "opset18.onnx", target_opset=18)
    assert any("ai.onnx.ml" in line for line in report.log)


def test_convert_opset__unreachable_target__names_the_blocking_op_and_leaves_no_file(mlp_path, tmp_path):
    dst = tmp_path / "opset9.onnx"
    blocked = r"cannot convert from opset 17 to 9: onnx has no adapter to move \w+ \(opset \d+\) down to opset 9"
    with pytest.raises(TransformError, match=blocked):
        convert_opset(mlp_path, dst, target_opset=9)
    assert list(tmp_path.iterdir()) == []


def test_convert_opset__same_opset__is_refused_as_nothing_to_do(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="already at opset 17"):
        convert_opset(mlp_path, tmp_path / "same.onnx", target_opset=17)


def test_convert_opset__opset_onnx_does_not_know__is_refused(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="newer than"):
        convert_opset(mlp_path, tmp_path / "future.onnx", target_opset=99)
