"""Per-node verdicts against recorded registries, one small model per cause the compatibility issue found.

Where the release is the server's own, the test also asks onnxruntime itself, so the verdict is checked against
the runtime rather than against what the checker is expected to say.
"""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from devices.catalog.builtin import builtin_profile
from jobs.tooling.compat import check_device, placement_for
from jobs.tooling.inspect import inspect_model
from jobs.tooling.kernel_check import check_node, function_expands
from jobs.tooling.placement import placement, placement_notes
from jobs.tooling.registry.load import Registry, live_registry, recorded_releases, registry_for
from jobs.tooling.signatures import type_string

profile = builtin_profile


def one_node(op: str, elem: int, opset: int, *, inputs: int = 2, ir_version: int = 8, **attrs) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(inputs)]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], name=f"my_{op.lower()}", **attrs)],
        "g",
        [helper.make_tensor_value_info(name, elem, [2, 3]) for name in names],
        [helper.make_tensor_value_info("y", elem, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def verdict(model: onnx.ModelProto, slug: str) -> tuple[bool, list[str]]:
    return check_device(inspect_model(model), model.ByteSize(), profile(slug))


def server_loads(model: onnx.ModelProto) -> bool:
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # the runtime refusing the model is the answer
        return False
    return True


def test_the_releases_the_builtin_device_types_name__are_recorded() -> None:
    assert {"1.16", "1.17", "1.18"} <= set(recorded_releases())
    for release in ("1.16", "1.17", "1.18"):
        registry = registry_for(release)
        assert registry is not None and registry.release.startswith(release + ".")


def test_int8_add_on_the_1_16_profile__fails_naming_the_types_the_release_has() -> None:
    ok, reasons = verdict(one_node("Add", TensorProto.INT8, 14), "raspberry-pi-4")

    assert not ok
    assert reasons == [
        "Add-14 on int8: onnxruntime 1.16 has Add-14 kernels for double, float, int32, int64 only "
        "(1 node, e.g. 'my_add')"
    ]
    assert verdict(one_node("Add", TensorProto.FLOAT, 14), "raspberry-pi-4") == (True, [])


def test_int8_add__runs_on_the_server_which_has_that_kernel() -> None:
    model = one_node("Add", TensorProto.INT8, 14)

    assert verdict(model, "x86-gateway") == (True, []) and server_loads(model)


def test_swish_past_the_opset_its_function_body_was_written_for__is_refused_like_the_runtime_does() -> None:
    at_24, at_25 = (
        one_node("Swish", TensorProto.FLOAT, 24, inputs=1),
        one_node("Swish", TensorProto.FLOAT, 25, inputs=1),
    )

    assert function_expands("ai.onnx", "Swish", 24) and not function_expands("ai.onnx", "Swish", 25)
    assert verdict(at_24, "x86-gateway")[0] is server_loads(at_24) is True
    ok, reasons = verdict(at_25, "x86-gateway")
    assert ok is server_loads(at_25) is False
    assert reasons[0].startswith("Swish-24: onnxruntime ")
    assert "ONNX's function body for it is not valid at opset 25" in reasons[0]


def test_an_operator_the_release_does_not_know__names_it_with_its_opset() -> None:
    model = one_node("Swish", TensorProto.FLOAT, 19, inputs=1, ir_version=9)
    model.opset_import[0].version = 19  # Swish does not exist before opset 24
    signature = inspect_model(model)["kernel_signatures"][0]

    result = check_node(signature, registry_for("1.16"))

    assert (result.runs, result.reason) == (False, "Swish (opset 19): onnxruntime 1.16 does not know this operator")


def test_deprecated_operator__is_refused() -> None:
    signature = {"domain": "ai.onnx", "op": "Upsample", "opset": 10, "inputs": ["float", "float"], "outputs": ["float"]}

    result = check_node(signature, registry_for("1.16"))

    assert (result.runs, result.reason) == (False, "Upsample-10: deprecated in onnxruntime 1.16, which refuses it")


def test_cast_to_a_type_set_by_attribute__is_checked_on_its_output_type() -> None:
    model = one_node("Cast", TensorProto.FLOAT, 19, inputs=1, ir_version=9, to=TensorProto.FLOAT8E4M3FN)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT8E4M3FN

    assert inspect_model(model)["kernel_signatures"][0]["outputs"] == ["float8e4m3fn"]
    assert verdict(model, "raspberry-pi-4")[0] is True  # 1.16's Cast-19 has float8 kernels
    ok, reasons = verdict(one_node("Cast", TensorProto.FLOAT, 13, inputs=1, to=TensorProto.BFLOAT16), "raspberry-pi-4")
    assert ok, reasons


def test_mobile_package__drops_kernels_its_type_reduction_removes() -> None:
    ok, reasons = verdict(one_node("Add", TensorProto.DOUBLE, 13), "android-arm64-phone")

    assert not ok
    assert reasons[0] == (
        "Add on double: the onnxruntime 1.17 mobile package keeps float, int8, uint8 kernels only "
        "(and bool, int32, int64 where shapes and indices need them) (1 node, e.g. 'my_add')"
    )
    assert verdict(one_node("Add", TensorProto.FLOAT, 13), "android-arm64-phone") == (True, [])
    assert verdict(one_node("Add", TensorProto.DOUBLE, 13), "raspberry-pi-4") == (True, [])


def test_a_constant_node__loads_on_every_release() -> None:
    const = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0]))
    add = helper.make_node("Add", ["x", "c"], ["y"])
    graph = helper.make_graph(
        [const, add],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8

    for slug in ("x86-gateway", "raspberry-pi-4", "jetson-orin", "android-arm64-phone"):
        assert verdict(model, slug)[0], slug
    assert server_loads(model)


def test_sequence_types__are_spelled_as_onnxruntime_spells_them() -> None:
    seq = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None))

    assert type_string(seq) == "seq(float)"
    assert type_string(helper.make_optional_type_proto(seq)) == "optional(seq(tensor(float)))"
    assert type_string(helper.make_tensor_type_proto(TensorProto.UNDEFINED, None)) is None


