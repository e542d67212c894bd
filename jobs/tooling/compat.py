"""May this model run on this device type? One row of the compatibility matrix.

The model side is the dict ``inspect.inspect_model`` returns (plus the file
size); the device side is the plain profile dict ``DeviceType.profile()``
returns. Operators are checked node by node (types included) against the
release's kernel registry: recorded from its wheel (``registry/``), or read
live for the server's own release. IR and opset limits come from the live
runtime or onnxruntime's published compatibility table; the mobile pre-built
package adds its reduced operator list and type reduction.

``check_device`` composes small checks, each returning the reasons it fails
(an empty list when it passes): the runtime's limits (``device_runtime``,
``check_ir_version``), ``check_opsets``, ``check_operators`` and the device's
resources (``check_precision``, ``check_file_size``, ``check_memory``).
Advice that does not stop the model running (``precision_advice``) and the
assumptions made follow the reasons as notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import kernel_check, live_runtime, runtimes
from .placement import placement, placement_notes
from .registry.load import CPU, Registry, registry_for

# Domains a stock onnxruntime build implements; anything else is a custom op.
STOCK_DOMAINS = {"ai.onnx", "ai.onnx.ml", "com.microsoft"}
# A session holds the weights plus working memory; 2x weights is a floor, not a promise.
MEMORY_FACTOR = 2.0
# Compute precisions an onnxruntime build can execute on its CPU provider (see _runnable_precisions).
FULL_BUILD_PRECISIONS = ("fp32", "fp16", "int8")
MOBILE_PACKAGE_PRECISIONS = ("fp32", "int8")
# The mobile package's config keeps float/int8/uint8 kernels, and says that operators on shapes and indices keep
# int32 and int64 (and bool, which comparisons produce) "internally": those pass its type reduction.
MOBILE_INDEX_TYPES = frozenset({"int32", "int64", "bool"})
# Past this many distinct operator problems, a row lists the first ones and counts the rest.
MAX_NODE_REASONS = 12


@dataclass(frozen=True)
class DeviceRuntime:
    """What the device type's onnxruntime accepts, as far as this server can tell."""

    label: str  # e.g. "onnxruntime 1.17", the words every reason uses
    live: bool  # the same release as this server: ask the installed runtime itself
    mobile: bool  # the pre-built mobile package with its reduced operator set
    max_ir: int | None
    max_opsets: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # assumptions made to find the limits, shown after the reasons
    registry: Registry | None = None  # its schemas and kernels, recorded or live; None when none is recorded
    provider: str = CPU  # the device type's execution provider; nodes it lacks fall back to the CPU


