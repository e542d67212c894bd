"""May this model run on this device type? One row of the compatibility matrix.

The model side is the dict ``inspect.inspect_model`` returns (plus the file
size); the device side is the plain profile dict ``DeviceType.profile()``
returns. For a device on the same onnxruntime release as this server, opset,
IR and kernels come from the live runtime; for other releases the published
compatibility table gives opset and IR limits, and a mobile pre-built package
adds its reduced operator list.

``check_device`` composes small checks, each returning the reasons it fails
(an empty list when it passes): the runtime's limits (``device_runtime``,
``check_ir_version``), ``check_opsets``, ``check_operators`` and the device's
resources (``check_precision``, ``check_file_size``, ``check_memory``).
Advice that does not stop the model running (``precision_advice``) and the
assumptions made follow the reasons as notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import live_runtime, runtimes

# Domains a stock onnxruntime build implements; anything else is a custom op.
STOCK_DOMAINS = {"ai.onnx", "ai.onnx.ml", "com.microsoft"}
# A session holds the weights plus working memory; 2x weights is a floor, not a promise.
MEMORY_FACTOR = 2.0
# Compute precisions an onnxruntime build can execute on its CPU provider (see _runnable_precisions).
FULL_BUILD_PRECISIONS = ("fp32", "fp16", "int8")
MOBILE_PACKAGE_PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class DeviceRuntime:
    """What the device type's onnxruntime accepts, as far as this server can tell."""

    label: str  # e.g. "onnxruntime 1.17", the words every reason uses
    live: bool  # the same release as this server: ask the installed runtime itself
    mobile: bool  # the pre-built mobile package with its reduced operator set
    max_ir: int | None
    max_opsets: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # assumptions made to find the limits, shown after the reasons


def _mb(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def runtime_label(profile: dict) -> str:
    return f"{profile.get('runtime', 'onnxruntime')} {live_runtime.major_minor(profile['runtime_version'])}"


def device_runtime(profile: dict) -> DeviceRuntime | None:
    """The IR and opset limits of the profile's runtime release; None when it is older than the published table."""
    version = live_runtime.major_minor(profile["runtime_version"])
    label = runtime_label(profile)
    mobile = profile.get("runtime_build") == "mobile"
    if version == live_runtime.major_minor(live_runtime.version()):
        return DeviceRuntime(label, True, mobile, live_runtime.max_ir_version(), live_runtime.max_opsets())
    limits = runtimes.runtime_limits(version)
    if limits is None:
        return None
    notes: tuple[str, ...] = ()
    if not limits.get("exact", True):
        notes = (f"{label} is not in the published table; limits of the nearest older release used",)
    max_opsets = {k: v for k, v in limits.items() if k not in ("ir_version", "exact", "runtime")}
    return DeviceRuntime(label, False, mobile, limits.get("ir_version"), max_opsets, notes)


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


def check_operators(facts: dict, runtime: DeviceRuntime) -> list[str]:
    """Operators the device's build has no kernel for: custom domains always; the mobile package's reduced set;
    and, where the server can ask (its own release, or contrib ops), the live kernel registry."""
    mobile_ops = runtimes.mobile_operator_set() if runtime.mobile else None
    missing: list[str] = []
    for entry in facts["operators"]:
        domain, op = entry["domain"], entry["op"]
        opset = facts["opset_imports"].get(domain, 1)
        label = op if domain == "ai.onnx" else f"{domain}.{op}"
        if domain not in STOCK_DOMAINS:
            missing.append(f"{label} (custom domain)")
        elif mobile_ops is not None:
            if not runtimes.mobile_supports(mobile_ops, domain, op, opset):
                missing.append(label)
        elif runtime.live or domain == "com.microsoft":
            if not live_runtime.has_kernel(domain, op, opset):
                missing.append(label)
    if not missing:
        return []
    build = "mobile package" if runtime.mobile else "build"
    return [f"operator(s) not in {runtime.label} {build}: {', '.join(sorted(set(missing)))}"]


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
    reasons = [
        *check_ir_version(facts, runtime),
        *check_opsets(facts, runtime),
        *check_operators(facts, runtime),
        *check_precision(facts, profile),
        *check_file_size(size_bytes, profile),
        *check_memory(facts, profile),
    ]
    return (not reasons), reasons + precision_advice(facts, profile) + list(runtime.notes)
