"""Rewrites that make a model runnable on a device type: each one checked by running parent and result in
onnxruntime on the same inputs, and the device verdicts by ``compat.check_device`` (and, where the recorded
releases' own wheels are installed under var/, by loading the result in the device's onnxruntime release)."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from devices.catalog.builtin import builtin_profile
from jobs.tooling.compat import check_device
from jobs.tooling.errors import TransformError
from jobs.tooling.inputs import generate_inputs
from jobs.tooling.inspect import inspect_model
from jobs.tooling.runnable import (
    RUNNABLE_TRANSFORMS,
    class_labels,
    fold_batchnorm,
    ir_features,
    lower_ir_version,
    make_runnable,
    maps_to_probabilities,
    remove_noops,
    replace_ml_ops,
    zipmap_to_tensor,
)

PI = "raspberry-pi-4"
ANDROID = "android-arm64-phone"
ORT_1_16 = Path(__file__).resolve().parents[3] / "var" / "registry-venvs" / "onnxruntime-1.16.3" / "bin" / "python"


profile = builtin_profile


def verdict(path: Path, slug: str) -> tuple[bool, list[str]]:
    model = onnx.load(str(path))
    return check_device(inspect_model(model), path.stat().st_size, profile(slug))


def run(path: Path, feeds: dict) -> list:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def one_node_model(
    node: onnx.NodeProto, inputs: list, outputs: list, *, opset: int = 15, initializers: list | None = None
) -> onnx.ModelProto:
    graph = helper.make_graph([node], "g", inputs, outputs, initializer=initializers or [])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", 1)]
    )
    model.ir_version = 8
    return model


def assert_same_outputs(parent: list, child: list) -> None:
    assert len(parent) == len(child)
    for expected, actual in zip(parent, child, strict=True):
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)
        else:
            np.testing.assert_array_equal(actual, expected)


@pytest.fixture(scope="module")
def iris() -> np.ndarray:
    from sklearn.datasets import load_iris

    return load_iris().data.astype(np.float32)


def sklearn_export(tmp_path: Path, estimator, x: np.ndarray, y: np.ndarray, name: str = "model.onnx", **options):
    """A scikit-learn model exported as a user would: skl2onnx's defaults (ZipMap, its newest IR) unless told."""
    from skl2onnx import to_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(x, y)
        model = to_onnx(estimator, x[:1], options={id(estimator): options} if options else None)
    return save(model, tmp_path / name)


@pytest.fixture
def iris_logistic(tmp_path, iris) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    return sklearn_export(tmp_path, LogisticRegression(max_iter=500), iris, load_iris().target)


# -- make_runnable


def test_make_runnable__default_skl2onnx_export__reaches_the_pi_with_the_same_outputs(iris_logistic, iris, tmp_path):
    compatible, reasons = verdict(iris_logistic, PI)
    assert not compatible and any(r.startswith("IR version 10 is newer than onnxruntime 1.16") for r in reasons)

    dst = tmp_path / "pi.onnx"
    report = make_runnable(iris_logistic, dst, profile=profile(PI))

    assert verdict(dst, PI) == (True, [])
    assert [s["transform"] for s in report.details["steps"]] == ["lower_ir_version"]
    parent_labels, parent_maps = run(iris_logistic, {"X": iris})
    child_labels, child_maps = run(dst, {"X": iris})
    np.testing.assert_array_equal(child_labels, parent_labels)
    labels = [0, 1, 2]
    np.testing.assert_allclose(
        maps_to_probabilities(child_maps, labels), maps_to_probabilities(parent_maps, labels), atol=1e-5
    )


