"""Generated inputs for running a model without a dataset.

Symbolic or unknown dimensions become ``batch`` for the first axis and 1
elsewhere; floats are standard normal, integers are zeros (they are often
indices, where random values would read out of range), booleans False.

A model declares its input shapes itself, so a 73-byte file can ask for an
[8192, 8192] input (a gigabyte once generated). ``generate_inputs`` refuses
with ``InputsTooLarge`` before allocating anything above
``MAX_GENERATED_ELEMENTS`` values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from jobs.tooling.errors import TransformError

_STRING_TYPE = onnx.TensorProto.STRING
# 16M values: 64 MB of float32, far above the inputs of the models this console ships to devices.
MAX_GENERATED_ELEMENTS = 1 << 24


class InputsTooLarge(TransformError):
    """The model's declared inputs are too large to generate; the message says which and how large.

    Permanent, as every TransformError: a job that needs generated inputs fails at once with this reason.
    """


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
    tensor_type = type_proto.tensor_type
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
    return TensorSpec(value_info.name, _dtype_name(tensor_type.elem_type), shape, tensor_type.elem_type)


def graph_inputs(model: onnx.ModelProto) -> list[TensorSpec]:
    """The inputs a caller must feed: graph inputs that are not initializers (old IR lists both)."""
    initializer_names = {init.name for init in model.graph.initializer}
    return [_value_info_spec(vi) for vi in model.graph.input if vi.name not in initializer_names]


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


def generate_inputs(
    model: onnx.ModelProto, batch: int = 1, seed: int = 0, *, max_elements: int = MAX_GENERATED_ELEMENTS
) -> dict[str, np.ndarray]:
    """One feed dict for ``model``; deterministic for a given seed. InputsTooLarge before allocating too much."""
    specs = graph_inputs(model)
    check_generated_size(specs, batch, max_elements)
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = concrete_shape(spec.shape, batch)
        if spec.dtype == "string":
            feeds[spec.name] = np.full(shape, "", dtype=object)
        elif spec.dtype == "bool":
            feeds[spec.name] = np.zeros(shape, dtype=bool)
        else:
            dtype = np.dtype(spec.dtype)
            if np.issubdtype(dtype, np.floating):
                feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
            else:
                feeds[spec.name] = np.zeros(shape, dtype=dtype)
    return feeds
