"""Loading an uploaded ONNX file safely, and the reasons one is refused.

Uploads are hostile: the file may be empty, truncated, not protobuf at all, a
protobuf that is not a valid model, a model whose tensors declare far more
values than they hold, graphs nested or repeated without end, or external-data
entries that point outside its folder. Each gets a ModelFileError with a
message a person can act on.

Two depths of checking. ``outline_model`` walks the protobuf structure without
parsing it (bounded memory, time in proportion to the number of fields, not to
the bytes of weights) and refuses everything above. ``load_model`` parses the
whole file and runs the ONNX checker, which costs about three times the file
in memory (a 500 MB model: 1.5 GB and 7 s). ``check_upload`` is what a web
request does: the outline always, the full load only for small files; a large
file gets its full load in the check job.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import onnx
from google.protobuf.message import DecodeError
from onnx import helper

from jobs.tooling.wire import (
    FIXED32,
    FIXED64,
    LEN,
    VARINT,
    BudgetExhausted,
    FieldBudget,
    WireError,
    as_signed64,
    count_packed_varints,
    iter_fields,
    iter_packed_varints,
    wire_name,
)

# Bounds of the structural walk, far above real models (a large transformer export has a few thousand
# nodes, rank-6 tensors and subgraphs two or three deep) and low enough that every later step (parse,
# checker, inspection, an onnxruntime session) finishes in seconds. Each refusal names the figure.
MAX_NODES = 50_000
MAX_SUBGRAPHS = 10_000
MAX_SUBGRAPH_DEPTH = 16
MAX_TENSOR_RANK = 64
MAX_FIELDS = 1_000_000  # every protobuf field the walk visits (about 1 us each): bounds its time
MAX_SIGNATURE_ENTRY_BYTES = 1024 * 1024  # one input or output description
# Files up to this size are parsed and checked in the request (about 3x the file in memory, under 0.3 s);
# larger ones are outlined there and checked fully by the check job.
FULL_CHECK_AT_UPLOAD_BYTES = 32 * 1024 * 1024


class ModelFileError(ValueError):
    """The file is not a model we can accept; the message says why."""


def iter_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph under it (If branches, Loop and Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graphs(sub)


def iter_all_graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph, its subgraphs, and the subgraphs of model-local functions' nodes."""
    yield from iter_graphs(model.graph)
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    yield from iter_graphs(attr.g)


def iter_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every stored tensor: initializers and Constant-node values, in all graphs."""
    for graph in iter_all_graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.type == onnx.AttributeProto.TENSOR:
                        yield attr.t
                    elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
                        yield attr.sparse_tensor.values


def external_data_locations(model: onnx.ModelProto) -> list[str]:
    locations = []
    for tensor in iter_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            locations.append(entries.get("location", ""))
    return locations


def location_escapes_folder(location: str) -> bool:
    """True when an external-data location would resolve outside the model's own folder."""
    if not location or "\x00" in location:
        return True
    normalized = location.replace("\\", "/")
    path = PurePosixPath(normalized)
    if path.is_absolute() or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


def _external_data_problem(locations: list[str]) -> str | None:
    for location in locations:
        if location_escapes_folder(location):
            return (
                f"The model refers to external data at {location!r}, which points outside the model's folder. "
                "Such files are refused."
            )
    if locations:
        return (
            f"The model keeps weights in {len(locations)} external data file(s) (e.g. {locations[0]!r}). "
            "Upload a self-contained model: onnx.save(model, path, save_as_external_data=False)."
        )
    return None


def _not_readable(reason: str) -> ModelFileError:
    return ModelFileError(
        f"This is not a readable ONNX model (the protobuf could not be parsed: {reason}). "
        "It may be truncated or a different kind of file; export it again with onnx.save."
    )


_NO_GRAPH = (
    "The file parsed, but holds no ONNX graph (no nodes, no outputs). "
    "It is probably not an ONNX model, or it was cut off."
)


@dataclass
class ModelOutline:
    """What the structural walk learned; ``signature`` is a node-less model with the inputs and outputs."""

    ir_version: int
    nodes: int
    subgraphs: int
    tensors: int
    signature: onnx.ModelProto


