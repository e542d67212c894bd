"""What a model is: signature, opsets, operators, parameters, compute, precision.

Weights live not only in initializers but also in Constant nodes and inside
If/Loop/Scan subgraphs; all of them are counted, and the operator histogram
walks every subgraph. Classical ML operators (ai.onnx.ml: linear models,
SVMs, tree ensembles, scalers) keep their weights in node attributes instead;
those are counted too, and their compute estimated (``ml_operator_stats``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, shape_inference

from .common import is_quantized_op
from .inputs import graph_inputs, graph_outputs
from .modelfile import iter_all_graphs, iter_tensors, runtime_specific
from .signatures import node_signatures

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
    for graph in iter_all_graphs(model):
        for node in graph.node:
            stats = ml_operator_stats(node)
            if stats is not None:
                count += stats.parameters
                size += stats.bytes
                tensors += stats.tensors
    return {"count": count, "bytes": size, "tensors": tensors}


ML_DOMAIN = "ai.onnx.ml"
# Attributes holding what an ai.onnx.ml operator learned, by operator. Class labels, kernel hyperparameters and
# modes are settings, not weights. A tree's split thresholds are counted apart (see _tree_stats): the exporters store
# a dummy threshold for every leaf too.
ML_WEIGHT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "LinearClassifier": ("coefficients", "intercepts"),
    "LinearRegressor": ("coefficients", "intercepts"),
    "Scaler": ("offset", "scale"),
    "SVMClassifier": ("support_vectors", "coefficients", "rho", "prob_a", "prob_b"),
    "SVMRegressor": ("support_vectors", "coefficients", "rho"),
    "Imputer": ("imputed_value_floats", "imputed_value_int64s"),
}
TREE_ENSEMBLES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")
TREE_LEAF_WEIGHTS = (
    "class_weights",
    "class_weights_as_tensor",
    "target_weights",
    "target_weights_as_tensor",
    "leaf_weights",
    "base_values",
    "base_values_as_tensor",
)
TREE_LABELS = ("classlabels_int64s", "classlabels_strings")


@dataclass(frozen=True)
class MlOperatorStats:
    """Weights an ai.onnx.ml node holds in its attributes, and its compute per input row.

    ``macs`` is a per-row estimate: a multiply-add for linear models and kernels, one comparison per tree level for
    trees (a comparison costs about what a multiply-add does on a CPU, and the compute fact is one number).
    """

    parameters: int
    bytes: int
    tensors: int
    macs: int


def _attribute_numbers(attr: onnx.AttributeProto) -> tuple[int, int]:
    """(values, bytes) of a numeric list or tensor attribute; strings and scalars hold no weights here."""
    if attr.type == onnx.AttributeProto.FLOATS:
        return len(attr.floats), 4 * len(attr.floats)
    if attr.type == onnx.AttributeProto.INTS:
        return len(attr.ints), 8 * len(attr.ints)
    if attr.type == onnx.AttributeProto.TENSOR:
        numel = _numel(attr.t.dims)
        return numel, numel * _itemsize(attr.t.data_type)
    return 0, 0


def ml_operator_stats(node: onnx.NodeProto) -> MlOperatorStats | None:
    """Weights and per-row compute of a classical ML operator; None for any other node."""
    if domain_name(node.domain) != ML_DOMAIN:
        return None
    if node.op_type in TREE_ENSEMBLES:
        return _tree_stats(node)
    names = ML_WEIGHT_ATTRIBUTES.get(node.op_type)
    if names is None:
        return None
    weights = {a.name: _attribute_numbers(a) for a in node.attribute if a.name in names}
    present = {name: numbers for name, numbers in weights.items() if numbers[0]}
    if node.op_type in ("LinearClassifier", "LinearRegressor"):
        macs = present.get("coefficients", (0, 0))[0]  # one multiply-add per input per class (or target)
    elif node.op_type == "Scaler":
        macs = max(present.get("scale", (0, 0))[0], present.get("offset", (0, 0))[0])  # (x - offset) * scale
    elif node.op_type.startswith("SVM"):
        # The kernel against every support vector (support vectors x inputs), then the weighted sum of the kernel
        # values (coefficients); a linear SVM with no support vectors is coefficients x inputs, already counted.
        macs = present.get("support_vectors", (0, 0))[0] + present.get("coefficients", (0, 0))[0]
    else:
        macs = 0  # Imputer: a replacement, no arithmetic
    return MlOperatorStats(
        parameters=sum(values for values, _ in present.values()),
        bytes=sum(size for _, size in present.values()),
        tensors=len(present),
        macs=macs,
    )


def _tree_stats(node: onnx.NodeProto) -> MlOperatorStats:
    """A tree ensemble's weights are its split thresholds (one per branch node) and its leaf weights; its bytes are
    every number the node stores, the node/child/feature id arrays included, as the session holds them all.

    Compute is bounded by depth: a row takes one comparison per level down each tree, so the estimate is the sum over
    trees of the longest root-to-leaf path (in comparisons), a worst case.
    """
    attrs = {a.name: a for a in node.attribute}
    size = sum(_attribute_numbers(a)[1] for name, a in attrs.items() if name not in TREE_LABELS)
    leaf_weights = sum(_attribute_numbers(attrs[name])[0] for name in TREE_LEAF_WEIGHTS if name in attrs)
    tensors = sum(1 for name, a in attrs.items() if name not in TREE_LABELS and _attribute_numbers(a)[0])
    if "nodes_splits" in attrs:  # ai.onnx.ml 5 TreeEnsemble: one split per branch node, leaves apart
        thresholds = _numel(attrs["nodes_splits"].t.dims)
        depth = _tree_ensemble_v5_depths(attrs)
    else:
        modes = [m.decode() for m in attrs["nodes_modes"].strings] if "nodes_modes" in attrs else []
        thresholds = sum(1 for mode in modes if mode != "LEAF")
        depth = _tree_ensemble_depths(attrs, modes)
    return MlOperatorStats(parameters=thresholds + leaf_weights, bytes=size, tensors=tensors, macs=depth)


def _longest_path(children: dict, roots: list) -> int:
    """Branch nodes on the longest root-to-leaf path, summed over roots; iterative, as trees can be thousands deep."""
    total = 0
    for root in roots:
        deepest, stack, seen = 0, [(root, 1)], set()
        while stack:
            current, depth = stack.pop()
            if current in seen:  # a malformed graph may loop; count each node once
                continue
            seen.add(current)
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children.get(current, ()))
        total += deepest
    return total


def _tree_ensemble_depths(attrs: dict[str, onnx.AttributeProto], modes: list[str]) -> int:
    """TreeEnsembleClassifier/Regressor: nodes are (tree id, node id) with true/false child node ids; leaves have
    mode LEAF. Only branch nodes enter ``children``, so a path's length counts its comparisons."""
    tree_ids = list(attrs["nodes_treeids"].ints) if "nodes_treeids" in attrs else []
    node_ids = list(attrs["nodes_nodeids"].ints) if "nodes_nodeids" in attrs else []
    true_ids = list(attrs["nodes_truenodeids"].ints) if "nodes_truenodeids" in attrs else []
    false_ids = list(attrs["nodes_falsenodeids"].ints) if "nodes_falsenodeids" in attrs else []
    if not (len(tree_ids) == len(node_ids) == len(true_ids) == len(false_ids) == len(modes)):
        return 0
    branches = {(t, n) for t, n, mode in zip(tree_ids, node_ids, modes, strict=True) if mode != "LEAF"}
    children: dict[tuple[int, int], list[tuple[int, int]]] = {}
    referenced: set[tuple[int, int]] = set()
    for t, n, yes, no in zip(tree_ids, node_ids, true_ids, false_ids, strict=True):
        if (t, n) in branches:
            children[(t, n)] = [(t, c) for c in (yes, no) if (t, c) in branches]
            referenced.update((t, c) for c in (yes, no))
    roots = sorted(b for b in branches if b not in referenced)
    return _longest_path(children, roots)


