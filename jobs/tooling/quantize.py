"""int8 quantization with onnxruntime's quantizer: dynamic (weights only) or static (QDQ or QOperator) calibrated on a
dataset.

Which operator types to quantize matters as much as whether to: on x86, dynamic quantization turns Conv into
ConvInteger, which is slower than the float Conv it replaces, while MatMulInteger is fast; ``op_types`` leaves the
rest in float.
"""

from __future__ import annotations

import contextlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import onnx
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
)
from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
from onnxruntime.quantization import quantize_static as ort_quantize_static
from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process

from jobs.tooling.common import (
    Param,
    PathLike,
    TransformReport,
    check_params,
    constants_to_initializers,
    drop_unused_opset_imports,
    load_model,
    quantized_op_types,
    refuse_quantized,
    save_model,
    write_atomically,
)
from jobs.tooling.datasets import Dataset, as_dataset, iter_batches
from jobs.tooling.errors import TransformError
from jobs.tooling.inputs import TensorSpec, graph_inputs
from jobs.tooling.modelfile import iter_graphs

WEIGHT_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
CALIBRATE_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
QUANT_FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
# The operator types each mode can quantize, from onnxruntime's own registries. Dynamic mode has no Gemm kernel; its
# quantizer rewrites every Gemm as MatMul (+ Add) first, so "MatMul" covers Gemm layers too.
DYNAMIC_OP_TYPES = tuple(sorted(IntegerOpsRegistry))
STATIC_OP_TYPES = {"qdq": tuple(sorted(QDQRegistry)), "qoperator": tuple(sorted(QLinearOpsRegistry))}
DYNAMIC_PARAMS = {
    "per_channel": Param(bool),
    "weight_type": Param(str, choices=tuple(WEIGHT_TYPES)),
    "op_types": Param((list, tuple), optional=True),
    "preprocess": Param(bool),
}
STATIC_PARAMS = {
    "per_channel": Param(bool),
    "calibrate_method": Param(str, choices=tuple(CALIBRATE_METHODS)),
    "max_calibration_rows": Param(int, minimum=1),
    "quant_format": Param(str, choices=tuple(QUANT_FORMATS)),
    "activation_type": Param(str, choices=tuple(WEIGHT_TYPES)),
    "weight_type": Param(str, choices=tuple(WEIGHT_TYPES)),
    "reduce_range": Param(bool),
    "op_types": Param((list, tuple), optional=True),
    "preprocess": Param(bool),
}
_CALIBRATION_BATCH = 32
# DequantizeLinear takes a per-channel ``axis`` from opset 13; onnxruntime's QDQ quantizer writes the attribute
# whatever the model's opset, and an opset-11 model (PaddleOCR's exports) then fails to load ("Unrecognized
# attribute: axis").
PER_CHANNEL_QDQ_OPSET = 13


def quantize_dynamic(
    src: PathLike,
    dst: PathLike,
    *,
    per_channel: bool = False,
    weight_type: str = "int8",
    op_types: list[str] | None = None,
    preprocess: bool = True,
) -> TransformReport:
    """int8 weights, activations quantized at run time; needs no dataset.

    ``op_types`` (e.g. ["MatMul"]) quantizes only those operator types and leaves the rest in float; None quantizes
    every type dynamic mode supports. Activations are always uint8 in dynamic mode; ``weight_type`` picks U8S8
    ("int8", onnxruntime's default and its fast path on x86 AVX2/AVX512) or U8U8 ("uint8", free of the U8S8
    saturation that costs accuracy on x86 CPUs without VNNI).
    """
    check_params(
        DYNAMIC_PARAMS,
        {"per_channel": per_channel, "weight_type": weight_type, "op_types": op_types, "preprocess": preprocess},
    )
    _check_op_types(
        op_types, DYNAMIC_OP_TYPES, "dynamic quantization", "it rewrites Gemm as MatMul, so MatMul covers Gemm layers"
    )
    model = _load_float_model(src)
    details = {"per_channel": per_channel, "weight_type": weight_type, "op_types": op_types}
    report = TransformReport("quantize_dynamic", details=details)
    with tempfile.TemporaryDirectory() as workdir, write_atomically(dst) as tmp:
        prepared = _prepare(model, Path(workdir), preprocess, report)
        # EnableSubgraph: without it the quantizer skips weights inside If/Loop bodies.
        _call_quantizer(
            ort_quantize_dynamic,
            prepared,
            tmp,
            per_channel=per_channel,
            weight_type=WEIGHT_TYPES[weight_type],
            op_types_to_quantize=list(op_types) if op_types else None,
            extra_options={"EnableSubgraph": True},
        )
        _check_something_quantized(tmp, report, op_types=op_types)
    return report