_T = onnx.TensorProto
# Bits per value in raw_data, by data type; types whose packing we do not check (strings, 2- and 6-bit) are absent.
_RAW_BITS: dict[int, int] = {
    int(data_type): helper.tensor_dtype_to_np_dtype(data_type).itemsize * 8
    for data_type in (
        _T.FLOAT,
        _T.UINT8,
        _T.INT8,
        _T.UINT16,
        _T.INT16,
        _T.INT32,
        _T.INT64,
        _T.BOOL,
        _T.FLOAT16,
        _T.DOUBLE,
        _T.UINT32,
        _T.UINT64,
        _T.COMPLEX64,
        _T.COMPLEX128,
        _T.BFLOAT16,
        _T.FLOAT8E4M3FN,
        _T.FLOAT8E4M3FNUZ,
        _T.FLOAT8E5M2,
        _T.FLOAT8E5M2FNUZ,
        _T.FLOAT8E8M0,
    )
} | {int(_T.UINT4): 4, int(_T.INT4): 4, int(_T.FLOAT4E2M1): 4}
# Typed fields (float_data, int32_data, ...) hold one entry per value, two for complex numbers; the 4-bit types
# pack theirs and are not checked.
_TYPED_PER_VALUE: dict[int, int] = {data_type: 1 for data_type, bits in _RAW_BITS.items() if bits >= 8} | {
    int(_T.COMPLEX64): 2,
    int(_T.COMPLEX128): 2,
    int(_T.STRING): 1,
}


@dataclass
class _Tensor:
    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw_bytes: int | None = None
    typed_values: int = 0
    segmented: bool = False
    external: bool = False
    location: str = ""


