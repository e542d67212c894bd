"""Rewrites that make a model runnable on a device type without changing what it computes.

Each is a transform like the others (``fn(src, dst, **params) -> TransformReport``, TransformError for a refusal):

- ``lower_ir_version``: write the model at an older IR when it uses nothing that IR lacks;
- ``remove_noops``: drop Identity, inference-mode Dropout and same-type Cast nodes;
- ``zipmap_to_tensor``: give a classifier's list-of-maps probabilities as the float tensor ZipMap reads;
- ``replace_ml_ops``: ai.onnx.ml operators as standard ones where the result is the same;
- ``fold_batchnorm``: inference BatchNormalization folded into the Conv before it, else a per-channel Mul and Add;
- ``make_runnable``: what a device type's compatibility verdict asks for, in that order, checked again at the end.

The no-op pass is written here rather than taken from a kept simplifier (onnxslim, onnxsim): those also fold
constants and fuse patterns, which changes more than a pass that removes only what it can prove is a no-op.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from jobs.tooling import compat, inspect, kernel_check, runtimes
from jobs.tooling.common import (
    Param,
    PathLike,
    TransformReport,
    check_params,
    load_model,
    save_checked,
    write_atomically,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import iter_all_graphs
from jobs.tooling.opset import convert_opset, default_opset

ML_DOMAIN = "ai.onnx.ml"
LOWER_IR_PARAMS = {"target_ir": Param(int, minimum=3, maximum=onnx.IR_VERSION)}
NOOP_PARAMS: dict[str, Param] = {}
ZIPMAP_PARAMS: dict[str, Param] = {}
ML_OPS_PARAMS: dict[str, Param] = {}
FOLD_BN_PARAMS: dict[str, Param] = {}
MAKE_RUNNABLE_PARAMS = {"profile": Param(dict)}


def _types_added(pairs: tuple[tuple[str, int], ...]) -> dict[int, tuple[str, int]]:
    # getattr: an older onnx package lacks the newest type names; a model cannot hold those anyway.
    return {getattr(onnx.TensorProto, name): (name, ir) for name, ir in pairs if hasattr(onnx.TensorProto, name)}


# Element types and the IR version that added them (onnx.proto, the comments on the Version enum).
TYPE_IR = _types_added(
    (
        ("BFLOAT16", 4),
        ("FLOAT8E4M3FN", 9),
        ("FLOAT8E4M3FNUZ", 9),
        ("FLOAT8E5M2", 9),
        ("FLOAT8E5M2FNUZ", 9),
        ("UINT4", 10),
        ("INT4", 10),
        ("FLOAT4E2M1", 11),
        ("FLOAT8E8M0", 12),
        ("UINT2", 13),
        ("INT2", 13),
        ("FLOAT6E2M3", 14),
        ("FLOAT6E3M2", 14),
    )
)
# Integer attributes that name an element type (Cast's "to", EyeLike's "dtype", QuantizeLinear's "output_dtype").
_DTYPE_ATTRIBUTES = ("to", "dtype", "output_dtype")
# VERSION_TABLE rows are (release, IR, ai.onnx opset, ai.onnx.ml opset, ai.onnx.training opset).
_OPSET_COLUMN = {"": 2, "ai.onnx": 2, ML_DOMAIN: 3, "ai.onnx.training": 4}
_OPSET_DOMAIN_NAME = {2: "ai.onnx", 3: ML_DOMAIN, 4: "ai.onnx.training"}
# compat's operator reasons start with the operator: "Identity: ...", "Gemm-13 on ...", "ai.onnx.ml.ZipMap: ...".
_REASON_OPERATOR = re.compile(r"([\w.]+?)(?:-\d+)?[:\s]")


# ---------------------------------------------------------------------------------------------------------------------
# Graph helpers


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _is_default_domain(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every read of ``old`` in ``graph`` and the subgraphs under it reads ``new`` instead.

    ONNX names are unique across a graph and its subgraphs (a subgraph cannot shadow an outer name), so a subgraph
    that reads ``old`` reads the outer value, also where it passes it straight out as one of its outputs.
    """
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name == old:
                node.input[position] = new
        for sub in _subgraphs(node):
            _rename_uses(sub, old, new)
            for output in sub.output:
                if output.name == old:
                    output.name = new


def _is_read(graph: onnx.GraphProto, name: str) -> bool:
    """Whether a node of ``graph`` or of a subgraph under it reads ``name``, or a subgraph passes it out."""
    for node in graph.node:
        if name in node.input:
            return True
        for sub in _subgraphs(node):
            if _is_read(sub, name) or any(output.name == name for output in sub.output):
                return True
    return False


def _producer_index(graph: onnx.GraphProto, name: str) -> int | None:
    return next((i for i, node in enumerate(graph.node) if name in node.output), None)


def _prune_value_info(graph: onnx.GraphProto) -> None:
    """Drop value_info of values no node of the graph produces any more (removed or renamed)."""
    produced = {name for node in graph.node for name in node.output}
    kept = [info for info in graph.value_info if info.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def _value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Name -> type over every graph, from the model's own declarations and shape inference."""
    types: dict[str, onnx.TypeProto] = {}
    for graph in iter_all_graphs(inspect.infer(model)):
        for tensor in graph.initializer:
            types[tensor.name] = helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))
        for info in [*graph.input, *graph.value_info, *graph.output]:
            if info.type.WhichOneof("value") is not None:
                types[info.name] = info.type
    return types


def _elem_type(types: dict[str, onnx.TypeProto], name: str) -> int | None:
    found = types.get(name)
    if found is None or not found.HasField("tensor_type") or not found.tensor_type.elem_type:
        return None
    return found.tensor_type.elem_type


def _rank(types: dict[str, onnx.TypeProto], name: str) -> int | None:
    found = types.get(name)
    if found is None or not found.HasField("tensor_type") or not found.tensor_type.HasField("shape"):
        return None
    return len(found.tensor_type.shape.dim)


