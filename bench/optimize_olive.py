"""Olive's automatic optimization on a bench model, as the peer tool a user would try instead.

Olive (olive-ai, the ``bench`` extra) runs here as its workflow: the ONNX model in, its OnnxQuantization pass
searching its own space (dynamic or static, QOperator or QDQ, per-channel, reduce-range, calibration...) with the
bench's sample inputs as calibration data, and an evaluator holding the same accuracy goal as the console's
decision: top-1 accuracy on labels at most 1 point below the parent's (``max-degradation``), latency second.
Models without labels are not run (see NO_FIDELITY_GOAL), nor models with an output that is not a tensor (see
NOT_TENSORS). The bench then measures Olive's best candidate exactly as it measures the library default.
``olive optimize`` (its CLI) is not used: for an ONNX model it calibrates on a Hugging Face dataset downloaded at
run time and takes no accuracy goal.

olive-ai 0.13.0 runs here only in the form ``workflow_config`` writes, each point for a defect of that release:
- the evaluator names its type (``OnnxEvaluator``, what Olive picks for an ONNX model anyway): Olive looks for
  resource paths in every dict of its config, and an evaluator whose ``type`` is None reaches
  ``CaseInsensitiveEnum._missing_(None)`` (``None.lower()``, config_utils.py:269), which pydantic >= 2.14 no longer
  turns into a validation error;
- the samples are a plain ``DataContainer`` (``HuggingfaceContainer`` tokenizes them as text), one row per item
  without a batch axis (its data loader adds it);
- the search is capped by ``max_iter``: Olive serializes the sampler's config as its base class, so
  ``sampler_config`` (``max_samples``, ``seed``) arrives empty and the sampler would walk the whole space (192
  points) with its default seed.
A point whose quantization config equals an earlier one fails in Olive (``FootprintNode.update`` sets the alias
``model_config``: '"FootprintNode" object has no field "model_config"'); Olive logs it and goes on, and that model
was already evaluated, so the search loses nothing (with its default seed the first points do not repeat).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DATASET = "bench_npz_samples"
POST_PROCESS = "bench_top1"
MAX_SAMPLES = 8  # points of Olive's search space it draws per model (the invalid ones it skips included)
BUDGET_POINTS = 1.0
# Olive 0.13.0 cannot take a custom metric in a workflow: its run config fails to serialize a custom metric
# (Metric.serialize_backend calls model_dump on the backend its own validator set to None), so its goals can only
# be its built-in metrics. Of those only top-1 accuracy on labels matches the console's budget.
NO_FIDELITY_GOAL = (
    "no labels, and olive-ai 0.13.0 cannot hold a fidelity goal: a custom metric crashes its workflow "
    "(Metric.serialize_backend on backend None) and no built-in metric measures agreement with the parent"
)
NOT_TENSORS = (
    "an output is not a tensor ({}): olive-ai 0.13.0 cannot read its signature "
    "(KeyError 0 in olive/common/onnx_io.py:44, get_io_config), logs that and makes no model"
)


class OliveFailsOnModel(Exception):
    """Olive cannot run on this model (or finds nothing) for a reason of the model's: the others still run."""


def _register_dataset() -> None:
    """The bench's NPZ samples as an Olive dataset: (inputs by name, label) per row, labels zero when absent."""
    from olive.data.registry import Registry

    @Registry.register_dataset(DATASET)
    def npz_samples(path: str, input_names: list[str], max_rows: int = 64):
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in input_names}
            labels = npz["labels"] if "labels" in npz.files else np.zeros(len(next(iter(arrays.values()))), np.int64)
        rows = min(max_rows, len(labels))
        return [({name: arrays[name][i] for name in input_names}, labels[i]) for i in range(rows)]

    @Registry.register_post_process(POST_PROCESS)
    def top1(output_data, **kwargs):
        """The class of the first output with a class axis (Olive hands a dict when a model has several)."""
        import torch

        outputs = list(output_data.values()) if isinstance(output_data, dict) else [output_data]
        scores = next(o for o in outputs if torch.is_tensor(o) and o.is_floating_point() and o.dim() == 2)
        return torch.argmax(scores, dim=-1)


