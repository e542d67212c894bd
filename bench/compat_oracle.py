"""How often the compatibility checker is wrong, measured against real onnxruntime releases.

    python bench/compat_oracle.py [--releases 1.16.3,1.17.3,1.18.1,server] [--limit N | --sample] [--json]
                                  [--write-sample]

The corpus is the onnx backend test suite of the installed onnx package (every node test case: a one-node model
plus its inputs). Ground truth, per model and release: an InferenceSession (CPUExecutionProvider, default graph
optimizations) is created and one run on the case's first data set succeeds; outputs are not compared. Each
release the built-in device types name runs in its own venv under var/compat-oracle/venvs/<release> (made with
python3.11 and pip on first use, kept); "server" is this server's own onnxruntime, run the same way in a child of
this Python. Answers are cached in var/compat-oracle/truth-<release>.json by case name and model sha256.

The checker's verdict is ``check_device(inspect_model(model), size, profile)[0]`` for each built-in profile. Per
device type: true/false pass/fail, and excluded with why. Device types on CPU fallback (jetson-orin names CUDA)
take the CPU kernels' answer: with fallback the device runs what the CPU runs. The Android type names the 1.17
mobile package, which cannot run here: its truth is the full 1.17.3 package, so a pass where that fails is a false
pass, and a fail where it runs is "not checkable (mobile package)". Goal: false passes at most 0.5% and false fails
at most 1% of the checkable models on every device type.

--json prints {"rows": [{"device_type", "release", "true_pass", "true_fail", "false_pass", "false_fail",
"excluded", "excluded_reasons", "false_pass_cases", "false_fail_cases"}], "ms_per_model"}. --write-sample records
tests/data/compat_oracle_sample.json, the cases tests/jobs/tooling/test_compat_oracle_sample.py checks in CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a checkout without an editable install

from devices.catalog.builtin import BUILTIN_DEVICE_TYPE_SLUGS, builtin_profile  # noqa: E402
from jobs.tooling.compat import check_device  # noqa: E402
from jobs.tooling.inspect import inspect_model  # noqa: E402

CACHE = REPO / "var" / "compat-oracle"
RUNNER = Path(__file__).resolve().parent / "compat_oracle_runner.py"
SAMPLE_PATH = REPO / "tests" / "data" / "compat_oracle_sample.json"
SERVER = "server"
RELEASES = ("1.16.3", "1.17.3", "1.18.1", SERVER)
FALSE_PASS_GOAL = 0.005
FALSE_FAIL_GOAL = 0.01
# A model still running after this long is hung, not slow (the slowest node test takes a few seconds).
MODEL_TIMEOUT_S = 120
LISTED = 15

NO_DATA_SET = "no data set"
NOT_WRITABLE = "inputs cannot be written"
MOBILE = "not checkable (mobile package)"
CHECKER_RAISED = "checker raised"
TIMED_OUT = "runtime timed out"

# numpy dtypes onnxruntime's Python API takes as they are; anything else (ml_dtypes' bfloat16, float8, int4...)
# is stored as raw bits with its onnx element type.
NATIVE_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
}  # fmt: skip

# Cases the CI sample always holds (where they exist): the kinds of node a per-release kernel check gets wrong.
SAMPLE_TARGET = 300
SAMPLE_SPREAD_MIN = 40
NAMED_IN_SAMPLE = re.compile(
    r"_u?int8(_|$)|swish|^test_resize|^test_slice|^test_onehot|^test_sequence_|^test_optional_|"
    r"^test_cast.*(float8|e4m3|e5m2|int4|uint4)|^test_constant|string|strnorm|regex",
    re.IGNORECASE,
)


# -- device types ------------------------------------------------------------------------------------------------


def builtin_profiles() -> list[dict]:
    """The built-in device types as the checker reads them (what ``DeviceType.profile()`` builds from a row)."""
    return [builtin_profile(slug) for slug in BUILTIN_DEVICE_TYPE_SLUGS]


def server_release() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def release_for(profile: dict, releases: list[str]) -> str | None:
    """The installable release (of ``releases``, "server" meaning this server's) a device type's truth comes from."""
    for release in releases:
        version = server_release() if release == SERVER else release
        if _major_minor(version) == _major_minor(profile["runtime_version"]):
            return release
    return None


# -- corpus and checker ------------------------------------------------------------------------------------------


def collect_cases(names: set[str] | None = None) -> list:
    """The onnx backend node test cases of the installed onnx (``names``: only those), in the suite's order."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the generators overflow on purpose (int8 wrap-around and the like)
        cases = collect_testcases(None)
    return [case for case in cases if names is None or case.name in names]


def model_sha256(model: onnx.ModelProto) -> str:
    return hashlib.sha256(model.SerializeToString()).hexdigest()


@dataclass
class Verdicts:
    by_slug: dict[str, tuple[bool, list[str]]] = field(default_factory=dict)
    raised: dict[str, str] = field(default_factory=dict)  # slug -> the error, where the checker raised
    seconds: float = 0.0


def checker_verdicts(model: onnx.ModelProto, profiles: list[dict]) -> Verdicts:
    """The checker's (compatible, reasons) per device type, inspecting the model once."""
    verdicts = Verdicts()
    size = len(model.SerializeToString())
    started = time.perf_counter()
    try:
        facts = inspect_model(model)
    except Exception as error:  # noqa: BLE001 - counted and listed, never silently excluded
        verdicts.seconds = time.perf_counter() - started
        verdicts.raised = {p["slug"]: f"inspect_model: {type(error).__name__}: {error}" for p in profiles}
        return verdicts
    for profile in profiles:
        try:
            compatible, reasons = check_device(facts, size, profile)
            verdicts.by_slug[profile["slug"]] = (bool(compatible), list(reasons))
        except Exception as error:  # noqa: BLE001
            verdicts.raised[profile["slug"]] = f"check_device: {type(error).__name__}: {error}"
    verdicts.seconds = time.perf_counter() - started
    return verdicts


def outcome(runs: bool, compatible: bool, mobile: bool) -> str:
    """true_pass / true_fail / false_pass / false_fail, or MOBILE where the truth cannot be known here."""
    if runs:
        if compatible:
            return "true_pass"
        return MOBILE if mobile else "false_fail"
    return "false_pass" if compatible else "true_fail"


@dataclass
class Row:
    device_type: str
    release: str
    counts: Counter = field(default_factory=Counter)
    excluded_reasons: Counter = field(default_factory=Counter)
    false_pass_cases: list[str] = field(default_factory=list)
    false_fail_cases: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)  # case -> why (runtime error or checker reason)

    def add(self, name: str, runs: bool | None, verdicts: Verdicts | None, mobile: bool, excluded: str = "",
            runtime_error: str = "") -> None:  # fmt: skip
        """One case: ``runs`` None means excluded for ``excluded``."""
        slug = self.device_type
        if runs is None:
            self.excluded_reasons[excluded] += 1
            return
        if verdicts is None or slug in verdicts.raised or slug not in verdicts.by_slug:
            self.excluded_reasons[CHECKER_RAISED] += 1
            self.details[name] = verdicts.raised.get(slug, "no verdict") if verdicts else "no verdict"
            return
        compatible, reasons = verdicts.by_slug[slug]
        result = outcome(runs, compatible, mobile)
        if result == MOBILE:
            self.excluded_reasons[MOBILE] += 1
            return
        self.counts[result] += 1
        if result == "false_pass":
            self.false_pass_cases.append(name)
            self.details[name] = runtime_error or "(no error text)"
        elif result == "false_fail":
            self.false_fail_cases.append(name)
            self.details[name] = reasons[0] if reasons else "(no reason given)"

    @property
    def checkable(self) -> int:
        return sum(self.counts[k] for k in ("true_pass", "true_fail", "false_pass", "false_fail"))

    def as_json(self) -> dict[str, Any]:
        return {
            "device_type": self.device_type,
            "release": self.release,
            "true_pass": self.counts["true_pass"],
            "true_fail": self.counts["true_fail"],
            "false_pass": self.counts["false_pass"],
            "false_fail": self.counts["false_fail"],
            "excluded": sum(self.excluded_reasons.values()),
            "excluded_reasons": dict(sorted(self.excluded_reasons.items())),
            "false_pass_cases": self.false_pass_cases,
            "false_fail_cases": self.false_fail_cases,
        }


