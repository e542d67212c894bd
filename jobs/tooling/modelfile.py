"""Loading an uploaded ONNX file safely, and the reasons one is refused.

Uploads are hostile: the file may be empty, truncated, not protobuf at all, a
protobuf that is not a valid model, or a model whose external-data entries
point outside its folder. Each gets a ModelFileError with a message a person
can act on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import onnx
from google.protobuf.message import DecodeError


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


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse and validate an uploaded model file; never reads external data."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError("The file is empty. Upload an .onnx model file.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelFileError(
            f"This is not a readable ONNX model (the protobuf could not be parsed: {exc}). "
            "It may be truncated or a different kind of file; export it again with onnx.save."
        ) from exc
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelFileError(
            "The file parsed, but holds no ONNX graph (no nodes, no outputs). "
            "It is probably not an ONNX model, or it was cut off."
        )
    for location in external_data_locations(model):
        if location_escapes_folder(location):
            raise ModelFileError(
                f"The model refers to external data at {location!r}, which points outside the model's folder. "
                "Such files are refused."
            )
    locations = external_data_locations(model)
    if locations:
        raise ModelFileError(
            f"The model keeps weights in {len(locations)} external data file(s) (e.g. {locations[0]!r}). "
            "Upload a self-contained model: onnx.save(model, path, save_as_external_data=False)."
        )
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"The model fails the ONNX checker: {first_line}") from exc
    return model
