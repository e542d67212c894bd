"""Benchmark of the "optimize for the device" transforms on three reference models built offline.

    python bench/optimize.py [--quick] [--json]

Models: the scikit-learn digits classifier (an MLP trained now on the bundled data, held-out test split for
accuracy), a wide MLP with numpy-made weights, and a small CNN with seeded weights. Every transform runs on each;
the quantizations also run through onnxruntime's quantizer called directly on the same files, for comparison.

Ratios are variant / parent. Latency: medians at 1 intra-op thread, batch 1; the ratio is the median over 5
rounds alternating parent and variant in this process. accuracy_delta (points, negative = worse): digits uses
test-split accuracy; the synthetic models have no labels, so it is -(100 - top-1 agreement with the parent in %)
on generated inputs. --json prints {"rows": [...]} with the JSON_KEYS below; a transform that refuses
(TransformError) has null figures and its message in "error".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat
from onnxruntime.quantization import quantize_dynamic as library_quantize_dynamic
from onnxruntime.quantization import quantize_static as library_quantize_static

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a checkout without an editable install

from jobs.tooling import reference_models  # noqa: E402
from jobs.tooling.benchmark import download_size, paired_latency_ratio  # noqa: E402
from jobs.tooling.choose import choose_variant  # noqa: E402
from jobs.tooling.errors import TransformError  # noqa: E402
from jobs.tooling.evaluate import agreement, evaluate, verify_variant  # noqa: E402
from jobs.tooling.quantize import CALIBRATE_METHODS  # noqa: E402
from jobs.tooling.transforms import TRANSFORMS, run_transform  # noqa: E402

OPSET = 17
# (row label, registry name, parameters); "dataset" is filled in per model with its calibration file.
PLAN: list[tuple[str, str, dict[str, Any]]] = [
    ("quantize_dynamic", "quantize_dynamic", {}),
    ("quantize_dynamic/per_channel", "quantize_dynamic", {"per_channel": True}),
    ("quantize_static/minmax", "quantize_static", {"calibrate_method": "minmax"}),
    ("quantize_static/entropy", "quantize_static", {"calibrate_method": "entropy"}),
    ("fp16", "fp16", {}),
    ("optimize_graph/basic", "optimize_graph", {"level": "basic"}),
    ("optimize_graph/extended", "optimize_graph", {"level": "extended"}),
    ("prune/0.5", "prune", {"sparsity": 0.5}),
    ("convert_opset/16", "convert_opset", {"target_opset": 16}),
    ("convert_opset/13", "convert_opset", {"target_opset": 13}),  # no down-adapter for ops changed in 14+: fails
    ("to_ort", "to_ort", {}),
    ("svd/energy=0.9", "svd", {"energy": 0.9}),
    ("svd/energy=0.99", "svd", {"energy": 0.99}),
]


@dataclass
class Reference:
    name: str
    path: Path
    calibration: Path  # NPZ of inputs for static quantization
    test_set: Path | None  # labelled NPZ, digits only


def build_digits(workdir: Path) -> Reference:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    features, labels = load_digits(return_X_y=True)
    features = (features / 16).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(features, labels, test_size=0.25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(512,), max_iter=200, random_state=0).fit(x_train, y_train)
    model = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    path = workdir / "digits.onnx"
    onnx.save(model, str(path))
    np.savez(workdir / "digits_calibration.npz", input=x_train[:256])
    np.savez(workdir / "digits_test.npz", input=x_test, labels=y_test.astype(np.int64))
    return Reference("digits", path, workdir / "digits_calibration.npz", workdir / "digits_test.npz")


def _save_synthetic(workdir: Path, name: str, model: onnx.ModelProto, input_shape: tuple[int, ...]) -> Reference:
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = workdir / f"{name}.onnx"
    onnx.save(model, str(path))
    calibration = workdir / f"{name}_calibration.npz"
    # Standard normal, as inputs.generate_inputs feeds the agreement check.
    rows = np.random.default_rng(1).standard_normal((256, *input_shape)).astype(np.float32)
    np.savez(calibration, x=rows)
    return Reference(name, path, calibration, None)


def build_wide_mlp(workdir: Path, sizes: tuple[int, ...] = (256, 1024, 1024, 10)) -> Reference:
    return _save_synthetic(workdir, "wide_mlp", reference_models.mlp(sizes, low_rank=True), (sizes[0],))


def build_cnn(workdir: Path) -> Reference:
    return _save_synthetic(workdir, "cnn", reference_models.cnn(), (1, 28, 28))


class _NpzReader(CalibrationDataReader):
    """What a user of onnxruntime's quantizer writes by hand: the calibration file, one row per call."""

    def __init__(self, path: Path):
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        count = len(next(iter(arrays.values())))
        self._rows = iter([{name: array[i : i + 1] for name, array in arrays.items()} for i in range(count)])

    def get_next(self) -> dict | None:
        return next(self._rows, None)


