"""Helpers every transform and measurement shares: reports, atomic writes, sessions, graph walking, parameters."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from jobs.tooling import modelfile
from jobs.tooling.errors import TransformError
from jobs.tooling.inputs import TensorSpec, graph_inputs
from jobs.tooling.modelfile import iter_graphs

PathLike = str | os.PathLike

# Op types that only appear in a model someone already quantized (QDQ, QOperator, dynamic-integer or n-bit form),
# plus every op whose name starts with QLinear or QOrdered.
QUANTIZED_OP_TYPES = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLSTM",
        "QGemm",
        "QAttention",
        "MatMulNBits",
        "GatherBlockQuantized",
    }
)
_QUANTIZED_PREFIXES = ("QLinear", "QOrdered")

OPTIMIZATION_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
}

# Operators kept in float32 by default, with Casts around them: fp16's range (±65504) and 11-bit mantissa fail
# them on ordinary inputs. Exp overflows from x > 11 and Log/Pow turn small or large values into -inf/inf; sums and
# means over many elements (ReduceSum/ReduceMean/ReduceSumSquare/ReduceL2/ReduceLogSumExp, and the variance inside
# Layer/Instance/GroupNormalization) overflow or lose the small terms. Softmax is not listed: onnxruntime's fp16
# kernels subtract the maximum and accumulate in float32, and blocking it would put two Casts on every attention
# score tensor, the largest activations a transformer has.
FP16_SENSITIVE_OPS = (
    "Exp",
    "Log",
    "Pow",
    "ReduceSum",
    "ReduceMean",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
)

_ORT_FORMAT_MAGIC = b"ORTM"  # flatbuffer file identifier at bytes 4..8 of an ORT-format model


@dataclass
class TransformReport:
    """What a transform did: ``log`` lines for people, ``details`` figures for the version's metadata."""

    transform: str
    log: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Param:
    """Constraint on one transform parameter; the default lives in the function signature."""

    kind: type | tuple[type, ...]
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False  # None is allowed


def check_params(constraints: dict[str, Param], values: dict[str, Any]) -> None:
    for name, value in values.items():
        param = constraints.get(name)
        if param is None or (value is None and param.optional):
            continue
        kinds = param.kind if isinstance(param.kind, tuple) else (param.kind,)
        # bool is an int subclass: refuse True where a number is meant; JSON gives 1 where 1.0 is meant: accept it.
        bool_for_number = isinstance(value, bool) and bool not in kinds
        int_for_float = float in kinds and isinstance(value, int) and not isinstance(value, bool)
        if bool_for_number or not (isinstance(value, kinds) or int_for_float):
            expected = " or ".join(k.__name__ for k in kinds)
            raise TransformError(f"parameter {name}={value!r} must be {expected}")
        if param.choices is not None and value not in param.choices:
            raise TransformError(f"parameter {name}={value!r} must be one of {', '.join(map(repr, param.choices))}")
        if param.minimum is not None and value < param.minimum:
            raise TransformError(f"parameter {name}={value!r} must be at least {param.minimum}")
        if param.maximum is not None and value > param.maximum:
            raise TransformError(f"parameter {name}={value!r} must be at most {param.maximum}")