# -- placement on an accelerator


def accelerator_registry() -> Registry:
    """The 1.18 CPU registry with a made-up accelerator that has Conv and Relu kernels, nothing else."""
    cpu = registry_for("1.18")
    assert cpu is not None
    fake = {
        "ai.onnx:Conv": [[11, 2147483647, {"T": ["float"]}]],
        "ai.onnx:Relu": [[14, 2147483647, {"T": ["float"]}]],
    }
    return Registry(cpu.release, cpu.source, cpu.schemas, {**cpu.kernels, "FakeExecutionProvider": fake})


def conv_chain(fallbacks: int) -> onnx.ModelProto:
    """Conv -> (Relu, then Softplus) x fallbacks -> Relu: each Softplus is a CPU island between accelerator nodes."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.1] * 108)
    nodes = [helper.make_node("Conv", ["x", "w"], ["t0"], name="conv")]
    last = "t0"
    for i in range(fallbacks):
        nodes += [
            helper.make_node("Relu", [last], [f"r{i}"], name=f"relu{i}"),
            helper.make_node("Softplus", [f"r{i}"], [f"s{i}"], name=f"softplus{i}"),
        ]
        last = f"s{i}"
    nodes.append(helper.make_node("Relu", [last], ["y"], name="relu_out"))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_placement__counts_fallback_nodes_macs_and_islands() -> None:
    facts = inspect_model(conv_chain(3))

    report = placement(facts, accelerator_registry(), "FakeExecutionProvider")

    assert report is not None
    assert (report["nodes"], report["on_accelerator"]) == (8, 5)
    assert report["fallback"] == [{"op": "Softplus", "node": "softplus0", "count": 3}]
    assert report["macs_share"] == 1.0  # all the compute is the Conv
    assert (report["islands"], report["copies"]) == (3, 6)
    notes = placement_notes(report)
    assert notes[0] == (
        "placement on Fake: 5 of 8 nodes, 100.0% of MACs; falls back to the CPU: Softplus (3, e.g. 'softplus0')"
    )
    assert notes[1].startswith("warning: CPU fallbacks cut the graph into 3 islands (6 copies between Fake and CPU")


def test_placement__one_fallback__reports_it_without_the_islands_warning() -> None:
    report = placement(inspect_model(conv_chain(1)), accelerator_registry(), "FakeExecutionProvider")

    assert report is not None and (report["islands"], report["copies"]) == (1, 2)
    assert len(placement_notes(report)) == 1


def test_placement__cpu_only_device_types_have_none() -> None:
    facts = inspect_model(conv_chain(1))

    assert placement_for(facts, profile("raspberry-pi-4")) is None
    assert placement(facts, live_registry(), "CPUExecutionProvider") is None


@pytest.mark.skipif(
    registry_for("1.18") is None or not registry_for("1.18").has_provider("CUDAExecutionProvider"),
    reason="no CUDA kernels recorded for onnxruntime 1.18",
)
def test_jetson__reports_its_cuda_placement_with_a_cpu_fallback_node() -> None:
    # Unique has CPU kernels and none on CUDA: it falls back to the CPU.
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Unique", ["r"], ["values"], name="unique", sorted=1),
        ],
        "unique",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8

    ok, reasons = verdict(model, "jetson-orin")
    report = placement_for(inspect_model(model), profile("jetson-orin"))

    assert ok, reasons
    assert report is not None and report["provider"] == "CUDAExecutionProvider"
    assert [f["op"] for f in report["fallback"]] == ["Unique"]
    assert any(r.startswith("placement on CUDA: 1 of 2 nodes") for r in reasons)


# -- how onnxruntime picks a kernel


def test_an_open_kernel_range__does_not_stretch_to_a_later_schema_version() -> None:
    cpu = registry_for("1.16")
    assert cpu is not None
    schemas = {
        "ai.onnx:Foo": [
            [14, 0, [["X", "T", 0]], [["Y", "T", 0]], {"T": ["float"]}],
            [15, 0, [["X", "T", 0]], [["Y", "T", 0]], {"T": ["float"]}],
        ]
    }
    registry = Registry(
        "9.9.9", "test", schemas, {"CPUExecutionProvider": {"ai.onnx:Foo": [[14, 2147483647, {"T": ["float"]}]]}}
    )
    at = {"domain": "ai.onnx", "op": "Foo", "inputs": ["float"], "outputs": ["float"]}

    assert check_node({**at, "opset": 14}, registry).runs
    assert check_node({**at, "opset": 15}, registry).reason == "Foo-15: onnxruntime 9.9 has no kernel for it"


def test_float16_node_with_only_float_kernels__runs_on_the_cpu_by_casting() -> None:
    model = one_node("Div", TensorProto.FLOAT16, 14)
    signature = inspect_model(model)["kernel_signatures"][0]

    assert check_node(signature, registry_for("1.16")).how == "cast"
    assert verdict(model, "x86-gateway")[0] is server_loads(model) is True


def test_function_op_whose_body_calls_an_operator_without_kernel__is_refused_like_the_runtime_does() -> None:
    model = one_node("Bernoulli", TensorProto.FLOAT, 22, inputs=1, ir_version=10)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT

    signature = inspect_model(model)["kernel_signatures"][0]

    assert "RandomUniformLike" in {call["op"] for call in signature["body"]}
    assert verdict(model, "x86-gateway")[0] is server_loads(model)


def test_recurrent_op_with_batch_first_layout__is_refused_on_the_cpu() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 20, 4], [0.1] * 80)
    r = helper.make_tensor("r", TensorProto.FLOAT, [1, 20, 5], [0.1] * 100)
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm", hidden_size=5, layout=1)
    graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, r])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8

    ok, reasons = verdict(model, "x86-gateway")

    assert ok is server_loads(model) is False
    assert reasons[0].startswith("LSTM-14 with layout=1: the CPU kernel of onnxruntime ")