def library_variant(reference: Reference, transform: str, params: dict[str, Any], dst: Path) -> Path | None:
    """The same quantization through onnxruntime's own API with the same settings and no console preparation."""
    if transform == "quantize_dynamic":
        library_quantize_dynamic(str(reference.path), str(dst), per_channel=params.get("per_channel", False))
    elif transform == "quantize_static":
        library_quantize_static(
            str(reference.path),
            str(dst),
            _NpzReader(reference.calibration),
            quant_format=QuantFormat.QDQ,
            calibrate_method=CALIBRATE_METHODS[params["calibrate_method"]],
        )
    else:
        return None
    return dst


def quality(reference: Reference, variant: Path, rows: int) -> float:
    """Accuracy in points on the test split (digits) or top-1 agreement with the parent in points (synthetic)."""
    if reference.test_set is not None:
        return 100.0 * evaluate(variant, reference.test_set)["accuracy"]
    return 100.0 * agreement(reference.path, variant, rows=rows)["top1_agreement"]


def bench_reference(reference: Reference, workdir: Path, runs: int, warmup: int, rows: int) -> list[dict[str, Any]]:
    parent_size, parent_download = reference.path.stat().st_size, download_size(reference.path)
    parent_quality = quality(reference, reference.path, rows)
    results = []
    for label, transform, params in PLAN:
        row: dict[str, Any] = {
            "model": reference.name,
            "transform": label,
            "parent": f"{parent_size / 1024:.0f} KiB"
            + (f", test accuracy {parent_quality:.1f}%" if reference.test_set else ", no labels"),
        }
        params = {**params, "dataset": reference.calibration} if TRANSFORMS[transform].needs_dataset else params
        dst = workdir / f"{reference.name}-{label.replace('/', '-')}{TRANSFORMS[transform].suffix}"
        start = time.perf_counter()
        try:
            run_transform(transform, reference.path, dst, **params)
        except TransformError as exc:
            results.append({**row, "seconds": round(time.perf_counter() - start, 3), "error": str(exc)})
            continue
        row["seconds"] = round(time.perf_counter() - start, 3)
        variant_quality = quality(reference, dst, rows)
        row |= {
            "size_ratio": dst.stat().st_size / parent_size,
            "download_size_ratio": download_size(dst) / parent_download,
            "latency_ratio": paired_latency_ratio(reference.path, dst, runs=runs, warmup=warmup),
            "accuracy_delta": variant_quality - parent_quality,
            "vs_library_size_ratio": None,
            "vs_library_accuracy_delta": None,
            "verified": verify_variant(reference.path, dst, reference.test_set)["verified"],
        }
        library = library_variant(reference, transform, params, workdir / f"library-{dst.name}")
        if library is not None:
            row["vs_library_size_ratio"] = dst.stat().st_size / library.stat().st_size
            row["vs_library_accuracy_delta"] = variant_quality - quality(reference, library, rows)
        results.append(row)
    return results


JSON_KEYS = (
    "model",
    "transform",
    "size_ratio",
    "download_size_ratio",
    "latency_ratio",
    "accuracy_delta",
    "seconds",
    "vs_library_size_ratio",
    "vs_library_accuracy_delta",
    "error",  # null, or why the transform refused (TransformError message); the figures are then null
)