@contextmanager
def write_atomically(dst: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` on success, delete it on any error.

    Beside, not in /tmp, so the final rename stays on one filesystem and is atomic: a job that dies halfway
    never leaves a half-written variant where the console would pick it up.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise TransformError(f"the transform wrote nothing for {dst.name}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def is_ort_format(path: PathLike) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8)[4:8] == _ORT_FORMAT_MAGIC


def load_model(path: PathLike) -> onnx.ModelProto:
    """The upload checks of ``modelfile.load_model`` (parse, checker, no external data), as a TransformError."""
    if is_ort_format(path):
        raise TransformError(f"{Path(path).name} is in ORT format; transform its ONNX parent instead")
    try:
        return modelfile.load_model(path)
    except modelfile.ModelFileError as exc:
        raise TransformError(f"{Path(path).name}: {exc}") from exc


def _compact_tensor(tensor: onnx.TensorProto) -> None:
    # Converters store fp16 in int32_data (a varint per value) and floats in float_data; raw bytes are the
    # smallest and the only layout that makes a file's size reflect its precision.
    if tensor.HasField("raw_data") or tensor.data_location == onnx.TensorProto.EXTERNAL:
        return
    if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return
    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))


def save_model(model: onnx.ModelProto, path: PathLike) -> None:
    for graph in iter_graphs(model.graph):
        for tensor in graph.initializer:
            _compact_tensor(tensor)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    _compact_tensor(attribute.t)
    onnx.save(model, str(path))


def save_checked(model: onnx.ModelProto, dst: PathLike, what: str) -> None:
    """Write ``model`` to ``dst`` atomically once onnx's checker accepts it; ``what`` names the rewrite that made it,
    so a refusal reads as the console's own problem, not the user's model."""
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise TransformError(f"{what} gave a model onnx's checker refuses: {str(exc).strip()[:300]}") from exc
    with write_atomically(dst) as tmp:
        save_model(model, tmp)


def drop_unused_opset_imports(model: onnx.ModelProto) -> int:
    """Remove opset imports of domains no node uses; returns how many went.

    onnxruntime's writers (offline optimization, the quantizers' pre-processing) import every domain the runtime
    knows (ai.onnx.ml 5, com.microsoft.nchwc, ...), used or not: an unused import of a too-new opset keeps a file
    off older releases for nothing. The default domain always stays.
    """
    from jobs.tooling.modelfile import iter_graphs

    used = {node.domain or "" for graph in iter_graphs(model.graph) for node in graph.node}
    used |= {node.domain or "" for function in model.functions for node in function.node}
    kept = [op for op in model.opset_import if (op.domain or "") in used | {"", "ai.onnx"}]
    dropped = len(model.opset_import) - len(kept)
    if dropped:
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return dropped


def is_quantized_op(op_type: str) -> bool:
    return op_type in QUANTIZED_OP_TYPES or op_type.startswith(_QUANTIZED_PREFIXES)


def quantized_op_types(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for graph in iter_graphs(model.graph) for node in graph.node if is_quantized_op(node.op_type)}


def is_quantized(model: onnx.ModelProto) -> bool:
    return bool(quantized_op_types(model))


def refuse_quantized(model: onnx.ModelProto, action: str) -> None:
    """Quantizing or halving an already-quantized model stacks errors or breaks it: send people to the parent."""
    found = quantized_op_types(model)
    if found:
        raise TransformError(
            f"the model is already quantized (it has {', '.join(sorted(found))}); {action} its float parent instead"
        )


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Turn tensor-valued Constant nodes into initializers of their own graph; return how many moved.

    The quantizer, pruning and SVD only look at initializers; exporters often emit weights as Constant nodes.
    """
    moved = 0
    for graph in iter_graphs(model.graph):
        kept = []
        for node in graph.node:
            is_tensor_constant = (
                node.op_type == "Constant"
                and node.domain in ("", "ai.onnx")
                and len(node.attribute) == 1
                and node.attribute[0].name == "value"
            )
            if not is_tensor_constant:
                kept.append(node)
                continue
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        del graph.node[:]
        graph.node.extend(kept)
    return moved


def float_initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)}


def session_options(threads: int | None = None, level: str | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings would flood job logs
    if threads:
        options.intra_op_num_threads = threads
    if level is not None:
        options.graph_optimization_level = OPTIMIZATION_LEVELS[level]
    return options


def open_session(
    path: PathLike, threads: int | None = None, options: ort.SessionOptions | None = None
) -> ort.InferenceSession:
    """A CPU session for an ONNX or ORT-format file; TransformError when onnxruntime refuses it."""
    options = options or session_options(threads)
    if is_ort_format(path):
        # ORT picks the format from the ".ort" suffix only; variants may have any name.
        options.add_session_config_entry("session.load_model_format", "ORT")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise TransformError(f"onnxruntime cannot load {Path(path).name}: {exc}") from exc


def run_session(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    try:
        return session.run(None, feeds)
    except Exception as exc:
        raise TransformError(f"onnxruntime cannot run the model: {exc}") from exc


def _elem_type(ort_type: str) -> int:
    # "tensor(float)" -> TensorProto.FLOAT; ORT's element names are ONNX's, lower-cased.
    name = ort_type.removeprefix("tensor(").removesuffix(")").upper()
    return onnx.TensorProto.DataType.Value(name) if name in onnx.TensorProto.DataType.keys() else 0


def signature_model(session: ort.InferenceSession) -> onnx.ModelProto:
    """A node-less model with the session's inputs and outputs, so ``inputs.py`` works on ORT-format files."""

    def value_infos(args: list) -> list[onnx.ValueInfoProto]:
        return [helper.make_tensor_value_info(a.name, _elem_type(a.type), a.shape) for a in args]

    graph = helper.make_graph([], "signature", value_infos(session.get_inputs()), value_infos(session.get_outputs()))
    return helper.make_model(graph)


def load_signature(path: PathLike) -> onnx.ModelProto:
    """The model's inputs and outputs as a ModelProto (the whole model for ONNX files, without external data)."""
    if is_ort_format(path):
        return signature_model(open_session(path))
    return onnx.load(str(path), load_external_data=False)


def model_input_specs(path: PathLike) -> list[TensorSpec]:
    return graph_inputs(load_signature(path))