# ---------------------------------------------------------------------------------------------------------------------
# lower_ir_version


def _type_features(type_proto: onnx.TypeProto, where: str) -> Iterator[tuple[int, str]]:
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        inner = getattr(type_proto, kind)
        if inner.elem_type in TYPE_IR:
            name, ir = TYPE_IR[inner.elem_type]
            yield ir, f"{name} values ({where})"
        if kind == "sparse_tensor_type":
            yield 8, f"a sparse tensor type ({where})"
    elif kind == "sequence_type":
        yield from _type_features(type_proto.sequence_type.elem_type, where)
    elif kind == "map_type":
        yield from _type_features(type_proto.map_type.value_type, where)
    elif kind == "optional_type":
        yield 8, f"an optional type ({where})"
        yield from _type_features(type_proto.optional_type.elem_type, where)


def _tensor_features(tensor: onnx.TensorProto, where: str) -> Iterator[tuple[int, str]]:
    if tensor.data_type in TYPE_IR:
        name, ir = TYPE_IR[tensor.data_type]
        yield ir, f"{name} values ({where})"


def _node_features(node: onnx.NodeProto) -> Iterator[tuple[int, str]]:
    where = f"node '{node.name or node.op_type}'"
    if node.overload:
        yield 10, f"a call to an overloaded local function ({where})"
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR:
            yield from _tensor_features(attr.t, where)
        elif attr.type == onnx.AttributeProto.TENSORS:
            for tensor in attr.tensors:
                yield from _tensor_features(tensor, where)
        elif attr.type in (onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS):
            yield 6, f"a sparse tensor attribute ({where})"
        elif attr.type == onnx.AttributeProto.TYPE_PROTO:
            yield from _type_features(attr.tp, where)
        elif attr.type == onnx.AttributeProto.TYPE_PROTOS:
            for type_proto in attr.type_protos:
                yield from _type_features(type_proto, where)
        elif attr.type == onnx.AttributeProto.INT and attr.name in _DTYPE_ATTRIBUTES and attr.i in TYPE_IR:
            name, ir = TYPE_IR[attr.i]
            yield ir, f"{name} values ({where})"


def ir_features(model: onnx.ModelProto) -> list[tuple[int, str]]:
    """What the model uses that an IR version added, as (IR version, description), without repeats.

    Metadata on nodes, values, tensors, graphs and functions (IR 10) and multi-device annotations (IR 11) are not
    listed: they change nothing a runtime computes, and ``lower_ir_version`` drops them instead.
    """
    found: dict[str, int] = {}

    def add(items: Iterator[tuple[int, str]]) -> None:
        for ir, text in items:
            found.setdefault(text, ir)

    graphs = list(iter_all_graphs(model))
    for graph in graphs:
        where = "the main graph" if graph is graphs[0] else f"subgraph '{graph.name}'"
        for info in [*graph.input, *graph.output, *graph.value_info]:
            add(_type_features(info.type, f"value '{info.name}'"))
        for tensor in graph.initializer:
            add(_tensor_features(tensor, f"initializer '{tensor.name}'"))
        if len(graph.sparse_initializer):
            add(iter([(6, f"sparse initializers ({where})")]))
        if len(graph.quantization_annotation):
            add(iter([(5, f"quantization annotations ({where})")]))
        for node in graph.node:
            add(_node_features(node))
    inputs = {info.name for info in model.graph.input}
    if any(tensor.name not in inputs for tensor in model.graph.initializer):
        add(iter([(4, "initializers that are not graph inputs")]))
    if len(model.training_info):
        add(iter([(7, "training information")]))
    if len(model.functions):
        add(iter([(8, "model-local functions")]))
    for function in model.functions:
        if function.overload:
            add(iter([(10, f"an overloaded function ('{function.name}')")]))
        if len(function.attribute_proto):
            add(iter([(9, f"function attributes with default values ('{function.name}')")]))
        for node in function.node:
            add(_node_features(node))
    return sorted(((ir, text) for text, ir in found.items()), reverse=True)


def _drop_informational_fields(model: onnx.ModelProto, target_ir: int) -> int:
    """Clear metadata and annotations newer than ``target_ir`` that no runtime computes with; return how many."""
    dropped = 0

    def clear(message: Any, field_name: str) -> None:
        nonlocal dropped
        if field_name in message.DESCRIPTOR.fields_by_name and len(getattr(message, field_name)):
            dropped += len(getattr(message, field_name))
            message.ClearField(field_name)

    if target_ir < 11:
        clear(model, "configuration")
    if target_ir >= 11:
        return dropped
    for graph in iter_all_graphs(model):
        if target_ir < 10:
            clear(graph, "metadata_props")
            for info in [*graph.input, *graph.output, *graph.value_info]:
                clear(info, "metadata_props")
            for tensor in graph.initializer:
                clear(tensor, "metadata_props")
        for node in graph.node:
            if target_ir < 11:
                clear(node, "device_configurations")
            if target_ir < 10:
                clear(node, "metadata_props")
    if target_ir < 10:
        for function in model.functions:
            clear(function, "metadata_props")
            clear(function, "value_info")
            for node in function.node:
                clear(node, "metadata_props")
    return dropped


def _min_ir_for_opset(domain: str, version: int) -> int | None:
    """The oldest IR that onnx releases paired with ``version`` of ``domain``; None for domains onnx does not own."""
    column = _OPSET_COLUMN.get(domain)
    if column is None:
        return None
    irs = [int(row[1]) for row in helper.VERSION_TABLE if int(row[column]) >= version]
    return min(irs) if irs else onnx.IR_VERSION + 1


def newest_opset_at_ir(domain: str, ir_version: int) -> int | None:
    """The newest opset of ``domain`` that an IR ``ir_version`` model may import (None when onnx has none)."""
    column = _OPSET_COLUMN[domain]
    versions = [int(row[column]) for row in helper.VERSION_TABLE if int(row[1]) <= ir_version]
    return max(versions) if versions else None


