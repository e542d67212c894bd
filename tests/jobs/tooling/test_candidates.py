from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from devices.catalog.builtin import builtin_profile
from jobs.tooling.candidates import candidate_transforms, is_lossy, run_pipeline
from jobs.tooling.errors import TransformError
from jobs.tooling.evaluate import verify_variant
from jobs.tooling.inspect import inspect_model
from jobs.tooling.modelfile import iter_graphs
from jobs.tooling.reference_models import float_input, make_model, mlp

profile = builtin_profile


def conv_matmul() -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    initializers = [
        numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) / 5).astype(np.float32), "c1"),
        numpy_helper.from_array((rng.standard_normal((16, 64)) / 4).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal((64, 10)) / 8).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w1"], ["m1"]),
        helper.make_node("Relu", ["m1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["y"]),
    ]
    return make_model(nodes, [float_input("x", ["N", 3, 16, 16])], [float_input("y", ["N", 10])], initializers)


def names(candidates: list[tuple[str, dict]]) -> list[str]:
    return [name for name, _ in candidates]


SVD_THEN_INT8 = ("pipeline", {"steps": [["svd", {"energy": 0.95}], ["quantize_dynamic", {"op_types": ["MatMul"]}]]})
STATIC_PER_TENSOR = ("quantize_static", {"calibrate_method": "minmax"})
STORED_INT8 = ("compress_weights", {"precision": "int8"})
STORED_FP16 = ("compress_weights", {"precision": "fp16"})


def static_per_channel(x86: bool) -> tuple[str, dict]:
    activation = "uint8" if x86 else "int8"
    params = {"quant_format": "qdq", "per_channel": True, "activation_type": activation, "weight_type": "int8"}
    return ("quantize_static", {"calibrate_method": "minmax", **params, "reduce_range": x86})


def test_candidates__conv_and_matmul_on_the_x86_gateway__use_uint8_conv_weights_and_matmul_only(tmp_path):
    facts = inspect_model(conv_matmul())
    assert candidate_transforms(profile("x86-gateway"), facts, has_dataset=True, has_samples=False) == [
        ("optimize_graph", {"level": "extended"}),
        ("quantize_dynamic", {"per_channel": False, "preprocess": False}),  # the library default, for comparison
        ("quantize_dynamic", {"per_channel": False, "weight_type": "uint8"}),
        ("quantize_dynamic", {"per_channel": False, "op_types": ["MatMul"]}),
        STATIC_PER_TENSOR,
        static_per_channel(x86=True),
        ("prune", {"sparsity": 0.3}),
        ("svd", {"energy": 0.95}),
        SVD_THEN_INT8,
        STORED_INT8,
        STORED_FP16,
        ("fp16", {"keep_io_types": True}),
    ]


def test_candidates__conv_and_matmul_on_the_raspberry_pi__int8_per_channel_and_no_fp16():
    facts = inspect_model(conv_matmul())
    assert candidate_transforms(profile("raspberry-pi-4"), facts, has_dataset=False, has_samples=True) == [
        ("optimize_graph", {"level": "extended"}),
        ("quantize_dynamic", {"per_channel": False, "preprocess": False}),
        ("quantize_dynamic", {"per_channel": True}),
        ("quantize_dynamic", {"per_channel": False, "op_types": ["MatMul"]}),
        STATIC_PER_TENSOR,
        static_per_channel(x86=False),
        ("prune", {"sparsity": 0.3}),
        ("svd", {"energy": 0.95}),
        SVD_THEN_INT8,
        STORED_INT8,
        STORED_FP16,
    ]


def test_candidates__large_matmul_weights_on_the_jetson__weight_only_int4_and_fp16():
    facts = inspect_model(mlp([512, 1024, 1024, 10]))
    assert candidate_transforms(profile("jetson-orin"), facts, has_dataset=False, has_samples=False) == [
        ("optimize_graph", {"level": "extended"}),
        ("quantize_dynamic", {"per_channel": False, "preprocess": False}),
        ("weight_only", {"bits": 4, "block_size": 32}),
        ("prune", {"sparsity": 0.3}),
        ("svd", {"energy": 0.95}),
        SVD_THEN_INT8,
        STORED_INT8,
        STORED_FP16,
        ("fp16", {"keep_io_types": True}),
    ]


def test_candidates__sensitive_ops_on_a_gpu__also_try_fp16_with_nothing_kept():
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["y"], axes=[1], keepdims=1),
    ]
    weights = numpy_helper.from_array(np.ones((8, 8), np.float32), "w")
    facts = inspect_model(make_model(nodes, [float_input("x", ["N", 8])], [float_input("y", ["N", 1])], [weights]))
    jetson = candidate_transforms(profile("jetson-orin"), facts, has_dataset=False, has_samples=False)
    assert [c for c in jetson if c[0] == "fp16"] == [
        ("fp16", {"keep_io_types": True}),
        ("fp16", {"keep_io_types": True, "keep_float32_ops": []}),
    ]
    x86 = candidate_transforms(profile("x86-gateway"), facts, has_dataset=False, has_samples=False)
    assert [c for c in x86 if c[0] == "fp16"] == [("fp16", {"keep_io_types": True})]  # a CPU: casts are cheap


