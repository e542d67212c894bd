"""Inputs whose batch is not on axis 0 (a recurrent state of shape (2, batch, 128), as voice-activity models
carry) and inputs with no batch at all (a sample rate): sample inputs and datasets feed them as the model lays
them out."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from jobs.tooling.datasets import batch_axes, fixed_batch, iter_batches, load_dataset
from jobs.tooling.errors import DatasetError
from jobs.tooling.evaluate import verify_variant
from jobs.tooling.inputs import TensorSpec, graph_inputs


def stateful_model() -> onnx.ModelProto:
    """y = x @ W * sr, new_state = state + mean(y): x (batch, 16), state (2, batch, 8), sr a scalar."""
    weights = numpy_helper.from_array(np.linspace(-1, 1, 16 * 8, dtype=np.float32).reshape(16, 8), "W")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Cast", ["sr"], ["sr_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xw", "sr_f"], ["y"]),
        helper.make_node("Add", ["state", "y"], ["new_state"]),  # (2, batch, 8) + (batch, 8)
    ]
    graph = helper.make_graph(
        nodes,
        "vad",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, "batch", 8]),
        ],
        [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "vad.onnx"
    onnx.save(stateful_model(), path)
    return path


def samples(tmp_path, rows: int = 10, state_rows: int | None = None):
    rng = np.random.default_rng(0)
    path = tmp_path / "samples.npz"
    state = rng.standard_normal((2, state_rows or rows, 8)).astype(np.float32)
    np.savez(path, x=rng.standard_normal((rows, 16)).astype(np.float32), state=state, sr=np.array(16000))
    return path


def test_batch_axes__found_by_the_batch_dimension_name__scalars_fed_whole():
    assert batch_axes(graph_inputs(stateful_model())) == {"x": 0, "state": 1, "sr": None}


def test_batch_axes__unnamed_dynamic_batch__is_each_inputs_first_dynamic_axis():
    specs = [TensorSpec("input", "float32", (None, None), 1), TensorSpec("state", "float32", (2, None, 128), 1)]
    assert batch_axes(specs) == {"input": 0, "state": 1}


def test_batch_axes__state_of_fixed_shape_beside_a_named_batch__is_fed_row_by_row_on_axis_0():
    # A sequence export: (sequence_length, 576) windows with a (1, 1, 128) state per window.
    specs = [TensorSpec("input", "float32", ("sequence_length", 576), 1), TensorSpec("h", "float32", (1, 1, 128), 1)]
    assert batch_axes(specs) == {"input": 0, "h": 0}
    assert fixed_batch(specs) == 1


def test_iter_batches__slices_the_state_on_its_batch_axis_and_feeds_the_scalar_whole(tmp_path):
    specs = graph_inputs(stateful_model())
    dataset = load_dataset(samples(tmp_path), specs)
    assert dataset.rows == 10
    batches = list(iter_batches(dataset, specs, batch_size=4))
    assert [valid for _, valid in batches] == [4, 4, 2]
    feeds, _ = batches[-1]
    assert feeds["x"].shape == (2, 16) and feeds["state"].shape == (2, 2, 8) and feeds["sr"].shape == ()
    original = np.load(tmp_path / "samples.npz")["state"]
    np.testing.assert_array_equal(feeds["state"], original[:, 8:10])


def test_verify_variant__on_samples_with_a_state_input__compares_the_model_with_itself(model_path, tmp_path):
    verified = verify_variant(model_path, model_path, samples(tmp_path))
    assert verified["verified"] and verified["inputs_source"] == "samples"
    state = verified["fidelity"]["new_state"]
    assert (state["metric"], state["value"]) == ("relative_l2", 0.0)


def test_load_dataset__state_with_other_rows__is_refused_naming_both_counts(tmp_path):
    with pytest.raises(DatasetError) as refused:
        load_dataset(samples(tmp_path, rows=10, state_rows=9), graph_inputs(stateful_model()))
    assert "row counts differ between arrays: 'x' has 10, 'state' has 9" in str(refused.value)


def test_load_dataset__state_laid_out_batch_first__is_refused_with_the_layout_the_model_expects(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, x=np.zeros((10, 16), np.float32), state=np.zeros((10, 2, 8), np.float32), sr=np.array(16000))
    with pytest.raises(DatasetError) as refused:
        load_dataset(path, graph_inputs(stateful_model()))
    assert "'state' has shape (10, 2, 8); the input expects (2, rows, 8)" in str(refused.value)