def _cell(value: Any, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def print_table(rows: list[dict[str, Any]], runs: int) -> None:
    columns: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("model", lambda r: r["model"]),
        ("transform", lambda r: r["transform"]),
        ("size", lambda r: _cell(r.get("size_ratio"), 3)),
        ("download", lambda r: _cell(r.get("download_size_ratio"), 3)),
        ("latency", lambda r: _cell(r.get("latency_ratio"))),
        ("acc_delta", lambda r: _cell(r.get("accuracy_delta"), signed=True)),
        ("seconds", lambda r: _cell(r.get("seconds"))),
        ("vs_lib_size", lambda r: _cell(r.get("vs_library_size_ratio"), 3)),
        ("vs_lib_acc", lambda r: _cell(r.get("vs_library_accuracy_delta"), signed=True)),
        ("verified", lambda r: f"failed: {r['error']}" if "error" in r else _cell(r.get("verified"))),
    ]
    table = [[title for title, _ in columns]] + [[render(row) for _, render in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns) - 1)]
    print(
        f"Ratios are variant / parent. latency: {runs} runs per model at 1 thread, batch 1, in 5 rounds alternating "
        "with the parent. acc_delta in points: "
        "digits = test-split accuracy; wide_mlp and cnn = top-1 agreement with the parent on generated inputs "
        "(no labels). vs_lib: the console's variant against onnxruntime's quantizer called directly."
    )
    for line in table:
        # text columns left-aligned, figures right-aligned, the last (verified / error) unpadded
        padded = [
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line[:-1], widths, strict=True))
        ]
        print("  ".join([*padded, line[-1]]))


def print_targets(rows: list[dict[str, Any]]) -> None:
    by_key = {(row["model"], row["transform"]): row for row in rows if "error" not in row}

    def times_smaller(model: str, transform: str) -> str:
        row = by_key.get((model, transform))
        return f"{model} {1 / row['size_ratio']:.2f}x" if row else f"{model} failed"

    models = sorted({row["model"] for row in rows})
    digits = by_key.get(("digits", "quantize_dynamic"), {})
    parents = {row["model"]: row["parent"] for row in rows}
    print("\nParents: " + "; ".join(f"{model} {summary}" for model, summary in parents.items()))
    print("Targets:")
    print("  int8 dynamic >= 3.5x smaller: " + ", ".join(times_smaller(m, "quantize_dynamic") for m in models))
    print(f"  int8 dynamic accuracy drop <= 1 point on digits: {_cell(digits.get('accuracy_delta'), signed=True)}")
    print("  fp16 ~2x smaller: " + ", ".join(times_smaller(m, "fp16") for m in models))
    print("  chosen variant (smallest within 1 point, not slower than its parent):")
    for model, pick in chosen_variants(rows).items():
        print(
            f"    {model}: {pick['transform'] or 'keep the parent'}"
            + (f" (size x{pick['size_ratio']:.3f}, latency x{pick['latency_ratio']:.2f})" if pick["transform"] else "")
        )


def chosen_variants(rows: list[dict[str, Any]], budget_points: float = 1.0) -> dict[str, dict[str, Any]]:
    """Per model, what the console's chooser picks from these measured rows (ratios stand in for figures)."""
    picks = {}
    for model in sorted({row["model"] for row in rows}):
        measured = [row for row in rows if row["model"] == model and "error" not in row]
        candidates = [
            {
                "name": row["transform"],
                "size_bytes": row["size_ratio"],
                "latency_ms": row["latency_ratio"],
                "accuracy": 1 + row["accuracy_delta"] / 100,
                "runnable_on_device": row["verified"],
            }
            for row in measured
        ]
        decision = choose_variant(
            {"size_bytes": 1.0, "latency_ms": 1.0, "accuracy": 1.0},
            candidates,
            objective="size",
            budget_points=budget_points,
        )
        row = next((r for r in measured if r["transform"] == decision["choice"]), None)
        picks[model] = {
            "transform": decision["choice"],
            "size_ratio": row and row["size_ratio"],
            "latency_ratio": row and row["latency_ratio"],
        }
    return picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer latency runs and agreement rows")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    runs, warmup, rows = (100, 5, 128) if args.quick else (1000, 20, 512)
    # onnxruntime's calibrators print progress to stdout; keep stdout for the table or the JSON alone.
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        workdir = Path(tmp)
        references = [build_digits(workdir), build_wide_mlp(workdir), build_cnn(workdir)]
        results = [row for reference in references for row in bench_reference(reference, workdir, runs, warmup, rows)]
    if args.json:
        print(
            json.dumps(
                {
                    "rows": [{key: row.get(key) for key in JSON_KEYS} for row in results],
                    "chosen": chosen_variants(results),
                }
            )
        )
    else:
        print_table(results, runs)
        print_targets(results)


if __name__ == "__main__":
    main()