def _mb(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def runtime_label(profile: dict) -> str:
    return f"{profile.get('runtime', 'onnxruntime')} {live_runtime.major_minor(profile['runtime_version'])}"


def device_runtime(profile: dict) -> DeviceRuntime | None:
    """The IR and opset limits of the profile's runtime release; None when it is older than the published table."""
    version = live_runtime.major_minor(profile["runtime_version"])
    label = runtime_label(profile)
    mobile = profile.get("runtime_build") == "mobile"
    registry = registry_for(version)
    provider = profile.get("execution_provider") or CPU
    if version == live_runtime.major_minor(live_runtime.version()):
        return DeviceRuntime(
            label, True, mobile, live_runtime.max_ir_version(), live_runtime.max_opsets(), (), registry, provider
        )
    limits = runtimes.runtime_limits(version)
    if limits is None:
        return None
    notes: tuple[str, ...] = ()
    if not limits.get("exact", True):
        notes = (f"{label} is not in the published table; limits of the nearest older release used",)
    max_opsets = {k: v for k, v in limits.items() if k not in ("ir_version", "exact", "runtime")}
    return DeviceRuntime(label, False, mobile, limits.get("ir_version"), max_opsets, notes, registry, provider)


def check_written_for(facts: dict, runtime: DeviceRuntime, profile: dict) -> list[str]:
    """A file onnxruntime's offline optimizer wrote above the basic level runs only on the release that wrote it."""
    stamp = facts.get("runtime_specific")
    if not stamp or stamp.get("level") == "basic":
        return []
    written = live_runtime.major_minor(stamp["release"])
    if written != live_runtime.major_minor(profile["runtime_version"]):
        return [
            f"written by onnxruntime {written}'s offline graph optimizer ({stamp['level']} level), which makes a "
            f"file only that release is sure to load; this device type runs {runtime.label}"
        ]
    return []


def check_ir_version(facts: dict, runtime: DeviceRuntime) -> list[str]:
    if runtime.max_ir is not None and facts["ir_version"] > runtime.max_ir:
        return [f"IR version {facts['ir_version']} is newer than {runtime.label} loads (up to {runtime.max_ir})"]
    return []


def check_opsets(facts: dict, runtime: DeviceRuntime) -> list[str]:
    """Each stock domain's imported opset against the runtime's newest (custom domains are the operators' concern)."""
    reasons = []
    for domain, opset in sorted(facts["opset_imports"].items()):
        limit = runtime.max_opsets.get(domain) if domain in STOCK_DOMAINS else None
        if limit is not None and opset > limit:
            reasons.append(f"opset {opset} of {domain} is too new for {runtime.label} (supports up to {limit})")
    return reasons


def _group(verdicts: list[tuple[dict, str]]) -> list[str]:
    """One line per distinct reason, with how many nodes share it and the first one's name."""
    counts: dict[str, list] = {}
    for signature, reason in verdicts:
        entry = counts.setdefault(reason, [0, signature["node"]])
        entry[0] += signature["count"]
    lines = [f"{reason} ({n} node{'s' if n != 1 else ''}, e.g. '{node}')" for reason, (n, node) in counts.items()]
    lines.sort()
    if len(lines) > MAX_NODE_REASONS:
        lines = lines[:MAX_NODE_REASONS] + [f"... and {len(lines) - MAX_NODE_REASONS} more operator problem(s)"]
    return lines


def _signatures(facts: dict) -> tuple[list[dict], bool]:
    """The facts' per-node signatures; facts stored before they existed give one typeless entry per operator."""
    if "kernel_signatures" in facts:
        return facts["kernel_signatures"], True
    return [
        {
            "domain": entry["domain"],
            "op": entry["op"],
            "opset": facts["opset_imports"].get(entry["domain"], 1),
            "inputs": [],
            "outputs": [],
            "count": entry["count"],
            "node": entry["op"],
        }
        for entry in facts["operators"]
    ], False


def _mobile_types(signature: dict, registry: Registry, config: runtimes.OperatorConfig) -> str:
    """Why the mobile package's type reduction removes this node's kernel ("" when it keeps it)."""
    domain, op = signature["domain"], signature["op"]
    schema = registry.schema(domain, op, signature["opset"])
    if schema is None:
        return ""
    annotated = config.op_types.get((domain, op), {})
    for side, params in (("inputs", schema.inputs), ("outputs", schema.outputs)):
        for position, text in enumerate(signature[side]):
            if not text or not params:
                continue
            allowed_here = annotated.get(side, {}).get(position)
            if allowed_here is not None and text not in allowed_here:
                return (
                    f"{op} {side[:-1]} {position} as {text}: the mobile package keeps {', '.join(sorted(allowed_here))}"
                )
            formal = params[min(position, len(params) - 1)]
            several = len(schema.constraints.get(formal[1], ())) > 1
            if several and config.global_types is not None and text not in config.global_types | MOBILE_INDEX_TYPES:
                kept = ", ".join(sorted(config.global_types))
                return (
                    f"{op} on {text}: the {registry.label} mobile package keeps {kept} kernels only "
                    f"(and {', '.join(sorted(MOBILE_INDEX_TYPES))} where shapes and indices need them)"
                )
    return ""


def check_nodes(facts: dict, registry: Registry, *, mobile: bool, provider: str = CPU) -> tuple[list[str], list[str]]:
    """Per-node verdicts against ``registry``: (reasons the model cannot run, notes on what was assumed).

    A node runs on a device whose execution provider lacks it by falling back to the CPU kernels, so only nodes
    neither has fail here (where they run is ``placement``'s concern).
    """
    signatures, typed = _signatures(facts)
    config = runtimes.mobile_package() if mobile else None
    failing: list[tuple[dict, str]] = []
    for signature in signatures:
        domain, op = signature["domain"], signature["op"]
        if domain not in STOCK_DOMAINS:
            failing.append((signature, f"{op} of the custom domain {domain}: no stock onnxruntime build has it"))
            continue
        if config is not None and (domain, op) not in kernel_check.HANDLED_AT_LOAD:
            if not runtimes.mobile_supports(config.ops, domain, op, signature["opset"]):
                failing.append(
                    (signature, f"{kernel_check.label_of(domain, op)}: not in the {registry.label} mobile package")
                )
                continue
        verdict = kernel_check.check_node(signature, registry, CPU)
        if not verdict.runs and provider != CPU and registry.has_provider(provider):
            on_provider = kernel_check.check_node(signature, registry, provider)
            if on_provider.runs and provider not in registry.inexact:
                verdict = on_provider
            elif on_provider.runs:
                # A published table of another release is good enough to say where nodes run, not to promise that
                # a node the CPU cannot run will run at all.
                name = provider.removesuffix("ExecutionProvider")
                verdict = kernel_check.NodeVerdict(
                    False, "", f"{verdict.reason} ({name} may have it, per a published kernel table of a later release)"
                )
        if not verdict.runs:
            failing.append((signature, verdict.reason))
        elif (
            config is not None
            and verdict.how in ("kernel", "cast")
            and (why := _mobile_types(signature, registry, config))
        ):
            failing.append((signature, why))
    notes = []
    if not typed:
        notes.append("input and output types not checked: these facts predate per-node checks; re-run the check")
    if facts.get("signatures_truncated"):
        notes.append(f"only the first {len(signatures)} distinct node signatures were checked")
    return _group(failing), notes


def check_operators(facts: dict, runtime: DeviceRuntime) -> tuple[list[str], list[str]]:
    """Operators and kernels: per node against the release's recorded (or live) registry.

    A release with no registry is checked only for custom domains and, for the mobile package, its listed
    operators; the note says so, and how to record one."""
    if runtime.registry is not None:
        return check_nodes(facts, runtime.registry, mobile=runtime.mobile, provider=runtime.provider)
    missing = []
    for entry in facts["operators"]:
        domain, op = entry["domain"], entry["op"]
        opset = facts["opset_imports"].get(domain, 1)
        if domain not in STOCK_DOMAINS:
            missing.append(f"{op} of the custom domain {domain}: no stock onnxruntime build has it")
        elif runtime.mobile and not runtimes.mobile_supports(runtimes.mobile_operator_set(), domain, op, opset):
            missing.append(f"{kernel_check.label_of(domain, op)}: not in the {runtime.label} mobile package")
    note = (
        f"operators not checked against {runtime.label}: no registry of it is recorded "
        "(python -m jobs.tooling.registry.record --release X.Y.Z records one)"
    )
    return sorted(missing), [note]


def _preferred_precisions(profile: dict) -> list[str]:
    return profile.get("precisions") or ["fp32"]


def _runnable_precisions(profile: dict) -> tuple[str, ...]:
    """What the device type's onnxruntime build can execute at all, fast or not.

    A full build's CPU provider runs fp32 and int8 kernels, and fp16 too: where an operator has no fp16 kernel the
    session inserts Casts to fp32 around it (slow, but it runs). The mobile pre-built package keeps float, int8 and
    uint8 kernels only (``!globally_allowed_types`` in data/ort_mobile_1.17.config), so fp16 cannot load there.
    bf16 has next to no CPU kernels and no cast fallback: only a device type that lists it runs it.
    """
    return MOBILE_PACKAGE_PRECISIONS if profile.get("runtime_build") == "mobile" else FULL_BUILD_PRECISIONS


def check_precision(facts: dict, profile: dict) -> list[str]:
    """A precision neither the device type lists nor its runtime can execute; listed ones always pass."""
    compute = facts["precision"]["compute"]
    preferred = _preferred_precisions(profile)
    if compute in preferred or compute in _runnable_precisions(profile):
        return []
    build = "the mobile package" if profile.get("runtime_build") == "mobile" else "its onnxruntime build"
    return [f"model computes in {compute}, which {build} cannot execute; this device type runs {', '.join(preferred)}"]


def precision_advice(facts: dict, profile: dict) -> list[str]:
    """A precision the runtime executes but the device type does not run well (fp16 on a CPU-only board)."""
    compute = facts["precision"]["compute"]
    preferred = _preferred_precisions(profile)
    if compute in preferred or compute not in _runnable_precisions(profile):
        return []
    return [
        f"advice: model computes in {compute}, which runs here but is not a precision this device type runs well "
        f"({', '.join(preferred)}); expect it slower than in {preferred[0]}"
    ]


def check_file_size(size_bytes: int, profile: dict) -> list[str]:
    max_bytes = profile.get("max_model_bytes")
    if max_bytes and size_bytes > max_bytes:
        return [f"model file is {_mb(size_bytes)}, over this device type's limit of {_mb(max_bytes)}"]
    return []


def check_memory(facts: dict, profile: dict) -> list[str]:
    memory = profile.get("memory_bytes")
    needed = facts["parameters"]["bytes"] * MEMORY_FACTOR
    if memory and needed > memory:
        return [f"needs about {_mb(needed)} of memory; the device has {_mb(memory)}"]
    return []


def check_device(facts: dict, size_bytes: int, profile: dict) -> tuple[bool, list[str]]:
    """Return (compatible, reasons); reasons say what fails, then advise, then note what was assumed.

    Only the failing checks decide ``compatible``: advice and assumptions never make a model incompatible.
    """
    runtime = device_runtime(profile)
    if runtime is None:
        return False, [f"{runtime_label(profile)} is older than any release in the published compatibility table"]
    operator_reasons, operator_notes = check_operators(facts, runtime)
    reasons = [
        *check_written_for(facts, runtime, profile),
        *check_ir_version(facts, runtime),
        *check_opsets(facts, runtime),
        *operator_reasons,
        # With a registry, the node checks know which types run (bf16 on a recent full build does); the precision
        # rule stays for releases without one, and for the mobile package's type reduction.
        *(check_precision(facts, profile) if runtime.registry is None or runtime.mobile else []),
        *check_file_size(size_bytes, profile),
        *check_memory(facts, profile),
    ]
    notes = precision_advice(facts, profile) + list(runtime.notes) + operator_notes
    notes += placement_notes(placement(facts, runtime.registry, runtime.provider))
    return (not reasons), reasons + notes


def placement_for(facts: dict, profile: dict) -> dict | None:
    """Which nodes run on the device type's accelerator (see ``placement``); None for CPU-only device types."""
    runtime = device_runtime(profile)
    return placement(facts, runtime.registry, runtime.provider) if runtime else None
