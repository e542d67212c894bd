"""Generated inputs for running a model without a dataset, and a model's representative inputs.

Symbolic or unknown dimensions take the model's typical size when one is given
(``typical_dims``: a dimension's name, e.g. ``{"height": 640}``, or
``"<input>:<axis>"``, e.g. ``{"audio:1": 16000}``), else ``batch`` for the
first axis and 1 elsewhere; floats are standard normal, integers are zeros
(they are often indices, where random values would read out of range),
booleans False, strings a short word. A sequence of tensors gets one element,
an optional input its value; maps and sparse tensors get nothing
(``InputsNotGenerated``).

A model declares its input shapes itself, so a 73-byte file can ask for an
[8192, 8192] input (a gigabyte once generated). ``generate_inputs`` refuses
with ``InputsTooLarge`` before allocating anything above
``MAX_GENERATED_ELEMENTS`` values, typical sizes included.

``representative_feeds`` is what a measurement should run on: rows of the
model's sample inputs when it has them (real tensors), else generated inputs
at its typical sizes; it says which, so every figure can be labelled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper

from jobs.tooling.errors import TransformError

if TYPE_CHECKING:
    from jobs.tooling.datasets import DatasetLimits

_STRING_TYPE = onnx.TensorProto.STRING
GENERATED_STRING = "sample"
# 16M values: 64 MB of float32, far above the inputs of the models this console ships to devices.
MAX_GENERATED_ELEMENTS = 1 << 24
# What generated values are, in the words every "figures come from generated inputs" note uses.
GENERATED_VALUES = "random floats (standard normal) and zero integers"
MAX_TYPICAL_DIMS = 64  # entries in one model's typical sizes: a model has a few dynamic dimensions

TypicalDims = Mapping[str, int]


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


def concrete_shape(
    shape: tuple[int | str | None, ...] | None,
    batch: int = 1,
    *,
    typical_dims: TypicalDims | None = None,
    input_name: str = "",
) -> tuple[int, ...]:
    """Fixed dimensions as declared; a dynamic one takes its typical size ("<input>:<axis>" first, then its
    name), else ``batch`` on the first axis and 1 elsewhere. A typical size given for the first axis wins over
    ``batch``: it is what the model's owner says the model runs at."""
    if shape is None:
        return (batch,)
    typical = typical_dims or {}
    dims = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int) and dim > 0:
            dims.append(dim)
            continue
        size = typical.get(f"{input_name}:{axis}")
        if size is None and isinstance(dim, str):
            size = typical.get(dim)
        dims.append(int(size) if size is not None else (batch if axis == 0 else 1))
    return tuple(dims)


def generated_elements(
    specs: list[TensorSpec], batch: int = 1, *, typical_dims: TypicalDims | None = None
) -> dict[str, tuple[tuple[int, ...], int]]:
    """Input name -> (concrete shape, number of values) of the inputs ``generate_inputs`` would build."""
    shapes = {
        spec.name: concrete_shape(spec.shape, batch, typical_dims=typical_dims, input_name=spec.name) for spec in specs
    }
    return {name: (shape, math.prod(shape)) for name, shape in shapes.items()}


def check_generated_size(
    specs: list[TensorSpec],
    batch: int = 1,
    max_elements: int = MAX_GENERATED_ELEMENTS,
    *,
    typical_dims: TypicalDims | None = None,
) -> None:
    """Raise InputsTooLarge when the generated inputs would hold more than ``max_elements`` values in all.

    The limit holds for typical sizes too: they are checked when set, but a later version may use the same
    dimension name on more inputs."""
    sizes = generated_elements(specs, batch, typical_dims=typical_dims)
    total = sum(count for _, count in sizes.values())
    if total <= max_elements:
        return
    largest = sorted(sizes.items(), key=lambda item: -item[1][1])[:3]
    shown = ", ".join(f"'{name}' {list(shape)} = {count:,}" for name, (shape, count) in largest)
    at_typical = " at the model's typical sizes" if _typical_used(specs, typical_dims) else ""
    raise InputsTooLarge(
        f"the model's declared inputs need {total:,} generated values{at_typical} ({shown}), over the limit of "
        f"{max_elements:,} for generated inputs, so nothing was generated or run; "
        "run it on a dataset, or declare a smaller (or symbolic) input shape"
        + (" or smaller typical sizes" if at_typical else "")
    )