def quantize_static(
    src: PathLike,
    dst: PathLike,
    *,
    dataset: Dataset | PathLike | None = None,
    per_channel: bool = False,
    calibrate_method: str = "minmax",
    max_calibration_rows: int = 256,
    quant_format: str = "qdq",
    activation_type: str = "int8",
    weight_type: str = "int8",
    reduce_range: bool = False,
    op_types: list[str] | None = None,
    preprocess: bool = True,
) -> TransformReport:
    """int8 weights and activations, activation ranges calibrated on ``dataset`` (required).

    onnxruntime's guidance for CPUs (``quantize_static``'s docstring): QDQ format; uint8 activations with int8
    weights on x86 (with ``reduce_range`` on CPUs without VNNI), int8 for both on ARM; ``per_channel`` weights for
    accuracy on convolutions at a small cost in speed. ``op_types`` limits quantization to those operator types.
    """
    check_params(
        STATIC_PARAMS,
        {
            "per_channel": per_channel,
            "calibrate_method": calibrate_method,
            "max_calibration_rows": max_calibration_rows,
            "quant_format": quant_format,
            "activation_type": activation_type,
            "weight_type": weight_type,
            "reduce_range": reduce_range,
            "op_types": op_types,
            "preprocess": preprocess,
        },
    )
    _check_op_types(op_types, STATIC_OP_TYPES[quant_format], f"static quantization ({quant_format})")
    if dataset is None:
        raise TransformError(
            "static quantization needs a calibration dataset (NPZ or CSV matching the model's inputs); "
            "attach one or use quantize_dynamic"
        )
    model = _load_float_model(src)
    specs = graph_inputs(model)
    calibration = as_dataset(dataset, specs)
    upgraded_from = None
    if per_channel and quant_format == "qdq":
        model, upgraded_from = _with_per_channel_opset(model)
    calibration = calibration.head(max_calibration_rows)
    report = TransformReport(
        "quantize_static",
        details={
            "format": QUANT_FORMATS[quant_format].name,
            "per_channel": per_channel,
            "activation_type": activation_type,
            "weight_type": weight_type,
            "reduce_range": reduce_range,
            "op_types": op_types,
            "calibrate_method": calibrate_method,
            "calibration_rows": calibration.rows,
        },
    )
    report.log.append(f"calibrating on {calibration.rows} rows of {calibration.source} ({calibrate_method})")
    if upgraded_from is not None:
        report.log.append(
            f"opset {upgraded_from} converted to {PER_CHANNEL_QDQ_OPSET}: per-channel DequantizeLinear needs its axis"
        )
    with tempfile.TemporaryDirectory() as workdir, write_atomically(dst) as tmp:
        prepared = _prepare(model, Path(workdir), preprocess, report)
        _call_quantizer(
            ort_quantize_static,
            prepared,
            tmp,
            calibration_data_reader=_DatasetReader(calibration, specs),
            quant_format=QUANT_FORMATS[quant_format],
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=WEIGHT_TYPES[activation_type],
            weight_type=WEIGHT_TYPES[weight_type],
            op_types_to_quantize=list(op_types) if op_types else None,
            calibrate_method=CALIBRATE_METHODS[calibrate_method],
            extra_options=_static_extra_options(per_channel, report),
        )
        hint = ""
        if len(list(iter_graphs(model.graph))) > 1:
            # Static (QDQ) quantization has no EnableSubgraph: weights inside If/Loop bodies stay float.
            hint += "; weights inside If/Loop subgraphs are out of static quantization's reach, use quantize_dynamic"
        _check_something_quantized(tmp, report, hint, op_types)
    return report


