"""Does a release have a kernel for this node? Per-node verdicts against a recorded kernel registry.

A node runs when the release knows its operator at the model's opset (and has not deprecated it), and either
the runtime handles it while loading (Constant), or one registered kernel of the provider covers that schema
version with every type constraint satisfied by the node's input and output types, or ONNX defines the operator
as a function, which the runtime expands when no kernel takes the node. This is how onnxruntime itself picks a
kernel (type constraints are matched by the schema's type string, or by the formal parameter's name).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import onnx

from .registry.load import CPU, Registry

# Operators onnxruntime resolves while loading the graph, with no kernel in its registry: a Constant node becomes
# an initializer. Found by creating a session for a one-node model of each operator the runtime knows the schema of
# but has no CPU kernel for (tests/jobs/tooling/test_live_runtime.py keeps asking): only Constant loads; the others
# (GRUUnit, GivenTensorFill, Scatter and Upsample past their removal, ImageDecoder, the *_TRT ops) are refused.
HANDLED_AT_LOAD = frozenset({("ai.onnx", "Constant")})
VARIADIC = 2
# Attribute values the CPU kernels refuse when the session is created, whatever the types: the recurrent ops take
# only the sequence-first layout (``layout=1`` fails in RNN/GRU/LSTM's constructors, 1.16 to today).
CPU_ATTRIBUTE_LIMITS = {
    ("ai.onnx", "RNN"): {"layout": {0}},
    ("ai.onnx", "GRU"): {"layout": {0}},
    ("ai.onnx", "LSTM"): {"layout": {0}},
}


@dataclass(frozen=True)
class NodeVerdict:
    runs: bool
    how: str  # "kernel", "cast" (float16 cast to float), "function", "load", or "" when it does not run
    reason: str = ""  # why it does not run, naming operator, version and types


def label_of(domain: str, op: str) -> str:
    return op if domain == "ai.onnx" else f"{domain}.{op}"


def _bind(params: list, actual: list) -> list[tuple[list, str]]:
    """Pair each actual argument's type with its formal parameter (a variadic last one takes the rest)."""
    pairs: list[tuple[list, str]] = []
    for position, text in enumerate(actual):
        if not params:
            break
        formal = params[min(position, len(params) - 1)]
        if position >= len(params) and formal[2] != VARIADIC:
            break
        if text:  # "" is an omitted optional argument, None a type inference could not tell
            pairs.append((formal, text))
    return pairs


def _mismatches(constraints: dict[str, list[str]], bound: list[tuple[list, str]]) -> dict[str, set[str]]:
    """Constraint -> the node's types it does not allow (empty when this kernel takes the node)."""
    wrong: dict[str, set[str]] = {}
    for constraint, allowed in constraints.items():
        for formal, text in bound:
            if constraint in (formal[1], formal[0]) and text not in allowed:
                wrong.setdefault(constraint, set()).add(text)
    return wrong


@functools.cache
def function_expands(domain: str, op: str, opset: int) -> bool:
    """ONNX defines ``op`` at ``opset`` as a function whose body is valid at that opset, so a runtime can expand it.

    A body is written for one opset; it is valid at a later one only if none of the operators it calls changed in
    between (onnx's ``ValidateReferencedOpsInFuncton``, which onnxruntime relies on): Swish's body of opset 24
    calls Constant and CastLike, both changed at 25, so at opset 25 there is no body and, with no kernel, no Swish.
    Context-dependent bodies are built per node and cannot be read here: one written at or below ``opset`` counts.
    """
    onnx_domain = "" if domain == "ai.onnx" else domain
    try:
        schema = onnx.defs.get_schema(op, opset, onnx_domain)
    except onnx.defs.SchemaError:
        return False
    # onnx's stub for OpSchema (1.23) leaves out these properties, which the compiled class has.
    if schema.has_function:  # type: ignore[attr-defined]
        written = [v for v in schema.function_opset_versions if v <= opset]  # type: ignore[attr-defined]
        if not written:
            return False
        raw = schema.get_function_with_opset_version(max(written))  # type: ignore[attr-defined]
        body = onnx.FunctionProto.FromString(raw)
        return all(_unchanged_since(node, max(written), opset) for node in body.node)
    if schema.has_context_dependent_function:  # type: ignore[attr-defined]
        versions = schema.context_dependent_function_opset_versions  # type: ignore[attr-defined]
        return any(v <= opset for v in versions)
    return False


