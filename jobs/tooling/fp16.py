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
    float_initializers,
    load_model,
    refuse_quantized,
    save_model,
    write_atomically,
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
    float_weights = sum(len(float_initializers(graph)) for graph in iter_graphs(model.graph))
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
    # The converter appends its Cast nodes at the end of the graph; onnx.checker (and strict loaders) want
    # nodes in topological order. onnx-ir's pass sorts every graph, If/Loop bodies included, knowing that a body
    # reads names of the graph around it (onnxruntime's OnnxModel.topological_sort calls those a cycle).
    converted = _topologically_sorted(converted)
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:
        raise TransformError(f"the fp16 model is not valid ONNX: {str(exc).splitlines()[0]}") from exc
    with write_atomically(dst) as tmp:
        save_model(converted, tmp)
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


def _topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    ir_model = onnx_ir.serde.deserialize_model(model)
    TopologicalSortPass()(ir_model)
    return onnx_ir.serde.serialize_model(ir_model)
