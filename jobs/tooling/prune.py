"""Magnitude pruning: zero the smallest-magnitude weights of Conv/Gemm/MatMul weight initializers.

Weights stay dense, so the file keeps its size; the zeros make the download compress well and prepare the model
for runtimes or later steps that exploit sparsity.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from jobs.tooling.common import (
    Param,
    PathLike,
    TransformReport,
    check_params,
    constants_to_initializers,
    float_initializers,
    load_model,
    save_model,
    write_atomically,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import iter_graphs

PARAMS = {"sparsity": Param(float, minimum=0.01, maximum=0.99)}
WEIGHT_INPUTS = {"Conv": (1,), "ConvTranspose": (1,), "Gemm": (0, 1), "MatMul": (0, 1)}  # input slots holding weights


def prune(src: PathLike, dst: PathLike, *, sparsity: float = 0.5) -> TransformReport:
    """Zero the ``sparsity`` fraction of smallest |w| in each weight tensor (per tensor, so no layer is emptied)."""
    check_params(PARAMS, {"sparsity": sparsity})
    model = load_model(src)
    report = TransformReport("prune", details={"target_sparsity": sparsity})
    moved = constants_to_initializers(model)
    if moved:
        report.log.append(f"moved {moved} Constant-node tensors to initializers to reach their weights")
    pruned = zeros = total = 0
    for graph in iter_graphs(model.graph):
        for tensor in weight_tensors(graph):
            weights = numpy_helper.to_array(tensor).copy()
            prune_array(weights, sparsity)
            tensor.CopyFrom(numpy_helper.from_array(weights, tensor.name))
            pruned += 1
            zeros += int(np.count_nonzero(weights == 0))
            total += weights.size
    if not pruned:
        raise TransformError(
            "nothing to prune: no Conv, Gemm or MatMul has float weights stored in the model "
            "(a quantized model must be pruned from its float parent)"
        )
    with write_atomically(dst) as tmp:
        save_model(model, tmp)
    report.details.update({"pruned_tensors": pruned, "pruned_weights": total, "sparsity": zeros / total})
    report.log.append(
        f"zeroed {zeros} of {total} weights in {pruned} tensors ({zeros / total:.1%}); the file keeps its size, "
        "the compressed download shrinks"
    )
    return report


def weight_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """Float initializers of at least 2 dimensions feeding a weight slot of Conv/ConvTranspose/Gemm/MatMul."""
    initializers = float_initializers(graph)
    names = {
        node.input[slot]
        for node in graph.node
        if node.domain in ("", "ai.onnx")
        for slot in WEIGHT_INPUTS.get(node.op_type, ())
        if slot < len(node.input) and node.input[slot] in initializers
    }
    return [initializers[name] for name in sorted(names) if len(initializers[name].dims) >= 2]


def prune_array(weights: np.ndarray, sparsity: float) -> None:
    """Zero, in place, exactly round(sparsity * size) entries of smallest magnitude."""
    count = int(round(sparsity * weights.size))
    if count == 0:
        return
    smallest = np.argpartition(np.abs(weights).ravel(), count - 1)[:count]
    weights.flat[smallest] = 0
