"""Which transforms the optimize-for-device job tries on a model for a device type, and the "pipeline" transform
that runs several in a row.

``candidate_transforms`` is a pure function of the device type's profile and the model's facts (``inspect_model``):
each candidate costs a verification and a paired latency measurement, so it proposes only what can apply to this
model and is worth trying on this target, about ten at most.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from jobs.tooling import live_runtime, runtimes
from jobs.tooling.common import FP16_SENSITIVE_OPS, Param, PathLike, TransformReport, write_atomically
from jobs.tooling.errors import TransformError
from jobs.tooling.weight_only import DEFAULT_MIN_WEIGHT_ELEMENTS
from jobs.tooling.weight_storage import DEFAULT_MIN_ELEMENTS as MIN_STORED_ELEMENTS

# Operator types dynamic quantization gives an integer kernel (onnxruntime's IntegerOpsRegistry less Transpose,
# which is only quantized after one of these).
_DYNAMIC_QUANTIZABLE = frozenset({"MatMul", "Conv", "Gather", "LSTM", "Attention", "EmbedLayerNormalization"})
_STATIC_QUANTIZABLE = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Gather"})
_PRUNABLE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})  # prune.WEIGHT_INPUTS
_FACTORABLE = frozenset({"MatMul", "Gemm"})  # svd
_FP16_SENSITIVE = frozenset(FP16_SENSITIVE_OPS)
_X86 = ("x86_64", "amd64", "x86", "x64")
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider")

# Rewrites that keep every output bit for bit, or up to float reassociation (graph optimization); everything else,
# including transforms this list does not know yet, counts as lossy and needs real inputs to be chosen.
LOSSLESS_TRANSFORMS = frozenset(
    {
        "optimize_graph",
        "to_ort",
        "convert_opset",
        "make_runnable",
        "lower_ir",
        "remove_noops",
        "zipmap_to_tensor",
        "replace_ml_ops",
        "fold_batchnorm",
    }
)


def candidate_transforms(profile: dict, facts: dict, *, has_dataset: bool, has_samples: bool) -> list[tuple[str, dict]]:
    """(transform, params) pairs worth trying for the device type ``profile`` on the model described by ``facts``.

    ``has_dataset``/``has_samples``: a labeled dataset or real sample inputs is at hand, so static quantization can
    calibrate on real activations.
    """
    ops = _operator_types(facts)
    precisions = profile.get("precisions") or []
    int8 = not precisions or "int8" in precisions
    x86 = str(profile.get("cpu_arch", "")).lower() in _X86
    gpu = profile.get("execution_provider") in _GPU_PROVIDERS
    candidates: list[tuple[str, dict]] = [("optimize_graph", {"level": "extended"})]

    dynamic_ops = ops & _DYNAMIC_QUANTIZABLE
    if "Gemm" in ops:
        dynamic_ops.add("MatMul")  # the dynamic quantizer rewrites Gemm as MatMul (+ Add) before quantizing
    if int8 and dynamic_ops:
        # The library default first (its very settings: no pre-processing), the variant every other one is compared
        # with; the console's clean-up after quantizing keeps it at most the library's size.
        candidates.append(("quantize_dynamic", {"per_channel": False, "preprocess": False}))
        slow_int8_conv = x86 and "Conv" in dynamic_ops
        if slow_int8_conv:
            # On x86 without VNNI, ConvInteger with int8 weights (U8S8) falls off the fast path: we measured it 7.7x
            # slower than float Conv on an AVX2 CPU, and uint8 weights (U8U8) as fast as float at the same size.
            # So uint8 weights here, and no per-channel int8 variant (the same slow kernel).
            candidates.append(("quantize_dynamic", {"per_channel": False, "weight_type": "uint8"}))
        elif not gpu:
            candidates.append(("quantize_dynamic", {"per_channel": True}))
        if not gpu and "MatMul" in dynamic_ops and dynamic_ops - {"MatMul"}:
            # MatMulInteger is fast everywhere; leave Conv/Gather/LSTM in float ("MatMul" reaches Gemm layers too).
            candidates.append(("quantize_dynamic", {"per_channel": False, "op_types": ["MatMul"]}))

    if int8 and (has_dataset or has_samples) and ops & _STATIC_QUANTIZABLE:
        candidates.append(("quantize_static", {"calibrate_method": "minmax"}))
        # onnxruntime's CPU guidance (quantize_static's docstring): uint8 activations with int8 weights on x86, 7-bit
        # weights (reduce_range) where the CPU may lack VNNI; int8 for both on ARM and GPUs.
        tuned: dict[str, Any] = {
            "calibrate_method": "minmax",
            "quant_format": "qdq",
            "per_channel": True,
            "activation_type": "uint8" if x86 else "int8",
            "weight_type": "int8",
            "reduce_range": x86,
        }
        candidates.append(("quantize_static", tuned))

    if "MatMul" in ops and _matmul_weights_are_large(facts):
        candidates.append(("weight_only", {"bits": 4, "block_size": 32}))

    if ops & _PRUNABLE:
        candidates.append(("prune", {"sparsity": 0.3}))
    if ops & _FACTORABLE:
        candidates.append(("svd", {"energy": 0.95}))
        if int8:
            # Factorize, then quantize the thin factors: smaller than either alone. The factors are MatMuls, so
            # MatMul-only dynamic quantization reaches them without touching Conv.
            steps = [["svd", {"energy": 0.95}], ["quantize_dynamic", {"op_types": ["MatMul"]}]]
            candidates.append(("pipeline", {"steps": steps}))

    if (facts.get("parameters") or {}).get("count", 0) >= MIN_STORED_ELEMENTS:
        # A smaller download at the parent's speed on any CPU: weights stored small, restored to float32 when the
        # runtime loads the model. fp16 storage where int8's rounding costs too much; the mobile package has no
        # float16 kernel, not even Cast.
        candidates.append(("compress_weights", {"precision": "int8"}))
        if profile.get("runtime_build") != "mobile":
            candidates.append(("compress_weights", {"precision": "fp16"}))

    if "fp16" in precisions:
        candidates.append(("fp16", {"keep_io_types": True}))  # numerically sensitive ops kept in float32
        if gpu and ops & _FP16_SENSITIVE:
            # On a GPU the Casts around kept ops cost; let measurement and verification weigh all-fp16.
            candidates.append(("fp16", {"keep_io_types": True, "keep_float32_ops": []}))

    if profile.get("runtime_build") == "mobile":
        candidates.append(("to_ort", {"level": "basic"}))  # mobile packages load the ORT format most cheaply
    target_opset = _opset_to_convert_to(profile, facts)
    if target_opset is not None:
        candidates.append(("convert_opset", {"target_opset": target_opset}))
    return candidates


def is_lossy(name: str, params: dict) -> bool:
    """Whether the transform can change the model's outputs beyond float rounding; a pipeline is lossy if any step is."""
    if name == "pipeline":
        return any(is_lossy(step_name, step_params) for step_name, step_params in params.get("steps", []))
    return name not in LOSSLESS_TRANSFORMS