def within_goals(row: Row, checkable: int | None = None) -> tuple[bool, bool]:
    """(false passes within goal, false fails within goal); the CI sample allows at least one of each.

    ``checkable`` is what the shares are of: the row's own cases, or, for the CI sample (which holds every hard
    case and few easy ones), the whole corpus's checkable cases when it was recorded."""
    checkable = row.checkable if checkable is None else checkable
    return (
        row.counts["false_pass"] <= max(1, FALSE_PASS_GOAL * checkable),
        row.counts["false_fail"] <= max(1, FALSE_FAIL_GOAL * checkable),
    )


# -- ground truth ------------------------------------------------------------------------------------------------


class InputsNotWritable(Exception):
    pass


def _stored_array(value: Any) -> tuple[np.ndarray, int | None, bool]:
    """(array to store, onnx element type where numpy cannot hold the type natively, holds strings)."""
    if isinstance(value, onnx.TensorProto):
        value = numpy_helper.to_array(value)
    array = np.asarray(value)
    if array.dtype.kind in "OUS":
        flat = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in array.ravel()]
        return np.array(flat, dtype=str).reshape(array.shape), None, True
    if array.dtype.name in NATIVE_DTYPES:
        return array, None, False
    try:
        onnx_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    except (KeyError, ValueError, TypeError) as error:
        raise InputsNotWritable(f"input of dtype {array.dtype}") from error
    return array.view(f"uint{array.dtype.itemsize * 8}"), int(onnx_type), False