def lower_ir_version(src: PathLike, dst: PathLike, *, target_ir: int) -> TransformReport:
    """The model written at IR ``target_ir``; refused when it uses anything newer, opsets included."""
    check_params(LOWER_IR_PARAMS, {"target_ir": target_ir})
    model = load_model(src)
    current = int(model.ir_version)
    if target_ir >= current:
        raise TransformError(f"the model is already at IR version {current}; lower_ir_version only lowers it")
    newer = [f"{text} (IR {ir})" for ir, text in ir_features(model) if ir > target_ir]
    if newer:
        raise TransformError(
            f"cannot lower IR version {current} to {target_ir}: the model uses {'; '.join(newer[:8])}"
            + (f"; and {len(newer) - 8} more" if len(newer) > 8 else "")
        )
    opset_problems = []
    for opset in [*model.opset_import, *(o for f in model.functions for o in f.opset_import)]:
        needed = _min_ir_for_opset(opset.domain, opset.version)
        if needed is not None and needed > target_ir:
            domain = _OPSET_DOMAIN_NAME[_OPSET_COLUMN[opset.domain]]
            newest = newest_opset_at_ir(opset.domain, target_ir)
            hint = f"convert the model to opset {newest} first" if domain == "ai.onnx" and newest else ""
            problem = f"opset {opset.version} of {domain} needs IR {needed} or newer"
            opset_problems.append(problem + (f" ({hint})" if hint else ""))
    if opset_problems:
        unique = list(dict.fromkeys(opset_problems))
        raise TransformError(f"cannot lower IR version {current} to {target_ir}: {'; '.join(unique)}")
    dropped = _drop_informational_fields(model, target_ir)
    model.ir_version = target_ir
    save_checked(model, dst, f"lowering the IR version to {target_ir}")
    report = TransformReport("lower_ir_version", details={"from_ir": current, "to_ir": target_ir})
    report.log.append(f"wrote the model at IR version {target_ir} (was {current}); it uses nothing newer")
    if dropped:
        report.log.append(f"dropped {dropped} metadata or device annotation entries IR {target_ir} has no place for")
    return report


# ---------------------------------------------------------------------------------------------------------------------
# remove_noops


def _constant_false(graph: onnx.GraphProto, name: str) -> bool:
    tensor = next((t for t in graph.initializer if t.name == name), None)
    return tensor is not None and not bool(np.any(numpy_helper.to_array(tensor)))


def _noop_kind(graph: onnx.GraphProto, node: onnx.NodeProto, types: dict, opset: int) -> str | None:
    """Which no-op ``node`` is ("Identity", "Dropout", "Cast"), or None when it may change its input."""
    if not _is_default_domain(node) or not node.input or not node.input[0] or not node.output[0]:
        return None
    if node.op_type == "Identity":
        return "Identity"
    if node.op_type == "Dropout":
        # Before opset 7 "is_test" said whether it drops; from 12 an explicit training_mode input may ask it to.
        if opset < 7 or any(attr.name == "is_test" for attr in node.attribute):
            return None
        training = node.input[2] if len(node.input) > 2 else ""
        if training and not _constant_false(graph, training):
            return None
        mask = node.output[1] if len(node.output) > 1 else ""
        if mask and (_is_read(graph, mask) or any(output.name == mask for output in graph.output)):
            return None
        return "Dropout"
    if node.op_type == "Cast":
        to = next((attr.i for attr in node.attribute if attr.name == "to"), None)
        if to is not None and to == _elem_type(types, node.input[0]):
            return "Cast"
    return None


def _remove_noops_in(graph: onnx.GraphProto, types: dict, opset: int, removed: Counter, kept: Counter) -> None:
    for node in graph.node:
        for sub in _subgraphs(node):
            _remove_noops_in(sub, types, opset, removed, kept)
    outputs = {output.name for output in graph.output}
    index = 0
    while index < len(graph.node):
        node = graph.node[index]
        kind = _noop_kind(graph, node, types, opset)
        if kind is None:
            index += 1
            continue
        source, result = node.input[0], node.output[0]
        if result not in outputs:
            del graph.node[index]
            _rename_uses(graph, result, source)
            removed[kind] += 1
            continue
        # The node names a graph output, and outputs keep their names: its producer writes the output directly.
        producer = _producer_index(graph, source)
        if producer is None or source in outputs:
            kept[kind] += 1  # a graph input, an initializer, an outer value or another output: it must stay
            index += 1
            continue
        del graph.node[index]
        producing = graph.node[producer]
        for position, name in enumerate(producing.output):
            if name == source:
                producing.output[position] = result
        _rename_uses(graph, source, result)
        removed[kind] += 1
    _prune_value_info(graph)


def remove_noops(src: PathLike, dst: PathLike) -> TransformReport:
    """Remove Identity, inference-mode Dropout and same-type Cast nodes in every graph; outputs keep their names."""
    model = load_model(src)
    removed: Counter = Counter()
    kept: Counter = Counter()
    _remove_noops_in(model.graph, _value_types(model), default_opset(model), removed, kept)
    if not removed:
        why = f"; {_counted(kept)} must stay (they pass a graph input or outer value straight out)" if kept else ""
        raise TransformError(f"the model has no Identity, inference Dropout or same-type Cast to remove{why}")
    save_checked(model, dst, "removing no-op nodes")
    report = TransformReport("remove_noops", details={"removed": dict(removed), "kept": dict(kept)})
    report.log.append(f"removed {_counted(removed)}")
    if kept:
        report.log.append(f"kept {_counted(kept)} that pass a graph input or outer value straight to an output")
    return report


def _counted(counts: Counter) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


# ---------------------------------------------------------------------------------------------------------------------
# zipmap_to_tensor


