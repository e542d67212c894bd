"""fp16 conversion with onnxruntime's converter (onnxconverter_common's produced unloadable models for about half
of the models we measured)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.transformers.float16 import convert_float_to_float16
from onnxruntime.transformers.onnx_model import OnnxModel

from jobs.tooling.common import (
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
PARAMS = {"keep_io_types": Param(bool)}
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)


def convert_fp16(src: PathLike, dst: PathLike, *, keep_io_types: bool = True) -> TransformReport:
    """Halve float weights and compute; ``keep_io_types`` keeps float32 inputs/outputs so app code need not change."""
    check_params(PARAMS, {"keep_io_types": keep_io_types})
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
    try:
        converted = convert_float_to_float16(model, keep_io_types=keep_io_types)
    except Exception as exc:
        raise TransformError(f"onnxruntime's fp16 converter failed: {type(exc).__name__}: {exc}") from exc
    # The converter appends its Cast nodes at the end of the graph; onnx.checker (and strict loaders) want
    # nodes in topological order, so sort with onnxruntime's own graph helper.
    OnnxModel(converted).topological_sort()
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:
        raise TransformError(f"the fp16 model is not valid ONNX: {str(exc).splitlines()[0]}") from exc
    with write_atomically(dst) as tmp:
        save_model(converted, tmp)
    report = TransformReport("fp16", details={"keep_io_types": keep_io_types, "float_weights": float_weights})
    io_note = "inputs and outputs stay float32" if keep_io_types else "inputs and outputs become float16"
    report.log.append(f"converted {float_weights} float weight tensors to fp16; {io_note}")
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
