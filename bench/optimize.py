"""Benchmark of optimize-for-device decisions on trained models with real inputs, against the library default.

    python bench/optimize.py [--quick] [--json] [--models a,b] [--device-types x,y] [--objective size|latency]
                             [--no-olive]

Models (bench/optimize_models.py): scikit-learn models on bundled data (a default skl2onnx export with ZipMap and
IR 10; the demo model), models trained here with PyTorch's CPU build on data the bench renders (a digits CNN, a
segmenter, a sequence model with a CTC output), and ONNX models that PyPI wheels ship (magika, silero-vad,
RapidOCR's orientation classifier, recognizer and detector), each with sample inputs the bench makes. The
models that need the ``bench`` extra (pip install -e '.[bench]') are reported as skipped without it.

Per model and device type the bench calls the optimize-for-device decision itself
(``jobs.tooling.device_optimize.optimize_for_profile``) with half the sample inputs as the model's sample inputs
(labels where the bench knows them) and one input at the typical size for latency. For the chosen variant it
prints the size ratio, the latency ratio with its interval (alternating rounds at one thread, typical size), the
fidelity in the model's own metric, and ``within_budget``: the chosen variant re-checked against its parent on the
other half of the samples (held out from the decision), in the same metric and budget (accuracy points on labels).
Side by side, the library default (``onnxruntime.quantization.quantize_dynamic`` with default arguments) on the
same inputs: lib_size_ratio, lib_latency_ratio (``paired_latency``, same feeds), lib_fidelity (``verify_variant``
on the same samples, primary value); and Olive's automatic quantization where olive-ai is installed and runs
offline (olive_* columns; null with the reason otherwise).

--json prints {"rows": [...], "goals": {...}, "models": {...}, "olive": "..."}; each row has JSON_KEYS and more.
--quick: the two scikit-learn models on x86-gateway and raspberry-pi-4.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # run as a script from a checkout without an editable install

import onnx  # noqa: E402
from optimize_models import BUILDERS, BenchModel, Unavailable  # noqa: E402

from devices.catalog.builtin import BUILTIN_DEVICE_TYPES  # noqa: E402
from jobs.tooling import compat, fidelity  # noqa: E402
from jobs.tooling.benchmark import paired_latency  # noqa: E402
from jobs.tooling.choose import slower_beyond_noise  # noqa: E402
from jobs.tooling.device_optimize import optimize_for_profile  # noqa: E402
from jobs.tooling.evaluate import evaluate, verify_variant  # noqa: E402
from jobs.tooling.inspect import inspect_model  # noqa: E402

BUDGET_POINTS = 1.0
QUICK_MODELS = ("iris-logreg", "digits-mlp")
QUICK_DEVICE_TYPES = ("x86-gateway", "raspberry-pi-4")
ALL_DEVICE_TYPES = ("x86-gateway", "raspberry-pi-4", "android-arm64-phone", "jetson-orin")
# Each candidate costs ~300 timed runs at the typical size, and int8 convolutions run several times slower than
# float ones on this CPU, so the full run gives the phone and the Jetson only the models that run in a few ms; the
# others get x86-gateway and raspberry-pi-4, and the run ends within about a quarter of an hour on 2 cores.
ALL_DEVICE_TYPE_MODELS = frozenset({"iris-logreg", "digits-mlp", "digits-cnn", "silero-vad", "ocr-cls"})
SMALLER_THAN = 0.6  # the goal's "smaller than 0.6x of the parent"

JSON_KEYS = (
    "model",
    "device_type",
    "objective",
    "chosen",
    "size_ratio",
    "latency_ratio",
    "latency_ci",
    "fidelity_metric",
    "fidelity",
    "within_budget",
    "lib_size_ratio",
    "lib_latency_ratio",
    "lib_fidelity",
)


def profile_for(slug: str) -> dict[str, Any]:
    """A built-in device type as the console's ``DeviceType.profile()`` gives it to the tooling."""
    row = next(d for d in BUILTIN_DEVICE_TYPES if d["slug"] == slug)
    return {
        **row,
        "runtime": "onnxruntime",
        "max_model_bytes": row["max_model_mb"] << 20,
        "memory_bytes": row["memory_mb"] << 20,
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def fidelity_judgement(
    parent: Path, child: Path, samples: Path, has_labels: bool, budget_points: float = BUDGET_POINTS
) -> dict[str, Any]:
    """The child against its parent on ``samples``: primary metric and value, accuracy delta on labels, and
    whether that is within the budget (accuracy points when labeled, else the metric in its own words)."""
    verification = verify_variant(parent, child, samples, budget_points=budget_points)
    metric, value = verification["primary_metric"], verification["primary_value"]
    judged: dict[str, Any] = {"metric": metric, "value": _round(value), "accuracy_delta_points": None}
    if has_labels:
        delta = 100.0 * (evaluate(child, samples)["accuracy"] - evaluate(parent, samples)["accuracy"])
        judged["accuracy_delta_points"] = round(delta, 3)
        judged["within_budget"] = delta >= -budget_points - 1e-9
    else:
        judged["within_budget"] = metric in fidelity.METRICS and fidelity.within_budget(metric, value, budget_points)
    return judged


def peer_figures(model: BenchModel, out: Path) -> dict[str, Any]:
    """A peer's variant (the library default, Olive's best) judged on the same samples and feeds as ours."""
    judged = fidelity_judgement(model.path, out, model.decide, model.has_labels)
    paired = paired_latency(model.path, out, feeds=model.feeds)
    return {
        "path": out,
        "size_ratio": round(out.stat().st_size / model.path.stat().st_size, 4),
        "latency_ratio": round(paired["ratio"], 4),
        "latency_ci": [round(paired["ci_low"], 4), round(paired["ci_high"], 4)],
        "fidelity_metric": judged["metric"],
        "fidelity": judged["value"],
        "accuracy_delta_points": judged["accuracy_delta_points"],
        "within_budget": judged["within_budget"],
        "slower": slower_beyond_noise([paired["ci_low"], paired["ci_high"]], paired["parent_ms"]),
        "facts": inspect_model(onnx.load(str(out))),
    }


def library_default(model: BenchModel, workdir: Path) -> dict[str, Any]:
    """``quantize_dynamic`` with default arguments on the parent, judged on the same samples and feeds."""
    from onnxruntime.quantization import quantize_dynamic

    out = workdir / f"{model.name}-library.onnx"
    try:
        quantize_dynamic(str(model.path), str(out))
        return peer_figures(model, out)
    except Exception as exc:  # noqa: BLE001 - any failure of the library is a figure of the comparison, not a crash
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def decide(model: BenchModel, slug: str, objective: str, workdir: Path) -> dict[str, Any]:
    """One optimize-for-device decision and the bench's held-out re-check of its choice."""
    profile = profile_for(slug)
    facts = inspect_model(onnx.load(str(model.path)))
    start = time.perf_counter()
    result = optimize_for_profile(
        model.path,
        profile,
        facts,
        workdir=workdir,
        data_path=model.decide,
        has_labels=model.has_labels,
        has_samples=not model.has_labels,
        feeds=model.feeds,
        objective=objective,
        budget_points=BUDGET_POINTS,
    )
    row: dict[str, Any] = {
        "model": model.name,
        "device_type": slug,
        "objective": objective,
        "seconds": round(time.perf_counter() - start, 1),
        "parent_runnable": result.baseline["runnable_on_device"],
        "parent_reasons": result.baseline.get("device_reasons", []),
        "candidates": len(result.rows),
        "candidate_errors": {r["name"]: r["error"][:200] for r in result.rows if "error" in r},
        # Why each measured candidate was or was not chosen (the chooser's words), to read why a smaller one lost.
        "decisions": {
            r["name"]: {
                "decision": str(r["decision"])[:240],
                "size_ratio": r["vs_parent"]["size_ratio"],
                "latency_ratio": _round(r["latency_ratio"], 3),
                "fidelity": _round(r["fidelity"]),
                "units": r.get("fidelity_units"),
            }
            for r in result.rows
            if "error" not in r
        },
        "unverified": result.decision.get("unverified", False),
    }
    chosen = result.chosen_row
    if chosen is None:
        # Keeping the parent: nothing changes, so nothing can be outside the budget or slower.
        return row | {
            "chosen": None,
            "size_ratio": 1.0,
            "latency_ratio": 1.0,
            "latency_ci": None,
            "fidelity_metric": None,
            "fidelity": None,
            "within_budget": True,
            "runnable": result.baseline["runnable_on_device"],
        }
    made = result.chosen
    assert made is not None  # a chosen row was measured, so its file is kept
    vs_parent = chosen["vs_parent"]
    held_out = fidelity_judgement(model.path, made.out, model.holdout, model.has_labels)
    return row | {
        "chosen": chosen["name"],
        "size_ratio": vs_parent["size_ratio"],
        "latency_ratio": _round(chosen["latency_ratio"]),
        "latency_ci": [_round(v) for v in chosen["latency_ci"]],
        # The parent's time in the chosen row's own paired measurement, as the chooser judged the noise floor.
        "parent_latency_ms": chosen.get("paired_parent_ms") or result.baseline["latency_ms"],
        "fidelity_metric": chosen["fidelity_metric"],
        "fidelity": _round(chosen["fidelity"]),
        "accuracy_delta_points": vs_parent.get("accuracy_delta_points"),
        "holdout_fidelity": held_out["value"],
        "holdout_accuracy_delta_points": held_out["accuracy_delta_points"],
        "within_budget": held_out["within_budget"],
        "runnable": chosen["runnable_on_device"],
        "inputs_source": chosen["inputs_source"],
    }


def with_peer(row: dict[str, Any], peer: dict[str, Any] | None, prefix: str, slug: str) -> dict[str, Any]:
    """The library default's (or Olive's) figures on the row, with whether that file runs on this device type."""
    keys = ("size_ratio", "latency_ratio", "fidelity", "latency_ci", "within_budget", "slower", "fidelity_metric")
    if not peer or "error" in peer:
        return row | {f"{prefix}_{key}": None for key in keys} | {f"{prefix}_error": (peer or {}).get("error")}
    runnable, _reasons = compat.check_device(peer["facts"], peer["path"].stat().st_size, profile_for(slug))
    return row | {f"{prefix}_{key}": peer.get(key) for key in keys} | {f"{prefix}_runnable": runnable}


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's three goals over the measured rows."""
    measured = [row for row in rows if "error" not in row]

    def slower(r: dict[str, Any]) -> bool:
        return r["latency_ci"] is not None and slower_beyond_noise(r["latency_ci"], r["parent_latency_ms"])

    # Where the parent does not run on the device type, its latency here says nothing about that device, and the
    # chooser takes any faithful variant that runs: such rows are listed apart, not counted as slower choices.
    bad = [
        f"{r['model']}/{r['device_type']}"
        for r in measured
        if not r["within_budget"] or (slower(r) and r.get("parent_runnable") is not False)
    ]
    slower_where_parent_cannot_run = [
        f"{r['model']}/{r['device_type']}" for r in measured if slower(r) and r.get("parent_runnable") is False
    ]
    # Where the library default is a fair contender (within budget, not slower beyond noise, runs on the device
    # type), the size objective's choice must be at least as small.
    contested = [
        r
        for r in measured
        if r["objective"] == "size" and r["lib_within_budget"] and not r["lib_slower"] and r.get("lib_runnable")
    ]
    beaten = [f"{r['model']}/{r['device_type']}" for r in contested if r["size_ratio"] > r["lib_size_ratio"] + 1e-9]
    models = sorted({r["model"] for r in measured})

    def small(r: dict[str, Any]) -> bool:
        return r["chosen"] is not None and r["size_ratio"] < SMALLER_THAN and r["within_budget"]

    small_everywhere = [m for m in models if all(small(r) for r in measured if r["model"] == m)]
    small_somewhere = [m for m in models if any(small(r) for r in measured if r["model"] == m)]
    return {
        "no_bad_choice": {
            "holds": not bad,
            "rows": bad,
            "slower_where_parent_cannot_run": slower_where_parent_cannot_run,
            "says": "no chosen variant outside its budget (held-out samples) or slower than its parent beyond noise",
        },
        "as_small_as_library": {
            "holds": not beaten,
            "rows": beaten,
            "contested": len(contested),
            "says": "size objective: at least as small as quantize_dynamic's default wherever that is within budget, "
            "not slower and runs on the device type",
        },
        "half_smaller_than_0_6": {
            "holds": 2 * len(small_everywhere) >= len(models) > 0,
            "models": small_everywhere,
            "on_some_device_type": small_somewhere,
            "of": len(models),
            "says": f"at least half the models get a variant under {SMALLER_THAN}x the parent within budget "
            "(on every device type they ran on)",
        },
    }


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _latency(ratio: float | None, interval: list[float] | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}" + (f" [{interval[0]:.2f},{interval[1]:.2f}]" if interval else "")


SHORT_DEVICE = {
    "x86-gateway": "x86",
    "raspberry-pi-4": "pi4",
    "android-arm64-phone": "phone",
    "jetson-orin": "jetson",
}


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [
        ("model", lambda r: r["model"]),
        ("device", lambda r: SHORT_DEVICE.get(r["device_type"], r["device_type"])),
        ("chosen", lambda r: r.get("error", "")[:60] if "error" in r else (r["chosen"] or "(parent kept)")),
        ("size", lambda r: _cell(r.get("size_ratio"), 3)),
        ("latency [ci]", lambda r: _latency(r.get("latency_ratio"), r.get("latency_ci"))),
        ("fidelity", lambda r: f"{r['fidelity_metric']}={r['fidelity']:.3f}" if r.get("fidelity") is not None else "-"),
        ("ok", lambda r: _cell(r.get("within_budget"))),
        ("lib_size", lambda r: "failed" if r.get("lib_error") else _cell(r.get("lib_size_ratio"), 3)),
        ("lib_latency [ci]", lambda r: _latency(r.get("lib_latency_ratio"), r.get("lib_latency_ci"))),
        ("lib_fid", lambda r: _cell(r.get("lib_fidelity"), 3)),
        ("lib_ok", lambda r: _cell(r.get("lib_within_budget"))),
        ("olive_size", lambda r: _cell(r.get("olive_size_ratio"), 3)),
        ("olive_lat", lambda r: _cell(r.get("olive_latency_ratio"))),
        ("olive_fid", lambda r: _cell(r.get("olive_fidelity"), 3)),
    ]
    table = [[title for title, _ in columns]] + [[render(row) for _, render in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print(
            "  ".join(
                cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )


def print_report(report: dict[str, Any]) -> None:
    print(
        f"Ratios are variant / parent; latency at 1 thread on the typical input, 9 alternating rounds, median ratio "
        f"[95% interval]. Budget {BUDGET_POINTS:g} point. ok: the chosen variant re-checked on held-out samples "
        "(accuracy points on labels, else the metric's own words). lib: quantize_dynamic, default arguments; "
        "lib_ok: within budget on the same samples.\n"
    )
    print("Models:")
    for name, about in report["models"].items():
        print(f"  {name}: {about}")
    print()
    print_table(report["rows"])
    failures = {(r["model"], r["lib_error"]) for r in report["rows"] if r.get("lib_error")}
    for model, error in sorted(failures):
        print(f"\nlib on {model} failed: {error}")
    print(f"\nOlive: {report['olive']}")
    print("\nGoals:")
    for name, goal in report["goals"].items():
        detail = goal.get("rows") or goal.get("models") or []
        print(f"  [{'met' if goal['holds'] else 'NOT met'}] {goal['says']}: {', '.join(detail) or 'none'}")
        if name == "no_bad_choice" and goal["slower_where_parent_cannot_run"]:
            print(
                "      slower than a parent that cannot run on the device type (not counted): "
                + ", ".join(goal["slower_where_parent_cannot_run"])
            )
        if name == "half_smaller_than_0_6":
            print(
                f"      {len(goal['models'])} of {goal['of']} models on every device type; on some device type: "
                f"{', '.join(goal['on_some_device_type']) or 'none'}"
            )


def run(
    model_names: list[str], device_types: list[str], objective: str, olive: bool, workdir: Path, say=print
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    about: dict[str, str] = {}
    olive_note = "not run (--no-olive)"
    runner = None
    if olive:
        from optimize_olive import OliveRunner

        runner = OliveRunner(workdir / "olive")
        olive_note = runner.note
    for name in model_names:
        model_dir = workdir / name
        model_dir.mkdir()
        try:
            model = BUILDERS[name](model_dir)
        except Unavailable as exc:
            about[name] = f"skipped: {exc}"
            continue
        about[name] = f"{model.source}; typical input {model.typical}; {model.path.stat().st_size / 1024:.0f} KiB"
        say(f"{name}: the library default")
        library = library_default(model, model_dir)
        peer = None
        if runner is not None:
            peer = runner.optimize(model, model_dir, peer_figures) if runner.available else {"error": "not run"}
        slugs = [s for s in device_types if name in ALL_DEVICE_TYPE_MODELS or s in QUICK_DEVICE_TYPES]
        for slug in slugs:
            say(f"{name}: optimizing for {slug}")
            device_dir = model_dir / slug
            device_dir.mkdir()
            try:
                row = decide(model, slug, objective, device_dir)
            except Exception as exc:  # noqa: BLE001 - one model's failure is a row of the table, not the end
                row = {
                    "model": name,
                    "device_type": slug,
                    "objective": objective,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            row = with_peer(row, library, "lib", slug)
            row = with_peer(row, peer, "olive", slug)
            rows.append(row)
    if runner is not None:
        olive_note = runner.note
    return {"rows": rows, "goals": goals(rows), "models": about, "olive": olive_note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the scikit-learn models on two device types")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--models", help=f"comma-separated, of: {', '.join(BUILDERS)}")
    parser.add_argument("--device-types", help=f"comma-separated, of: {', '.join(ALL_DEVICE_TYPES)}")
    parser.add_argument("--objective", choices=("size", "latency"), default="size")
    parser.add_argument("--no-olive", action="store_true", help="skip Olive even where it is installed")
    parser.add_argument(
        "--save", metavar="PATH", help="also write the JSON object to PATH (a full run takes about 35 min)"
    )
    args = parser.parse_args()
    models = args.models.split(",") if args.models else list(QUICK_MODELS if args.quick else BUILDERS)
    devices = (
        args.device_types.split(",")
        if args.device_types
        else list(QUICK_DEVICE_TYPES if args.quick else ALL_DEVICE_TYPES)
    )
    unknown = [m for m in models if m not in BUILDERS] + [d for d in devices if d not in SHORT_DEVICE]
    if unknown:
        parser.error(f"unknown model or device type: {', '.join(unknown)}")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("ORT_LOG_SEVERITY_LEVEL", "3")
    start = time.perf_counter()
    # The quantizers and trainers print progress to stdout; keep stdout for the table or the JSON alone.
    with tempfile.TemporaryDirectory(prefix="bench-optimize-") as tmp, contextlib.redirect_stdout(sys.stderr):
        report = run(
            models,
            devices,
            args.objective,
            olive=not args.no_olive,
            workdir=Path(tmp),
            say=lambda m: print(m, file=sys.stderr),
        )
    report["seconds"] = round(time.perf_counter() - start, 1)
    if args.save:
        Path(args.save).write_text(json.dumps(report, default=str))
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print_report(report)
        print(f"\n{report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
