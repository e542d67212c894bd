"""Conversion to onnxruntime's ORT format: a flatbuffer that the small mobile/minimal onnxruntime builds load."""

from __future__ import annotations

import os

from jobs.tooling.common import OPTIMIZATION_LEVELS, Param, PathLike, TransformReport, check_params, write_atomically
from jobs.tooling.graph_opt import save_optimized

PARAMS = {"level": Param(str, choices=tuple(OPTIMIZATION_LEVELS))}


def to_ort(src: PathLike, dst: PathLike, *, level: str = "basic") -> TransformReport:
    """Same as onnxruntime.tools.convert_onnx_models_to_ort: a session saves with session.save_model_format=ORT.

    "basic" (the default) keeps the file portable across execution providers such as NNAPI and CoreML. On x86
    servers a CNN's ORT variant measures slower than its ONNX parent: the parent's session applies the x86-only
    NCHWc layout optimizations at load, which an ORT-format file does not get; ARM devices never get them.
    """
    check_params(PARAMS, {"level": level})
    with write_atomically(dst) as tmp:
        save_optimized(src, tmp, level, ort_format=True)
    report = TransformReport("to_ort", details={"level": level, "format": "ORT"})
    report.log.append(
        f"saved in ORT format after {level} optimization ({os.path.getsize(src)} -> {os.path.getsize(dst)} bytes); "
        "it loads only in onnxruntime; further transforms start from the ONNX parent"
    )
    return report