def test_make_runnable__default_skl2onnx_export__reaches_an_android_phone_with_plain_probabilities(
    iris_logistic, iris, tmp_path
):
    dst = tmp_path / "android.onnx"
    report = make_runnable(iris_logistic, dst, profile=profile(ANDROID))

    assert verdict(dst, ANDROID) == (True, [])
    steps = [s["transform"] for s in report.details["steps"]]
    assert steps == ["zipmap_to_tensor", "replace_ml_ops", "convert_opset", "lower_ir_version"]
    parent_labels, parent_maps = run(iris_logistic, {"X": iris})
    child_labels, child_probabilities = run(dst, {"X": iris})
    np.testing.assert_array_equal(child_labels, parent_labels)
    labels = class_labels(onnx.load(str(dst)))["output_probability"]
    assert labels == [0, 1, 2]
    np.testing.assert_allclose(child_probabilities, maps_to_probabilities(parent_maps, labels), atol=1e-5)


def test_make_runnable__demo_model__reaches_an_android_phone_with_the_same_outputs(digits, tmp_path):
    compatible, reasons = verdict(digits.model, ANDROID)
    assert not compatible
    assert any(r.startswith("Identity:") for r in reasons)
    assert any(r.startswith("ai.onnx.ml.ArrayFeatureExtractor:") for r in reasons)

    dst = tmp_path / "android.onnx"
    make_runnable(digits.model, dst, profile=profile(ANDROID))

    assert verdict(dst, ANDROID) == (True, [])
    model = onnx.load(str(dst))
    assert {n.op_type for n in model.graph.node}.isdisjoint({"Identity", "ArrayFeatureExtractor"})
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    assert_same_outputs(run(digits.model, {"input": digits.x_test}), run(dst, {"input": digits.x_test}))
    for seed in range(3):
        feeds = generate_inputs(onnx.load(str(digits.model)), batch=16, seed=seed)
        assert_same_outputs(run(digits.model, feeds), run(dst, feeds))