class OliveRunner:
    """``available`` and ``note`` say whether Olive can run here and, after a run, what happened."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.errors: dict[str, str] = {}
        try:
            import olive  # noqa: F401
            from olive.workflows import run  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any import failure means "not run here", said once
            self.available = False
            self.note = (
                f"not run: olive-ai does not import here ({type(exc).__name__}: {exc}); pip install -e '.[bench]'"
            )
            return
        _register_dataset()
        self.available = True
        self.note = "olive-ai installed; not run yet"

    def optimize(self, model, workdir: Path, measure: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """Olive's best candidate for ``model`` measured like the library default (``measure(model, path)``), or
        ``{"error": why}``."""
        output_dir = workdir / "olive"
        try:
            best = self._run(model, output_dir)
            figures = measure(model, best)
        except OliveFailsOnModel as exc:
            self.errors[model.name] = str(exc)
            self._summarize()
            return {"error": self.errors[model.name]}
        except Exception as exc:  # noqa: BLE001 - Olive's failure is a figure of the comparison, not a crash
            # A workflow that fails inside Olive fails the same way on every model: say why once, run it no more.
            self.available = False
            self.errors[model.name] = f"its workflow failed ({_where(exc)})"
            self._summarize()
            return {"error": self.errors[model.name]}
        self._summarize(ran=model.name)
        return figures

    def _run(self, model, output_dir: Path) -> Path:
        import onnx
        from olive.workflows import run as olive_run

        if not model.has_labels:
            raise OliveFailsOnModel(NO_FIDELITY_GOAL)
        graph = onnx.load(str(model.path), load_external_data=False).graph
        not_tensors = [o.name for o in graph.output if not o.type.HasField("tensor_type")]
        if not_tensors:
            raise OliveFailsOnModel(NOT_TENSORS.format(", ".join(not_tensors)))
        input_names = [i.name for i in graph.input]
        with np.load(model.decide, allow_pickle=False) as npz:
            classes = int(npz["labels"].max()) + 1
        config = workflow_config(model, input_names, classes, output_dir)
        logging.getLogger("olive").setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()):
            outcome = olive_run(config)
        best = outcome.get_best_candidate() if outcome is not None else None
        path = Path(best.model_path) if best is not None and best.model_path else None
        if path is not None and path.is_dir():
            path = next(iter(sorted(path.glob("*.onnx"))), None)
        if path is None or not path.is_file():
            # Olive logs a failure inside its run and returns no model: tell that apart from an empty search.
            nodes = outcome.footprint.nodes if outcome is not None else {}
            made = sum(1 for node in nodes.values() if node.parent_model_id is not None)
            if not made:
                raise OliveFailsOnModel("Olive made no model (it logs its own failure inside its run and goes on)")
            raise OliveFailsOnModel(f"none of the {made} models Olive's search made met the accuracy goal")
        return path

    def _summarize(self, ran: str | None = None) -> None:
        if ran:
            self.ran = [*getattr(self, "ran", []), ran]
        ran_on = getattr(self, "ran", [])
        failed = "; ".join(f"{name}: {why}" for name, why in self.errors.items())
        self.note = (
            f"olive-ai's OnnxQuantization search ({MAX_SAMPLES} points, same samples and 1-point goal) ran on "
            f"{', '.join(ran_on) or 'no model'}" + (f"; failed on {failed}" if failed else "")
        )


def workflow_config(model, input_names: list[str], classes: int, output_dir: Path) -> dict[str, Any]:
    """Olive's run config for ``model``: its quantization search under the accuracy goal, on the bench's samples."""
    data_config = {
        "name": "samples",
        "type": "DataContainer",
        "load_dataset_config": {
            "type": DATASET,
            "params": {"path": str(model.decide), "input_names": input_names},
        },
        "dataloader_config": {"batch_size": 1},
        "post_process_data_config": {"type": POST_PROCESS},
    }
    config = {
        "input_model": {"type": "ONNXModel", "model_path": str(model.path)},
        "systems": {
            "local_system": {
                "type": "LocalSystem",
                "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}],
            }
        },
        "data_configs": [data_config],
        "evaluators": {
            "goal": {
                "type": "OnnxEvaluator",  # not None: see the module's docstring
                "metrics": [
                    {
                        "name": "accuracy",
                        "type": "accuracy",
                        "data_config": "samples",
                        "sub_types": [
                            {
                                "name": "accuracy_score",
                                "priority": 1,
                                "goal": {"type": "max-degradation", "value": BUDGET_POINTS / 100},
                                "metric_config": {"task": "multiclass", "num_classes": classes},
                            }
                        ],
                    },
                    {
                        "name": "latency",
                        "type": "latency",
                        "data_config": "samples",
                        "sub_types": [{"name": "avg", "priority": 2}],
                    },
                ],
            }
        },
        "passes": {"quantization": {"type": "OnnxQuantization", "data_config": "samples"}},
        "search_strategy": {
            "execution_order": "joint",
            "sampler": "tpe",
            "sampler_config": {"max_samples": MAX_SAMPLES, "seed": 0},  # dropped by olive-ai 0.13.0, see above
            "max_iter": MAX_SAMPLES - 1,  # it stops once more than max_iter points were drawn
        },
        "evaluator": "goal",
        "host": "local_system",
        "target": "local_system",
        "output_dir": str(output_dir),
        "cache_dir": str(output_dir / "cache"),
        "log_severity_level": 3,
    }
    return config


def _where(exc: Exception) -> str:
    """The exception and the innermost Olive frame that raised it."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/olive/" in f.filename]
    where = f" in {frames[-1].filename.split('/olive/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:160]}{where}"
