"""Opset conversion with onnx.version_converter, for device types whose runtime supports older opsets only."""

from __future__ import annotations

import re

import onnx
from onnx import version_converter

from jobs.tooling.common import Param, PathLike, TransformReport, check_params, load_model, save_model, write_atomically
from jobs.tooling.errors import TransformError

PARAMS = {"target_opset": Param(int, minimum=1)}
_NO_ADAPTER = re.compile(r"No Adapter (?:From|To) Version \$?(\d+) for (\w+)")


def convert_opset(src: PathLike, dst: PathLike, *, target_opset: int) -> TransformReport:
    check_params(PARAMS, {"target_opset": target_opset})
    model = load_model(src)
    current = default_opset(model)
    if target_opset == current:
        raise TransformError(f"the model is already at opset {current}; nothing to convert")
    highest = onnx.defs.onnx_opset_version()
    if target_opset > highest:
        raise TransformError(f"opset {target_opset} is newer than the {highest} this onnx {onnx.__version__} knows")
    try:
        converted = version_converter.convert_version(model, target_opset)
        onnx.checker.check_model(converted)
    except Exception as exc:
        raise TransformError(_explain(exc, current, target_opset)) from exc
    with write_atomically(dst) as tmp:
        save_model(converted, tmp)
    report = TransformReport("convert_opset", details={"from_opset": current, "to_opset": target_opset})
    report.log.append(f"converted the default ONNX domain from opset {current} to {target_opset}")
    other_domains = sorted({o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx")})
    if other_domains:
        report.log.append(f"left {', '.join(other_domains)} as they were: the converter handles the ONNX domain only")
    return report


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _explain(exc: Exception, current: int, target: int) -> str:
    found = _NO_ADAPTER.search(str(exc))
    direction = "down" if target < current else "up"
    if found:
        version, op_type = found.groups()
        reason = f"onnx has no adapter to move {op_type} (opset {version}) {direction} to opset {target}"
    else:
        reason = f"onnx's version converter failed: {type(exc).__name__}: {str(exc).strip()[:300]}"
    hint = f"re-export the model at opset {target} from its training framework" if target < current else ""
    return f"cannot convert from opset {current} to {target}: {reason}" + (f"; {hint}" if hint else "")