@pytest.mark.skipif(not ORT_1_16.exists(), reason="onnxruntime 1.16.3's wheel is not installed under var/")
def test_make_runnable__pi_variant__loads_in_onnxruntime_1_16_where_its_parent_does_not(iris_logistic, tmp_path):
    dst = tmp_path / "pi.onnx"
    make_runnable(iris_logistic, dst, profile=profile(PI))
    script = (
        "import sys, onnxruntime as ort\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        ort.InferenceSession(path, providers=['CPUExecutionProvider']); print('loads')\n"
        "    except Exception:\n"
        "        print('refused')\n"
    )
    result = subprocess.run(
        [str(ORT_1_16), "-c", script, str(iris_logistic), str(dst)], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["refused", "loads"]


def test_make_runnable__model_that_already_runs__is_refused_as_nothing_to_do(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="already runs on onnxruntime 1.16"):
        make_runnable(mlp_path, tmp_path / "same.onnx", profile=profile(PI))
    assert not (tmp_path / "same.onnx").exists()


def test_make_runnable__what_no_rewrite_fixes__is_named_and_nothing_is_written(tmp_path):
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    model = one_node_model(
        node,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    model.ir_version = 10
    src = save(model, tmp_path / "custom.onnx")
    with pytest.raises(
        TransformError, match=r"still not runnable on onnxruntime 1.16 after lower_ir_version: Frobnicate"
    ):
        make_runnable(src, tmp_path / "out.onnx", profile=profile(PI))
    assert not (tmp_path / "out.onnx").exists()


# -- lower_ir_version


def test_lower_ir_version__ir10_model_using_nothing_newer__is_written_at_ir9_and_computes_the_same(
    iris_logistic, iris, tmp_path
):
    dst = tmp_path / "ir9.onnx"
    report = lower_ir_version(iris_logistic, dst, target_ir=9)
    assert onnx.load(str(dst)).ir_version == 9
    assert report.details == {"from_ir": 10, "to_ir": 9}
    assert np.array_equal(run(dst, {"X": iris})[0], run(iris_logistic, {"X": iris})[0])


def test_lower_ir_version__int4_weights__are_refused_naming_them(tmp_path):
    weights = helper.make_tensor("w4", TensorProto.INT4, [4], [1, -2, 3, -4])
    node = helper.make_node("DequantizeLinear", ["w4", "scale"], ["y"])
    model = one_node_model(
        node,
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        opset=21,
        initializers=[weights, numpy_helper.from_array(np.array(0.5, np.float32), "scale")],
    )
    model.ir_version = 10
    src = save(model, tmp_path / "int4.onnx")
    assert (10, "INT4 values (initializer 'w4')") in ir_features(model)
    with pytest.raises(
        TransformError, match=r"cannot lower IR version 10 to 9: the model uses INT4 values .*\(IR 10\)"
    ):
        lower_ir_version(src, tmp_path / "out.onnx", target_ir=9)
    assert not (tmp_path / "out.onnx").exists()


def test_lower_ir_version__opset_too_new_for_the_target_ir__says_to_convert_the_opset_first(mlp_path, tmp_path):
    # The MLP is at IR 8 and opset 17; IR 7 models may import up to opset 14 (onnx 1.9).
    with pytest.raises(
        TransformError, match=r"opset 17 of ai.onnx needs IR 8 or newer \(convert the model to opset 14"
    ):
        lower_ir_version(mlp_path, tmp_path / "out.onnx", target_ir=7)


def test_lower_ir_version__not_lower__is_refused(mlp_path, tmp_path):
    with pytest.raises(TransformError, match="already at IR version 8"):
        lower_ir_version(mlp_path, tmp_path / "out.onnx", target_ir=8)


def test_lower_ir_version__node_metadata_of_ir10__is_dropped_and_said(iris_logistic, tmp_path):
    model = onnx.load(str(iris_logistic))
    model.graph.node[0].metadata_props.add(key="origin", value="sklearn")
    src = save(model, tmp_path / "annotated.onnx")
    report = lower_ir_version(src, tmp_path / "ir9.onnx", target_ir=9)
    assert not onnx.load(str(tmp_path / "ir9.onnx")).graph.node[0].metadata_props
    assert any("dropped 1 metadata" in line for line in report.log)


# -- remove_noops


def noop_model() -> onnx.ModelProto:
    """Identity into an output, an inference Dropout with an unused mask, a same-type Cast, an Identity in If."""

    def branch(name: str, op: str) -> onnx.GraphProto:
        return helper.make_graph(
            [
                helper.make_node("Identity", ["h"], [f"{name}_h"]),
                helper.make_node(op, [f"{name}_h"], [f"{name}_y"]),
            ],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [None, 4])],
        )

    nodes = [
        helper.make_node("Cast", ["x"], ["x_float"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["x_float"], ["r"]),
        helper.make_node("Dropout", ["r"], ["d", "mask"]),
        helper.make_node("Identity", ["d"], ["h"]),
        helper.make_node("ReduceSum", ["h"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node(
            "If", ["positive"], ["branched"], then_branch=branch("then", "Neg"), else_branch=branch("else", "Abs")
        ),
        helper.make_node("Identity", ["branched"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "noops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [None, 4]),
        ],
        initializer=[numpy_helper.from_array(np.array(0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_remove_noops__identity_dropout_and_same_type_cast__go_and_outputs_keep_their_names(tmp_path):
    src = save(noop_model(), tmp_path / "noops.onnx")
    dst = tmp_path / "clean.onnx"
    report = remove_noops(src, dst)

    model = onnx.load(str(dst))
    ops = [n.op_type for n in model.graph.node]
    assert "Dropout" not in ops and "Cast" not in ops and "Identity" not in ops
    for branch in (a.g for a in next(n for n in model.graph.node if n.op_type == "If").attribute):
        assert [n.op_type for n in branch.node] in (["Neg"], ["Abs"])
    assert [o.name for o in model.graph.output] == ["y", "h"]
    assert report.details["removed"] == {"Cast": 1, "Dropout": 1, "Identity": 4}
    for sign in (1, -1):
        feeds = {"x": sign * np.random.default_rng(0).random((3, 4), dtype=np.float32)}
        assert_same_outputs(run(src, feeds), run(dst, feeds))


def test_remove_noops__identity_from_an_input_straight_to_an_output__must_stay_and_is_refused(tmp_path):
    node = helper.make_node("Identity", ["x"], ["y"])
    model = one_node_model(
        node,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    src = save(model, tmp_path / "passthrough.onnx")
    with pytest.raises(TransformError, match="no Identity, inference Dropout or same-type Cast to remove; 1 Identity"):
        remove_noops(src, tmp_path / "out.onnx")


def test_remove_noops__dropout_in_training_mode_and_real_casts__are_kept(tmp_path):
    nodes = [
        helper.make_node("Cast", ["x"], ["x_int"], to=TensorProto.INT64),
        helper.make_node("Cast", ["x_int"], ["x_back"], to=TensorProto.FLOAT),
        helper.make_node("Dropout", ["x_back", "", "training"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("training", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    src = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "kept.onnx")
    with pytest.raises(TransformError, match="no Identity, inference Dropout or same-type Cast to remove"):
        remove_noops(src, tmp_path / "out.onnx")


# -- zipmap_to_tensor


def test_zipmap_to_tensor__classifier_probabilities__become_a_float_tensor_with_labels_kept(iris, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    names = np.array(["setosa", "versicolor", "virginica"])[load_iris().target]
    src = sklearn_export(tmp_path, LogisticRegression(max_iter=500), iris, names)
    dst = tmp_path / "tensor.onnx"
    zipmap_to_tensor(src, dst)

    model = onnx.load(str(dst))
    output = next(o for o in model.graph.output if o.name == "output_probability")
    assert output.type.tensor_type.elem_type == TensorProto.FLOAT
    assert output.type.tensor_type.shape.dim[1].dim_value == 3
    labels = class_labels(model)["output_probability"]
    assert labels == ["setosa", "versicolor", "virginica"]
    assert json.loads(next(p.value for p in model.metadata_props if p.key == "class_labels:output_probability"))
    parent_labels, parent_maps = run(src, {"X": iris})
    child_labels, child_probabilities = run(dst, {"X": iris})
    np.testing.assert_array_equal(child_labels, parent_labels)
    np.testing.assert_array_equal(child_probabilities, maps_to_probabilities(parent_maps, labels))


def test_zipmap_to_tensor__model_without_zipmap__is_refused(digits, tmp_path):
    with pytest.raises(TransformError, match="no ZipMap producing an output"):
        zipmap_to_tensor(digits.model, tmp_path / "out.onnx")


# -- replace_ml_ops


@pytest.mark.parametrize(
    ("data_shape", "index_shape"),
    [([10], [5, 1]), ([4, 6], [3]), ([4, 6], []), ([2, 3, 6], [2, 2])],
    ids=["1d-data", "2d-data", "scalar-index", "3d-data-2d-index"],
)
def test_replace_ml_ops__array_feature_extractor__gives_the_same_tensor_as_onnxruntime(
    data_shape, index_shape, tmp_path
):
    rng = np.random.default_rng(0)
    indices = rng.integers(0, data_shape[-1], size=index_shape).astype(np.int64)
    # onnxruntime: the last axis becomes the flattened indices; a 1-D input gives [1, len(indices)].
    out_shape = [1, indices.size] if len(data_shape) == 1 else [*data_shape[:-1], indices.size]
    node = helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain="ai.onnx.ml")
    model = one_node_model(
        node,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, data_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializers=[numpy_helper.from_array(indices, "i")],
    )
    src = save(model, tmp_path / "afe.onnx")
    dst = tmp_path / "gather.onnx"
    replace_ml_ops(src, dst)

    assert "ai.onnx.ml" not in {o.domain for o in onnx.load(str(dst)).opset_import}
    feeds = {"x": rng.random(data_shape, dtype=np.float32)}
    assert_same_outputs(run(src, feeds), run(dst, feeds))


@pytest.mark.parametrize(
    "case",
    ["multiclass-softmax-strings", "binary-logistic", "ovr-none", "int64-input"],
)
def test_replace_ml_ops__linear_classifiers__give_the_same_labels_and_scores(case, iris, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    target = load_iris().target
    x = iris
    if case == "multiclass-softmax-strings":
        src = sklearn_export(
            tmp_path, LogisticRegression(max_iter=500), x, np.array(["a", "b", "c"])[target], zipmap=False
        )
    elif case == "binary-logistic":
        src = sklearn_export(tmp_path, LogisticRegression(max_iter=500), x, target == 2, zipmap=False)
    elif case == "ovr-none":
        src = sklearn_export(tmp_path, LinearSVC(), x, target)
    else:
        x = np.round(iris * 10).astype(np.int64)
        src = sklearn_export(tmp_path, LogisticRegression(max_iter=2000), x, target, zipmap=False)
    dst = tmp_path / "standard.onnx"
    report = replace_ml_ops(src, dst)

    assert report.details["replaced"]["LinearClassifier"] == 1
    assert not [n for n in onnx.load(str(dst)).graph.node if n.domain == "ai.onnx.ml"]
    rows = np.concatenate([x, (x * np.random.default_rng(1).uniform(0.5, 1.5, x.shape)).astype(x.dtype)])
    assert_same_outputs(run(src, {"X": rows}), run(dst, {"X": rows}))


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_replace_ml_ops__normalizer__matches_onnxruntime_including_an_all_zero_row(norm, tmp_path):
    node = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm=norm)
    model = one_node_model(
        node,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    src = save(model, tmp_path / "normalizer.onnx")
    dst = tmp_path / "standard.onnx"
    replace_ml_ops(src, dst)
    x = np.array([[0, 0, 0], [1, -2, 3], [-1, -2, -3], [0.5, 0.25, 0]], np.float32)
    assert_same_outputs(run(src, {"x": x}), run(dst, {"x": x}))


def test_replace_ml_ops__scaler__matches_onnxruntime(tmp_path):
    node = helper.make_node(
        "Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=[1.0, -2.0, 0.5], scale=[0.5, 3.0, -1.0]
    )
    model = one_node_model(
        node,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    src = save(model, tmp_path / "scaler.onnx")
    dst = tmp_path / "standard.onnx"
    replace_ml_ops(src, dst)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    assert_same_outputs(run(src, {"x": x}), run(dst, {"x": x}))


def test_replace_ml_ops__nothing_exactly_replaceable__is_refused_with_each_reason(tmp_path):
    node = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="MAX")
    model = one_node_model(
        node,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    src = save(model, tmp_path / "max.onnx")
    with pytest.raises(
        TransformError, match=r"no ai.onnx.ml operator could be replaced exactly: Normalizer .*norm MAX"
    ):
        replace_ml_ops(src, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_runnable_transforms__each_has_a_name_function_params_and_description():
    names = [name for name, _function, _params, _description in RUNNABLE_TRANSFORMS]
    assert names == [
        "lower_ir_version",
        "remove_noops",
        "zipmap_to_tensor",
        "replace_ml_ops",
        "fold_batchnorm",
        "make_runnable",
    ]


def test_remove_noops__identity_passing_an_outer_value_out_of_a_branch__stays_as_onnx_requires(tmp_path):
    # "If the sum is positive, negate x, else x as it is": a branch output must be produced inside the branch
    # (onnx.checker refuses a branch output that names an outer value), so that Identity is the branch.
    vector = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 4]) for name in ("x", "y", "neg", "same")]
    negate = helper.make_graph([helper.make_node("Neg", ["x"], ["neg"])], "then", [], [vector[2]])
    passthrough = helper.make_graph([helper.make_node("Identity", ["x"], ["same"])], "else", [], [vector[3]])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["branched"], then_branch=negate, else_branch=passthrough),
        helper.make_node("Identity", ["branched"], ["y"]),
    ]
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    graph = helper.make_graph(nodes, "g", [vector[0]], [vector[1]], initializer=[zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    src, dst = save(model, tmp_path / "branch.onnx"), tmp_path / "clean.onnx"
    report = remove_noops(src, dst)
    assert report.details == {"removed": {"Identity": 1}, "kept": {"Identity": 1}}
    cleaned = onnx.load(str(dst))
    onnx.checker.check_model(cleaned, full_check=True)
    assert [n.op_type for n in cleaned.graph.node] == ["ReduceSum", "Greater", "If"]
    for sign in (1, -1):
        feeds = {"x": sign * np.random.default_rng(0).random((3, 4), dtype=np.float32)}
        assert_same_outputs(run(src, feeds), run(dst, feeds))


def conv_bn_model(*, conv_bias: bool, weights_as_constants: bool) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> BatchNormalization (the second one follows no Conv), at opset 11."""
    rng = np.random.default_rng(3)
    arrays = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        **{
            f"{prefix}_{name}": value
            for prefix in ("bn1", "bn2")
            for name, value in {
                "scale": rng.uniform(0.5, 2, 4),
                "bias": rng.standard_normal(4),
                "mean": rng.standard_normal(4),
                "var": rng.uniform(0.1, 3, 4),
            }.items()
        },
    }
    tensors = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in arrays.items()]
    if not conv_bias:
        tensors = [t for t in tensors if t.name != "b"]
    constants = [helper.make_node("Constant", [], [t.name], value=t) for t in tensors] if weights_as_constants else []
    nodes = [
        *constants,
        helper.make_node("Conv", ["x", "w", *(["b"] if conv_bias else [])], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn1_scale", "bn1_bias", "bn1_mean", "bn1_var"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node(
            "BatchNormalization", ["r", "bn2_scale", "bn2_bias", "bn2_mean", "bn2_var"], ["y"], epsilon=1e-3
        ),
    ]
    image = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, c, 8, 8]) for name, c in (("x", 3), ("y", 4))
    ]
    graph = helper.make_graph(
        nodes, "conv_bn", image[:1], image[1:], initializer=[] if weights_as_constants else tensors
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    return model


@pytest.mark.parametrize("conv_bias", [True, False])
@pytest.mark.parametrize("weights_as_constants", [True, False])
def test_fold_batchnorm__into_the_conv_before_it_else_mul_add__same_outputs(conv_bias, weights_as_constants, tmp_path):
    src = save(conv_bn_model(conv_bias=conv_bias, weights_as_constants=weights_as_constants), tmp_path / "bn.onnx")
    dst = tmp_path / "folded.onnx"
    report = fold_batchnorm(src, dst)
    assert report.details["folded"] == {"into the Conv before it": 1, "as a per-channel Mul and Add": 1}
    model = onnx.load(str(dst))
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "Mul", "Add"]
    assert [o.name for o in model.graph.output] == ["y"]
    # The Conv's old weights and the statistics are gone; only the folded tensors are stored.
    assert len(model.graph.initializer) == 4
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    assert_same_outputs(run(src, feeds), run(dst, feeds))


def test_fold_batchnorm__training_mode__is_left_with_the_reason(tmp_path):
    stats = [numpy_helper.from_array(np.ones(2, np.float32), name) for name in ("s", "b", "m", "v")]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)
    vector = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 2] if name == "y" else [2])
        for name in ("y", "rm", "rv")
    ]
    src = save(one_node_model(node, [vector], outputs, initializers=stats), tmp_path / "train.onnx")
    with pytest.raises(TransformError, match="no BatchNormalization could be folded: .*training mode"):
        fold_batchnorm(src, tmp_path / "out.onnx")


def test_make_runnable__conv_batchnorm_model__reaches_an_android_phone_with_the_batchnorms_folded(tmp_path):
    src = save(conv_bn_model(conv_bias=True, weights_as_constants=True), tmp_path / "bn.onnx")
    compatible, reasons = verdict(src, ANDROID)
    assert not compatible and any(r.startswith("BatchNormalization:") for r in reasons)
    dst = tmp_path / "android.onnx"
    report = make_runnable(src, dst, profile=profile(ANDROID))
    assert verdict(dst, ANDROID) == (True, [])
    assert [s["transform"] for s in report.details["steps"]][:1] == ["fold_batchnorm"]
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    assert_same_outputs(run(src, feeds), run(dst, feeds))
