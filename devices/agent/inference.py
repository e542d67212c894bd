"""Running installed models: onnxruntime sessions, timing, and the ``inference_stats`` events.

``Sessions`` keeps one onnxruntime session per installed package (by sha256),
loaded once and shared by the app's threads; delivery loads a package through
it to prove it before installing. ``Inference`` runs the installed version of
a model, times each run, counts labelled outcomes, and at each check-in turns
them into one ``inference_stats`` event per version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from devices.agent.errors import AgentError, first_line
from devices.agent.outbox import EventOutbox
from devices.agent.store import ModelStore

MAX_LATENCIES = 10_000  # per version between check-ins: bounded memory however hot the app runs


class Rollback(Protocol):
    """Delivery's rollback (it also blocks the abandoned file and reports the event); returns the install now
    current."""

    def __call__(self, model_name: str, reason: str, *, only_sha256: str | None = None) -> dict[str, Any] | None: ...


def load_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a rejected package is reported as an event, not console noise
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class Sessions:
    def __init__(self, store: ModelStore, *, threads: int = 0) -> None:
        self.store = store
        self.threads = threads  # onnxruntime intra-op threads; 0 = its default (one per core)
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def load(self, path: Path) -> ort.InferenceSession:
        """A new session on ``path``; raises whatever onnxruntime raises for a file it cannot load."""
        return load_session(path, self.threads)

    def keep(self, sha256: str, session: ort.InferenceSession) -> None:
        with self._lock:
            self._sessions[sha256] = session

    def of(self, record: dict[str, Any]) -> ort.InferenceSession:
        """The session of an install record, loaded from the cached file on first use."""
        sha256 = record["sha256"]
        with self._lock:
            session = self._sessions.get(sha256)
        if session is not None:
            return session
        path = self.store.cached(sha256)
        if path is None:
            raise AgentError(f"the file of version {record['version_id']} is missing or damaged")
        session = self.load(path)
        self.keep(sha256, session)
        return session

    def forget(self, sha256: str) -> None:
        with self._lock:
            self._sessions.pop(sha256, None)

    def forget_unused(self) -> None:
        """Drop the sessions of packages no model runs any more (their memory is the app's)."""
        live = {record["sha256"] for entry in self.store.entries().values() if (record := entry.get("current"))}
        with self._lock:
            for sha256 in list(self._sessions):
                if sha256 not in live:
                    del self._sessions[sha256]


class Inference:
    def __init__(
        self,
        store: ModelStore,
        outbox: EventOutbox,
        sessions: Sessions,
        *,
        rollback: Rollback,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.sessions = sessions
        self._rollback = rollback
        self._clock = clock
        self._lock = threading.Lock()
        self._latencies: dict[tuple[str, Any], list[float]] = {}
        self._outcomes: dict[tuple[str, Any], list[int]] = {}  # [correct, total]
        self._errors: dict[tuple[str, Any], int] = {}

    def run(self, model_name: str, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """Run the installed version of ``model_name`` on ``feeds``; returns onnxruntime's outputs.

        If the installed file cannot be loaded (damaged on disk), the previous
        version is put back (a ``rollback`` event) and run instead.
        """
        record = self._running(model_name)
        try:
            session = self.sessions.of(record)
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad model
            reason = f"cannot load installed file: {first_line(exc)}"
            restored = self._rollback(model_name, reason, only_sha256=record["sha256"])
            if restored is None or restored.get("state") != "running":
                raise AgentError(f"{model_name!r} cannot be loaded and there is no previous version") from exc
            record = restored
            session = self.sessions.of(record)
        started = self._clock()
        try:
            outputs = session.run(None, dict(feeds))
        except Exception:
            with self._lock:  # an inference error is a rate experiments compare: count it, then let the app see it
                self._errors[(model_name, record["version_id"])] = (
                    self._errors.get((model_name, record["version_id"]), 0) + 1
                )
            raise
        elapsed_ms = (self._clock() - started) * 1000
        with self._lock:
            latencies = self._latencies.setdefault((model_name, record["version_id"]), [])
            if len(latencies) < MAX_LATENCIES:
                latencies.append(elapsed_ms)
        return outputs

    def model_inputs(self, model_name: str) -> list[tuple[str, list[Any], str]]:
        """(name, shape, onnx type) of each input of the installed version, e.g. ("x", [1, 4], "tensor(float)")."""
        session = self.sessions.of(self._running(model_name))
        return [(arg.name, list(arg.shape), arg.type) for arg in session.get_inputs()]

    def record_accuracy(self, model_name: str, correct: bool) -> None:
        """Count one labelled outcome for the installed version; reported as ``accuracy`` in inference stats."""
        record = self.store.current(model_name)
        if record is None:
            return
        with self._lock:
            counts = self._outcomes.setdefault((model_name, record["version_id"]), [0, 0])
            counts[0] += int(bool(correct))
            counts[1] += 1

    def report_feedback(self, model_name: str, prediction: int | str, label: int | str) -> None:
        """Queue a ``feedback`` event: the prediction the installed version made and the true label, learnt later.

        Both a class index (int) or both a class name (str): the server refuses anything else.
        """
        for value in (prediction, label):
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise AgentError("prediction and label must be class indexes (int) or class names (str)")
        if type(prediction) is not type(label):
            raise AgentError("prediction and label must be of the same type")
        record = self._running(model_name)
        self.outbox.add(
            "feedback",
            model=model_name,
            version_id=record["version_id"],
            stats={"prediction": prediction, "label": label},
        )

    def queue_stats(self) -> None:
        """Turn the runs since the last call into ``inference_stats`` events (sent with the next check-in)."""
        with self._lock:
            latencies, self._latencies = self._latencies, {}
            outcomes, self._outcomes = self._outcomes, {}
            errors, self._errors = self._errors, {}
        for key in errors.keys() - latencies.keys():
            latencies[key] = []
        for (model, version_id), values in latencies.items():
            failed = errors.get((model, version_id), 0)
            stats: dict[str, Any] = {"count": len(values) + failed}
            if failed:
                stats["errors"] = failed
            if values:
                stats["latency_ms_mean"] = round(float(np.mean(values)), 3)
                stats["latency_ms_p50"] = round(float(np.percentile(values, 50)), 3)
                stats["latency_ms_p90"] = round(float(np.percentile(values, 90)), 3)
            correct, total = outcomes.pop((model, version_id), (0, 0))
            if total:
                stats["accuracy"] = round(correct / total, 4)
            self.outbox.add("inference_stats", model=model, version_id=version_id, stats=stats)
        # Outcomes without runs in this period are dropped: accuracy is only reported next to its latencies.

    def _running(self, model_name: str) -> dict[str, Any]:
        record = self.store.current(model_name)
        if record is None or record.get("state") != "running":
            raise AgentError(f"no working version of {model_name!r} is installed")
        return record
