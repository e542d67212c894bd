"""Generated inputs for running a model without a dataset.

Symbolic or unknown dimensions become ``batch`` for the first axis and 1
elsewhere; floats are standard normal, integers are zeros (they are often
indices, where random values would read out of range), booleans False,
strings a short word. A sequence of tensors gets one element, an optional
input its value; maps and sparse tensors get nothing (``InputsNotGenerated``).

A model declares its input shapes itself, so a 73-byte file can ask for an
[8192, 8192] input (a gigabyte once generated). ``generate_inputs`` refuses
with ``InputsTooLarge`` before allocating anything above
``MAX_GENERATED_ELEMENTS`` values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from jobs.tooling.errors import TransformError

_STRING_TYPE = onnx.TensorProto.STRING
GENERATED_STRING = "sample"
# 16M values: 64 MB of float32, far above the inputs of the models this console ships to devices.
MAX_GENERATED_ELEMENTS = 1 << 24


class InputsTooLarge(TransformError):
    """The model's declared inputs are too large to generate; the message says which and how large.

    Permanent, as every TransformError: a job that needs generated inputs fails at once with this reason.
    """


class InputsNotGenerated(TransformError):
    """An input of a kind no values are generated for (a map, a sparse tensor, an element type numpy lacks)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32", or "string"
    shape: tuple[int | str | None, ...] | None  # None when the rank is unknown
    elem_type: int  # onnx.TensorProto enum

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape) if self.shape is not None else None}

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        """The inverse of ``as_dict`` (a version's recorded facts); the ONNX type enum is not recorded."""
        shape = data.get("shape")
        return cls(data["name"], data["dtype"], tuple(shape) if shape is not None else None, 0)


def _dtype_name(elem_type: int) -> str:
    if elem_type == _STRING_TYPE:
        return "string"
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _value_info_spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    type_proto = value_info.type
    kind = type_proto.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(value_info.name, kind or "unknown", None, 0)
    return _tensor_spec(value_info.name, type_proto.tensor_type)


def _tensor_spec(name: str, tensor_type: onnx.TypeProto.Tensor) -> TensorSpec:
    shape: tuple[int | str | None, ...] | None = None
    if tensor_type.HasField("shape"):
        dims: list[int | str | None] = []
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            elif dim.HasField("dim_param"):
                dims.append(dim.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return TensorSpec(name, _dtype_name(tensor_type.elem_type), shape, tensor_type.elem_type)


def graph_inputs(model: onnx.ModelProto) -> list[TensorSpec]:
    """The inputs a caller must feed: graph inputs that are not initializers (old IR lists both)."""
    return [_value_info_spec(vi) for vi in fed_inputs(model)]


def graph_outputs(model: onnx.ModelProto) -> list[TensorSpec]:
    return [_value_info_spec(vi) for vi in model.graph.output]


def concrete_shape(shape: tuple[int | str | None, ...] | None, batch: int = 1) -> tuple[int, ...]:
    if shape is None:
        return (batch,)
    return tuple(
        dim if isinstance(dim, int) and dim > 0 else (batch if axis == 0 else 1) for axis, dim in enumerate(shape)
    )


def generated_elements(specs: list[TensorSpec], batch: int = 1) -> dict[str, tuple[tuple[int, ...], int]]:
    """Input name -> (concrete shape, number of values) of the inputs ``generate_inputs`` would build."""
    shapes = {spec.name: concrete_shape(spec.shape, batch) for spec in specs}
    return {name: (shape, math.prod(shape)) for name, shape in shapes.items()}


def check_generated_size(specs: list[TensorSpec], batch: int = 1, max_elements: int = MAX_GENERATED_ELEMENTS) -> None:
    """Raise InputsTooLarge when the generated inputs would hold more than ``max_elements`` values in all."""
    sizes = generated_elements(specs, batch)
    total = sum(count for _, count in sizes.values())
    if total <= max_elements:
        return
    largest = sorted(sizes.items(), key=lambda item: -item[1][1])[:3]
    shown = ", ".join(f"'{name}' {list(shape)} = {count:,}" for name, (shape, count) in largest)
    raise InputsTooLarge(
        f"the model's declared inputs need {total:,} generated values ({shown}), over the limit of "
        f"{max_elements:,} for generated inputs, so nothing was generated or run; "
        "run it on a dataset, or declare a smaller (or symbolic) input shape"
    )


def fed_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs a caller must feed: not initializers (old IR lists both)."""
    initializer_names = {init.name for init in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in initializer_names]


_KIND_WORDS = {"map_type": "a map", "sparse_tensor_type": "a sparse tensor"}


def _generated_tensor(name: str, type_proto: onnx.TypeProto) -> TensorSpec:
    """The tensor whose values stand for this input (a sequence's element, an optional's value)."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        spec = _tensor_spec(name, type_proto.tensor_type)
        if spec.dtype not in ("string", "bool"):
            try:
                np.dtype(spec.dtype)
            except TypeError as exc:
                raise InputsNotGenerated(
                    f"input '{name}' holds {spec.dtype}, which no values are generated for"
                ) from exc
        return spec
    if kind == "sequence_type":
        element = type_proto.sequence_type.elem_type
        if element.WhichOneof("value") != "tensor_type":
            raise InputsNotGenerated(
                f"input '{name}' is a sequence of {_kind(element)}s, which no values are generated for"
            )
        return _generated_tensor(name, element)
    if kind == "optional_type":
        return _generated_tensor(name, type_proto.optional_type.elem_type)
    raise InputsNotGenerated(
        f"input '{name}' is {_KIND_WORDS.get(kind or '', 'of an unknown type')}, which no values are generated for"
    )


def _kind(type_proto: onnx.TypeProto) -> str:
    return (type_proto.WhichOneof("value") or "unknown").removesuffix("_type").replace("_", " ")


def _tensor_values(spec: TensorSpec, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = concrete_shape(spec.shape, batch)
    if spec.dtype == "string":
        return np.full(shape, GENERATED_STRING, dtype=object)
    if spec.dtype == "bool":
        return np.zeros(shape, dtype=bool)
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)


def generate_feeds(
    inputs: Sequence[onnx.ValueInfoProto], batch: int = 1, seed: int = 0, *, max_elements: int = MAX_GENERATED_ELEMENTS
) -> dict[str, Any]:
    """One feed dict for these inputs: arrays, a one-element list for a sequence of tensors; deterministic per seed.

    InputsNotGenerated for a kind of input nothing is generated for, InputsTooLarge before allocating too much.
    """
    specs = [_generated_tensor(vi.name, vi.type) for vi in inputs]
    check_generated_size(specs, batch, max_elements)
    rng = np.random.default_rng(seed)
    feeds: dict[str, Any] = {}
    for value_info, spec in zip(inputs, specs, strict=True):
        feeds[spec.name] = _shaped_like(value_info.type, _tensor_values(spec, batch, rng))
    return feeds


def _shaped_like(type_proto: onnx.TypeProto, values: np.ndarray) -> Any:
    kind = type_proto.WhichOneof("value")
    if kind == "optional_type":
        return _shaped_like(type_proto.optional_type.elem_type, values)
    return [values] if kind == "sequence_type" else values


def generate_inputs(
    model: onnx.ModelProto, batch: int = 1, seed: int = 0, *, max_elements: int = MAX_GENERATED_ELEMENTS
) -> dict[str, Any]:
    """``generate_feeds`` for the inputs a caller of ``model`` must feed."""
    return generate_feeds(fed_inputs(model), batch, seed, max_elements=max_elements)
