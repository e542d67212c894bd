"""Where each node of a model would run on a device type with an accelerator, and what the CPU fallbacks cost.

onnxruntime gives every node to the device type's execution provider when that provider has a kernel for it,
and the rest to the CPU provider: the model still runs, but each boundary between the two is a copy between
device and host memory. The report counts the nodes on each side, the share of compute (MACs) left on the
accelerator, and the islands of CPU nodes the fallbacks cut the main graph into.
"""

from __future__ import annotations

from .kernel_check import check_node, label_of
from .registry.load import CPU, Registry

# From this many CPU islands on, copies between the two memories tend to cost more than the fallbacks save.
ISLANDS_WARNING = 3
MAX_LISTED = 20


def _short(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider")


def placement(facts: dict, registry: Registry | None, provider: str) -> dict | None:
    """The placement report, or None when the provider is the CPU or its kernels are not known for the release."""
    if provider == CPU or registry is None or not registry.has_provider(provider):
        return None
    signatures = facts.get("kernel_signatures")
    if signatures is None:
        return None
    on_accelerator = [check_node(signature, registry, provider).runs for signature in signatures]
    fallback = [
        {"op": label_of(s["domain"], s["op"]), "node": s["node"], "count": s["count"]}
        for s, on in zip(signatures, on_accelerator, strict=True)
        if not on
    ]
    total_macs = sum(s.get("macs", 0) for s in signatures)
    accelerated_macs = sum(s.get("macs", 0) for s, on in zip(signatures, on_accelerator, strict=True) if on)
    islands, copies = _islands(facts.get("graph_nodes"), on_accelerator)
    return {
        "provider": provider,
        "nodes": sum(s["count"] for s in signatures),
        "on_accelerator": sum(s["count"] for s, on in zip(signatures, on_accelerator, strict=True) if on),
        "fallback": sorted(fallback, key=lambda f: (-f["count"], f["op"]))[:MAX_LISTED],
        "macs_share": round(accelerated_macs / total_macs, 4) if total_macs else None,
        "islands": islands,
        "copies": copies,
        "kernels_from": registry.inexact.get(provider, f"recorded from {registry.label}"),
    }


def _islands(graph_nodes: list | None, on_accelerator: list[bool]) -> tuple[int | None, int | None]:
    """Connected groups of CPU nodes in the main graph, and the edges that cross between the two providers."""
    if graph_nodes is None:
        return None, None
    on = [on_accelerator[signature] for signature, _ in graph_nodes]
    parent = list(range(len(graph_nodes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    copies = 0
    for node, (_, producers) in enumerate(graph_nodes):
        for producer in producers:
            if on[node] != on[producer]:
                copies += 1
            elif not on[node]:
                parent[root(node)] = root(producer)
    islands = len({root(i) for i, placed in enumerate(on) if not placed})
    return islands, copies


def placement_notes(report: dict | None) -> list[str]:
    """The report in words, for the compatibility matrix."""
    if report is None:
        return []
    name = _short(report["provider"])
    share = f", {report['macs_share']:.1%} of MACs" if report["macs_share"] is not None else ""
    line = f"placement on {name}: {report['on_accelerator']} of {report['nodes']} nodes{share}"
    if report["fallback"]:
        listed = ", ".join(f"{f['op']} ({f['count']}, e.g. '{f['node']}')" for f in report["fallback"])
        line += f"; falls back to the CPU: {listed}"
    notes = [line]
    if report["islands"] is not None and report["islands"] >= ISLANDS_WARNING:
        notes.append(
            f"warning: CPU fallbacks cut the graph into {report['islands']} islands ({report['copies']} copies "
            f"between {name} and CPU memory); the copies may cost more than running those nodes on {name} would save"
        )
    if not report["kernels_from"].startswith("recorded"):
        notes.append(f"{name} kernels from {report['kernels_from']}")
    return notes
