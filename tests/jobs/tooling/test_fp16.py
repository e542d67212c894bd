from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest

from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import evaluate, verify_variant
from jobs.tooling.fp16 import convert_fp16


def test_convert_fp16__mlp__halves_the_file_and_keeps_float32_inputs(mlp_path, tmp_path):
    dst = tmp_path / "fp16.onnx"
    report = convert_fp16(mlp_path, dst)
    assert os.path.getsize(dst) < 0.6 * os.path.getsize(mlp_path)
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert report.details["keep_io_types"] is True
    figures = verify_variant(mlp_path, dst)
    assert figures["verified"] and figures["relative_error"] < 1e-2


def test_convert_fp16__without_keep_io_types__takes_fp16_inputs_and_still_evaluates(digits, tmp_path):
    dst = tmp_path / "fp16_io.onnx"
    convert_fp16(digits.model, dst, keep_io_types=False)
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)"
    # The float32 dataset is cast to the variant's input type.
    assert evaluate(dst, digits.npz)["accuracy"] == pytest.approx(
        evaluate(digits.model, digits.npz)["accuracy"], abs=0.01
    )


def test_convert_fp16__weights_beyond_65504__fail_with_that_reason_and_leave_no_file(huge_values_path, tmp_path):
    dst = tmp_path / "fp16.onnx"
    with pytest.raises(TransformError, match=r"beyond fp16's range of ±65504: 'b0' \(max \|x\| = 1e\+06\)"):
        convert_fp16(huge_values_path, dst)
    assert list(tmp_path.iterdir()) == []


def test_convert_fp16__already_quantized_model__is_refused(quantized_path, tmp_path):
    with pytest.raises(TransformError, match="already quantized"):
        convert_fp16(quantized_path, tmp_path / "fp16.onnx")


def test_convert_fp16__constant_node_overflow__is_found_too(tmp_path):
    from onnx import helper, numpy_helper

    from jobs.tooling.reference_models import float_input, make_model
    from tests.jobs.tooling.conftest import save

    big = numpy_helper.from_array(np.array([7e4], np.float32), "big")
    model = make_model(
        [helper.make_node("Constant", [], ["big"], value=big), helper.make_node("Add", ["x", "big"], ["y"])],
        [float_input("x", ["N", 1])],
        [float_input("y", ["N", 1])],
    )
    with pytest.raises(TransformError, match="'big'"):
        convert_fp16(save(model, tmp_path, "big.onnx"), tmp_path / "fp16.onnx")


@pytest.mark.parametrize("keep_io_types", [True, False])
def test_convert_fp16__output__passes_the_onnx_checker_so_the_console_accepts_it(
    mlp_path, cnn_path, tmp_path, keep_io_types
):
    from jobs.tooling.modelfile import load_model as load_upload

    for source in (mlp_path, cnn_path):
        out = tmp_path / f"{source.stem}-{keep_io_types}.onnx"
        convert_fp16(source, out, keep_io_types=keep_io_types)
        load_upload(out)  # parse + onnx.checker, exactly as an upload or a check job does
