"""What each node asks of a runtime: its operator at the model's opset, and the types of its inputs and outputs.

The compatibility checker matches these against a release's kernel registry (``kernel_check``). Types come from
onnx shape and type inference, so attribute-set types (Cast's ``to``, ConstantOfShape's ``value``) arrive as the
output types they set. Nodes with the same signature are folded into one entry with a count, the first node's
name and their summed MACs; the main graph's nodes keep their order and edges (``graph_nodes``) so that the
placement on an accelerator can count how many islands the CPU fallbacks cut it into.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
from onnx import TensorProto

from .modelfile import iter_all_graphs

DEFAULT_DOMAIN = "ai.onnx"
# Past these, the facts would outgrow a database row; the checker then says what it could not look at.
MAX_SIGNATURES = 5000
# Attributes a kernel may refuse although its types match (see kernel_check.CPU_ATTRIBUTE_LIMITS): kept in the
# signature when set.
SIGNIFICANT_ATTRIBUTES = {("ai.onnx", "RNN"): "layout", ("ai.onnx", "GRU"): "layout", ("ai.onnx", "LSTM"): "layout"}
MAX_GRAPH_NODES = 50_000


def _domain(domain: str) -> str:
    return DEFAULT_DOMAIN if domain in ("", DEFAULT_DOMAIN) else domain


def type_string(type_proto: onnx.TypeProto) -> str | None:
    """onnxruntime's short spelling of a type ("float", "seq(int64)", "optional(tensor(float))"); None if unknown."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        elem = type_proto.tensor_type.elem_type
        return TensorProto.DataType.Name(elem).lower() if elem else None
    if kind == "sequence_type":
        inner = type_proto.sequence_type.elem_type
        inner_text = type_string(inner)
        if inner_text is None:
            return None
        return f"seq({inner_text})" if inner.WhichOneof("value") == "tensor_type" else f"seq({_long(inner_text)})"
    if kind == "optional_type":
        inner_text = type_string(type_proto.optional_type.elem_type)
        return f"optional({_long(inner_text)})" if inner_text else None
    if kind == "map_type":
        key = TensorProto.DataType.Name(type_proto.map_type.key_type).lower()
        value = type_string(type_proto.map_type.value_type)
        return f"map({key},{_long(value)})" if value else None
    if kind == "sparse_tensor_type":
        elem = type_proto.sparse_tensor_type.elem_type
        return f"sparse_tensor({TensorProto.DataType.Name(elem).lower()})" if elem else None
    return None


def _long(short: str) -> str:
    """Back to onnxruntime's nested spelling inside seq/optional/map: "float" -> "tensor(float)"."""
    if "(" in short:
        if short.startswith("seq(") and "(" not in short[4:-1]:
            return f"seq(tensor({short[4:-1]}))"
        return short
    return f"tensor({short})"


def _type_protos(graphs: list[onnx.GraphProto]) -> dict[str, onnx.TypeProto]:
    table: dict[str, onnx.TypeProto] = {}
    for graph in graphs:
        for init in graph.initializer:
            table[init.name] = onnx.helper.make_tensor_type_proto(init.data_type, None)
        for info in list(graph.input) + list(graph.value_info) + list(graph.output):
            table[info.name] = info.type
    return table


def function_body(node: onnx.NodeProto, opset: int, types: dict[str, onnx.TypeProto]) -> list[dict] | None:
    """The operators ONNX's function body for this node calls (``{"domain", "op", "opset"}``), or None when the
    operator is no function. A runtime with no kernel for the node expands it into these, so they need kernels.

    Context-dependent bodies (Bernoulli, LayerNormalization) are built for this very node and its input types.
    """
    domain = node.domain if node.domain not in ("", DEFAULT_DOMAIN) else ""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None
    # onnx's stub for OpSchema (1.23) leaves out these properties, which the compiled class has.
    try:
        if schema.has_function:  # type: ignore[attr-defined]
            written = [v for v in schema.function_opset_versions if v <= opset]  # type: ignore[attr-defined]
            if not written:
                return None
            raw = schema.get_function_with_opset_version(max(written))  # type: ignore[attr-defined]
        elif schema.has_context_dependent_function:  # type: ignore[attr-defined]
            versions = [v for v in schema.context_dependent_function_opset_versions if v <= opset]  # type: ignore[attr-defined]
            if not versions:
                return None
            inputs = [types[name].SerializeToString() if name in types else b"" for name in node.input]
            raw = schema.get_context_dependent_function_with_opset_version(  # type: ignore[attr-defined]
                max(versions), node.SerializeToString(), inputs
            )
        else:
            return None
    except Exception:  # a body that cannot be built for this node: nothing to check it with
        return None
    if not raw:
        return None
    body = onnx.FunctionProto.FromString(raw)
    imports = {_domain(op.domain): int(op.version) for op in body.opset_import}
    # The body's own inputs and outputs carry the node's types; its inner values get theirs from inference.
    known = {
        formal: type_string(types[actual])
        for formals, actuals in ((body.input, node.input), (body.output, node.output))
        for formal, actual in zip(formals, actuals, strict=False)
        if actual in types
    }
    known = {**_inner_types(body, node, types), **known}
    calls = {
        (
            _domain(n.domain),
            n.op_type,
            imports.get(_domain(n.domain), opset),
            tuple("" if not name else known.get(name) for name in n.input),
            tuple("" if not name else known.get(name) for name in n.output),
        )
        for n in body.node
    }
    return [
        {"domain": d, "op": op, "opset": v, "inputs": list(ins), "outputs": list(outs)}
        for d, op, v, ins, outs in sorted(calls, key=repr)
    ]


