"""The installed onnxruntime, asked directly: which operators it supports, and whether it loads and runs a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from devices.catalog.builtin import BUILTIN_DEVICE_TYPES
from jobs.tooling import live_runtime
from jobs.tooling.compat import check_device
from jobs.tooling.inspect import inspect_model
from jobs.tooling.kernel_check import NodeVerdict, check_node
from jobs.tooling.registry.load import live_registry

FLOAT = TensorProto.FLOAT


def one_graph(nodes, inputs, outputs, *, opset: int = 17, initializers=(), extra_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "probe", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    model.ir_version = 8
    return model


def constant_add_model(opset: int = 17) -> onnx.ModelProto:
    """y = x + a Constant node's value: what PyTorch and tf2onnx exports are full of."""
    bias = numpy_helper.from_array(np.ones(4, dtype=np.float32))
    return one_graph(
        [helper.make_node("Constant", [], ["bias"], value=bias), helper.make_node("Add", ["x", "bias"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 4])],
        opset=opset,
    )


def resize_model() -> onnx.ModelProto:
    """Resize with its scales fed by the caller: random generated scales are negative, real ones are not."""
    return one_graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
        [helper.make_tensor_value_info("x", FLOAT, [1, 1, 2, 2]), helper.make_tensor_value_info("scales", FLOAT, [4])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", "C", "H", "W"])],
        opset=13,
    )


def sequence_input_model() -> onnx.ModelProto:
    element = helper.make_tensor_type_proto(FLOAT, ["N", 3])
    return one_graph(
        [helper.make_node("ConcatFromSequence", ["parts"], ["y"], axis=0)],
        [helper.make_value_info("parts", helper.make_sequence_type_proto(element))],
        [helper.make_tensor_value_info("y", FLOAT, ["M", 3])],
    )


def optional_input_model() -> onnx.ModelProto:
    value = helper.make_optional_type_proto(helper.make_tensor_type_proto(FLOAT, [2]))
    return one_graph(
        [helper.make_node("OptionalHasElement", ["maybe"], ["present"])],
        [helper.make_value_info("maybe", value)],
        [helper.make_tensor_value_info("present", TensorProto.BOOL, [])],
        opset=18,
    )


def string_input_model() -> onnx.ModelProto:
    return one_graph(
        [helper.make_node("Identity", ["text"], ["same"])],
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["N"])],
    )


def map_input_model() -> onnx.ModelProto:
    """scikit-learn's DictVectorizer: a map input, which nothing is generated for."""
    return one_graph(
        [helper.make_node("DictVectorizer", ["features"], ["y"], domain="ai.onnx.ml", int64_vocabulary=[1, 2])],
        [
            helper.make_value_info(
                "features", helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(FLOAT, []))
            )
        ],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 2])],
        extra_opsets=[helper.make_opsetid("ai.onnx.ml", 3)],
    )


def no_kernel_model() -> onnx.ModelProto:
    """GRUUnit: ONNX knows its schema, this onnxruntime has no kernel for it, so no session can be created."""
    return one_graph(
        [helper.make_node("GRUUnit", ["h", "w", "r", "t"], ["y"], drop_states=0)],
        [helper.make_tensor_value_info(name, FLOAT, [1, 3]) for name in "hwr"]
        + [helper.make_tensor_value_info("t", FLOAT, [1])],
        [helper.make_tensor_value_info("y", FLOAT, [1, 3])],
        opset=9,
    )