def test_candidates__android_phone__adds_the_ort_format_and_a_mobile_sized_list():
    facts = inspect_model(mlp([512, 1024, 1024, 10]))
    assert candidate_transforms(profile("android-arm64-phone"), facts, has_dataset=False, has_samples=False) == [
        ("optimize_graph", {"level": "extended"}),
        ("quantize_dynamic", {"per_channel": False, "preprocess": False}),
        ("quantize_dynamic", {"per_channel": True}),
        ("weight_only", {"bits": 4, "block_size": 32}),
        ("prune", {"sparsity": 0.3}),
        ("svd", {"energy": 0.95}),
        SVD_THEN_INT8,
        STORED_INT8,  # no fp16 storage: the mobile package has no float16 kernel
        ("to_ort", {"level": "basic"}),
    ]


def test_candidates__without_real_inputs__no_static_quantization():
    facts = inspect_model(conv_matmul())
    for slug in ("x86-gateway", "raspberry-pi-4", "jetson-orin", "android-arm64-phone"):
        found = candidate_transforms(profile(slug), facts, has_dataset=False, has_samples=False)
        assert "quantize_static" not in names(found)
        assert len(found) <= 10


def test_candidates__conv_only_model__gets_no_matmul_variants_and_mlp_gets_no_conv_variants():
    kernel = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "k")
    conv_only = make_model(
        [helper.make_node("Conv", ["x", "k"], ["y"])],
        [float_input("x", ["N", 1, 8, 8])],
        [float_input("y", ["N", 4, 6, 6])],
        [kernel],
    )
    found = candidate_transforms(profile("x86-gateway"), inspect_model(conv_only), has_dataset=True, has_samples=False)
    assert not [c for c in found if c[0] in ("svd", "pipeline", "weight_only") or "op_types" in c[1]]
    assert ("quantize_dynamic", {"per_channel": False, "weight_type": "uint8"}) in found

    small_mlp = inspect_model(mlp([16, 64, 10]))
    found = candidate_transforms(profile("x86-gateway"), small_mlp, has_dataset=False, has_samples=False)
    assert not [c for c in found if c[1].get("weight_type") == "uint8" or "op_types" in c[1]]
    assert "weight_only" not in names(found)  # 16x64 weights: far below weight-only's threshold


def test_candidates__model_without_weights__gets_only_lossless_rewrites():
    relu = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], [float_input("x", ["N", 4])], [float_input("y", ["N", 4])]
    )
    found = candidate_transforms(profile("jetson-orin"), inspect_model(relu), has_dataset=True, has_samples=True)
    assert found == [("optimize_graph", {"level": "extended"}), ("fp16", {"keep_io_types": True})]


def test_candidates__opset_newer_than_the_pi_runtime__adds_a_conversion():
    facts = inspect_model(mlp([16, 64, 10], opset=21))
    found = candidate_transforms(profile("raspberry-pi-4"), facts, has_dataset=False, has_samples=False)
    assert found[-1] == ("convert_opset", {"target_opset": 19})


def test_candidates__device_without_int8__gets_no_quantization():
    fp32_only = {**profile("raspberry-pi-4"), "precisions": ["fp32"]}
    found = candidate_transforms(fp32_only, inspect_model(conv_matmul()), has_dataset=True, has_samples=False)
    assert not [name for name in names(found) if name.startswith("quantize") or name == "pipeline"]