def dynamic_axes(specs: Sequence[TensorSpec]) -> list[tuple[str, int, str | None]]:
    """(input, axis, dimension name or None) of every dynamic axis, in input order."""
    return [
        (spec.name, axis, dim if isinstance(dim, str) and dim else None)
        for spec in specs
        if spec.shape is not None
        for axis, dim in enumerate(spec.shape)
        if not (isinstance(dim, int) and dim > 0)
    ]


def typical_dim_keys(specs: Sequence[TensorSpec]) -> list[str]:
    """The keys typical sizes may be set under: each dimension name once, and "<input>:<axis>" for unnamed ones."""
    keys: list[str] = []
    for name, axis, dim in dynamic_axes(specs):
        key = dim if dim is not None else f"{name}:{axis}"
        if key not in keys:
            keys.append(key)
    return keys


def typical_dims_problems(
    specs: Sequence[TensorSpec], typical_dims: object, *, max_elements: int = MAX_GENERATED_ELEMENTS
) -> list[str]:
    """Every reason ``typical_dims`` does not fit these inputs, one sentence each; empty when it does.

    A key names a dynamic dimension ("height") or a dynamic axis of one input ("audio:1"); a value is a positive
    whole number, and the inputs generated at those sizes stay within ``max_elements`` values.
    """
    if not isinstance(typical_dims, Mapping):
        return ['typical sizes must be an object of dimension -> size, e.g. {"height": 640, "width": 640}']
    if len(typical_dims) > MAX_TYPICAL_DIMS:
        return [f"{len(typical_dims)} typical sizes given; a model may have at most {MAX_TYPICAL_DIMS}"]
    axes = dynamic_axes(specs)
    names = {dim for _, _, dim in axes if dim is not None}
    pairs = {f"{name}:{axis}" for name, axis, _ in axes}
    allowed = typical_dim_keys(specs)
    problems = []
    for key, size in typical_dims.items():
        if not isinstance(key, str) or not (key in names or key in pairs):
            shown = ", ".join(allowed) if allowed else "none: every input dimension is fixed"
            problems.append(
                f"'{key}' is not a dynamic dimension of the model's inputs (dimension names, or "
                f'"<input>:<axis>" for a dynamic axis: {shown})'
            )
        elif isinstance(size, bool) or not isinstance(size, int) or size < 1:
            problems.append(f"the typical size of '{key}' must be a whole number of at least 1, not {size!r}")
        elif size > max_elements:
            problems.append(f"the typical size of '{key}' is {size:,}; at most {max_elements:,}")
    if problems:
        return problems
    tensors = [spec for spec in specs if spec.shape is not None]
    sizes = generated_elements(tensors, typical_dims=typical_dims)
    total = sum(count for _, count in sizes.values())
    if total > max_elements:
        largest = sorted(sizes.items(), key=lambda item: -item[1][1])[:3]
        shown = ", ".join(f"'{name}' {list(shape)} = {count:,}" for name, (shape, count) in largest)
        problems.append(
            f"at these typical sizes the generated inputs would hold {total:,} values ({shown}), over the limit "
            f"of {max_elements:,}; give smaller sizes, or attach sample inputs instead"
        )
    return problems


def _typical_used(specs: Sequence[TensorSpec], typical_dims: TypicalDims | None) -> dict[str, int]:
    """The typical sizes that apply to these inputs, by the key they were given under."""
    if not typical_dims:
        return {}
    used: dict[str, int] = {}
    for name, axis, dim in dynamic_axes(specs):
        for key in (f"{name}:{axis}", dim):
            if key is not None and key in typical_dims:
                used[key] = int(typical_dims[key])
                break
    return used