def class_labels_key(output: str) -> str:
    """The metadata key under which ``zipmap_to_tensor`` records the labels of ``output``'s columns (JSON list)."""
    return f"class_labels:{output}"


def class_labels(model: onnx.ModelProto) -> dict[str, list]:
    """Output name -> its columns' class labels, as ``zipmap_to_tensor`` recorded them."""
    prefix = class_labels_key("")
    return {p.key[len(prefix) :]: json.loads(p.value) for p in model.metadata_props if p.key.startswith(prefix)}


def maps_to_probabilities(maps: list[dict], labels: list) -> np.ndarray:
    """A ZipMap output as onnxruntime returns it (a list of {label: probability}) as the tensor it was made of."""
    return np.array([[row[label] for label in labels] for row in maps], dtype=np.float32).reshape(len(maps), -1)


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    model.metadata_props.add(key=key, value=value)


def zipmap_to_tensor(src: PathLike, dst: PathLike) -> TransformReport:
    """Each ZipMap output becomes the float tensor [N, classes] ZipMap read; its labels go to metadata_props."""
    model = load_model(src)
    graph = model.graph
    # Copies: the loop below deletes nodes from the graph these would point into.
    zipmaps = [_copy(n) for n in graph.node if n.domain == ML_DOMAIN and n.op_type == "ZipMap"]
    nested = sum(
        1
        for sub in list(iter_all_graphs(model))[1:]
        for n in sub.node
        if n.domain == ML_DOMAIN and n.op_type == "ZipMap"
    )
    if not zipmaps:
        where = f"; its {nested} ZipMap(s) sit inside subgraphs, which this does not rewrite" if nested else ""
        raise TransformError(f"the model has no ZipMap producing an output of its main graph{where}")
    outputs = {output.name: output for output in graph.output}
    for node in zipmaps:
        result = node.output[0]
        if result not in outputs or _is_read(graph, result):
            raise TransformError(
                f"ZipMap '{node.name or result}' feeds other nodes; only a ZipMap that produces a model output "
                "can become a plain tensor output"
            )
    types = _value_types(model)
    report = TransformReport("zipmap_to_tensor", details={"outputs": {}})
    for node in zipmaps:
        source, result = node.input[0], node.output[0]
        labels = _zipmap_labels(node)
        index = next(i for i, n in enumerate(graph.node) if n.op_type == "ZipMap" and result in n.output)
        producer = _producer_index(graph, source)
        if producer is None or source in outputs:
            # A graph input or another output: an output needs its own name, so a pass-through stays.
            graph.node[index].CopyFrom(helper.make_node("Identity", [source], [result], name=node.name))
            report.log.append(
                f"'{result}' reads '{source}' through an Identity: '{source}' is itself an input or output"
            )
        else:
            del graph.node[index]
            producing = graph.node[producer]
            for position, name in enumerate(producing.output):
                if name == source:
                    producing.output[position] = result
            _rename_uses(graph, source, result)
        tensor_type = _probabilities_type(types.get(source), len(labels))
        output = outputs[result]
        output.type.CopyFrom(tensor_type)
        output.doc_string = f"probability per class; the columns' labels are in metadata '{class_labels_key(result)}'"
        _set_metadata(model, class_labels_key(result), json.dumps(labels))
        report.details["outputs"][result] = labels
        report.log.append(
            f"'{result}' is now a float tensor [N, {len(labels)}] instead of a sequence of maps; "
            f"its column labels are in metadata '{class_labels_key(result)}'"
        )
    _prune_value_info(graph)
    _drop_unused_domain(model, ML_DOMAIN)
    save_checked(model, dst, "replacing ZipMap by its input tensor")
    return report


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copied = onnx.NodeProto()
    copied.CopyFrom(node)
    return copied


def _zipmap_labels(node: onnx.NodeProto) -> list:
    for attr in node.attribute:
        if attr.name == "classlabels_int64s":
            return [int(v) for v in attr.ints]
        if attr.name == "classlabels_strings":
            return [v.decode("utf-8") for v in attr.strings]
    raise TransformError(f"ZipMap '{node.name}' has no class labels")


def _probabilities_type(found: onnx.TypeProto | None, classes: int) -> onnx.TypeProto:
    if found is not None and found.HasField("tensor_type") and found.tensor_type.HasField("shape"):
        dims = found.tensor_type.shape.dim
        if len(dims) == 2:
            rows = dims[0].dim_value if dims[0].HasField("dim_value") else (dims[0].dim_param or None)
            return helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, [rows, classes])
    return helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, [None, classes])


def _drop_unused_domain(model: onnx.ModelProto, domain: str) -> None:
    """Remove the import of ``domain`` when no node in any graph or function uses it any more."""
    nodes = [n for g in iter_all_graphs(model) for n in g.node] + [n for f in model.functions for n in f.node]
    if any(node.domain == domain for node in nodes):
        return
    kept = [opset for opset in model.opset_import if opset.domain != domain]
    del model.opset_import[:]
    model.opset_import.extend(kept)


# ---------------------------------------------------------------------------------------------------------------------
# replace_ml_ops


class _NotExact(Exception):
    """This node has no exact replacement; the message says why."""


