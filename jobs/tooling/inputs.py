"""Generated inputs for running a model without a dataset.

Symbolic or unknown dimensions become ``batch`` for the first axis and 1
elsewhere; floats are standard normal, integers are zeros (they are often
indices, where random values would read out of range), booleans False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

_STRING_TYPE = onnx.TensorProto.STRING


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32", or "string"
    shape: tuple[int | str | None, ...] | None  # None when the rank is unknown
    elem_type: int  # onnx.TensorProto enum

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape) if self.shape is not None else None}


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


def generate_inputs(model: onnx.ModelProto, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """One feed dict for ``model``; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in graph_inputs(model):
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