def describe_generated(
    specs: Sequence[TensorSpec] | None = None, typical_dims: TypicalDims | None = None, batch: int = 1
) -> str:
    """What generated inputs are, for a person: "random floats (standard normal) and zero integers, every dynamic
    dimension set to 1" or "..., dynamic dimensions at the typical sizes height=640, width=640 (x [1, 3, 640, 640])".

    With ``specs``, only the typical sizes these inputs use are named, and the shapes are shown; without, every
    typical size given is named.
    """
    used = dict(typical_dims or {}) if specs is None else _typical_used(specs, typical_dims)
    rest = "set to 1" if batch == 1 else f"set to 1 (the first to {batch})"
    if not used:
        text = f"{GENERATED_VALUES}, every dynamic dimension {rest}"
    else:
        sizes = ", ".join(f"{key}={size:,}" for key, size in used.items())
        text = f"{GENERATED_VALUES}, dynamic dimensions at the typical sizes {sizes}"
        if specs is not None and any(
            f"{name}:{axis}" not in used and dim not in used for name, axis, dim in dynamic_axes(specs)
        ):
            text += f", the others {rest}"
    if specs:
        shapes = [
            f"{spec.name} {list(concrete_shape(spec.shape, batch, typical_dims=typical_dims, input_name=spec.name))}"
            for spec in specs[:4]
        ]
        more = f" and {len(specs) - 4} more" if len(specs) > 4 else ""
        text += f" ({', '.join(shapes)}{more})"
    return text


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


def _tensor_values(
    spec: TensorSpec, batch: int, rng: np.random.Generator, typical_dims: TypicalDims | None = None
) -> np.ndarray:
    shape = concrete_shape(spec.shape, batch, typical_dims=typical_dims, input_name=spec.name)
    if spec.dtype == "string":
        return np.full(shape, GENERATED_STRING, dtype=object)
    if spec.dtype == "bool":
        return np.zeros(shape, dtype=bool)
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)


def generate_feeds(
    inputs: Sequence[onnx.ValueInfoProto],
    batch: int = 1,
    seed: int = 0,
    *,
    max_elements: int = MAX_GENERATED_ELEMENTS,
    typical_dims: TypicalDims | None = None,
) -> dict[str, Any]:
    """One feed dict for these inputs: arrays, a one-element list for a sequence of tensors; deterministic per seed.

    Dynamic dimensions take their ``typical_dims`` size where given (see ``concrete_shape``), and the element
    cap still applies to them: InputsTooLarge before allocating too much. InputsNotGenerated for a kind of input
    nothing is generated for.
    """
    specs = [_generated_tensor(vi.name, vi.type) for vi in inputs]
    check_generated_size(specs, batch, max_elements, typical_dims=typical_dims)
    rng = np.random.default_rng(seed)
    feeds: dict[str, Any] = {}
    for value_info, spec in zip(inputs, specs, strict=True):
        feeds[spec.name] = _shaped_like(value_info.type, _tensor_values(spec, batch, rng, typical_dims))
    return feeds


def _shaped_like(type_proto: onnx.TypeProto, values: np.ndarray) -> Any:
    kind = type_proto.WhichOneof("value")
    if kind == "optional_type":
        return _shaped_like(type_proto.optional_type.elem_type, values)
    return [values] if kind == "sequence_type" else values


def generate_inputs(
    model: onnx.ModelProto,
    batch: int = 1,
    seed: int = 0,
    *,
    max_elements: int = MAX_GENERATED_ELEMENTS,
    typical_dims: TypicalDims | None = None,
) -> dict[str, Any]:
    """``generate_feeds`` for the inputs a caller of ``model`` must feed."""
    return generate_feeds(fed_inputs(model), batch, seed, max_elements=max_elements, typical_dims=typical_dims)


# -- representative inputs: the model's samples when it has them, else generated at its typical sizes


SAMPLES = "samples"
GENERATED = "generated"