class _Builder:
    """New nodes and initializers for one graph, with names no other value in the model has."""

    def __init__(self, graph: onnx.GraphProto, opset: int, taken: set[str]):
        self.graph, self.opset, self.taken = graph, opset, taken
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def name(self, hint: str) -> str:
        candidate, n = hint, 0
        while candidate in self.taken:
            n += 1
            candidate = f"{hint}_{n}"
        self.taken.add(candidate)
        return candidate

    def constant(self, hint: str, array: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, hint: str = "", **attrs: Any) -> str:
        output = output or self.name(hint or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=self.name(f"{hint or output}_{op}"), **attrs))
        return output

    def reduce(self, op: str, data: str, axes: list[int], hint: str) -> str:
        # ReduceSum takes its axes as an input from opset 13, the other reductions from opset 18.
        axes_as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if axes_as_input:
            return self.node(op, [data, self.constant(f"{hint}_axes", np.array(axes, np.int64))], hint=hint, keepdims=1)
        return self.node(op, [data], hint=hint, axes=axes, keepdims=1)

    def unsqueeze(self, data: str, axes: list[int], output: str, hint: str) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [data, self.constant(f"{hint}_axes", np.array(axes, np.int64))], output)
        return self.node("Unsqueeze", [data], output, axes=axes)

    def safe_divisor(self, value: str, hint: str) -> str:
        # onnxruntime leaves an all-zero row as it is; dividing by 1 there does the same.
        zero = self.constant(f"{hint}_zero", np.array(0, np.float32))
        one = self.constant(f"{hint}_one", np.array(1, np.float32))
        is_zero = self.node("Equal", [value, zero], hint=f"{hint}_is_zero")
        return self.node("Where", [is_zero, one, value], hint=f"{hint}_divisor")


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


def _text(value: Any, default: str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else (value or default)


def _require_float_rank(types: dict, name: str, ranks: tuple[int, ...], *, casts: bool = False) -> int:
    rank, elem = _rank(types, name), _elem_type(types, name)
    if rank not in ranks:
        seen = "unknown" if rank is None else str(rank)
        raise _NotExact(f"its input '{name}' has rank {seen}; only rank {' or '.join(map(str, ranks))} is replaced")
    allowed = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT32, onnx.TensorProto.INT64)
    if elem != onnx.TensorProto.FLOAT and not (casts and elem in allowed):
        type_name = onnx.TensorProto.DataType.Name(elem) if elem else "unknown"
        raise _NotExact(f"its input '{name}' is {type_name}; only float inputs are replaced")
    return rank


def _array_feature_extractor(node: onnx.NodeProto, types: dict, build: _Builder) -> None:
    """ArrayFeatureExtractor(X, Y) takes X's last-axis entries at the flattened indices Y: [..., len(Y)].

    onnxruntime gives a 1-D X the shape [1, len(Y)]; Gather on the last axis with Y flattened, plus Unsqueeze
    for a 1-D X, is the same tensor. (Gather also accepts negative indices, where onnxruntime fails the run.)
    """
    data, indices = node.input[0], node.input[1]
    rank = _rank(types, data)
    if not rank:
        raise _NotExact(f"the rank of its input '{data}' is {'0' if rank == 0 else 'unknown'}")
    flat = build.node("Reshape", [indices, build.constant("afe_flat_shape", np.array([-1], np.int64))], hint="afe_idx")
    if rank == 1:
        gathered = build.node("Gather", [data, flat], hint="afe_gathered", axis=0)
        build.unsqueeze(gathered, [0], node.output[0], "afe")
    else:
        build.node("Gather", [data, flat], node.output[0], axis=rank - 1)


def _linear_classifier(node: onnx.NodeProto, types: dict, build: _Builder) -> None:
    """Scores = X W^T + b (Gemm), the post-transform, and the label of the first highest raw score.

    That is onnxruntime's kernel for two or more targets: it casts other inputs to float, takes the label from
    the raw scores before the transform, the first one on a tie as ArgMax does.
    """
    attrs = _attrs(node)
    transform = _text(attrs.get("post_transform"), "NONE")
    if transform not in ("NONE", "LOGISTIC", "SOFTMAX"):
        raise _NotExact(f"post_transform {transform} has no exact standard form")
    intercepts = list(attrs.get("intercepts", []))
    coefficients = list(attrs.get("coefficients", []))
    targets = len(intercepts)
    if targets < 2:
        raise _NotExact("a single-score (binary) form: onnxruntime derives its second column by its own rule")
    if not coefficients or len(coefficients) % targets:
        raise _NotExact(f"{len(coefficients)} coefficients do not split into {targets} targets")
    labels: list = list(attrs.get("classlabels_ints", [])) or list(attrs.get("classlabels_strings", []))
    if len(labels) != targets:
        raise _NotExact(f"{len(labels)} class labels for {targets} targets")
    data = node.input[0]
    _require_float_rank(types, data, (2,), casts=True)
    if _elem_type(types, data) != onnx.TensorProto.FLOAT:
        data = build.node("Cast", [data], hint="linear_input_float", to=onnx.TensorProto.FLOAT)
    weights = np.array(coefficients, np.float32).reshape(targets, -1)
    bias = np.array(intercepts, np.float32)
    label_out = node.output[0]
    scores_out = node.output[1] if len(node.output) > 1 else ""
    raw_name = scores_out if (scores_out and transform == "NONE") else None
    raw = build.node(
        "Gemm",
        [data, build.constant("linear_weights", weights), build.constant("linear_bias", bias)],
        raw_name,
        hint="linear_scores",
        transB=1,
    )
    if scores_out and transform == "SOFTMAX":
        build.node("Softmax", [raw], scores_out, axis=1)
    elif scores_out and transform == "LOGISTIC":
        build.node("Sigmoid", [raw], scores_out)
    if not label_out:
        return
    if all(isinstance(label, int) for label in labels) and labels == list(range(targets)):
        build.node("ArgMax", [raw], label_out, axis=1, keepdims=0)
        return
    best = build.node("ArgMax", [raw], hint="linear_best", axis=1, keepdims=0)
    table = np.array(labels, dtype=np.int64 if isinstance(labels[0], int) else object)
    build.node("Gather", [build.constant("linear_labels", table), best], label_out, axis=0)


def _normalizer(node: onnx.NodeProto, types: dict, build: _Builder) -> None:
    """Each row divided by its L1 or L2 norm; a row whose norm is 0 stays as it is, as in onnxruntime."""
    norm = _text(_attrs(node).get("norm"), "MAX")
    if norm not in ("L1", "L2"):
        raise _NotExact(f"norm {norm} is not replaced (only L1 and L2)")
    data = node.input[0]
    _require_float_rank(types, data, (2,))
    if norm == "L1":
        total = build.reduce("ReduceSum", build.node("Abs", [data], hint="l1_abs"), [1], "l1_sum")
    else:
        squares = build.node("Mul", [data, data], hint="l2_squares")
        total = build.node("Sqrt", [build.reduce("ReduceSum", squares, [1], "l2_sum")], hint="l2_norm")
    build.node("Div", [data, build.safe_divisor(total, norm.lower())], node.output[0])