def saved(model: onnx.ModelProto, tmp_path: Path, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def gateway_profile() -> dict:
    """The built-in x86 gateway, on this server's onnxruntime release, as DeviceType.profile() gives it."""
    gateway = next(row for row in BUILTIN_DEVICE_TYPES if row["slug"] == "x86-gateway")
    return {
        **gateway,
        "runtime": "onnxruntime",
        "max_model_bytes": gateway["max_model_mb"] * 1024 * 1024,
        "memory_bytes": gateway["memory_mb"] * 1024 * 1024,
    }


# -- operators the runtime supports


def signature(op: str, opset: int) -> dict:
    return {"domain": "ai.onnx", "op": op, "opset": opset, "inputs": [], "outputs": ["float"], "count": 1, "node": op}


@pytest.mark.parametrize("opset", [9, 11, 13, 17, live_runtime.max_opsets()["ai.onnx"]])
def test_constant__has_no_kernel_but_loads__counts_as_supported(opset):
    ort.InferenceSession(constant_add_model(opset).SerializeToString(), providers=["CPUExecutionProvider"])

    assert check_node(signature("Constant", opset), live_registry()) == NodeVerdict(True, "load")


def test_operator_without_a_kernel_that_does_not_load__is_still_missing():
    with pytest.raises(Exception, match="GRUUnit"):
        ort.InferenceSession(no_kernel_model().SerializeToString(), providers=["CPUExecutionProvider"])

    assert not check_node(signature("GRUUnit", 9), live_registry()).runs


def test_check_device__model_with_a_constant_node__is_compatible_with_the_x86_gateway():
    model = constant_add_model()

    ok, reasons = check_device(inspect_model(model), model.ByteSize(), gateway_profile())

    assert ok, reasons


# -- smoke_run: a session decides whether the server loads the model; a run on generated inputs only warns


def test_smoke_run__runnable_model__describes_inputs_and_outputs(tmp_path):
    answer = live_runtime.smoke_run(saved(constant_add_model(), tmp_path))

    assert answer == {
        "inputs_source": "generated",
        "inputs_description": "random floats (standard normal) and zero integers, every dynamic dimension set to 1 "
        "(x [1, 4])",
        "inputs": {"x": [1, 4]},
        "outputs": [{"name": "y", "shape": [1, 4], "dtype": "float32", "finite": True}],
    }


def test_smoke_run__generated_resize_scales_fail__is_a_warning_with_the_message(tmp_path):
    answer = live_runtime.smoke_run(saved(resize_model(), tmp_path))

    assert "outputs" not in answer
    assert answer["inputs"] == {"x": [1, 1, 2, 2], "scales": [4]}
    assert "loads the model, but a run on generated inputs failed" in answer["warning"]
    assert "Scale value should be greater than 0" in answer["warning"]


def test_smoke_run__sequence_input__runs_on_a_one_element_sequence(tmp_path):
    answer = live_runtime.smoke_run(saved(sequence_input_model(), tmp_path))

    assert answer["inputs"] == {"parts": {"sequence_of": [[1]]}}
    assert "warning" not in answer and "skipped" not in answer
    assert answer["outputs"][0]["dtype"] == "float32"


def test_smoke_run__optional_input__runs_with_a_value(tmp_path):
    answer = live_runtime.smoke_run(saved(optional_input_model(), tmp_path))

    assert answer["inputs"] == {"maybe": [2]}
    assert answer["outputs"] == [{"name": "present", "shape": [], "dtype": "bool", "finite": None}]


def test_smoke_run__string_input__runs_on_short_strings(tmp_path):
    answer = live_runtime.smoke_run(saved(string_input_model(), tmp_path))

    assert answer["outputs"] == [{"name": "same", "shape": [1], "dtype": "object", "finite": None}]


def test_smoke_run__map_input__is_skipped_with_the_reason(tmp_path):
    answer = live_runtime.smoke_run(saved(map_input_model(), tmp_path))

    assert answer == {
        "inputs_source": "generated",
        "skipped": "The run on generated inputs was skipped: input 'features' is a map, which no values are "
        "generated for.",
    }


def test_smoke_run__session_cannot_be_created__raises_with_the_reason(tmp_path):
    with pytest.raises(live_runtime.RunFailure) as raised:
        live_runtime.smoke_run(saved(no_kernel_model(), tmp_path))

    assert f"onnxruntime {live_runtime.version()} cannot load the model" in str(raised.value)
    assert "GRUUnit" in str(raised.value)
