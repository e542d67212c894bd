"""fp16 conversion with onnxruntime's converter (onnxconverter_common's produced unloadable models for about half
of the models we measured)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir
from onnx import numpy_helper
from onnx_ir.passes.common import TopologicalSortPass
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from jobs.tooling.common import (
    FP16_SENSITIVE_OPS,
    Param,
    PathLike,
    TransformReport,
    check_params,
    load_model,
    refuse_quantized,
    save_checked,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import iter_graphs, iter_tensors

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
# The operators kept in float32 by default, and why: common.FP16_SENSITIVE_OPS.
SENSITIVE_OPS = FP16_SENSITIVE_OPS
PARAMS = {
    "keep_io_types": Param(bool),
    "keep_float32_ops": Param((list, tuple)),
    "keep_float32_nodes": Param((list, tuple)),
}
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)


def convert_fp16(
    src: PathLike,
    dst: PathLike,
    *,
    keep_io_types: bool = True,
    keep_float32_ops: list[str] | tuple[str, ...] = SENSITIVE_OPS,
    keep_float32_nodes: list[str] | tuple[str, ...] = (),
) -> TransformReport:
    """Halve float weights and compute; ``keep_io_types`` keeps float32 inputs/outputs so app code need not change.

    Nodes of the ``keep_float32_ops`` types (numerically sensitive ones by default; [] for none) and the nodes named
    in ``keep_float32_nodes`` stay in float32 behind Casts; so do the ops onnxruntime's converter always keeps
    (``DEFAULT_OP_BLOCK_LIST``: ML-domain ops, Range, TopK, NonMaxSuppression...).
    """
    check_params(
        PARAMS,
        {
            "keep_io_types": keep_io_types,
            "keep_float32_ops": keep_float32_ops,
            "keep_float32_nodes": keep_float32_nodes,
        },
    )
    for name, values in (("keep_float32_ops", keep_float32_ops), ("keep_float32_nodes", keep_float32_nodes)):
        if not all(isinstance(value, str) and value for value in values):
            raise TransformError(f"parameter {name} must be a list of names, got {list(values)!r}")
    model = load_model(src)
    refuse_quantized(model, "convert")
    overflows = fp16_overflows(model)
    if overflows:
        listed = ", ".join(f"'{name}' (max |x| = {value:.4g})" for name, value in overflows[:5])
        raise TransformError(
            f"{len(overflows)} weight tensors hold values beyond fp16's range of ±{FP16_MAX:g}: {listed}; "
            "they would become clipped or infinite, so keep this model in fp32 (or use int8 quantization)"
        )
    # Initializers and Constant values, in every graph: exporters put a branch's weights in Constant nodes.
    float_weights = sum(1 for tensor in iter_tensors(model) if tensor.data_type in _FLOAT_TYPES)
    if not float_weights and not _has_float_io(model):
        raise TransformError("nothing to convert: the model has no float32 weights, inputs or outputs")
    kept_types = {node.op_type for graph in iter_graphs(model.graph) for node in graph.node} & set(keep_float32_ops)
    node_names = {node.name for graph in iter_graphs(model.graph) for node in graph.node}
    unknown_nodes = sorted(set(keep_float32_nodes) - node_names)
    if unknown_nodes:
        raise TransformError(f"keep_float32_nodes names nodes the model does not have: {', '.join(unknown_nodes[:5])}")
    try:
        # The converter's own block list covers ops with no fp16 kernel; passing a list replaces it, so extend it.
        converted = convert_float_to_float16(
            model,
            keep_io_types=keep_io_types,
            op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_float32_ops)),
            node_block_list=list(keep_float32_nodes) or None,
        )
    except Exception as exc:
        raise TransformError(f"onnxruntime's fp16 converter failed: {type(exc).__name__}: {exc}") from exc
    # The converter appends the Casts around a float32-kept node to the main graph, also when the node is in an
    # If/Loop/Scan body and the Cast reads a value of that body; each goes into the graph that defines its input.
    _move_casts_into_subgraphs(converted)
    # The converter appends its Cast nodes at the end of the graph; onnx.checker (and strict loaders) want
    # nodes in topological order. onnx-ir's pass sorts every graph, If/Loop bodies included, knowing that a body
    # reads names of the graph around it (onnxruntime's OnnxModel.topological_sort calls those a cycle).
    converted = _topologically_sorted(converted)
    save_checked(converted, dst, "fp16 conversion")
    report = TransformReport(
        "fp16",
        details={
            "keep_io_types": keep_io_types,
            "float_weights": float_weights,
            "float32_op_types": sorted(kept_types),
            "float32_nodes": list(keep_float32_nodes),
        },
    )
    io_note = "inputs and outputs stay float32" if keep_io_types else "inputs and outputs become float16"
    report.log.append(f"converted {float_weights} float weight tensors to fp16; {io_note}")
    if kept_types or keep_float32_nodes:
        kept = sorted(kept_types) + [f"node '{name}'" for name in keep_float32_nodes]
        report.log.append(f"kept in float32 for accuracy: {', '.join(kept)}")
    return report


def fp16_overflows(model: onnx.ModelProto) -> list[tuple[str, float]]:
    """Float initializers and Constant values holding finite values with |x| > 65504, largest first."""
    found = []
    for tensor in iter_tensors(model):
        if tensor.data_type not in _FLOAT_TYPES:
            continue
        values = np.abs(numpy_helper.to_array(tensor))
        values = values[np.isfinite(values)]
        if values.size and values.max() > FP16_MAX:
            found.append((tensor.name or "an unnamed Constant", float(values.max())))
    return sorted(found, key=lambda item: -item[1])


def _has_float_io(model: onnx.ModelProto) -> bool:
    values = list(model.graph.input) + list(model.graph.output)
    return any(value.type.tensor_type.elem_type in _FLOAT_TYPES for value in values)


def _move_casts_into_subgraphs(model: onnx.ModelProto) -> int:
    """Move each main-graph node that reads a value defined only inside a subgraph into that subgraph; return how many.

    Names are unique across a model's graphs, so the graph that defines a node's input is the one place the node can
    read it from, and its consumers are in that graph or under it. Repeated until nothing moves (a Cast may read the
    output of one that just moved); the value_info entries of moved outputs follow them.
    """
    main = model.graph
    defined_in: dict[str, onnx.GraphProto] = {}
    for graph in list(iter_graphs(main))[1:]:
        for name in [info.name for info in graph.input] + [tensor.name for tensor in graph.initializer]:
            defined_in[name] = graph
        for node in graph.node:
            defined_in.update((output, graph) for output in node.output if output)
    moved = 0
    while True:
        moves = []
        for index, node in enumerate(main.node):
            homes = [defined_in[name] for name in node.input if name in defined_in]
            if homes and all(home is homes[0] for home in homes) and len(homes) == len([n for n in node.input if n]):
                moves.append((index, homes[0]))
        if not moves:
            break
        for index, home in reversed(moves):
            node = main.node[index]
            home.node.append(node)
            defined_in.update((output, home) for output in node.output if output)
            del main.node[index]
        moved += len(moves)
    kept = [info for info in main.value_info if info.name not in defined_in]
    for info in main.value_info:
        if info.name in defined_in:
            defined_in[info.name].value_info.append(info)
    del main.value_info[:]
    main.value_info.extend(kept)
    return moved


def _topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    ir_model = onnx_ir.serde.deserialize_model(model)
    TopologicalSortPass()(ir_model)
    return onnx_ir.serde.serialize_model(ir_model)