def _scaler(node: onnx.NodeProto, types: dict, build: _Builder) -> None:
    """(X - offset) * scale per column, in float: onnxruntime's order of operations."""
    attrs = _attrs(node)
    offset = np.array(attrs.get("offset", [0.0]), np.float32)
    scale = np.array(attrs.get("scale", [1.0]), np.float32)
    data = node.input[0]
    rank = _require_float_rank(types, data, (1, 2))
    if rank == 1 and max(offset.size, scale.size) > 1:
        raise _NotExact("per-column offsets on a 1-D input")
    shifted = build.node("Sub", [data, build.constant("scaler_offset", offset)], hint="scaler_shifted")
    build.node("Mul", [shifted, build.constant("scaler_scale", scale)], node.output[0])


_ML_REPLACEMENTS: dict[str, Callable[[onnx.NodeProto, dict, _Builder], None]] = {
    "ArrayFeatureExtractor": _array_feature_extractor,
    "LinearClassifier": _linear_classifier,
    "Normalizer": _normalizer,
    "Scaler": _scaler,
}


def _all_names(model: onnx.ModelProto) -> set[str]:
    names = set()
    for graph in iter_all_graphs(model):
        names |= {t.name for t in graph.initializer} | {i.name for i in graph.input}
        for node in graph.node:
            names |= set(node.input) | set(node.output) | {node.name}
    return names


def replace_ml_ops(src: PathLike, dst: PathLike) -> TransformReport:
    """Replace ArrayFeatureExtractor, LinearClassifier, Normalizer (L1, L2) and Scaler by standard operators.

    Only exact replacements are made; every node left as it was is named in the log with the reason.
    """
    model = load_model(src)
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", 13))  # a pure ai.onnx.ml model: its replacements need one
    opset = default_opset(model)
    if opset < 7:
        raise TransformError(f"the model is at opset {opset}; convert it to opset 7 or newer first")
    types = _value_types(model)
    taken = _all_names(model)
    replaced: Counter = Counter()
    skipped: list[str] = []
    for graph in iter_all_graphs(model):
        index = 0
        while index < len(graph.node):
            node = graph.node[index]
            if node.domain != ML_DOMAIN:
                index += 1
                continue
            replace = _ML_REPLACEMENTS.get(node.op_type)
            build = _Builder(graph, opset, taken)
            try:
                if replace is None:
                    raise _NotExact("no standard form is implemented for it")
                replace(node, types, build)
            except _NotExact as reason:
                skipped.append(f"{node.op_type} '{node.name or node.output[0]}': {reason}")
                index += 1
                continue
            replaced[node.op_type] += 1
            del graph.node[index]
            for offset, new in enumerate(build.nodes):
                graph.node.insert(index + offset, new)
            graph.initializer.extend(build.initializers)
            index += len(build.nodes)
    if not replaced:
        detail = "; ".join(skipped) if skipped else "it has no ai.onnx.ml operators"
        raise TransformError(f"no ai.onnx.ml operator could be replaced exactly: {detail}")
    _drop_unused_domain(model, ML_DOMAIN)
    save_checked(model, dst, "replacing ai.onnx.ml operators")
    report = TransformReport("replace_ml_ops", details={"replaced": dict(replaced), "left": skipped})
    report.log.append(f"replaced {_counted(replaced)} by standard ONNX operators")
    report.log.extend(f"left {line}" for line in skipped)
    return report


# ---------------------------------------------------------------------------------------------------------------------
# fold_batchnorm


def _constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of ``name`` when an initializer or a Constant node of ``graph`` holds it (None otherwise)."""
    if not name or name in {info.name for info in graph.input}:
        return None  # an initializer that is also a graph input may be fed another value
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant" and _is_default_domain(node) and node.output[0] == name:
            value = next((attr.t for attr in node.attribute if attr.name == "value"), None)
            return None if value is None else numpy_helper.to_array(value)
    return None


def _batchnorm_affine(graph: onnx.GraphProto, node: onnx.NodeProto, opset: int) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization in inference mode as y = x * scale + shift per channel (in float64), or _NotExact."""
    attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
    if opset < 7:
        raise _NotExact(f"at opset {opset} its is_test attribute decides whether it trains")
    if opset < 9 and attrs.get("spatial", 1) != 1:
        raise _NotExact("it normalizes per element (spatial=0)")
    if attrs.get("training_mode", 0) or any(node.output[1:]):
        raise _NotExact("it runs in training mode (it updates its statistics)")
    values = [_constant_value(graph, name) for name in node.input[1:5]]
    if len(values) < 4 or any(value is None for value in values):
        raise _NotExact("its scale, bias, mean or variance is not a constant of its graph")
    gamma, beta, mean, variance = (np.asarray(value, np.float64) for value in values)
    scale = gamma / np.sqrt(variance + float(attrs.get("epsilon", 1e-5)))
    return scale, beta - mean * scale