def write_inputs(case, npz_path: Path) -> list[dict]:
    """The case's first data set as an .npz (no pickles) plus the runner's feed list; InputsNotWritable if not."""
    if not case.data_sets:
        raise InputsNotWritable(NO_DATA_SET)
    values = list(case.data_sets[0][0])
    initializers = {t.name for t in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in initializers]
    if len(values) > len(names):
        raise InputsNotWritable(f"{len(values)} inputs for {len(names)} graph inputs")
    arrays: dict[str, np.ndarray] = {}
    feeds = []
    for index, (name, value) in enumerate(zip(names, values, strict=False)):
        spec: dict[str, Any] = {"name": name, "kind": "tensor", "keys": [], "onnx_type": None, "string": False}
        if value is None:
            spec["kind"] = "none"
        else:
            items = value if isinstance(value, list) else [value]
            spec["kind"] = "sequence" if isinstance(value, list) else "tensor"
            for position, item in enumerate(items):
                key = f"in{index}_{position}"
                arrays[key], spec["onnx_type"], spec["string"] = _stored_array(item)
                spec["keys"].append(key)
        feeds.append(spec)
    np.savez(npz_path, **arrays)
    return feeds


def venv_python(release: str, cache: Path) -> Path:
    """The Python of a venv holding onnxruntime ``release`` (made and installed on first use)."""
    if release == SERVER:
        return Path(sys.executable)
    venv = cache / "venvs" / release
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import onnxruntime; print(onnxruntime.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == release:
        return python
    print(f"installing onnxruntime {release} into {venv}", file=sys.stderr)
    # pip's chatter goes to stderr: stdout is the --json answer.
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True, stdout=sys.stderr)
    # 1.16 and 1.17 were built against numpy 1.x.
    pip = [str(python), "-m", "pip", "install", "--quiet", f"onnxruntime=={release}", "numpy<2"]
    subprocess.run(pip, check=True, stdout=sys.stderr)
    return python


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def run_jobs(python: Path, jobs_path: Path, out_path: Path, total: int) -> list[dict]:
    """Run every job in child processes of ``python``; a child that dies or hangs costs only the model it was on."""
    out_path.unlink(missing_ok=True)
    log_path = out_path.with_suffix(".log")
    done = 0
    while done < total:
        with log_path.open("ab") as log:
            child = subprocess.Popen(
                [str(python), str(RUNNER), str(jobs_path), str(out_path), str(done)],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        last_progress, last_count, hung = time.monotonic(), done, False
        while child.poll() is None:
            time.sleep(0.2)
            count = _count_lines(out_path)
            if count != last_count:
                last_progress, last_count = time.monotonic(), count
            elif time.monotonic() - last_progress > MODEL_TIMEOUT_S:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                hung = True
        done = _count_lines(out_path)
        if done < total:
            # The child stopped on the job at ``done``: that model crashed (or hung) the runtime.
            job = json.loads(jobs_path.read_text(encoding="utf-8").splitlines()[done])
            stage, error = (
                ("timeout", "timed out") if hung else ("crash", f"runtime died (exit code {child.returncode})")
            )
            with out_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"name": job["name"], "ok": False, "stage": stage, "error": error}) + "\n")
            done += 1
        print(f"  {done}/{total}", file=sys.stderr)
    with out_path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def ground_truth(cases: list, release: str, cache: Path) -> dict[str, dict]:
    """case name -> the runner's answer on ``release`` (cached by name and model sha256), or a NOT_WRITABLE one."""
    version = server_release() if release == SERVER else release
    truth_path = cache / f"truth-{version}.json"
    # Answers hold only while the runner that gave them is unchanged.
    runner = hashlib.sha256(RUNNER.read_bytes()).hexdigest()
    stored = json.loads(truth_path.read_text(encoding="utf-8")) if truth_path.exists() else {}
    cached = stored.get("answers", {}) if stored.get("runner") == runner else {}
    keys = {case.name: f"{case.name}:{model_sha256(case.model)}" for case in cases}
    missing = [case for case in cases if keys[case.name] not in cached]
    if missing:
        python = venv_python(release, cache)
        work = cache / f"work-{version}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        jobs = []
        for index, case in enumerate(missing):
            model_path, npz_path = work / f"{index}.onnx", work / f"{index}.npz"
            try:
                feeds = write_inputs(case, npz_path)
            except InputsNotWritable as error:
                why = NO_DATA_SET if str(error) == NO_DATA_SET else NOT_WRITABLE
                cached[keys[case.name]] = {"name": case.name, "ok": False, "stage": "inputs", "error": why}
                continue
            model_path.write_bytes(case.model.SerializeToString())
            jobs.append({"name": case.name, "model": str(model_path), "inputs": str(npz_path), "feeds": feeds})
        jobs_path = work / "jobs.jsonl"
        jobs_path.write_text("".join(json.dumps(job) + "\n" for job in jobs), encoding="utf-8")
        print(f"onnxruntime {version}: running {len(jobs)} models", file=sys.stderr)
        for answer in run_jobs(python, jobs_path, work / "answers.jsonl", len(jobs)):
            cached[keys[answer["name"]]] = answer
        stored = {"runner": runner, "answers": cached}
        truth_path.write_text(json.dumps(stored, indent=0, sort_keys=True), encoding="utf-8")
        shutil.rmtree(work, ignore_errors=True)
    return {case.name: cached[keys[case.name]] for case in cases}


