"""Weight-only quantization of large MatMul weights with onnxruntime's MatMulNBits quantizer.

Each MatMul whose constant weight holds at least ``min_weight_elements`` values becomes a MatMulNBits node
(com.microsoft domain) with 4- or 8-bit weights in blocks of ``block_size`` values along K, each block with its own
scale (and zero point unless ``symmetric``); activations stay float. MatMulNBits is an onnxruntime contrib op that
only releases which have it can run; the compatibility check judges that, per device type.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
from pathlib import Path

import onnx

from jobs.tooling.common import (
    Param,
    PathLike,
    TransformReport,
    check_params,
    constants_to_initializers,
    load_model,
    refuse_quantized,
    save_model,
    write_atomically,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import iter_graphs

# accuracy_level is the compute type MatMulNBits may use for its activations: 0 leaves it to the runtime, 1 fp32,
# 2 fp16, 3 bf16, 4 int8: activations quantized per block at run time, onnxruntime's fast CPU path (we measured 8-bit
# weights at level 0 80x slower than at 4 on x86; 4-bit 3.5x). Providers without an int8 path ignore it.
ACCURACY_LEVELS = (0, 1, 2, 3, 4)
PARAMS = {
    "bits": Param(int, choices=(4, 8)),
    "block_size": Param(int, choices=(16, 32, 64, 128, 256)),  # MatMulNBits takes powers of two from 16
    "accuracy_level": Param(int, choices=ACCURACY_LEVELS),
    "symmetric": Param(bool),
    "min_weight_elements": Param(int, minimum=1),
}
# Below this a weight's scales and zero points eat much of the saving and the kernel launch costs more than it saves.
DEFAULT_MIN_WEIGHT_ELEMENTS = 65536  # e.g. 256 x 256


def quantize_weight_only(
    src: PathLike,
    dst: PathLike,
    *,
    bits: int = 4,
    block_size: int = 32,
    accuracy_level: int = 4,
    symmetric: bool = False,
    min_weight_elements: int = DEFAULT_MIN_WEIGHT_ELEMENTS,
) -> TransformReport:
    """Quantize the weights (never the activations) of MatMuls whose constant 2-D weight holds at least
    ``min_weight_elements`` values; TransformError when the model has none."""
    check_params(
        PARAMS,
        {
            "bits": bits,
            "block_size": block_size,
            "accuracy_level": accuracy_level,
            "symmetric": symmetric,
            "min_weight_elements": min_weight_elements,
        },
    )
    model = load_model(src)
    refuse_quantized(model, "quantize")
    report = TransformReport(
        "weight_only",
        details={"bits": bits, "block_size": block_size, "accuracy_level": accuracy_level, "symmetric": symmetric},
    )
    moved = constants_to_initializers(model)
    if moved:
        report.log.append(f"moved {moved} Constant-node tensors to initializers so the quantizer sees them as weights")
    _name_unnamed_nodes(model)
    eligible, too_small = _matmul_weights(model, min_weight_elements)
    if not eligible:
        seen = f"; the largest MatMul weight holds {max(too_small.values())} values" if too_small else ""
        raise TransformError(
            f"nothing to quantize weight-only: no MatMul has a constant float 2-D weight of at least "
            f"{min_weight_elements} values{seen}"
        )
    quantizer_module = _quantizer_module()
    try:
        quantizer = quantizer_module.MatMulNBitsQuantizer(
            model,
            bits=bits,
            block_size=block_size,
            is_symmetric=symmetric,
            accuracy_level=accuracy_level or None,
            nodes_to_exclude=sorted(too_small),
            op_types_to_quantize=("MatMul",),
        )
        quantizer.process()
    except Exception as exc:
        raise TransformError(f"onnxruntime's MatMulNBits quantizer failed: {type(exc).__name__}: {exc}") from exc
    quantized = quantizer.model.model
    with tempfile.TemporaryDirectory() as workdir, write_atomically(dst) as tmp:
        # Save and load back so the count below reads what the file holds.
        save_model(quantized, Path(workdir) / "quantized.onnx")
        written = onnx.load(str(Path(workdir) / "quantized.onnx"))
        nbits = sum(1 for graph in iter_graphs(written.graph) for node in graph.node if node.op_type == "MatMulNBits")
        if nbits == 0:
            raise TransformError("onnxruntime's MatMulNBits quantizer replaced no MatMul")
        save_model(written, tmp)
    report.details["quantized_nodes"] = nbits
    report.details["quantized_weights"] = sum(eligible.values())
    report.log.append(
        f"{nbits} MatMul nodes now MatMulNBits ({bits}-bit weights in blocks of {block_size}, "
        f"{sum(eligible.values())} weight values); {len(too_small)} smaller MatMul weights kept in float"
    )
    return report


def _quantizer_module():
    """onnxruntime's MatMulNBits quantizer module, imported on first use.

    It needs the onnx-ir package, and it calls logging.basicConfig(level=INFO) on import, which would make every
    library's INFO lines print in a process whose logging was not configured yet: undo that, and keep its own logger
    to warnings (it logs a line per node it skips).
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        module = importlib.import_module("onnxruntime.quantization.matmul_nbits_quantizer")
    except ImportError as exc:
        raise TransformError(f"onnxruntime's MatMulNBits quantizer cannot be imported here: {exc}") from exc
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    module.logger.setLevel(logging.WARNING)
    return module


def _name_unnamed_nodes(model: onnx.ModelProto) -> None:
    """The quantizer excludes nodes by name; unnamed nodes would all share the name ""."""
    taken = {node.name for graph in iter_graphs(model.graph) for node in graph.node if node.name}
    counter = 0
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            if node.name:
                continue
            while f"{node.op_type}_{counter}" in taken:
                counter += 1
            node.name = f"{node.op_type}_{counter}"
            taken.add(node.name)


def _matmul_weights(model: onnx.ModelProto, min_elements: int) -> tuple[dict[str, int], dict[str, int]]:
    """MatMul node name -> weight values, for the weights to quantize and for those too small (or not 2-D float).

    A weight is the MatMul's second input when it is a float initializer of this graph or an enclosing one, 2-D or
    with leading dimensions of 1 (what the quantizer accepts).
    """
    eligible: dict[str, int] = {}
    too_small: dict[str, int] = {}

    def walk(graph: onnx.GraphProto, outer: dict[str, onnx.TensorProto]) -> None:
        visible = {**outer, **{tensor.name: tensor for tensor in graph.initializer}}
        for node in graph.node:
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                    walk(subgraph, visible)
            if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
                continue
            weight = visible.get(node.input[1])
            if weight is None:
                continue  # activation times activation (attention scores): nothing to quantize
            dims = list(weight.dims)
            values = 1
            for dim in dims:
                values *= dim
            is_matrix = len(dims) >= 2 and all(dim == 1 for dim in dims[:-2])
            if weight.data_type == onnx.TensorProto.FLOAT and is_matrix and values >= min_elements:
                eligible[node.name] = values
            else:
                too_small[node.name] = values

    walk(model.graph, {})
    return eligible, too_small


NEW_TRANSFORMS = (
    (
        "weight_only",
        quantize_weight_only,
        PARAMS,
        "4- or 8-bit weights for large MatMuls (onnxruntime's MatMulNBits), activations in float",
    ),
)