def _fold_into_conv(graph: onnx.GraphProto, conv: onnx.NodeProto, scale: np.ndarray, shift: np.ndarray, build) -> None:
    """Conv(x, W, b) then z * scale + shift is Conv(x, W * scale, b * scale + shift), scale per output channel."""
    weights = _constant_value(graph, conv.input[1])
    if weights is None or weights.dtype.kind != "f" or weights.ndim < 3 or weights.shape[0] != scale.size:
        raise _NotExact("the Conv's weights are not a float constant with one row per output channel")
    bias_name = conv.input[2] if len(conv.input) > 2 else ""
    bias = _constant_value(graph, bias_name) if bias_name else np.zeros(scale.size)
    if bias is None:
        raise _NotExact("the Conv's bias is not a constant")
    folded_weights = weights.astype(np.float64) * scale.reshape(-1, *[1] * (weights.ndim - 1))
    folded_bias = np.asarray(bias, np.float64) * scale + shift
    hint = conv.name or conv.output[0]
    new_inputs = [
        conv.input[0],
        build.constant(f"{hint}_bn_folded_w", folded_weights.astype(weights.dtype)),
        build.constant(f"{hint}_bn_folded_b", folded_bias.astype(weights.dtype)),
    ]
    del conv.input[:]
    conv.input.extend(new_inputs)


def _drop_unread_constants(graph: onnx.GraphProto, names: set[str]) -> None:
    """Remove the initializers and Constant nodes among ``names`` that nothing reads any more."""
    outputs = {output.name for output in graph.output} | {info.name for info in graph.input}
    unread = {name for name in names if name not in outputs and not _is_read(graph, name)}
    kept_tensors = [tensor for tensor in graph.initializer if tensor.name not in unread]
    del graph.initializer[:]
    graph.initializer.extend(kept_tensors)
    kept_nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in unread)]
    del graph.node[:]
    graph.node.extend(kept_nodes)


def _fold_batchnorm_in(graph, opset: int, types: dict, taken: set[str], folded: Counter, left: list[str]) -> None:
    for node in graph.node:
        for sub in _subgraphs(node):
            _fold_batchnorm_in(sub, opset, types, taken, folded, left)
    outputs = {output.name for output in graph.output}
    replaced: set[str] = set()
    index = 0
    while index < len(graph.node):
        bn = graph.node[index]
        if bn.op_type != "BatchNormalization" or not _is_default_domain(bn):
            index += 1
            continue
        build = _Builder(graph, opset, taken)
        data = bn.input[0]
        try:
            scale, shift = _batchnorm_affine(graph, bn, opset)
            producer = _producer_index(graph, data)
            conv = graph.node[producer] if producer is not None else None
            if conv is not None and conv.op_type == "Conv" and _is_default_domain(conv) and data not in outputs:
                readers = sum(name == data for n in graph.node for name in n.input)
                if readers == 1 and not any(_is_read(sub, data) for n in graph.node for sub in _subgraphs(n)):
                    try:
                        before = set(conv.input[1:])
                        _fold_into_conv(graph, conv, scale, shift, build)
                    except _NotExact:
                        build = _Builder(graph, opset, taken)  # a per-channel Mul and Add below instead
                    else:
                        conv.output[0] = bn.output[0]  # the Conv writes what the BatchNormalization wrote
                        replaced |= before | set(bn.input[1:])
                        del graph.node[index]
                        graph.initializer.extend(build.initializers)
                        folded["into the Conv before it"] += 1
                        continue
            rank = _rank(types, data)
            if rank is None or rank < 2:
                raise _NotExact(f"the rank of its input '{data}' is {'unknown' if rank is None else rank}")
            dtype = helper.tensor_dtype_to_np_dtype(_elem_type(types, data) or onnx.TensorProto.FLOAT)
            per_channel = [-1, *[1] * (rank - 2)]
            scaled = build.node("Mul", [data, build.constant("bn_scale", scale.astype(dtype).reshape(per_channel))])
            shift_name = build.constant("bn_shift", shift.astype(dtype).reshape(per_channel))
            build.node("Add", [scaled, shift_name], bn.output[0])
        except _NotExact as reason:
            left.append(f"BatchNormalization '{bn.name or bn.output[0]}': {reason}")
            index += 1
            continue
        replaced |= set(bn.input[1:])
        del graph.node[index]
        for offset, new in enumerate(build.nodes):
            graph.node.insert(index + offset, new)
        graph.initializer.extend(build.initializers)
        folded["as a per-channel Mul and Add"] += 1
        index += len(build.nodes)
    _drop_unread_constants(graph, replaced)
    _prune_value_info(graph)


def fold_batchnorm(src: PathLike, dst: PathLike) -> TransformReport:
    """Inference-mode BatchNormalization folded into the Conv before it (its weights and bias rescaled per output
    channel), or else written as a per-channel Mul and Add: the same function, up to float rounding.

    Only where the statistics are constants of the node's graph; each BatchNormalization left is named with why.
    """
    model = load_model(src)
    opset = default_opset(model)
    folded: Counter = Counter()
    left: list[str] = []
    _fold_batchnorm_in(model.graph, opset, _value_types(model), _all_names(model), folded, left)
    if not folded:
        detail = "; ".join(left) if left else "it has no BatchNormalization"
        raise TransformError(f"no BatchNormalization could be folded: {detail}")
    save_checked(model, dst, "folding BatchNormalization")
    report = TransformReport("fold_batchnorm", details={"folded": dict(folded), "left": left})
    report.log.append(f"folded {', '.join(f'{n} BatchNormalization {how}' for how, n in sorted(folded.items()))}")
    report.log.extend(f"left {line}" for line in left)
    return report


# ---------------------------------------------------------------------------------------------------------------------
# make_runnable


def _verdict(path: Path, profile: dict, runtime: compat.DeviceRuntime) -> list[str]:
    """The reasons ``path`` cannot run on ``profile`` (empty when it can): ``compat.check_device``'s checks,
    without the notes and advice it appends, which are no reason to rewrite anything."""
    facts = inspect.inspect_model(onnx.load(str(path), load_external_data=False))
    return [
        *compat.check_ir_version(facts, runtime),
        *compat.check_opsets(facts, runtime),
        *compat.check_operators(facts, runtime)[0],
        *compat.check_precision(facts, profile),
        *compat.check_file_size(path.stat().st_size, profile),
        *compat.check_memory(facts, profile),
    ]


