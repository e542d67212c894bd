"""The registry of transforms by name, for the Celery task and the API.

Every transform is ``function(src_path, dst_path, **params) -> TransformReport`` and raises TransformError for
permanent failures. Defaults come from the function signatures, constraints from each module's ``PARAMS``, so
neither is written twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.tooling import (
    candidates,
    fp16,
    graph_opt,
    opset,
    ort_format,
    prune,
    quantize,
    runnable,
    svd,
    weight_only,
    weight_storage,
)
from jobs.tooling.common import Param, PathLike, TransformReport, check_params
from jobs.tooling.errors import TransformError


@dataclass(frozen=True)
class Transform:
    name: str
    function: Callable[..., TransformReport]
    params: dict[str, Param]
    description: str
    needs_dataset: bool = False  # the job must pass dataset=<path of an NPZ/CSV file>
    suffix: str = ".onnx"  # for the variant file: a plain InferenceSession(path) on a device spots ORT format by ".ort"
    # Parameters of which exactly one must be given (not None): alternatives that each default to None.
    one_of: tuple[str, ...] = ()
    # Offered to people (API, pages); False for what only a job can parametrize (make_runnable takes a profile).
    public: bool = True

    def _keyword_params(self) -> dict[str, inspect.Parameter]:
        parameters = inspect.signature(self.function).parameters.values()
        return {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}

    @property
    def defaults(self) -> dict[str, Any]:
        return {n: p.default for n, p in self._keyword_params().items() if p.default is not inspect.Parameter.empty}

    @property
    def required(self) -> list[str]:
        return [n for n, p in self._keyword_params().items() if p.default is inspect.Parameter.empty]

    def clean(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults merged with ``params``; TransformError for unknown, missing or invalid parameters.

        The API calls this before it queues a job and the job again before it runs, so a request the transform
        would refuse is a 400, never a job that fails later.
        """
        known = self._keyword_params()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise TransformError(f"{self.name} has no parameter {', '.join(unknown)}; it takes {', '.join(known)}")
        missing = [name for name in self.required if name not in params]
        if missing:
            raise TransformError(f"{self.name} needs {', '.join(missing)}")
        cleaned = {**self.defaults, **params}
        check_params(self.params, cleaned)
        given = [name for name in self.one_of if cleaned.get(name) is not None]
        if self.one_of and len(given) != 1:
            got = f"got {' and '.join(given)}" if given else "got neither"
            raise TransformError(f"{self.name} needs exactly one of {' or '.join(self.one_of)}; {got}")
        return cleaned

    def run(self, src: PathLike, dst: PathLike, **params: Any) -> TransformReport:
        return self.function(src, dst, **self.clean(params))


TRANSFORMS: dict[str, Transform] = {
    transform.name: transform
    for transform in (
        Transform(
            "quantize_dynamic",
            quantize.quantize_dynamic,
            quantize.DYNAMIC_PARAMS,
            "int8 weights, activations quantized at run time",
        ),
        Transform(
            "quantize_static",
            quantize.quantize_static,
            quantize.STATIC_PARAMS,
            "int8 weights and activations (QDQ), calibrated on a dataset",
            needs_dataset=True,
        ),
        Transform("fp16", fp16.convert_fp16, fp16.PARAMS, "float16 weights and compute"),
        Transform("optimize_graph", graph_opt.optimize_graph, graph_opt.PARAMS, "onnxruntime graph optimization"),
        Transform("prune", prune.prune, prune.PARAMS, "zero the smallest weights (smaller download)"),
        Transform("convert_opset", opset.convert_opset, opset.PARAMS, "convert to another ONNX opset"),
        Transform("to_ort", ort_format.to_ort, ort_format.PARAMS, "onnxruntime's ORT format", suffix=".ort"),
        Transform(
            "svd", svd.svd, svd.PARAMS, "low-rank factorization of large MatMul/Gemm weights", one_of=("rank", "energy")
        ),
        *(
            Transform(name, function, params, description, public=name != "make_runnable")
            for name, function, params, description in runnable.RUNNABLE_TRANSFORMS
        ),
        *(Transform(*entry) for entry in weight_only.NEW_TRANSFORMS),
        *(Transform(*entry) for entry in weight_storage.NEW_TRANSFORMS),
        *(Transform(*entry) for entry in candidates.NEW_TRANSFORMS),
    )
}
# What people may ask for by name (the API's choices, the version page's list).
USER_TRANSFORMS: dict[str, Transform] = {name: t for name, t in TRANSFORMS.items() if t.public}


def get_transform(name: str) -> Transform:
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise TransformError(f"unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}") from None


def run_transform(name: str, src: PathLike, dst: PathLike, **params: Any) -> TransformReport:
    return get_transform(name).run(src, dst, **params)
