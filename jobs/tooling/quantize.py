"""int8 quantization with onnxruntime's quantizer: dynamic (weights only) or static QDQ calibrated on a dataset."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
)
from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
from onnxruntime.quantization import quantize_static as ort_quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from jobs.tooling.common import (
    Param,
    PathLike,
    TransformReport,
    check_params,
    constants_to_initializers,
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
DYNAMIC_PARAMS = {
    "per_channel": Param(bool),
    "weight_type": Param(str, choices=tuple(WEIGHT_TYPES)),
    "preprocess": Param(bool),
}
STATIC_PARAMS = {
    "per_channel": Param(bool),
    "calibrate_method": Param(str, choices=tuple(CALIBRATE_METHODS)),
    "max_calibration_rows": Param(int, minimum=1),
    "preprocess": Param(bool),
}
_CALIBRATION_BATCH = 32


def quantize_dynamic(
    src: PathLike, dst: PathLike, *, per_channel: bool = False, weight_type: str = "int8", preprocess: bool = True
) -> TransformReport:
    """int8 weights, activations quantized at run time; needs no dataset."""
    check_params(DYNAMIC_PARAMS, {"per_channel": per_channel, "weight_type": weight_type, "preprocess": preprocess})
    model = _load_float_model(src)
    report = TransformReport("quantize_dynamic", details={"per_channel": per_channel, "weight_type": weight_type})
    with tempfile.TemporaryDirectory() as workdir, write_atomically(dst) as tmp:
        prepared = _prepare(model, Path(workdir), preprocess, report)
        # EnableSubgraph: without it the quantizer skips weights inside If/Loop bodies.
        _call_quantizer(
            ort_quantize_dynamic,
            prepared,
            tmp,
            per_channel=per_channel,
            weight_type=WEIGHT_TYPES[weight_type],
            extra_options={"EnableSubgraph": True},
        )
        _check_something_quantized(tmp, report)
    return report


def quantize_static(
    src: PathLike,
    dst: PathLike,
    *,
    dataset: Dataset | PathLike | None = None,
    per_channel: bool = False,
    calibrate_method: str = "minmax",
    max_calibration_rows: int = 256,
    preprocess: bool = True,
) -> TransformReport:
    """int8 weights and activations in QDQ format, activation ranges calibrated on ``dataset`` (required)."""
    check_params(
        STATIC_PARAMS,
        {
            "per_channel": per_channel,
            "calibrate_method": calibrate_method,
            "max_calibration_rows": max_calibration_rows,
            "preprocess": preprocess,
        },
    )
    if dataset is None:
        raise TransformError(
            "static quantization needs a calibration dataset (NPZ or CSV matching the model's inputs); "
            "attach one or use quantize_dynamic"
        )
    model = _load_float_model(src)
    specs = graph_inputs(model)
    calibration = as_dataset(dataset, specs)
    calibration = Dataset(
        inputs={name: array[:max_calibration_rows] for name, array in calibration.inputs.items()},
        labels=None,
        source=calibration.source,
    )
    report = TransformReport(
        "quantize_static",
        details={
            "format": "QDQ",
            "per_channel": per_channel,
            "calibrate_method": calibrate_method,
            "calibration_rows": calibration.rows,
        },
    )
    report.log.append(f"calibrating on {calibration.rows} rows of {calibration.source} ({calibrate_method})")
    with tempfile.TemporaryDirectory() as workdir, write_atomically(dst) as tmp:
        prepared = _prepare(model, Path(workdir), preprocess, report)
        _call_quantizer(
            ort_quantize_static,
            prepared,
            tmp,
            calibration_data_reader=_DatasetReader(calibration, specs),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            calibrate_method=CALIBRATE_METHODS[calibrate_method],
        )
        hint = ""
        if len(list(iter_graphs(model.graph))) > 1:
            # Static (QDQ) quantization has no EnableSubgraph: weights inside If/Loop bodies stay float.
            hint = "; weights inside If/Loop subgraphs are out of static quantization's reach, use quantize_dynamic"
        _check_something_quantized(tmp, report, hint)
    return report


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
    try:
        quant_pre_process(str(prepared), str(preprocessed), skip_symbolic_shape=without_sympy)
    except Exception as exc:  # pre-processing is an optimization: quantize the unprocessed model rather than fail
        report.log.append(f"pre-processing skipped ({type(exc).__name__}: {exc})")
        return prepared
    skipped = " (symbolic shape inference skipped: sympy is not installed)" if without_sympy else ""
    report.log.append(f"pre-processed: shape inference and basic graph optimization{skipped}")
    return preprocessed


def _call_quantizer(function, prepared: Path, out: Path, **kwargs) -> None:
    try:
        function(str(prepared), str(out), **kwargs)
    except Exception as exc:
        raise TransformError(f"onnxruntime's quantizer failed: {type(exc).__name__}: {exc}") from exc


def _check_something_quantized(out: Path, report: TransformReport, hint: str = "") -> None:
    """An "int8" variant identical to its parent would mislead everyone: refuse it."""
    quantized = onnx.load(str(out))
    quantized_types = quantized_op_types(quantized)
    nodes = [node.op_type for graph in iter_graphs(quantized.graph) for node in graph.node]
    quantized_nodes = [op for op in nodes if op in quantized_types]
    if not quantized_nodes:
        raise TransformError(
            "nothing to quantize: no MatMul, Gemm, Conv or other quantizable node has constant weights "
            f"the quantizer can reach{hint}"
        )
    report.details["quantized_nodes"] = len(quantized_nodes)
    report.details["quantized_op_types"] = sorted(set(quantized_nodes))
    report.log.append(f"{len(quantized_nodes)} quantization nodes added ({', '.join(sorted(set(quantized_nodes)))})")