def _blocked(reasons: list[str], model: onnx.ModelProto, domain: str, ops: tuple[str, ...] | None = None) -> bool:
    """Whether a reason names an operator of ``domain`` (``ops`` of it, when given) that the model has."""
    present = {n.op_type for g in iter_all_graphs(model) for n in g.node if inspect.domain_name(n.domain) == domain}
    wanted = present if ops is None else present & set(ops)
    labels = {kernel_check.label_of(domain, op) for op in wanted}
    return any((found := _REASON_OPERATOR.match(reason)) and found.group(1) in labels for reason in reasons)


def _target_opset(model: onnx.ModelProto, reasons: list[str], runtime: compat.DeviceRuntime) -> int | None:
    """The ai.onnx opset to convert to, or None to keep the model's.

    Too new for the runtime: its newest. On the mobile package, standard operators it lacks at the model's opset:
    the newest opset its operator list was built from, whose operator versions it holds (often the ones at older or
    newer opsets are missing, e.g. Softmax before 13).
    """
    current = default_opset(model)
    newest = runtime.max_opsets.get("ai.onnx")
    if runtime.mobile and _blocked(reasons, model, "ai.onnx"):
        listed = max(runtimes.mobile_package().ops.get("ai.onnx", {}), default=None)
        if listed is not None and listed != current and (newest is None or listed <= newest):
            return listed
    if newest is not None and current > newest:
        return newest
    return None


def make_runnable(src: PathLike, dst: PathLike, *, profile: dict) -> TransformReport:
    """Apply what ``profile``'s compatibility verdict asks for, then check the result against it again.

    In order, each only when the verdict names what it fixes: ZipMap to a tensor output, ai.onnx.ml operators to
    standard ones, no-op removal, BatchNormalization folding, opset conversion (down to the runtime's newest, or to the mobile package's own
    opset), a lower IR version. Refused when the model already runs
    there, or when the result still does not (the reasons that remain are named).
    """
    check_params(MAKE_RUNNABLE_PARAMS, {"profile": profile})
    runtime = compat.device_runtime(profile)
    target = compat.runtime_label(profile)
    if runtime is None:
        raise TransformError(f"{target} is older than any release in the published compatibility table")
    load_model(src)  # the upload checks, as a TransformError
    before = _verdict(Path(src), profile, runtime)
    if not before:
        raise TransformError(f"the model already runs on {target}; nothing to change")
    report = TransformReport("make_runnable", details={"target": target, "reasons_before": before, "steps": []})
    with tempfile.TemporaryDirectory() as workdir:
        current = Path(src)

        def step(name: str, function: Callable[..., TransformReport], **params: Any) -> None:
            nonlocal current
            out = Path(workdir) / f"{len(report.details['steps'])}-{name}.onnx"
            try:
                done = function(current, out, **params)
            except TransformError as exc:
                report.log.append(f"{name}: not applied: {exc}")
                return
            current = out
            report.details["steps"].append({"transform": name, "params": params, "details": done.details})
            report.log.extend(f"{name}: {line}" for line in done.log)

        reasons = before
        model = onnx.load(str(current), load_external_data=False)
        if _blocked(reasons, model, ML_DOMAIN, ("ZipMap",)):
            step("zipmap_to_tensor", zipmap_to_tensor)
        model = onnx.load(str(current), load_external_data=False)
        if _blocked(reasons, model, ML_DOMAIN, tuple(op for op in _ML_REPLACEMENTS)):
            step("replace_ml_ops", replace_ml_ops)
        reasons = _verdict(current, profile, runtime)
        model = onnx.load(str(current), load_external_data=False)
        if _blocked(reasons, model, "ai.onnx", ("Identity", "Dropout", "Cast")):
            step("remove_noops", remove_noops)
        model = onnx.load(str(current), load_external_data=False)
        if _blocked(_verdict(current, profile, runtime), model, "ai.onnx", ("BatchNormalization",)):
            step("fold_batchnorm", fold_batchnorm)
        model = onnx.load(str(current), load_external_data=False)
        target_opset = _target_opset(model, _verdict(current, profile, runtime), runtime)
        if target_opset is not None:
            step("convert_opset", convert_opset, target_opset=target_opset)
        model = onnx.load(str(current), load_external_data=False)
        if runtime.max_ir is not None and model.ir_version > runtime.max_ir:
            step("lower_ir_version", lower_ir_version, target_ir=runtime.max_ir)
        after = _verdict(current, profile, runtime)
        if after:
            tried = ", ".join(s["transform"] for s in report.details["steps"]) or "no rewrite applied"
            notes = [line for line in report.log if ": not applied: " in line]
            raise TransformError(
                f"still not runnable on {target} after {tried}: {'; '.join(after)}"
                + (f" ({'; '.join(notes)})" if notes else "")
            )
        with write_atomically(dst) as tmp:
            tmp.write_bytes(current.read_bytes())
    report.log.append(f"runs on {target} now (it did not: {'; '.join(before)})")
    return report


RUNNABLE_TRANSFORMS = (
    (
        "lower_ir_version",
        lower_ir_version,
        LOWER_IR_PARAMS,
        "write the model at an older IR version when it uses nothing newer",
    ),
    ("remove_noops", remove_noops, NOOP_PARAMS, "remove Identity, inference Dropout and same-type Cast nodes"),
    ("zipmap_to_tensor", zipmap_to_tensor, ZIPMAP_PARAMS, "plain probability tensors instead of ZipMap's maps"),
    ("replace_ml_ops", replace_ml_ops, ML_OPS_PARAMS, "standard ONNX operators for ai.onnx.ml ones, same results"),
    (
        "fold_batchnorm",
        fold_batchnorm,
        FOLD_BN_PARAMS,
        "fold inference BatchNormalization into the Conv before it (else a per-channel Mul and Add)",
    ),
    ("make_runnable", make_runnable, MAKE_RUNNABLE_PARAMS, "the rewrites a device type needs to run the model"),
)