def _operator_types(facts: dict) -> set[str]:
    """Operator types of the default ONNX domain (contrib and ML ops are not quantized or factorized)."""
    return {entry["op"] for entry in facts.get("operators", []) if entry.get("domain") in ("ai.onnx", "")}


def _matmul_weights_are_large(facts: dict) -> bool:
    """Whether some MatMul weight is likely to reach weight-only quantization's threshold.

    The facts hold no per-weight sizes; MatMul's multiply-adds per input row bound its weights from above (with the
    other dimensions at 1, a MatMul by a K x N weight costs K*N), and the parameter count bounds them too. A false
    positive costs one transform that refuses at once.
    """
    matmul_macs = (facts.get("macs") or {}).get("by_op", {}).get("MatMul", 0)
    parameters = (facts.get("parameters") or {}).get("count", 0)
    return min(matmul_macs, parameters) >= DEFAULT_MIN_WEIGHT_ELEMENTS


def _opset_to_convert_to(profile: dict, facts: dict) -> int | None:
    same_as_server = live_runtime.major_minor(profile.get("runtime_version", "")) == live_runtime.major_minor(
        live_runtime.version()
    )
    limits = None if same_as_server else runtimes.runtime_limits(profile.get("runtime_version", ""))
    model_opset = facts.get("opset_imports", {}).get("ai.onnx")
    if limits and model_opset and limits.get("ai.onnx") and model_opset > limits["ai.onnx"]:
        return int(limits["ai.onnx"])
    return None


PIPELINE_PARAMS = {"steps": Param((list, tuple))}


def run_pipeline(
    src: PathLike, dst: PathLike, *, steps: list[list[Any]], dataset: PathLike | None = None
) -> TransformReport:
    """Run ``steps`` ([[transform, params], ...]) in order, each on the previous one's output; one report with every
    step's log and details. ``dataset`` goes to the steps that need one (static quantization)."""
    from jobs.tooling.transforms import get_transform  # the registry imports this module

    planned = _plan(steps, dataset, get_transform)
    report = TransformReport("pipeline", details={"steps": []})
    with tempfile.TemporaryDirectory(prefix="mdc-pipeline-") as workdir, write_atomically(dst) as tmp:
        current = Path(src)
        for index, (name, transform, params) in enumerate(planned, start=1):
            out = tmp if index == len(planned) else Path(workdir) / f"step{index}-{name}.onnx"
            try:
                step_report = transform.function(current, out, **params)
            except TransformError as exc:
                raise TransformError(f"pipeline step {index} ({name}) failed: {exc}") from exc
            public = {key: value for key, value in params.items() if key != "dataset"}
            report.details["steps"].append({"transform": name, "params": public, "details": step_report.details})
            report.log.extend(f"step {index} ({name}): {line}" for line in step_report.log or ["done"])
            current = out
    return report


def _plan(steps: Any, dataset: PathLike | None, get_transform) -> list[tuple[str, Any, dict]]:
    """Every step checked before any runs, so a bad last step does not cost the first ones."""
    if not isinstance(steps, (list, tuple)) or not steps:
        raise TransformError("parameter steps must be a non-empty list of [transform, params] pairs")
    planned = []
    for index, step in enumerate(steps, start=1):
        is_pair = isinstance(step, (list, tuple)) and len(step) == 2
        if not is_pair or not isinstance(step[0], str) or not isinstance(step[1], dict):
            raise TransformError(f"pipeline step {index} must be [transform, params], got {step!r}")
        name, params = step[0], dict(step[1])
        if name == "pipeline":
            raise TransformError(f"pipeline step {index} is itself a pipeline; list its steps instead")
        transform = get_transform(name)
        if transform.suffix != ".onnx":
            raise TransformError(
                f"pipeline step {index} ({name}) writes another file format than ONNX; run it on its own, last"
            )
        params.pop("dataset", None)  # datasets come from the job, never from the parameters
        if transform.needs_dataset:
            if dataset is None:
                raise TransformError(f"pipeline step {index} ({name}) needs a dataset and the pipeline got none")
            params["dataset"] = str(dataset)
        try:
            cleaned = transform.clean(params)
        except TransformError as exc:
            raise TransformError(f"pipeline step {index} ({name}): {exc}") from exc
        planned.append((name, transform, cleaned))
    return planned


NEW_TRANSFORMS = (("pipeline", run_pipeline, PIPELINE_PARAMS, "several transforms in a row"),)
