"""What a model is: signature, opsets, operators, parameters, compute, precision.

Weights live not only in initializers but also in Constant nodes and inside
If/Loop/Scan subgraphs; all of them are counted, and the operator histogram
walks every subgraph.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import onnx
from onnx import helper, shape_inference

from .common import is_quantized_op
from .inputs import graph_inputs, graph_outputs
from .modelfile import iter_all_graphs, iter_tensors

DEFAULT_DOMAIN = "ai.onnx"


def domain_name(domain: str) -> str:
    return DEFAULT_DOMAIN if domain in ("", DEFAULT_DOMAIN) else domain


def opset_imports(model: onnx.ModelProto) -> dict[str, int]:
    return {domain_name(op.domain): int(op.version) for op in model.opset_import}


def operator_counts(model: onnx.ModelProto) -> Counter:
    """(domain, op_type) -> count over all graphs and local function bodies, excluding calls to local functions."""
    local_functions = {(domain_name(f.domain), f.name) for f in model.functions}
    counts: Counter = Counter()
    nodes = [node for graph in iter_all_graphs(model) for node in graph.node]
    nodes += [node for function in model.functions for node in function.node]
    for node in nodes:
        key = (domain_name(node.domain), node.op_type)
        if key not in local_functions:
            counts[key] += 1
    return counts


def _numel(dims) -> int:
    return int(math.prod(int(d) for d in dims)) if len(dims) else 1


def _itemsize(elem_type: int) -> int:
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return 0


def parameter_stats(model: onnx.ModelProto) -> dict:
    """Count every stored weight: initializers, Constant nodes (incl. value_floats/ints) and subgraphs."""
    count = 0
    size = 0
    tensors = 0
    for tensor in iter_tensors(model):
        numel = _numel(tensor.dims)
        count += numel
        size += numel * _itemsize(tensor.data_type)
        tensors += 1
    for graph in iter_all_graphs(model):
        for node in graph.node:
            if node.op_type != "Constant":
                continue
            for attr in node.attribute:
                if attr.name in ("value_floats", "value_ints"):
                    values = len(attr.floats) + len(attr.ints)
                    count += values
                    size += values * (4 if attr.name == "value_floats" else 8)
                    tensors += 1
    return {"count": count, "bytes": size, "tensors": tensors}


def _shape_table(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Tensor name -> dims from shape inference (symbolic dims read as 1: one sample)."""
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is best effort; some custom ops defeat it
        inferred = model
    table: dict[str, list[int | None]] = {}
    for graph in iter_all_graphs(inferred):
        for init in graph.initializer:
            table[init.name] = [int(d) for d in init.dims]
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                table[vi.name] = [
                    int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1
                    for d in vi.type.tensor_type.shape.dim
                ]
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.type == onnx.AttributeProto.TENSOR:
                        table[node.output[0]] = [int(d) for d in attr.t.dims]
    return table


def estimate_macs(model: onnx.ModelProto) -> dict:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul for one sample (batch 1).

    Nodes whose shapes cannot be inferred are counted in ``unknown_nodes``
    rather than guessed.
    """
    shapes = _shape_table(model)
    total = 0
    by_op: Counter = Counter()
    unknown = 0
    for graph in iter_all_graphs(model):
        for node in graph.node:
            if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearConv"):
                continue
            macs = _node_macs(node, shapes)
            if macs is None:
                unknown += 1
            else:
                total += macs
                by_op[node.op_type] += macs
    return {"total": total, "by_op": dict(by_op), "unknown_nodes": unknown}


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> int | None:
    def shape(i: int) -> list[int | None] | None:
        return shapes.get(node.input[i]) if len(node.input) > i and node.input[i] else None

    out = shapes.get(node.output[0]) if node.output else None
    if node.op_type in ("Conv", "QLinearConv"):
        weight = shape(3 if node.op_type == "QLinearConv" else 1)
        if not weight or not out or None in weight or None in out:
            return None
        return _numel(out) * _numel(weight[1:])
    if node.op_type == "ConvTranspose":
        weight, data = shape(1), shape(0)
        if not weight or not data or None in weight or None in data:
            return None
        return _numel(data) * _numel(weight[1:])
    if node.op_type == "Gemm":
        b = shape(1)
        if not b or not out or len(b) != 2:
            return None
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        k = b[1] if trans_b else b[0]
        return _numel(out) * int(k or 1)
    a = shape(0)  # MatMul / MatMulInteger
    if not a or not out:
        return None
    return _numel(out) * int(a[-1] or 1)


def precisions(model: onnx.ModelProto, counts: Counter | None = None) -> dict:
    """Which numeric precisions the model holds, and the one it computes in."""
    counts = counts if counts is not None else operator_counts(model)
    elem_types = {t.data_type for t in iter_tensors(model)}
    for graph in iter_all_graphs(model):
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            if vi.type.HasField("tensor_type"):
                elem_types.add(vi.type.tensor_type.elem_type)
    names = set()
    if onnx.TensorProto.FLOAT in elem_types or onnx.TensorProto.DOUBLE in elem_types:
        names.add("fp32")
    if onnx.TensorProto.FLOAT16 in elem_types:
        names.add("fp16")
    if onnx.TensorProto.BFLOAT16 in elem_types:
        names.add("bf16")
    quantized = any(is_quantized_op(op) for (_, op) in counts)
    if quantized:
        names.add("int8")
    compute = "int8" if quantized else ("fp16" if "fp16" in names else ("bf16" if "bf16" in names else "fp32"))
    return {"present": sorted(names), "compute": compute, "quantized": quantized}


def inspect_model(model: onnx.ModelProto) -> dict:
    """The facts a version page shows and the compatibility checker reads (JSON-ready)."""
    counts = operator_counts(model)
    histogram = {(op if domain == DEFAULT_DOMAIN else f"{domain}.{op}"): n for (domain, op), n in counts.most_common()}
    return {
        "ir_version": int(model.ir_version),
        "opset_imports": opset_imports(model),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "doc_string": model.doc_string[:1000],
        "metadata_props": {p.key: p.value for p in model.metadata_props},
        "inputs": [spec.as_dict() for spec in graph_inputs(model)],
        "outputs": [spec.as_dict() for spec in graph_outputs(model)],
        "operators": [{"domain": d, "op": op, "count": n} for (d, op), n in counts.most_common()],
        "operator_histogram": histogram,
        "node_count": sum(counts.values()),
        "subgraph_count": sum(1 for _ in iter_all_graphs(model)) - 1,
        "parameters": parameter_stats(model),
        "macs": estimate_macs(model),
        "precision": precisions(model, counts),
    }