_SOURCE_LOCATION = re.compile(r"/onnxruntime_src/\S+:\d+ .*?\) (?=[A-Z\[])")


def error_summary(text: str) -> str:
    """onnxruntime's error without the model path and the C++ source location that come before the reason."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : ", "", text)
    text = re.sub(r"Load model from \S+ failed:", "Load model failed: ", text)
    return _SOURCE_LOCATION.sub("", text)[:240]


def refused_for_version(answer: dict) -> bool:
    """The release refused to load the model for its IR version or opset alone (the published table's business)."""
    error = answer.get("error") or ""
    return answer["stage"] == "session" and (
        "Unsupported model IR version" in error or "ValidateOpsetForDomain" in error
    )


def truth_value(answer: dict, version: str) -> tuple[bool | None, str]:
    """(runs, why excluded): runs is None where the answer says nothing about the model."""
    if answer["stage"] == "inputs":
        return None, answer["error"]
    if answer["stage"] == "feed":
        return None, f"inputs cannot be fed to onnxruntime {version}"
    if answer["stage"] == "environment":
        if "locale" in answer["error"]:
            return None, "needs a locale this machine lacks"
        return None, f"inputs cannot be fed to onnxruntime {version}"
    if answer["stage"] == "timeout":
        return None, TIMED_OUT
    return bool(answer["ok"]), ""


# -- the sample the test suite checks ----------------------------------------------------------------------------


def sample_entry(truths: dict[str, bool | None], mobile_slugs: set[str]) -> dict[str, bool | None]:
    """slug -> recorded truth; None on the mobile type where the full package runs it (mobile unknown)."""
    entry: dict[str, bool | None] = {}
    for slug, runs in truths.items():
        if runs is None:
            continue  # excluded: the test leaves it out too
        entry[slug] = None if (slug in mobile_slugs and runs) else runs
    return entry


def choose_sample(order: list[str], must: set[str], target: int = SAMPLE_TARGET) -> list[str]:
    """``must`` plus a deterministic every-Nth spread of the rest, about ``target`` in all, in corpus order."""
    rest = [name for name in order if name not in must]
    room = max(target - len(must), SAMPLE_SPREAD_MIN)
    step = max(1, len(rest) // room) if rest else 1
    chosen = must | set(rest[::step])
    return [name for name in order if name in chosen]


def sample_json(sample: dict) -> str:
    """The sample as JSON with one line per case, so that a re-recording diffs case by case."""
    parts = []
    for key, value in sample.items():
        if isinstance(value, dict) and key in ("cases", "errors"):
            inner = ",\n".join(f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in value.items())
            parts.append(f" {json.dumps(key)}: {{\n{inner}\n }}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# -- the run -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", default=",".join(RELEASES), help="comma-separated; 'server' = this server's")
    parser.add_argument("--limit", type=int, default=0, help="only the first N cases")
    parser.add_argument("--sample", action="store_true", help=f"only the cases in {SAMPLE_PATH.name}")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-sample", action="store_true", help=f"record {SAMPLE_PATH.relative_to(REPO)}")
    parser.add_argument("--cache", type=Path, default=CACHE, help="venvs and cached answers (default: var/)")
    args = parser.parse_args(argv)
    if args.write_sample and (args.limit or args.sample):
        parser.error("--write-sample needs the whole corpus (no --limit or --sample)")
    releases = [r.strip() for r in args.releases.split(",") if r.strip()]

    names = set(json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))["cases"]) if args.sample else None
    cases = collect_cases(names)
    if args.limit:
        cases = cases[: args.limit]
    profiles = builtin_profiles()
    release_of = {p["slug"]: release_for(p, releases) for p in profiles}
    mobile_slugs = {p["slug"] for p in profiles if p["runtime_build"] == "mobile"}
    versions = {r: (server_release() if r == SERVER else r) for r in releases}

    answers = {
        release: ground_truth(cases, release, args.cache) for release in sorted(set(release_of.values()) - {None})
    }

    rows = {p["slug"]: Row(p["slug"], versions[release_of[p["slug"]]]) for p in profiles if release_of[p["slug"]]}
    seconds = []
    truths_by_case: dict[str, dict[str, bool | None]] = {}
    errors_by_case: dict[str, dict[str, str]] = {}  # case -> slug -> the runtime's error, where it failed
    # What each release says of a case, leaving out refusals for IR version or opset alone: ~900 cases differ only
    # by those, too many for the CI sample to hold them all (an every-Nth spread of them goes in).
    runtime_truths: dict[str, set[bool]] = {}
    for case in cases:
        verdicts = checker_verdicts(case.model, profiles)
        seconds.append(verdicts.seconds)
        truths_by_case[case.name] = {}
        runtime_truths[case.name] = set()
        for release, by_case in answers.items():
            runs, _ = truth_value(by_case[case.name], versions[release])
            if runs is not None and not refused_for_version(by_case[case.name]):
                runtime_truths[case.name].add(runs)
        for slug, row in rows.items():
            release = release_of[slug]
            answer = answers[release][case.name]
            runs, excluded = truth_value(answer, versions[release])
            truths_by_case[case.name][slug] = runs
            if runs is False:
                errors_by_case.setdefault(case.name, {})[slug] = error_summary(answer["error"] or "")[:120]
            row.add(case.name, runs, verdicts, slug in mobile_slugs, excluded, error_summary(answer.get("error") or ""))
    ms_per_model = round(statistics.median(seconds) * 1000, 3) if seconds else None

    if args.write_sample:
        wrong = {n for row in rows.values() for n in row.false_pass_cases + row.false_fail_cases}
        differ = {name for name, seen in runtime_truths.items() if len(seen) > 1}
        named = {case.name for case in cases if NAMED_IN_SAMPLE.search(case.name)}
        kept = set(json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))["cases"]) if SAMPLE_PATH.exists() else set()
        order = [case.name for case in cases]
        chosen = choose_sample(order, (wrong | differ | named | kept) & set(order))
        sample = {
            "onnx": onnx.__version__,
            "releases": {slug: row.release for slug, row in rows.items()},
            "note": "true/false: one run on the release succeeds/fails (bench/compat_oracle.py). null: the mobile "
            "type's full package runs it and the mobile package cannot be run here (a fail is not checkable). "
            "A device type missing from a case: excluded there. errors: the runtime's error where it failed.",
            "corpus_checkable": {slug: row.checkable for slug, row in rows.items()},
            "cases": {name: sample_entry(truths_by_case[name], mobile_slugs) for name in chosen},
            "errors": {name: errors_by_case[name] for name in chosen if name in errors_by_case},
        }
        SAMPLE_PATH.write_text(sample_json(sample), encoding="utf-8")
        print(
            f"wrote {len(chosen)} cases to {SAMPLE_PATH.relative_to(REPO)} ({len(wrong)} wrong, "
            f"{len(differ)} differing between releases, {len(named)} named)",
            file=sys.stderr,
        )

    if args.json:
        print(json.dumps({"rows": [row.as_json() for row in rows.values()], "ms_per_model": ms_per_model}))
        return 0
    print_table(list(rows.values()), [p["slug"] for p in profiles if not release_of[p["slug"]]], len(cases))
    print(f"\nchecker: {ms_per_model} ms per model (median; inspect once + check against every device type)")
    return 0