class _Outliner:
    """One walk over a model file's protobuf fields (field numbers from onnx.proto), refusing as it goes."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.budget = FieldBudget(MAX_FIELDS)
        self.nodes = 0
        self.subgraphs = 0
        self.tensors = 0
        self.ir_version = 0
        self.main_graph_seen = False
        self.main_graph_has_content = False
        self.external_locations: list[str] = []
        self.signature = onnx.ModelProto()

    def _fields(self, span: tuple[int, int]):
        return iter_fields(self.buf, span[0], span[1], self.budget)

    def _expect(self, wire_type: int, wanted: int, what: str, offset: int) -> None:
        if wire_type != wanted:
            raise WireError(offset, f"{what} is a {wire_name(wire_type)} field, not {wire_name(wanted)}")

    def _small_message(self, span: tuple[int, int], message, what: str):
        start, end = span
        if end - start > MAX_SIGNATURE_ENTRY_BYTES:
            raise ModelFileError(
                f"The model's {what} takes {end - start:,} bytes; descriptions over "
                f"{MAX_SIGNATURE_ENTRY_BYTES:,} bytes are refused."
            )
        try:
            return message.FromString(bytes(self.buf[start:end]))
        except DecodeError as exc:
            raise WireError(start, f"the {what} does not parse") from exc

    def model(self) -> None:
        for number, wire_type, value in self._fields((0, len(self.buf))):
            if number == 1:
                self._expect(wire_type, VARINT, "ir_version", 0)
                self.ir_version = value
                self.signature.ir_version = value
            elif number == 7:
                self._expect(wire_type, LEN, "graph", 0)
                self.main_graph_seen = True
                self.graph(value, depth=0, main=True)
            elif number == 8:
                self._expect(wire_type, LEN, "opset_import", 0)
                self.signature.opset_import.append(self._small_message(value, onnx.OperatorSetIdProto, "opset import"))
            elif number == 20:
                self._expect(wire_type, LEN, "training_info", 0)
                for sub_number, sub_type, sub_value in self._fields(value):
                    if sub_number in (1, 2):  # initialization, algorithm
                        self._expect(sub_type, LEN, "a training graph", value[0])
                        self.graph(sub_value, depth=1)
            elif number == 25:
                self._expect(wire_type, LEN, "functions", 0)
                for sub_number, sub_type, sub_value in self._fields(value):
                    if sub_number == 7:
                        self._expect(sub_type, LEN, "a function's node", value[0])
                        self.node(sub_value, depth=0)

    def graph(self, span: tuple[int, int], *, depth: int, main: bool = False) -> None:
        if depth > MAX_SUBGRAPH_DEPTH:
            raise ModelFileError(
                f"The model nests subgraphs more than {MAX_SUBGRAPH_DEPTH} deep (If, Loop or "
                "Scan bodies inside each other); such models are refused."
            )
        if not main:
            self.subgraphs += 1
            if self.subgraphs > MAX_SUBGRAPHS:
                raise ModelFileError(f"The model has more than {MAX_SUBGRAPHS:,} subgraphs; such models are refused.")
        for number, wire_type, value in self._fields(span):
            if number in (1, 5, 11, 12, 15):
                self._expect(wire_type, LEN, "a graph entry", span[0])
            if number == 1:
                self.main_graph_has_content |= main
                self.node(value, depth=depth)
            elif number == 5:
                name = self.tensor(value)
                if main:
                    self.signature.graph.initializer.add(name=name)  # names only: they are not inputs to feed
            elif number == 15:
                self.sparse_tensor(value)
            elif number == 11 and main:
                self.signature.graph.input.append(self._small_message(value, onnx.ValueInfoProto, "input"))
            elif number == 12 and main:
                self.main_graph_has_content = True
                self.signature.graph.output.append(self._small_message(value, onnx.ValueInfoProto, "output"))

    def node(self, span: tuple[int, int], *, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ModelFileError(
                f"The model has more than {MAX_NODES:,} nodes (counting subgraphs and functions); "
                "this console accepts models up to that size."
            )
        for number, wire_type, value in self._fields(span):
            if number == 5:
                self._expect(wire_type, LEN, "a node attribute", span[0])
                self.attribute(value, depth=depth)

    def attribute(self, span: tuple[int, int], *, depth: int) -> None:
        for number, wire_type, value in self._fields(span):
            if number in (5, 6, 10, 11, 22, 23):
                self._expect(wire_type, LEN, "an attribute value", span[0])
            if number in (5, 10):  # t, tensors
                self.tensor(value)
            elif number in (6, 11):  # g, graphs
                self.graph(value, depth=depth + 1)
            elif number in (22, 23):  # sparse_tensor, sparse_tensors
                self.sparse_tensor(value)

    def sparse_tensor(self, span: tuple[int, int]) -> None:
        for number, wire_type, value in self._fields(span):
            if number in (1, 2):  # values, indices
                self._expect(wire_type, LEN, "a sparse tensor part", span[0])
                self.tensor(value)

    def tensor(self, span: tuple[int, int]) -> str:
        """Walk one TensorProto, refusing values that do not match its declared shape; returns its name."""
        self.tensors += 1
        tensor = _Tensor()
        for number, wire_type, value in self._fields(span):
            if number == 1:
                if wire_type != LEN:
                    self._expect(wire_type, VARINT, "dims", span[0])
                for dim in iter_packed_varints(self.buf, *value) if wire_type == LEN else (value,):
                    tensor.dims.append(dim)
                    if len(tensor.dims) > MAX_TENSOR_RANK:
                        raise ModelFileError(f"A tensor of the model has more than {MAX_TENSOR_RANK} dimensions.")
            elif number == 2:
                self._expect(wire_type, VARINT, "data_type", span[0])
                tensor.data_type = value
            elif number == 3:
                tensor.segmented = True
            elif number == 8 and wire_type == LEN:
                if value[1] - value[0] > MAX_SIGNATURE_ENTRY_BYTES:
                    raise ModelFileError(f"A tensor name of the model takes {value[1] - value[0]:,} bytes.")
                tensor.name = bytes(self.buf[value[0] : value[1]]).decode("utf-8", "replace")
            elif number == 9:
                self._expect(wire_type, LEN, "raw_data", span[0])
                tensor.raw_bytes = value[1] - value[0]
            elif number in (4, 10):  # float_data, double_data: packed fixed-width numbers
                width = 4 if number == 4 else 8
                if wire_type == LEN:
                    tensor.typed_values += (value[1] - value[0]) // width
                else:
                    self._expect(wire_type, FIXED32 if number == 4 else FIXED64, "float data", span[0])
                    tensor.typed_values += 1
            elif number in (5, 7, 11):  # int32_data, int64_data, uint64_data: packed varints
                tensor.typed_values += count_packed_varints(self.buf, *value) if wire_type == LEN else 1
            elif number == 6:  # string_data: one entry per value
                tensor.typed_values += 1
            elif number == 13:
                self._expect(wire_type, LEN, "external_data", span[0])
                tensor.external = True
                entry = self._small_message(value, onnx.StringStringEntryProto, "external data entry")
                if entry.key == "location":
                    tensor.location = entry.value
            elif number == 14:
                self._expect(wire_type, VARINT, "data_location", span[0])
                tensor.external |= value == onnx.TensorProto.EXTERNAL
        if tensor.external:
            self.external_locations.append(tensor.location)
        else:
            _check_tensor_size(tensor)
        return tensor.name


def _check_tensor_size(tensor: _Tensor) -> None:
    dims = [as_signed64(dim) for dim in tensor.dims]
    label = f"tensor {tensor.name!r}" if tensor.name else "a tensor"
    if any(dim < 0 for dim in dims):
        raise ModelFileError(f"The model's {label} declares a negative dimension {dims}.")
    if tensor.segmented:
        return
    values = math.prod(dims)
    declared = f"declares shape {dims} ({values:,} values)"
    if tensor.raw_bytes is not None:
        bits = _RAW_BITS.get(tensor.data_type)
        if bits is not None and tensor.raw_bytes != (values * bits + 7) // 8:
            raise ModelFileError(
                f"The model's {label} {declared} but stores {tensor.raw_bytes:,} bytes, where "
                f"{(values * bits + 7) // 8:,} are needed. The file is damaged or crafted; export it again."
            )
    elif tensor.typed_values:
        per_value = _TYPED_PER_VALUE.get(tensor.data_type)
        if per_value is not None and tensor.typed_values != values * per_value:
            raise ModelFileError(
                f"The model's {label} {declared} but stores {tensor.typed_values:,}. "
                "The file is damaged or crafted; export it again."
            )
    elif values:
        raise ModelFileError(
            f"The model's {label} {declared} but stores none. The file is damaged or crafted; export it again."
        )


def outline_model(path: str | os.PathLike) -> ModelOutline:
    """Walk the file's structure without parsing it; refuse what no later step should have to read.

    Memory stays small whatever the file holds (the file is mapped, weights are skipped by their length);
    time grows with the number of protobuf fields, which is capped.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ModelFileError("The file is empty. Upload an .onnx model file.")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        outliner = _Outliner(buf)
        try:
            outliner.model()
        except WireError as exc:
            raise _not_readable(str(exc)) from exc
        except BudgetExhausted as exc:
            raise ModelFileError(
                f"The model has {exc}; this console accepts models up to that size of structure."
            ) from exc
    if not outliner.main_graph_seen or not outliner.main_graph_has_content or not outliner.ir_version:
        raise ModelFileError(_NO_GRAPH)
    problem = _external_data_problem(outliner.external_locations)
    if problem:
        raise ModelFileError(problem)
    return ModelOutline(
        ir_version=outliner.ir_version,
        nodes=outliner.nodes,
        subgraphs=outliner.subgraphs,
        tensors=outliner.tensors,
        signature=outliner.signature,
    )


