"""Ground-truth runner for bench/compat_oracle.py: runs models on the onnxruntime of the Python that runs it.

    python compat_oracle_runner.py JOBS.jsonl OUT.jsonl START

Imports only onnxruntime and numpy (the release venvs hold nothing else). For each job from line START of
JOBS.jsonl it creates an InferenceSession (CPUExecutionProvider, default graph optimizations) and runs it once on
the job's inputs, appending one JSON line to OUT.jsonl per model as it goes, so that the bench can tell which
model a crash (segfault, abort) happened on and start again after it. Outputs are not compared.

A job: {"name", "model": path, "inputs": .npz path, "feeds": [{"name", "kind", "keys", "onnx_type", "string"}]}.
kind is "tensor" (one array), "sequence" (a list of arrays) or "none" (an empty optional). onnx_type is set for
element types numpy cannot hold natively (bfloat16, float8, 4-bit ints...): the array holds their raw bits and
only a runtime with OrtValue.ortvalue_from_numpy_with_onnx_type can take them. An answer:
{"name", "ok": bool, "stage": "session" | "feed" | "run" | "environment" | null, "error": the error or null}:
"feed" and "environment" answers say nothing about the model (the bench excludes them).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort

# Run errors that say nothing about the model: the Python binding could not turn a feed into an OrtValue (optional
# and sequence inputs on older releases; a device feeds them through the C API), or this machine lacks a locale
# (StringNormalizer builds one for en_US.UTF-8, at load or at run).
NOT_THE_MODEL = ("onnxruntime_pybind_mlvalue.cc", "Failed to construct locale")


def _error_text(error: BaseException) -> str:
    # onnxruntime puts the source location first and the reason after it: keep it all (the bench shortens it).
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:2000]


def _array(stored: np.ndarray, spec: dict):
    if spec.get("string"):
        return stored.astype(object)
    if spec.get("onnx_type") is not None:
        # Raises AttributeError on releases without it: the bench counts that as inputs this release cannot take.
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(stored, spec["onnx_type"])
    return stored


def feeds(job: dict) -> dict:
    with np.load(job["inputs"], allow_pickle=False) as stored:
        feed: dict = {}
        for spec in job["feeds"]:
            if spec["kind"] == "none":
                feed[spec["name"]] = None
            elif spec["kind"] == "sequence":
                feed[spec["name"]] = [_array(stored[key], spec) for key in spec["keys"]]
            else:
                feed[spec["name"]] = _array(stored[spec["keys"][0]], spec)
        return feed


def _run(session, feed: dict) -> None:
    try:
        session.run(None, feed)
    except RuntimeError as error:
        # Raised after the run, turning an output numpy cannot hold (float8, bfloat16, int4) into an array: run
        # again keeping the outputs as OrtValues. Sequence inputs cannot be OrtValues; those keep the error.
        if "No corresponding Numpy type" not in str(error) or any(isinstance(v, list) for v in feed.values()):
            raise
        values = {
            name: value if isinstance(value, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(value)
            for name, value in feed.items()
        }
        session.run_with_ort_values([o.name for o in session.get_outputs()], values)


def run_one(job: dict) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the bench machine is shared; one model at a time is enough
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    answer = {"name": job["name"], "ok": False, "stage": "session", "error": None}
    try:
        session = ort.InferenceSession(job["model"], options, providers=["CPUExecutionProvider"])
        answer["stage"] = "feed"
        feed = feeds(job)
        answer["stage"] = "run"
        _run(session, feed)
    except Exception as error:  # noqa: BLE001 - every failure is an answer
        answer["error"] = _error_text(error)
        if any(mark in answer["error"] for mark in NOT_THE_MODEL):
            answer["stage"] = "environment"
        return answer
    return {"name": job["name"], "ok": True, "stage": None, "error": None}


def main(argv: list[str]) -> int:
    jobs_path, out_path, start = argv[0], argv[1], int(argv[2])
    with open(jobs_path, encoding="utf-8") as handle:
        jobs = [json.loads(line) for line in handle if line.strip()]
    with open(out_path, "a", encoding="utf-8") as out:
        for job in jobs[start:]:
            out.write(json.dumps(run_one(job)) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