@dataclass(frozen=True)
class InputsSource:
    """Where the feeds of a measurement came from: ``kind`` is "samples" or "generated"; ``description`` says
    what they were, in words a person reads next to the figure ("random floats ..., every dynamic dimension set
    to 1", "the first 8 of 40 rows of the sample inputs 'lines.npz'")."""

    kind: str
    description: str

    @property
    def generated(self) -> bool:
        return self.kind == GENERATED

    def as_dict(self) -> dict:
        return {"kind": self.kind, "description": self.description}


def representative_feeds(
    specs: Sequence[TensorSpec | onnx.ValueInfoProto],
    *,
    sample_path: str | Path | None = None,
    typical_dims: TypicalDims | None = None,
    rows: int = 1,
    seed: int = 0,
    sample_name: str = "",
    label_column: str = "label",
    limits: DatasetLimits | None = None,
    max_elements: int = MAX_GENERATED_ELEMENTS,
) -> tuple[dict[str, Any], InputsSource]:
    """One feed dict the model should be measured on, and where it came from.

    With ``sample_path`` (an NPZ or CSV dataset, read by ``jobs.tooling.datasets``: never with pickle), its first
    ``rows`` rows (exactly the model's batch when the model fixes it, the last row repeated when too few); a
    dataset that does not fit the inputs raises DatasetError naming every problem, so a caller decides whether
    to fall back. Without, generated inputs: ``generate_feeds`` at the typical sizes, first axis ``rows`` unless
    a typical size says otherwise (InputsTooLarge, InputsNotGenerated as there).
    """
    if sample_path is not None:
        return _sample_feeds(
            [_as_tensor_spec(spec) for spec in specs], Path(sample_path), rows, sample_name, label_column, limits
        )
    value_infos = [_as_value_info(spec) for spec in specs]
    feeds = generate_feeds(value_infos, batch=rows, seed=seed, max_elements=max_elements, typical_dims=typical_dims)
    tensors = [_generated_tensor(vi.name, vi.type) for vi in value_infos]
    return feeds, InputsSource(GENERATED, describe_generated(tensors, typical_dims, rows))


def _sample_feeds(
    specs: list[TensorSpec],
    path: Path,
    rows: int,
    name: str,
    label_column: str,
    limits: DatasetLimits | None,
) -> tuple[dict[str, Any], InputsSource]:
    from jobs.tooling.datasets import fixed_batch, iter_batches, load_dataset  # datasets imports this module

    dataset = load_dataset(path, specs, label_column=label_column, limits=limits)
    take = fixed_batch(specs) or max(1, min(rows, dataset.rows))
    feeds, valid = next(iter_batches(dataset, specs, batch_size=take))
    shown = f"'{name or path.name}'"
    if valid < take:
        what = f"its {valid} row(s), the last repeated to the model's batch of {take}"
    elif take == dataset.rows:
        what = f"all {take} row(s)"
    else:
        what = f"the first {take} of {dataset.rows:,} rows"
    return dict(feeds), InputsSource(SAMPLES, f"{what} of the sample inputs {shown}")


def _as_tensor_spec(spec: TensorSpec | onnx.ValueInfoProto) -> TensorSpec:
    return spec if isinstance(spec, TensorSpec) else _value_info_spec(spec)


def _as_value_info(spec: TensorSpec | onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """A recorded TensorSpec (its ONNX type enum may be unknown) as the value info ``generate_feeds`` takes."""
    if isinstance(spec, onnx.ValueInfoProto):
        return spec
    elem_type = spec.elem_type
    if not elem_type:
        if spec.dtype == "string":
            elem_type = _STRING_TYPE
        else:
            try:
                elem_type = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
            except (KeyError, TypeError) as exc:
                raise InputsNotGenerated(
                    f"input '{spec.name}' holds {spec.dtype}, which no values are generated for"
                ) from exc
    shape = list(spec.shape) if spec.shape is not None else None
    return helper.make_tensor_value_info(spec.name, elem_type, shape)
