"""Low-rank factorization: replace a 2-D weight W (K x N) of MatMul/Gemm by U_r*S_r (K x r) then V_r (r x N).

Only where r * (K + N) < K * N, i.e. where the two thin matrices really hold fewer numbers than W.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper

from jobs.tooling.common import (
    Param,
    PathLike,
    TransformReport,
    check_params,
    constants_to_initializers,
    float_initializers,
    load_model,
    save_model,
    write_atomically,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import iter_graphs

PARAMS = {
    "rank": Param(int, minimum=1, optional=True),
    "energy": Param(float, minimum=0.01, maximum=1.0, optional=True),
    "min_weights": Param(int, minimum=1),
}


def svd(
    src: PathLike, dst: PathLike, *, rank: int | None = None, energy: float | None = None, min_weights: int = 4096
) -> TransformReport:
    """Factorize every MatMul/Gemm weight of at least ``min_weights`` values at a fixed ``rank`` or at the
    smallest rank keeping ``energy`` (fraction of the sum of squared singular values)."""
    check_params(PARAMS, {"rank": rank, "energy": energy, "min_weights": min_weights})
    if (rank is None) == (energy is None):
        raise TransformError("give exactly one of rank (e.g. 32) or energy (e.g. 0.95) for SVD factorization")
    model = load_model(src)
    report = TransformReport("svd", details={"rank": rank, "energy": energy, "factorized": []})
    moved = constants_to_initializers(model)
    if moved:
        report.log.append(f"moved {moved} Constant-node tensors to initializers to reach their weights")
    uses = Counter(name for graph in iter_graphs(model.graph) for node in graph.node for name in node.input)
    taken = set(uses) | {out for g in iter_graphs(model.graph) for n in g.node for out in n.output}
    taken |= {t.name for g in iter_graphs(model.graph) for t in g.initializer}
    for graph in iter_graphs(model.graph):
        _factorize_graph(graph, rank, energy, min_weights, uses, taken, report)
    if not report.details["factorized"]:
        setting = f"rank {rank}" if rank is not None else f"energy {energy}"
        raise TransformError(
            f"nothing to factorize: no 2-D MatMul/Gemm weight of at least {min_weights} values "
            f"gets fewer parameters at {setting}"
        )
    with write_atomically(dst) as tmp:
        save_model(model, tmp)
    before = sum(item["params_before"] for item in report.details["factorized"])
    after = sum(item["params_after"] for item in report.details["factorized"])
    report.log.append(f"factorized {len(report.details['factorized'])} weights: {before} -> {after} parameters")
    return report


def choose_rank(singular_values: np.ndarray, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        return min(rank, len(singular_values))
    assert energy is not None  # svd() takes exactly one of rank and energy
    kept = np.cumsum(singular_values**2) / np.sum(singular_values**2)
    return min(int(np.searchsorted(kept, energy - 1e-12)) + 1, len(singular_values))


def _factorize_graph(
    graph: onnx.GraphProto,
    rank: int | None,
    energy: float | None,
    min_weights: int,
    uses: Counter,
    taken: set[str],
    report: TransformReport,
) -> None:
    initializers = float_initializers(graph)
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        weights = _factorable_weights(node, initializers, uses, min_weights)
        if weights is None:
            nodes.append(node)
            continue
        u, s, vt = np.linalg.svd(weights.astype(np.float64), full_matrices=False)
        r = choose_rank(s, rank, energy)
        k, n = weights.shape
        if r * (k + n) >= k * n:
            report.log.append(f"kept '{node.input[1]}' ({k}x{n}): rank {r} would not save parameters")
            nodes.append(node)
            continue
        left_name, right_name, middle = (
            _unique(f"{node.input[1]}_svd_{part}", taken) for part in ("left", "right", "mid")
        )
        graph.initializer.append(numpy_helper.from_array((u[:, :r] * s[:r]).astype(weights.dtype), left_name))
        graph.initializer.append(numpy_helper.from_array(vt[:r].astype(weights.dtype), right_name))
        graph.initializer.remove(initializers[node.input[1]])
        _drop_graph_input(graph, node.input[1])
        nodes.extend(_low_rank_nodes(node, left_name, right_name, middle))
        report.details["factorized"].append(
            {
                "weight": node.input[1],
                "shape": [k, n],
                "rank": r,
                "energy_kept": float(np.sum(s[:r] ** 2) / np.sum(s**2)),
                "params_before": k * n,
                "params_after": r * (k + n),
            }
        )
    del graph.node[:]
    graph.node.extend(nodes)


def _factorable_weights(
    node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto], uses: Counter, min_weights: int
) -> np.ndarray | None:
    """W as (K x N) for ``x @ W``, or None when the node is not a MatMul/Gemm with its own large 2-D weight."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
        return None
    name = node.input[1]
    if name not in initializers or uses[name] != 1 or len(initializers[name].dims) != 2:
        return None  # shared weights would need every user rewritten
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("transA", 0):
        return None
    weights = numpy_helper.to_array(initializers[name])
    if weights.size < min_weights:
        return None
    return weights.T if attributes.get("transB", 0) else weights


def _low_rank_nodes(node: onnx.NodeProto, left: str, right: str, middle: str) -> list[onnx.NodeProto]:
    first = helper.make_node("MatMul", [node.input[0], left], [middle], name=f"{node.name or middle}_svd_left")
    if node.op_type == "MatMul":
        second = helper.make_node("MatMul", [middle, right], list(node.output), name=f"{node.name or middle}_svd_right")
    else:  # Gemm keeps its bias and scaling; its B is now the right factor, not transposed
        second = onnx.NodeProto()
        second.CopyFrom(node)
        second.input[0], second.input[1] = middle, right
        kept = [a for a in second.attribute if a.name != "transB"]
        del second.attribute[:]
        second.attribute.extend(kept)
    return [first, second]


def _drop_graph_input(graph: onnx.GraphProto, name: str) -> None:
    # Models from IR < 4 also list initializers as graph inputs; a leftover entry would become a required input.
    for value in list(graph.input):
        if value.name == name:
            graph.input.remove(value)


def _unique(base: str, taken: set[str]) -> str:
    name, suffix = base, 1
    while name in taken:
        name, suffix = f"{base}_{suffix}", suffix + 1
    taken.add(name)
    return name