def _nodes(model: onnx.ModelProto) -> Iterator[tuple[onnx.NodeProto, dict[str, int], bool]]:
    """Every node to check with the opsets it resolves against; local-function calls are not operators."""
    imports = {_domain(op.domain): int(op.version) for op in model.opset_import}
    local = {(_domain(f.domain), f.name) for f in model.functions}
    for index, graph in enumerate(iter_all_graphs(model)):
        for node in graph.node:
            if (_domain(node.domain), node.op_type) not in local:
                yield node, imports, index == 0
    for function in model.functions:
        function_imports = {**imports, **{_domain(op.domain): int(op.version) for op in function.opset_import}}
        for node in function.node:
            if (_domain(node.domain), node.op_type) not in local:
                yield node, function_imports, False


def node_signatures(inferred: onnx.ModelProto, macs_by_node: dict[str, int] | None = None) -> dict:
    """``{"kernel_signatures": [...], "graph_nodes": [[signature, [producers]], ...] | None, "truncated": bool}``.

    ``inferred`` is the model after shape inference. A signature is ``{"domain", "op", "opset", "inputs",
    "outputs", "count", "node", "macs"}`` with types as ``type_string`` writes them (None where unknown, "" for an
    omitted optional input). ``graph_nodes`` is None when the main graph has more than MAX_GRAPH_NODES nodes.
    """
    macs_by_node = macs_by_node or {}
    protos = _type_protos(list(iter_all_graphs(inferred)))
    types = {name: text for name, proto in protos.items() if (text := type_string(proto))}
    index: dict[tuple, int] = {}
    signatures: list[dict] = []
    main_nodes: list[tuple[int, onnx.NodeProto]] = []
    truncated = False
    for node, imports, in_main in _nodes(inferred):
        domain = _domain(node.domain)
        inputs = tuple("" if not name else types.get(name) for name in node.input)
        outputs = tuple("" if not name else types.get(name) for name in node.output)
        attrs = _significant(domain, node)
        key = (domain, node.op_type, imports.get(domain, 1), inputs, outputs, tuple(sorted(attrs.items())))
        position = index.get(key)
        if position is None:
            if len(signatures) >= MAX_SIGNATURES:
                truncated = True
                continue
            position = index[key] = len(signatures)
            signature = {
                "domain": domain,
                "op": node.op_type,
                "opset": key[2],
                "inputs": list(inputs),
                "outputs": list(outputs),
                "count": 0,
                "node": node.name or f"{node.op_type} -> {node.output[0] if node.output else ''}",
                "macs": 0,
            }
            if attrs:
                signature["attrs"] = attrs
            if (body := function_body(node, key[2], protos)) is not None:
                signature["body"] = body
            signatures.append(signature)
        signatures[position]["count"] += 1
        signatures[position]["macs"] += int(macs_by_node.get(_node_key(node), 0))
        if in_main:
            main_nodes.append((position, node))
    return {
        "kernel_signatures": signatures,
        "graph_nodes": _edges(main_nodes) if len(main_nodes) <= MAX_GRAPH_NODES else None,
        "truncated": truncated,
    }


def _inner_types(body: onnx.FunctionProto, node: onnx.NodeProto, types: dict[str, onnx.TypeProto]) -> dict:
    """Types of a function body's inner values: the body run through shape inference as a graph of its own,
    fed the node's input types. Empty when an input type is unknown or inference fails (attribute references of
    a plain function's body cannot be resolved outside a call, for one)."""
    if any(name and name not in types for name in node.input):
        return {}
    inputs = [
        onnx.helper.make_value_info(formal, types[actual])
        for formal, actual in zip(body.input, node.input, strict=False)
        if actual
    ]
    graph = onnx.helper.make_graph(list(body.node), "body", inputs, [onnx.ValueInfoProto(name=n) for n in body.output])
    model = onnx.helper.make_model(graph, opset_imports=list(body.opset_import))
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # best effort: an uninferable body is checked without its inner types
        return {}
    values = list(inferred.graph.value_info) + list(inferred.graph.output)
    return {info.name: text for info in values if (text := type_string(info.type))}


def _significant(domain: str, node: onnx.NodeProto) -> dict:
    name = SIGNIFICANT_ATTRIBUTES.get((domain, node.op_type))
    if name is None:
        return {}
    found = [onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name]
    return {name: found[0]} if found and isinstance(found[0], int | float | str) else {}


def _node_key(node: onnx.NodeProto) -> str:
    """How MACs are keyed per node: its first output names it uniquely within a graph (SSA)."""
    return node.output[0] if node.output else node.name


def _edges(main_nodes: list[tuple[int, onnx.NodeProto]]) -> list[list]:
    producer = {name: i for i, (_, node) in enumerate(main_nodes) for name in node.output if name}
    return [
        [signature, sorted({producer[name] for name in node.input if name in producer})]
        for signature, node in main_nodes
    ]
