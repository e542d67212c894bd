"""May this model run on this device type? One row of the compatibility matrix.

The model side is the dict ``inspect.inspect_model`` returns (plus the file
size); the device side is the plain profile dict ``DeviceType.profile()``
returns. For a device on the same onnxruntime release as this server, opset,
IR and kernels come from the live runtime; for other releases the published
compatibility table gives opset and IR limits, and a mobile pre-built package
adds its reduced operator list.
"""

from __future__ import annotations

from . import live_runtime, runtimes

# Domains a stock onnxruntime build implements; anything else is a custom op.
STOCK_DOMAINS = {"ai.onnx", "ai.onnx.ml", "com.microsoft"}
# A session holds the weights plus working memory; 2x weights is a floor, not a promise.
MEMORY_FACTOR = 2.0


def _mb(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def check_device(facts: dict, size_bytes: int, profile: dict) -> tuple[bool, list[str]]:
    """Return (compatible, reasons); reasons say what fails, or note what was assumed."""
    reasons: list[str] = []
    notes: list[str] = []
    runtime_version = live_runtime.major_minor(profile["runtime_version"])
    runtime_label = f"{profile.get('runtime', 'onnxruntime')} {runtime_version}"
    is_live = runtime_version == live_runtime.major_minor(live_runtime.version())
    mobile = profile.get("runtime_build") == "mobile"

    if is_live:
        max_opsets = live_runtime.max_opsets()
        max_ir = live_runtime.max_ir_version()
    else:
        limits = runtimes.runtime_limits(runtime_version)
        if limits is None:
            return False, [f"{runtime_label} is older than any release in the published compatibility table"]
        if not limits.get("exact", True):
            notes.append(f"{runtime_label} is not in the published table; limits of the nearest older release used")
        max_opsets = {k: v for k, v in limits.items() if k not in ("ir_version", "exact")}
        max_ir = limits.get("ir_version")

    if max_ir is not None and facts["ir_version"] > max_ir:
        reasons.append(f"IR version {facts['ir_version']} is newer than {runtime_label} loads (up to {max_ir})")

    for domain, opset in sorted(facts["opset_imports"].items()):
        if domain not in STOCK_DOMAINS:
            continue
        limit = max_opsets.get(domain)
        if limit is not None and opset > limit:
            reasons.append(f"opset {opset} of {domain} is too new for {runtime_label} (supports up to {limit})")

    mobile_ops = runtimes.mobile_operator_set() if mobile else None
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
        elif is_live or domain == "com.microsoft":
            if not live_runtime.has_kernel(domain, op, opset):
                missing.append(label)
    if missing:
        build = "mobile package" if mobile else "build"
        reasons.append(f"operator(s) not in {runtime_label} {build}: {', '.join(sorted(set(missing)))}")

    compute = facts["precision"]["compute"]
    supported = profile.get("precisions") or ["fp32"]
    if compute not in supported:
        reasons.append(f"model computes in {compute}; this device type runs {', '.join(supported)}")

    max_bytes = profile.get("max_model_bytes")
    if max_bytes and size_bytes > max_bytes:
        reasons.append(f"model file is {_mb(size_bytes)}, over this device type's limit of {_mb(max_bytes)}")
    memory = profile.get("memory_bytes")
    needed = facts["parameters"]["bytes"] * MEMORY_FACTOR
    if memory and needed > memory:
        reasons.append(f"needs about {_mb(needed)} of memory; the device has {_mb(memory)}")

    return (not reasons), reasons + notes
