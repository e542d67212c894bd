"""The compatibility checker against what real onnxruntime releases did, on a recorded sample of the onnx corpus.

tests/data/compat_oracle_sample.json holds, for a few hundred onnx backend node test cases and each built-in device
type, whether one run on that type's onnxruntime release succeeded (recorded by
``python bench/compat_oracle.py --write-sample``, which runs the whole corpus on the installed releases). No
release is needed here: the models are rebuilt from the installed onnx and only the checker runs. Goal on every
device type: false passes at most max(1, 0.5%) and false fails at most max(1, 1%) of the corpus's checkable cases
(the sample holds every hard case and few easy ones, so its own shares would be far stricter than the goal).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import onnx
import pytest

from devices.catalog.builtin import BUILTIN_DEVICE_TYPE_SLUGS

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = json.loads((ROOT / "tests" / "data" / "compat_oracle_sample.json").read_text(encoding="utf-8"))


def _load_bench():
    # bench/ holds scripts, not a package: load the bench's pure helpers from its file.
    spec = importlib.util.spec_from_file_location("compat_oracle", ROOT / "bench" / "compat_oracle.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


oracle = _load_bench()


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@pytest.fixture(scope="module")
def verdicts() -> dict:
    """case name -> the checker's verdicts on every built-in device type."""
    if onnx.__version__ != SAMPLE["onnx"]:
        pytest.skip(
            f"the sample was recorded from onnx {SAMPLE['onnx']}, onnx {onnx.__version__} is installed: its test "
            "models differ; re-record with python bench/compat_oracle.py --write-sample"
        )
    cases = oracle.collect_cases(set(SAMPLE["cases"]))
    missing = set(SAMPLE["cases"]) - {case.name for case in cases}
    assert not missing, f"cases of the sample that onnx {onnx.__version__} no longer has: {sorted(missing)}"
    profiles = oracle.builtin_profiles()
    return {case.name: oracle.checker_verdicts(case.model, profiles) for case in cases}


@pytest.mark.parametrize("slug", BUILTIN_DEVICE_TYPE_SLUGS)
def test_checker__on_the_recorded_sample__stays_within_the_false_pass_and_false_fail_goals(slug, verdicts):
    profile = next(p for p in oracle.builtin_profiles() if p["slug"] == slug)
    recorded = SAMPLE["releases"].get(slug)
    if recorded is None:
        pytest.skip(f"no release of {slug} could be run when the sample was recorded")
    if _major_minor(recorded) != _major_minor(profile["runtime_version"]):
        pytest.skip(
            f"{slug} now names onnxruntime {profile['runtime_version']}, the sample holds answers of {recorded}; "
            "re-record with python bench/compat_oracle.py --write-sample"
        )
    row = oracle.Row(slug, recorded)
    for name, truths in SAMPLE["cases"].items():
        if slug not in truths:
            continue  # excluded when recorded (inputs this release could not take)
        # null: the mobile type's full package runs it, the mobile package itself could not be run.
        runs = True if truths[slug] is None else truths[slug]
        error = SAMPLE["errors"].get(name, {}).get(slug, "")
        row.add(name, runs, verdicts[name], profile["runtime_build"] == "mobile", runtime_error=error)

    checkable = SAMPLE.get("corpus_checkable", {}).get(slug, row.checkable)
    false_passes_ok, false_fails_ok = oracle.within_goals(row, checkable)
    raised = [
        f"  {name}: {why}"
        for name, why in row.details.items()
        if name not in row.false_pass_cases + row.false_fail_cases
    ]
    lines = [
        f"{slug} (onnxruntime {recorded}): {row.counts['false_pass']} false passes "
        f"(allowed {max(1, int(oracle.FALSE_PASS_GOAL * checkable))}), {row.counts['false_fail']} false fails "
        f"(allowed {max(1, int(oracle.FALSE_FAIL_GOAL * checkable))}) of {checkable} checkable in the corpus; "
        f"{len(raised)} where the checker raised",
        *(f"  false pass {name}: the runtime said {row.details[name]}" for name in row.false_pass_cases),
        *(f"  false fail {name}: the checker said {row.details[name]}" for name in row.false_fail_cases),
        *raised,
    ]
    assert false_passes_ok and false_fails_ok and not raised, "\n".join(lines)