def _tree_ensemble_v5_depths(attrs: dict[str, onnx.AttributeProto]) -> int:
    """TreeEnsemble (ai.onnx.ml 5): branch nodes by index; a child is a leaf when its true/false-leaf flag is set."""
    true_ids = list(attrs["nodes_truenodeids"].ints) if "nodes_truenodeids" in attrs else []
    false_ids = list(attrs["nodes_falsenodeids"].ints) if "nodes_falsenodeids" in attrs else []
    true_leaf = list(attrs["nodes_trueleafs"].ints) if "nodes_trueleafs" in attrs else [0] * len(true_ids)
    false_leaf = list(attrs["nodes_falseleafs"].ints) if "nodes_falseleafs" in attrs else [0] * len(false_ids)
    roots = list(attrs["tree_roots"].ints) if "tree_roots" in attrs else []
    if not (len(true_ids) == len(false_ids) == len(true_leaf) == len(false_leaf)):
        return 0
    children = {
        i: [c for c, leaf in ((yes, yl), (no, nl)) if not leaf]
        for i, (yes, no, yl, nl) in enumerate(zip(true_ids, false_ids, true_leaf, false_leaf, strict=True))
    }
    return _longest_path(children, roots)


def infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with shape and type inference's value_info; the model itself where inference fails."""
    try:
        return shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is best effort; some custom ops defeat it
        return model