def check_upload(path: str | os.PathLike) -> ModelOutline:
    """The checks a web request can afford: the outline always, the full parse and checker for small files.

    A larger file passes here on its structure alone; the check job loads it fully and fails the version
    with the checker's message if it must.
    """
    outline = outline_model(path)
    if Path(path).stat().st_size <= FULL_CHECK_AT_UPLOAD_BYTES:
        _parse_and_check(path)
    return outline


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Outline, parse and validate a model file; never reads external data."""
    outline_model(path)
    return _parse_and_check(path)


def _parse_and_check(path: str | os.PathLike) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise _not_readable(str(exc)) from exc
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelFileError(_NO_GRAPH)
    problem = _external_data_problem(external_data_locations(model))
    if problem:
        raise ModelFileError(problem)
    if runtime_specific(model) is not None:
        # Written by onnxruntime's offline optimizer: its contrib ops (LayerNormalization in the ONNX domain at
        # opset 12, fused kernels) are legal to that runtime and not to onnx.checker. The check job creates an
        # onnxruntime session for every version, which is the validation that applies to such a file.
        return model
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"The model fails the ONNX checker: {first_line}") from exc
    return model


# metadata_props key the console's offline graph optimization writes: {"release", "provider", "level"} as JSON.
RUNTIME_SPECIFIC_KEY = "onnxruntime_offline_optimization"


def runtime_specific(model: onnx.ModelProto) -> dict | None:
    """The onnxruntime release, provider and level that wrote this file offline, if the console stamped it so."""
    for prop in model.metadata_props:
        if prop.key == RUNTIME_SPECIFIC_KEY:
            try:
                stamp = json.loads(prop.value)
            except ValueError:
                return None
            if isinstance(stamp, dict) and {"release", "provider", "level"} <= stamp.keys():
                return {key: str(stamp[key]) for key in ("release", "provider", "level")}
    return None