def print_table(rows: list[Row], skipped: list[str], total: int) -> None:
    print(f"{total} cases from the onnx {onnx.__version__} backend node tests")
    header = (
        "device type",
        "release",
        "true pass",
        "true fail",
        "false pass",
        "false fail",
        "excluded",
        "FP %",
        "FF %",
    )
    print("{:<22}{:>9}{:>10}{:>10}{:>11}{:>11}{:>10}{:>8}{:>8}".format(*header))
    for row in rows:
        checkable = row.checkable or 1
        fp, ff = within_goals(row)
        print(
            f"{row.device_type:<22}{row.release:>9}{row.counts['true_pass']:>10}{row.counts['true_fail']:>10}"
            f"{row.counts['false_pass']:>11}{row.counts['false_fail']:>11}{sum(row.excluded_reasons.values()):>10}"
            f"{100 * row.counts['false_pass'] / checkable:>7.2f}{' ' if fp else '!'}"
            f"{100 * row.counts['false_fail'] / checkable:>7.2f}{' ' if ff else '!'}"
        )
    for slug in skipped:
        print(f"{slug:<22}  skipped: its release is not among --releases")
    print("(! = over the goal: false passes <= 0.5%, false fails <= 1% of checkable)")
    for row in rows:
        if row.excluded_reasons:
            print(f"\n{row.device_type} excluded: {dict(sorted(row.excluded_reasons.items()))}")
        raised = [name for name, why in row.details.items() if why.startswith(("inspect_model", "check_device"))]
        for title, names in (("false passes", row.false_pass_cases), ("false fails", row.false_fail_cases),
                             ("checker raised", raised)):  # fmt: skip
            if names:
                print(f"{row.device_type} {title} ({len(names)}):")
                for name in names[:LISTED]:
                    print(f"  {name}: {row.details[name]}")
                if len(names) > LISTED:
                    print(f"  ... and {len(names) - LISTED} more")


if __name__ == "__main__":
    sys.exit(main())
