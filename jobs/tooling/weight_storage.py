"""Weights stored small, computed in float32: a smaller download at the parent's speed.

Each large float32 weight becomes a smaller stored tensor and the nodes that restore it: ``Cast`` to float for fp16,
``Cast`` then ``Mul`` by per-channel scales for int8. Those nodes read only constants, so the runtime folds them
into a float32 weight when it creates the session (onnxruntime's constant folding, part of its default basic level;
tested on 1.16 and today's release): the device computes exactly as the parent does, with weights rounded. Converting
such a file to the ORT format folds them too, back to full size: the two do not combine.

Written by hand because no library stores weights small for float compute: onnxruntime's quantizers give the
weights to integer kernels (ConvInteger, MatMulInteger, QDQ), which we measured 4-8x slower than float on
convolution and LSTM models; MatMulNBits covers MatMul only and is a contrib op; the fp16 converter's float32-kept
path casts every intermediate value, not only the weights.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from jobs.tooling.common import (
    Param,
    PathLike,
    TransformReport,
    check_params,
    constants_to_initializers,
    load_model,
    refuse_quantized,
    save_checked,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.fp16 import FP16_MAX, fp16_overflows
from jobs.tooling.modelfile import iter_graphs

PRECISIONS = ("int8", "fp16")
PARAMS = {"precision": Param(str, choices=PRECISIONS), "min_elements": Param(int, minimum=1)}
# Smaller tensors (biases, norms) save little and each costs a node or two.
DEFAULT_MIN_ELEMENTS = 1024
INT8_MAX = 127  # symmetric: -127..127, so a scale maps the largest magnitude exactly
# Cast's "to" attribute is an integer from opset 6 on (a string before).
MIN_OPSET = 6

# The axis of each weight that holds output channels, by the operator reading it and the input's position: one
# int8 scale per output channel keeps a small channel from being rounded away by a large one.
_OUTPUT_AXIS = {
    ("Conv", 1): 0,
    ("ConvTranspose", 1): 1,
    ("MatMul", 1): -1,
    ("MatMul", 0): -2,
    ("Gather", 0): 0,
    ("LSTM", 1): 1,
    ("LSTM", 2): 1,
    ("GRU", 1): 1,
    ("GRU", 2): 1,
    ("RNN", 1): 1,
    ("RNN", 2): 1,
}


def compress_weights(
    src: PathLike, dst: PathLike, *, precision: str = "int8", min_elements: int = DEFAULT_MIN_ELEMENTS
) -> TransformReport:
    """Store every float32 weight of at least ``min_elements`` values in ``precision`` (int8 with per-channel
    scales, for tensors of two or more dimensions; or fp16); TransformError when the model has none."""
    check_params(PARAMS, {"precision": precision, "min_elements": min_elements})
    model = load_model(src)
    refuse_quantized(model, "compress the weights of")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise TransformError(f"the model's opset is {opset}; convert it to opset {MIN_OPSET} or later first")
    report = TransformReport("compress_weights", details={"precision": precision, "min_elements": min_elements})
    moved = constants_to_initializers(model)
    if moved:
        report.log.append(f"moved {moved} Constant-node tensors to initializers to store them as weights")
    axes = _output_axes(model)
    beyond_fp16 = {name for name, _ in fp16_overflows(model)} if precision == "fp16" else set()
    taken = _all_names(model)
    compressed = kept = before = after = 0
    # Innermost graphs first: re-listing a graph's nodes copies them, subgraphs included, so those must be done.
    for graph in reversed(list(iter_graphs(model.graph))):
        feedable = {value.name for value in graph.input}  # an initializer listed as an input can be fed: leave it
        restore: list[onnx.NodeProto] = []
        stored: list[onnx.TensorProto] = []
        for tensor in graph.initializer:
            weights = _float32_weight(tensor, min_elements, feedable)
            if weights is None or (precision == "int8" and len(tensor.dims) < 2):
                # A vector (a bias, a norm's scale) adds straight into the outputs and has no channels to scale by:
                # one int8 scale for 6,625 class biases moved a text recognizer's decoded lines. It is small anyway.
                stored.append(tensor)
                continue
            if tensor.name in beyond_fp16:
                kept += 1  # it would turn infinite
                stored.append(tensor)
                continue
            tensors, nodes = _store(tensor.name, weights, precision, axes.get(tensor.name), taken)
            stored.extend(tensors)
            restore.extend(nodes)
            compressed += 1
            before += weights.nbytes
            after += sum(len(t.raw_data) for t in tensors)  # numpy_helper.from_array writes raw_data
        if not restore:
            continue
        del graph.initializer[:]
        graph.initializer.extend(stored)
        nodes_after = list(graph.node)
        del graph.node[:]
        graph.node.extend(restore + nodes_after)  # initializers are there from the start: restoring first keeps order
    if not compressed:
        raise TransformError(
            f"nothing to compress: the model has no float32 weight of at least {min_elements} values"
            + (" with two or more dimensions" if precision == "int8" else "")
            + (f" within fp16's range (±{FP16_MAX:g})" if kept else "")
        )
    save_checked(model, dst, "storing the weights smaller")
    report.details.update({"tensors": compressed, "bytes_before": before, "bytes_after": after, "kept_float32": kept})
    report.log.append(
        f"stored {compressed} float32 weights in {precision} ({before / 1e6:.2f} MB -> {after / 1e6:.2f} MB); "
        "the runtime restores them to float32 when it creates the session, so compute stays float32"
    )
    if kept:
        report.log.append(f"kept {kept} weights in float32: they hold values beyond fp16's range (±{FP16_MAX:g})")
    return report


def _float32_weight(tensor: onnx.TensorProto, min_elements: int, feedable: set[str]) -> np.ndarray | None:
    if tensor.data_type != onnx.TensorProto.FLOAT or tensor.name in feedable:
        return None
    if int(np.prod(tensor.dims, dtype=np.int64)) < min_elements:
        return None
    return numpy_helper.to_array(tensor)


def _store(
    name: str, weights: np.ndarray, precision: str, axis: int | None, taken: set[str]
) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
    """The stored tensors and the nodes that turn them back into float32 ``name``."""
    if precision == "fp16":
        half = _fresh(f"{name}_fp16", taken)
        cast = helper.make_node(
            "Cast", [half], [name], name=_fresh(f"{name}_restore", taken), to=onnx.TensorProto.FLOAT
        )
        return [numpy_helper.from_array(weights.astype(np.float16), half)], [cast]
    scale = _int8_scales(weights, axis)
    quantized = np.clip(np.rint(weights / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    q_name, s_name, cast_out = (_fresh(f"{name}_{suffix}", taken) for suffix in ("int8", "scale", "int8_float"))
    nodes = [
        helper.make_node("Cast", [q_name], [cast_out], name=_fresh(f"{name}_cast", taken), to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [cast_out, s_name], [name], name=_fresh(f"{name}_restore", taken)),
    ]
    return [numpy_helper.from_array(quantized, q_name), numpy_helper.from_array(scale, s_name)], nodes


def _int8_scales(weights: np.ndarray, axis: int | None) -> np.ndarray:
    """float32 scales, one per slice along ``axis`` (shaped to broadcast), or one for the tensor; non-finite values
    are left out of the range, and an all-zero slice gets scale 1."""
    magnitudes = np.where(np.isfinite(weights), np.abs(weights), 0)
    if axis is None or weights.ndim == 0 or not -weights.ndim <= axis < weights.ndim:
        largest = np.asarray(magnitudes.max(initial=0.0))
    else:
        others = tuple(i for i in range(weights.ndim) if i != axis % weights.ndim)
        largest = magnitudes.max(axis=others, keepdims=True, initial=0.0)
    scale = (largest / INT8_MAX).astype(np.float32)
    return np.where(scale > 0, scale, np.float32(1)).astype(np.float32)


def _output_axes(model: onnx.ModelProto) -> dict[str, int]:
    """Weight name -> its output-channel axis, from the first operator that reads it (Gemm by its transposes)."""
    axes: dict[str, int] = {}
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            for position, name in enumerate(node.input):
                if not name or name in axes:
                    continue
                if node.op_type == "Gemm" and position in (0, 1):
                    attrs = {a.name: a.i for a in node.attribute}
                    transposed = attrs.get("transA" if position == 0 else "transB", 0)
                    # A is (M, K) and B is (K, N) untransposed; M and N are the output's rows and columns.
                    axes[name] = transposed if position == 0 else 1 - transposed
                elif (node.op_type, position) in _OUTPUT_AXIS:
                    axes[name] = _OUTPUT_AXIS[(node.op_type, position)]
    return axes


def _all_names(model: onnx.ModelProto) -> set[str]:
    names: set[str] = set()
    for graph in iter_graphs(model.graph):
        names.update(value.name for value in list(graph.input) + list(graph.output) + list(graph.value_info))
        names.update(tensor.name for tensor in graph.initializer)
        for node in graph.node:
            names.update(node.input)
            names.update(node.output)
            names.add(node.name)
    return names


def _fresh(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


NEW_TRANSFORMS = (
    (
        "compress_weights",
        compress_weights,
        PARAMS,
        "weights stored in int8 or fp16, computed in float32 (smaller download, the parent's speed)",
    ),
)