@pytest.mark.parametrize(
    ("name", "params", "lossy"),
    [
        ("quantize_dynamic", {}, True),
        ("quantize_static", {}, True),
        ("weight_only", {"bits": 4}, True),
        ("fp16", {}, True),
        ("prune", {"sparsity": 0.3}, True),
        ("svd", {"energy": 0.95}, True),
        ("optimize_graph", {"level": "extended"}, False),
        ("to_ort", {}, False),
        ("convert_opset", {"target_opset": 17}, False),
        ("remove_noops", {}, False),
        ("zipmap_to_tensor", {}, False),
        ("pipeline", {"steps": [["optimize_graph", {}], ["to_ort", {}]]}, False),
        ("pipeline", {"steps": [["optimize_graph", {}], ["quantize_dynamic", {}]]}, True),
        ("something_new", {}, True),  # unknown: lossy until shown otherwise
    ],
)
def test_is_lossy(name, params, lossy):
    assert is_lossy(name, params) is lossy


def test_pipeline__two_steps__runs_both_and_reports_both_logs(mlp_path, tmp_path):
    dst = tmp_path / "piped.onnx"
    steps = [["optimize_graph", {"level": "basic"}], ["quantize_dynamic", {"op_types": ["MatMul"]}]]
    report = run_pipeline(mlp_path, dst, steps=steps)
    assert report.transform == "pipeline"
    assert [step["transform"] for step in report.details["steps"]] == ["optimize_graph", "quantize_dynamic"]
    assert report.details["steps"][1]["params"]["op_types"] == ["MatMul"]
    assert any(line.startswith("step 1 (optimize_graph): basic optimization") for line in report.log)
    assert any(line.startswith("step 2 (quantize_dynamic):") and "MatMulInteger" in line for line in report.log)
    model = onnx.load(str(dst))
    assert "MatMulInteger" in {n.op_type for g in iter_graphs(model.graph) for n in g.node}
    assert os.path.getsize(dst) < os.path.getsize(mlp_path) / 2.5
    assert verify_variant(mlp_path, dst)["verified"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piped.onnx"]  # no step files left behind


def test_pipeline__svd_then_int8__is_smaller_than_either_alone(tmp_path):
    from jobs.tooling.quantize import quantize_dynamic
    from jobs.tooling.svd import svd

    src = tmp_path / "low_rank.onnx"
    onnx.save(mlp([256, 256, 256, 10], low_rank=True), str(src))
    run_pipeline(src, tmp_path / "both.onnx", steps=[list(SVD_THEN_INT8[1]["steps"][0]), ["quantize_dynamic", {}]])
    svd(src, tmp_path / "svd.onnx", energy=0.95)
    quantize_dynamic(src, tmp_path / "int8.onnx")
    both = os.path.getsize(tmp_path / "both.onnx")
    assert both < min(os.path.getsize(tmp_path / "svd.onnx"), os.path.getsize(tmp_path / "int8.onnx"))


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "non-empty list"),
        ([["optimize_graph"]], r"step 1 must be \[transform, params\]"),
        ([["optimize_graph", {}], ["nope", {}]], "unknown transform 'nope'"),
        ([["optimize_graph", {}], ["quantize_dynamic", {"weight_type": "int4"}]], r"step 2 \(quantize_dynamic\):"),
        ([["pipeline", {"steps": []}]], "is itself a pipeline"),
        ([["to_ort", {}]], "writes another file format than ONNX"),
        ([["quantize_static", {}]], "needs a dataset and the pipeline got none"),
    ],
)
def test_pipeline__bad_steps__are_refused_before_any_step_runs(mlp_path, tmp_path, steps, message):
    with pytest.raises(TransformError, match=message):
        run_pipeline(mlp_path, tmp_path / "piped.onnx", steps=steps)
    assert list(tmp_path.iterdir()) == []


def test_pipeline__failing_step__names_the_step_and_leaves_no_file(cnn_path, tmp_path):
    steps = [["optimize_graph", {"level": "basic"}], ["svd", {"rank": 4, "min_weights": 10**9}]]
    with pytest.raises(TransformError, match=r"pipeline step 2 \(svd\) failed: "):
        run_pipeline(cnn_path, tmp_path / "piped.onnx", steps=steps)
    assert list(tmp_path.iterdir()) == []


def test_pipeline__static_step__calibrates_on_the_dataset_given(digits, tmp_path):
    dst = tmp_path / "piped.onnx"
    steps = [["optimize_graph", {"level": "basic"}], ["quantize_static", {"max_calibration_rows": 64}]]
    report = run_pipeline(digits.model, dst, steps=steps, dataset=digits.npz)
    assert report.details["steps"][1]["details"]["calibration_rows"] == 64
    assert "dataset" not in report.details["steps"][1]["params"]