def _with_per_channel_opset(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int | None]:
    """``model`` at an opset whose DequantizeLinear takes ``axis`` (converted when older), and the opset it had."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset >= PER_CHANNEL_QDQ_OPSET:
        return model, None
    try:
        converted = version_converter.convert_version(model, PER_CHANNEL_QDQ_OPSET)
    except Exception as exc:
        raise TransformError(
            f"per-channel QDQ quantization needs opset {PER_CHANNEL_QDQ_OPSET} (DequantizeLinear's axis) and converting "
            f"this opset-{opset} model failed: {type(exc).__name__}: {exc}"
        ) from exc
    return converted, opset


def _static_extra_options(per_channel: bool, report: TransformReport) -> dict[str, Any]:
    """onnxruntime's QDQ quantizer widens a weight's per-channel scales where ``input scale x weight scale`` is too
    small for the int32 bias; that step compares a whole bias row as one number and raises ("truth value of an
    array is ambiguous") on the 2-D biases scikit-learn and PyTorch exports carry ([1, C]). Per-channel scales
    are fine enough without it, and the variant's fidelity is measured like any other before it counts."""
    if not per_channel:
        return {}
    report.log.append("per-channel: onnxruntime's int32-bias weight-scale adjustment is off (it fails on 2-D biases)")
    return {"QDQDisableWeightAdjustForInt32Bias": True}


def _check_op_types(op_types: list[str] | None, supported: tuple[str, ...], what: str, advice: str = "") -> None:
    if op_types is None:
        return
    if not op_types or not all(isinstance(op, str) for op in op_types):
        raise TransformError("parameter op_types must be a non-empty list of operator types, or null for all")
    unsupported = sorted(set(op_types) - set(supported))
    if unsupported:
        advice = f"; {advice}" if advice and "Gemm" in unsupported else ""
        raise TransformError(
            f"{what} cannot quantize {', '.join(unsupported)}: it quantizes {', '.join(supported)}{advice}"
        )


class _DatasetReader(CalibrationDataReader):
    def __init__(self, dataset: Dataset, specs: list[TensorSpec]):
        self._batches = (feeds for feeds, _ in iter_batches(dataset, specs, _CALIBRATION_BATCH))

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def _load_float_model(src: PathLike) -> onnx.ModelProto:
    model = load_model(src)
    refuse_quantized(model, "quantize")
    return model


def _prepare(model: onnx.ModelProto, workdir: Path, preprocess: bool, report: TransformReport) -> Path:
    """Save ``model`` with its weights as initializers, pre-processed when asked and possible; return the path."""
    moved = constants_to_initializers(model)
    if moved:
        report.log.append(f"moved {moved} Constant-node tensors to initializers so the quantizer sees them as weights")
    prepared = workdir / "prepared.onnx"
    save_model(model, prepared)
    if not preprocess:
        return prepared
    preprocessed = workdir / "preprocessed.onnx"
    # Symbolic shape inference needs sympy; ONNX shape inference plus ORT's basic optimization still run without it.
    without_sympy = importlib.util.find_spec("sympy") is None
    skipped = " (symbolic shape inference skipped: sympy is not installed)" if without_sympy else ""
    try:
        # Symbolic shape inference saves "sym_shape_infer_temp.onnx" in the working directory when it cannot infer
        # every shape: keep that in the job's temporary directory (workers are processes, so chdir is safe there).
        with contextlib.chdir(workdir):
            quant_pre_process(str(prepared), str(preprocessed), skip_symbolic_shape=without_sympy)
    except Exception as exc:
        if without_sympy:  # pre-processing is an optimization: quantize the unprocessed model rather than fail
            report.log.append(f"pre-processing skipped ({type(exc).__name__}: {exc})")
            return prepared
        # Symbolic shape inference refuses some exports (an AssertionError on PaddleOCR's); ONNX shape inference
        # and onnxruntime's basic optimization (BatchNormalization folded into Conv) still help the quantizer.
        try:
            with contextlib.chdir(workdir):
                quant_pre_process(str(prepared), str(preprocessed), skip_symbolic_shape=True)
        except Exception as retry:  # quantize the unprocessed model rather than fail
            report.log.append(f"pre-processing skipped ({type(exc).__name__}: {exc}; then {type(retry).__name__})")
            return prepared
        skipped = f" (symbolic shape inference skipped: {type(exc).__name__})"
    report.log.append(f"pre-processed: shape inference and basic graph optimization{skipped}")
    return preprocessed


def _call_quantizer(function, prepared: Path, out: Path, **kwargs) -> None:
    try:
        function(str(prepared), str(out), **kwargs)
    except Exception as exc:
        raise TransformError(f"onnxruntime's quantizer failed: {type(exc).__name__}: {exc}") from exc
    # Its pre-processing imports every domain onnxruntime knows (ai.onnx.ml 5...): left in, they would keep every
    # quantized variant off the older releases (onnxruntime 1.16 on the Pi) although no node uses them.
    # Shape inference's value_info is left in the file too: the runtime infers it again at load, so it is bytes to
    # download for nothing.
    model = onnx.load(str(out), load_external_data=False)
    if drop_unused_opset_imports(model) or len(model.graph.value_info):
        del model.graph.value_info[:]
        onnx.save(model, str(out))


def _check_something_quantized(
    out: Path, report: TransformReport, hint: str = "", op_types: list[str] | None = None
) -> None:
    """An "int8" variant identical to its parent would mislead everyone: refuse it."""
    quantized = onnx.load(str(out))
    quantized_types = quantized_op_types(quantized)
    nodes = [node.op_type for graph in iter_graphs(quantized.graph) for node in graph.node]
    quantized_nodes = [op for op in nodes if op in quantized_types]
    if not quantized_nodes:
        asked = f"node of the types asked for ({', '.join(op_types)})" if op_types else None
        raise TransformError(
            f"nothing to quantize: no {asked or 'MatMul, Gemm, Conv or other quantizable node'} has constant weights "
            f"the quantizer can reach{hint}"
        )
    report.details["quantized_nodes"] = len(quantized_nodes)
    report.details["quantized_op_types"] = sorted(set(quantized_nodes))
    report.log.append(f"{len(quantized_nodes)} quantization nodes added ({', '.join(sorted(set(quantized_nodes)))})")
