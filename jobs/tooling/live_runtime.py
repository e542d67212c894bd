"""What the onnxruntime installed on this server supports, asked of it directly.

The matrix row for the server's own runtime takes its opset and IR limits from
here; its kernels are read through ``registry.load.live_registry``, the same
reader as the recorded releases'.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .datasets import DatasetLimits
from .errors import DatasetError
from .inputs import SAMPLES, InputsNotGenerated, InputsSource, InputsTooLarge, TypicalDims, representative_feeds


def version() -> str:
    return ort.__version__


def major_minor(text: str) -> str:
    parts = text.strip().lstrip("v").split(".")
    return ".".join(parts[:2])


@functools.cache
def max_opsets() -> dict[str, int]:
    """The newest opset of each domain this runtime knows a schema in (from the registry the checker reads)."""
    from .registry.load import live_registry  # the registry reads this module's version(); import when asked

    best: dict[str, int] = {}
    for key, entries in live_registry().schemas.items():
        domain = key.split(":", 1)[0]
        best[domain] = max(best.get(domain, 0), max(entry[0] for entry in entries))
    return best


@functools.cache
def max_ir_version() -> int:
    """The highest model IR version this runtime loads, found by loading tiny models."""
    best = 3
    for ir in range(4, onnx.IR_VERSION + 2):
        node = helper.make_node("Identity", ["x"], ["y"])
        graph = helper.make_graph(
            [node],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = ir
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # refusing this IR version is the answer we are looking for
            break
        best = ir
    return best


def capabilities() -> dict:
    return {"version": major_minor(version()), "max_opsets": max_opsets(), "ir_version": max_ir_version()}


class RunFailure(ValueError):
    """The model is ONNX, but onnxruntime cannot create a session for it: the server cannot load it."""


SMOKE_SAMPLE_ROWS = 8  # rows of the sample inputs one smoke run feeds (the model's own batch when it fixes one)


def smoke_run(
    path: str | Path,
    *,
    batch: int = 1,
    seed: int = 0,
    typical_dims: TypicalDims | None = None,
    sample_path: str | Path | None = None,
    sample_name: str = "",
    label_column: str = "label",
    limits: DatasetLimits | None = None,
) -> dict:
    """Create a session, then run the model once on its representative inputs and describe what came out.

    Creating the session decides whether the server can load the model: only that failure raises (RunFailure).
    With sample inputs (``sample_path``, a dataset the model's owner attached) the run feeds their first rows, and
    a run that fails on them is the model failing on real inputs: ``{"failed": ...}``, which fails the check.
    Without, inputs are generated (at ``typical_dims`` where given); generated inputs are a guess (random
    floats, zero integers) that may be invalid where real inputs are not (Resize scales, Slice starts, OneHot
    depth, an integer divisor), so a run that fails on them comes back as ``{"warning": ...}``; inputs no values
    can be generated for come back as ``{"skipped": ...}`` with the reason. Sample inputs that do not fit this
    version's inputs are not run: the run falls back to generated inputs and ``samples_refused`` says why.
    Every answer says where its inputs came from: ``inputs_source`` ("samples" or "generated") and
    ``inputs_description``.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RunFailure(f"onnxruntime {version()} cannot load the model: {_first_line(exc)}") from exc
    # Inputs from the session's own signature, so ORT-format files (which onnx cannot parse) run too.
    inputs = [helper.make_value_info(arg.name, _type_proto(arg.type, arg.shape)) for arg in session.get_inputs()]
    answer: dict = {}
    if sample_path is not None:
        try:
            feeds, source = representative_feeds(
                inputs,
                sample_path=sample_path,
                rows=SMOKE_SAMPLE_ROWS,
                sample_name=sample_name,
                label_column=label_column,
                limits=limits,
            )
        except DatasetError as exc:
            shown = f"'{sample_name or Path(sample_path).name}'"
            answer["samples_refused"] = (
                f"The sample inputs {shown} do not fit this version's inputs ({'; '.join(exc.problems)}), "
                "so the run used generated inputs."
            )
            sample_path = None
    if sample_path is None:
        try:
            feeds, source = representative_feeds(inputs, typical_dims=typical_dims, rows=batch, seed=seed)
        except (InputsTooLarge, InputsNotGenerated) as exc:
            return {**answer, **_source(None), "skipped": f"The run on generated inputs was skipped: {exc}."}
    answer.update({**_source(source), "inputs": {name: _describe_input(value) for name, value in feeds.items()}})
    run_options = ort.RunOptions()
    run_options.log_severity_level = 4  # the failure is reported in the answer, not logged as an error too
    try:
        outputs = session.run(None, feeds, run_options)
    except Exception as exc:  # any failure of the run itself is the model's answer to these inputs
        message = _first_line(exc).rstrip(".")
        if source.kind == SAMPLES:
            answer["failed"] = (
                f"onnxruntime {version()} loads the model, but a run on its sample inputs failed: {message} "
                f"(fed {source.description})."
            )
        else:
            answer["warning"] = (
                f"onnxruntime {version()} loads the model, but a run on generated inputs failed: {message}. "
                f"Generated inputs are {source.description}; check the model on real inputs "
                "(attach sample inputs on the model page)."
            )
        return answer
    described = []
    for meta, value in zip(session.get_outputs(), outputs, strict=False):
        array = np.asarray(value) if isinstance(value, np.ndarray) else None
        described.append(
            {
                "name": meta.name,
                "shape": list(array.shape) if array is not None else None,
                "dtype": str(array.dtype) if array is not None else type(value).__name__,
                "finite": bool(np.isfinite(array).all()) if array is not None and array.dtype.kind == "f" else None,
            }
        )
    answer["outputs"] = described
    return answer


def _source(source: InputsSource | None) -> dict:
    if source is None:
        return {"inputs_source": "generated"}
    return {"inputs_source": source.kind, "inputs_description": source.description}


def _type_proto(ort_type: str, shape: list | None) -> onnx.TypeProto:
    """ONNX's type for onnxruntime's spelling of it: "tensor(float)", "seq(tensor(int64))", "optional(...)".

    onnxruntime gives a type only as this text (no library parses it back). A sequence's element shape is not
    in it, so that is left unknown; maps and sparse tensors keep only their kind, as nothing is generated for them.
    """
    kind, _, inner = ort_type.partition("(")
    inner = inner.removesuffix(")")
    if kind == "tensor":
        name = inner.upper()
        elem_type = onnx.TensorProto.DataType.Value(name) if name in onnx.TensorProto.DataType.keys() else 0
        return helper.make_tensor_type_proto(elem_type, shape)
    if kind == "seq":
        return helper.make_sequence_type_proto(_type_proto(inner, None))
    if kind == "optional":
        return helper.make_optional_type_proto(_type_proto(inner, shape))
    type_proto = onnx.TypeProto()
    if kind == "map":
        type_proto.map_type.SetInParent()
    elif kind == "sparse_tensor":
        type_proto.sparse_tensor_type.SetInParent()
    return type_proto


def _describe_input(value: np.ndarray | list) -> list | dict:
    if isinstance(value, list):
        return {"sequence_of": [_describe_input(item) for item in value]}
    return list(value.shape)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
