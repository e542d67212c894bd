"""Small models and datasets shared by the tooling tests, built once per session."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

from jobs.tooling.reference_models import float_input, make_model, mlp, mlp_weights


def save(model: onnx.ModelProto, directory: Path, name: str) -> Path:
    path = directory / name
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mlp_path(models_dir) -> Path:
    return save(mlp([16, 64, 64, 10]), models_dir, "mlp.onnx")


@pytest.fixture(scope="session")
def regressor_path(models_dir) -> Path:
    return save(mlp([8, 32, 1], seed=1), models_dir, "regressor.onnx")


@pytest.fixture(scope="session")
def fixed_batch_path(models_dir) -> Path:
    return save(mlp([16, 64, 64, 10], batch=1), models_dir, "fixed_batch.onnx")


@pytest.fixture(scope="session")
def constant_weights_path(models_dir) -> Path:
    return save(mlp([16, 64, 64, 10], constants=True), models_dir, "constant_weights.onnx")


@pytest.fixture(scope="session")
def huge_values_path(models_dir) -> Path:
    model = mlp([16, 64, 10])
    bias = next(t for t in model.graph.initializer if t.name == "b0")
    values = numpy_helper.to_array(bias).copy()
    values[3] = 1e6  # far beyond fp16's 65504
    bias.CopyFrom(numpy_helper.from_array(values, "b0"))
    return save(model, models_dir, "huge_values.onnx")


@pytest.fixture(scope="session")
def cnn_path(models_dir) -> Path:
    rng = np.random.default_rng(2)
    initializers = [
        numpy_helper.from_array((rng.standard_normal((8, 1, 3, 3)) / 3).astype(np.float32), "c1"),
        numpy_helper.from_array((rng.standard_normal((16, 8, 3, 3)) / 8).astype(np.float32), "c2"),
        numpy_helper.from_array((rng.standard_normal((10, 16)) / 4).astype(np.float32), "fc"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc_bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2"], ["h2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc", "fc_bias"], ["y"], transB=1),
    ]
    model = make_model(nodes, [float_input("x", ["N", 1, 8, 8])], [float_input("y", ["N", 10])], initializers)
    return save(model, models_dir, "cnn.onnx")


@pytest.fixture(scope="session")
def if_subgraph_path(models_dir) -> Path:
    """Weights only as Constant nodes inside the If branches: out of the quantizer's default reach."""
    weights = mlp_weights([16, 10])[0][0]

    def branch(name: str, scale: float) -> onnx.GraphProto:
        constant = numpy_helper.from_array(weights * scale, f"{name}_w")
        return helper.make_graph(
            [
                helper.make_node("Constant", [], [f"{name}_w"], value=constant),
                helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"]),
            ],
            name,
            [],
            [float_input(f"{name}_y", ["N", 10])],
        )

    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.float32))),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["y"], then_branch=branch("then", 1.0), else_branch=branch("else", -1.0)),
    ]
    model = make_model(nodes, [float_input("x", ["N", 16])], [float_input("y", ["N", 10])])
    return save(model, models_dir, "if_subgraph.onnx")


@pytest.fixture(scope="session")
def quantized_path(models_dir, mlp_path) -> Path:
    path = models_dir / "already_quantized.onnx"
    ort_quantize_dynamic(str(mlp_path), str(path))
    return path


@dataclass(frozen=True)
class Digits:
    model: Path
    npz: Path
    csv: Path
    x_test: np.ndarray
    y_test: np.ndarray
    sklearn_accuracy: float


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Digits:
    """The console's demo digits classifier (skl2onnx, no ZipMap) and its held-out split as NPZ and CSV."""
    from sklearn.exceptions import ConvergenceWarning

    from jobs.tooling.demo_models import train_digits_classifier

    directory = tmp_path_factory.mktemp("digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 150 iterations is plenty for a fixture
        trained = train_digits_classifier(hidden=(128,), max_iter=150)
    model_path = directory / "digits.onnx"
    model_path.write_bytes(trained.onnx_bytes)
    npz_path = directory / "digits_test.npz"
    np.savez(npz_path, input=trained.x_test, labels=trained.y_test)
    csv_path = directory / "digits_test.csv"
    header = ",".join([*(f"pixel{i}" for i in range(64)), "label"])
    rows = [",".join([*(f"{v:g}" for v in row), str(y)]) for row, y in zip(trained.x_test, trained.y_test, strict=True)]
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    return Digits(model_path, npz_path, csv_path, trained.x_test, trained.y_test, trained.accuracy)
