"""Graph optimization done once, offline, by onnxruntime itself (constant folding, fusions), saved as a file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import onnx
import onnxruntime as ort

from jobs.tooling.common import (
    OPTIMIZATION_LEVELS,
    Param,
    PathLike,
    TransformReport,
    check_params,
    drop_unused_opset_imports,
    is_ort_format,
    open_session,
    session_options,
    write_atomically,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import RUNTIME_SPECIFIC_KEY, iter_graphs

# "basic" keeps standard ONNX ops, so the file runs on any execution provider; "extended" adds onnxruntime
# contrib fusions (com.microsoft domain) that only onnxruntime's CPU/CUDA providers run.
PARAMS = {"level": Param(str, choices=tuple(OPTIMIZATION_LEVELS))}


def optimize_graph(src: PathLike, dst: PathLike, *, level: str = "basic") -> TransformReport:
    check_params(PARAMS, {"level": level})
    with write_atomically(dst) as tmp:
        save_optimized(src, tmp, level)
        stamp = stamp_runtime(tmp, level)
        before, after = _op_counts(src), _op_counts(tmp)
    contrib_ops = sorted(op for op in after if "." in op)
    report = TransformReport(
        "optimize_graph",
        details={"level": level, "nodes_before": sum(before.values()), "nodes_after": sum(after.values())},
    )
    report.details["written_for"] = stamp
    report.log.append(f"{level} optimization: {sum(before.values())} nodes -> {sum(after.values())}")
    if level != "basic":
        report.log.append(
            f"the file is specific to onnxruntime {stamp['release']} ({stamp['provider']}): "
            "the compatibility matrix lets only that release run it"
        )
    if contrib_ops:
        report.details["contrib_ops"] = contrib_ops
        report.log.append(f"uses onnxruntime-only ops {', '.join(contrib_ops)}: the device must run onnxruntime")
    return report


def stamp_runtime(path: PathLike, level: str, provider: str = "CPUExecutionProvider") -> dict:
    """Record in the file which onnxruntime release and provider wrote it offline, at which level; drop the
    imports of domains it does not use.

    Above "basic", onnxruntime's offline output is tied to the release and provider that wrote it (fused contrib
    kernels, layouts); the compatibility check reads this stamp (``modelfile.runtime_specific``).
    """
    stamp = {"release": ort.__version__, "provider": provider, "level": level}
    model = onnx.load(str(path), load_external_data=False)
    drop_unused_opset_imports(model)
    kept = [p for p in model.metadata_props if p.key != RUNTIME_SPECIFIC_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=RUNTIME_SPECIFIC_KEY, value=json.dumps(stamp, sort_keys=True))
    onnx.save(model, str(path))
    return stamp


def save_optimized(src: PathLike, out: PathLike, level: str, *, ort_format: bool = False) -> None:
    """Let onnxruntime optimize ``src`` at ``level`` and write the result to ``out`` (ONNX or ORT format)."""
    if is_ort_format(src):
        raise TransformError(f"{Path(src).name} is already in ORT format; start from its ONNX parent")
    options = session_options(level=level)
    options.optimized_model_filepath = str(out)
    if ort_format:
        options.add_session_config_entry("session.save_model_format", "ORT")
    open_session(src, options=options)


def _op_counts(path: PathLike) -> Counter:
    model = onnx.load(str(path))
    return Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for graph in iter_graphs(model.graph)
        for node in graph.node
    )