def _shape_table(inferred: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Tensor name -> dims from shape inference (symbolic dims read as 1: one sample)."""
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


def estimate_macs(
    model: onnx.ModelProto, inferred: onnx.ModelProto | None = None, per_node: dict | None = None
) -> dict:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul for one sample (batch 1), plus the per-row
    estimate of classical ML operators (``MlOperatorStats.macs``).

    Nodes whose shapes cannot be inferred are counted in ``unknown_nodes``
    rather than guessed.
    """
    shapes = _shape_table(inferred if inferred is not None else infer(model))
    total = 0
    by_op: Counter = Counter()
    unknown = 0
    for graph in iter_all_graphs(model):
        for node in graph.node:
            ml = ml_operator_stats(node)
            if ml is not None:
                if ml.macs:
                    total += ml.macs
                    by_op[node.op_type] += ml.macs
                    _record(per_node, node, ml.macs)
                continue
            if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearConv"):
                continue
            macs = _node_macs(node, shapes)
            if macs is None:
                unknown += 1
            else:
                total += macs
                by_op[node.op_type] += macs
                _record(per_node, node, macs)
    return {"total": total, "by_op": dict(by_op), "unknown_nodes": unknown}


def _record(per_node: dict | None, node: onnx.NodeProto, macs: int) -> None:
    if per_node is not None and node.output:
        per_node[node.output[0]] = per_node.get(node.output[0], 0) + macs


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
    # Weights stored small for float compute (compress_weights): the runtime folds their Casts when it loads the
    # model, so they do not decide the compute precision.
    stored = next((name for name, dtype in _STORED if _only_stored(model, dtype)), None)
    computes_fp16 = "fp16" in names and stored != "fp16"
    compute = "int8" if quantized else ("fp16" if computes_fp16 else ("bf16" if "bf16" in names else "fp32"))
    return {"present": sorted(names), "compute": compute, "quantized": quantized, "stored": stored}


_STORED = (("int8", onnx.TensorProto.INT8), ("fp16", onnx.TensorProto.FLOAT16))


def _only_stored(model: onnx.ModelProto, dtype: int) -> bool:
    """Whether the model holds ``dtype`` tensors and every ``dtype`` value is a stored weight that only Casts to float
    read, and nothing casts to ``dtype``."""
    stored: set[str] = set()
    for graph in iter_all_graphs(model):
        stored.update(tensor.name for tensor in graph.initializer if tensor.data_type == dtype)
        for node in graph.node:
            if node.op_type == "Constant" and any(attr.t.data_type == dtype for attr in node.attribute):
                stored.update(node.output)
    if not stored:
        return False
    for graph in iter_all_graphs(model):
        for value in list(graph.input) + list(graph.output) + list(graph.value_info):
            if value.type.tensor_type.elem_type == dtype and value.name not in stored:
                return False
        for node in graph.node:
            to = next((attr.i for attr in node.attribute if attr.name == "to"), None)
            if node.op_type == "Cast" and to == dtype:
                return False
            if any(name in stored for name in node.input) and not (
                node.op_type == "Cast" and to == onnx.TensorProto.FLOAT
            ):
                return False
    return True


def inspect_model(model: onnx.ModelProto) -> dict:
    """The facts a version page shows and the compatibility checker reads (JSON-ready)."""
    counts = operator_counts(model)
    inferred = infer(model)
    macs_by_node: dict[str, int] = {}
    macs = estimate_macs(model, inferred, macs_by_node)
    signatures = node_signatures(inferred, macs_by_node)
    histogram = {(op if domain == DEFAULT_DOMAIN else f"{domain}.{op}"): n for (domain, op), n in counts.most_common()}
    return {
        "ir_version": int(model.ir_version),
        "opset_imports": opset_imports(model),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "doc_string": model.doc_string[:1000],
        "metadata_props": {p.key: p.value for p in model.metadata_props},
        "runtime_specific": runtime_specific(model),
        "inputs": [spec.as_dict() for spec in graph_inputs(model)],
        "outputs": [spec.as_dict() for spec in graph_outputs(model)],
        "operators": [{"domain": d, "op": op, "count": n} for (d, op), n in counts.most_common()],
        "operator_histogram": histogram,
        "node_count": sum(counts.values()),
        "subgraph_count": sum(1 for _ in iter_all_graphs(model)) - 1,
        "parameters": parameter_stats(model),
        "macs": macs,
        "precision": precisions(model, counts),
        "kernel_signatures": signatures["kernel_signatures"],
        "graph_nodes": signatures["graph_nodes"],
        "signatures_truncated": signatures["truncated"],
    }