def _defines_function(domain: str, op: str, opset: int) -> bool:
    try:
        schema = onnx.defs.get_schema(op, opset, "" if domain == "ai.onnx" else domain)
    except onnx.defs.SchemaError:
        return False
    return bool(schema.has_function or schema.has_context_dependent_function)  # type: ignore[attr-defined]


def _unchanged_since(node: onnx.NodeProto, written_at: int, opset: int) -> bool:
    try:
        return onnx.defs.get_schema(node.op_type, opset, node.domain).since_version <= written_at
    except onnx.defs.SchemaError:
        return False


def check_node(signature: dict, registry: Registry, provider: str = "CPUExecutionProvider") -> NodeVerdict:
    domain, op, opset = signature["domain"], signature["op"], signature["opset"]
    label = label_of(domain, op)
    schema = registry.schema(domain, op, opset)
    if schema is None:
        return NodeVerdict(False, "", f"{label} (opset {opset}): {registry.label} does not know this operator")
    if schema.deprecated:
        return NodeVerdict(False, "", f"{label}-{schema.since}: deprecated in {registry.label}, which refuses it")
    if (domain, op) in HANDLED_AT_LOAD:
        return NodeVerdict(True, "load")
    if provider == CPU:
        for name, accepted in CPU_ATTRIBUTE_LIMITS.get((domain, op), {}).items():
            value = signature.get("attrs", {}).get(name)
            if value is not None and value not in accepted:
                return NodeVerdict(
                    False,
                    "",
                    f"{label}-{schema.since} with {name}={value}: the CPU kernel of {registry.label} takes "
                    f"{name}={', '.join(map(str, sorted(accepted)))} only",
                )
    kernels = registry.kernels_for(provider, domain, op, schema.since)
    bound = _bind(schema.inputs, signature["inputs"]) + _bind(schema.outputs, signature["outputs"])
    failures = [_mismatches(constraints, bound) for constraints in kernels]
    if kernels and any(not wrong for wrong in failures):
        return NodeVerdict(True, "kernel")
    if provider == CPU and any(text == "float16" for _, text in bound):
        # The CPU provider runs a float16 node that has only a float kernel by casting around it
        # (onnxruntime's InsertCastTransformer): slow, but it runs.
        as_float = [(formal, "float" if text == "float16" else text) for formal, text in bound]
        if any(not _mismatches(constraints, as_float) for constraints in kernels):
            return NodeVerdict(True, "cast")
    if function_expands(domain, op, opset):
        # Expanded, the body's operators need kernels in turn (Bernoulli's RandomUniformLike-22 may have none).
        for call in signature.get("body", ()):
            inner = check_node(call, registry, provider)
            if not inner.runs:
                return NodeVerdict(
                    False, "", f"{label}-{schema.since} is expanded into its function body, but {inner.reason}"
                )
        return NodeVerdict(True, "function")
    where = "" if provider == "CPUExecutionProvider" else f" on {provider.removesuffix('ExecutionProvider')}"
    if not kernels:
        reason = f"{label}-{schema.since}: {registry.label} has no kernel for it{where}"
        if _defines_function(domain, op, opset):
            reason += f", and ONNX's function body for it is not valid at opset {opset}"
        return NodeVerdict(False, "", reason)
    # Name the types the node has and the ones the release's kernels take, constraint by constraint.
    wrong_types = sorted({t for wrong in failures for types in wrong.values() for t in types})
    offered: dict[str, set[str]] = {}
    for constraints in kernels:
        for constraint, allowed in constraints.items():
            offered.setdefault(constraint, set()).update(allowed)
    blocking = sorted({c for wrong in failures for c in wrong})
    has = "; ".join(f"{c}: {', '.join(sorted(offered[c]))}" for c in blocking) if len(blocking) > 1 else ""
    if not has:
        has = ", ".join(sorted(offered[blocking[0]])) if blocking else ""
    return NodeVerdict(
        False,
        "",
        f"{label}-{schema.since} on {', '.join(wrong_types)}: {registry.label} has {label}-{schema.since} "
        f"kernels{where} for {has} only",
    )
