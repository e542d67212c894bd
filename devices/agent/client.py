"""The device agent: enroll, check in, download, verify, install, run, report.

One ``Agent`` per state dir (and one process per state dir: there is no
cross-process lock). The app calls ``run(model_name, feeds)`` from any thread
while a loop (``run_forever``) or the app calls ``checkin()``. The HTTP
contract is ``devices/agent/PROTOCOL.md``.

State dir layout (files 0600, dirs 0700)::

    state.json       device id and token, server URL, project public key, config, last answer
    installed.json   per model: current and previous install, shas not to retry yet
    outbox.json      events not yet acknowledged by the server
    cache/           <sha256>.onnx verified packages; <sha256>.onnx.part(.json) partial downloads
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import platform
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np
import onnxruntime as ort

from devices.agent.download import download_package
from devices.agent.errors import AgentError, DownloadError, TransportError
from devices.agent.outbox import EventOutbox, utc_now_iso
from devices.agent.storage import ensure_private_dir, read_json, write_private_json
from devices.agent.store import SHA256_RE, ModelStore
from devices.agent.transport import Transport, same_origin
from devices.core.bucketing import bucket, in_percentage
from devices.core.fingerprint import config_fingerprint
from devices.core.signing import verify_manifest

log = logging.getLogger(__name__)

API_PREFIX = "/api/device/v1"
EVENT_BATCH_SIZE = 100
MAX_LATENCIES = 10_000
MIN_INTERVAL_S, MAX_INTERVAL_S = 1, 24 * 3600
MANIFEST_FIELDS = ("model", "version_id", "sha256", "size", "format", "download_url", "signature")


def default_config(**overrides: Any) -> dict[str, Any]:
    """This machine's configuration as the protocol names it; ``overrides`` win (None values are skipped)."""
    config: dict[str, Any] = {
        "device_type": "generic",
        "runtime": "onnxruntime",
        "runtime_version": ort.__version__,
        "os": platform.system().lower(),
        "cpu_arch": platform.machine().lower(),
        "accelerator": _detect_accelerator(),
        "memory_mb": _memory_mb(),
        "region": "",
        "app_version": "0.0.0",
        "attributes": {},
    }
    config.update({key: value for key, value in overrides.items() if value is not None})
    return config


@dataclass
class CheckinResult:
    http_status: int  # 200 (new answer) or 304 (nothing changed)
    models: dict[str, str] = field(default_factory=dict)  # model -> what the agent did, in words
    events_sent: int = 0
    next_checkin_s: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "http_status": self.http_status,
            "models": self.models,
            "events_sent": self.events_sent,
            "next_checkin_s": self.next_checkin_s,
        }


class Agent:
    def __init__(
        self,
        state_dir: str | Path,
        *,
        transport: Transport | None = None,
        download_attempts: int = 3,
        retry_delay_s: float = 1.0,
        verify_load: bool = True,
        keep_unused: int = 4,
        session_threads: int = 0,
    ) -> None:
        self.state_dir = ensure_private_dir(Path(state_dir).expanduser())
        self.transport = transport or Transport()
        self.download_attempts = download_attempts
        self.retry_delay_s = retry_delay_s
        self.verify_load = verify_load
        self.session_threads = session_threads  # onnxruntime intra-op threads; 0 = its default (one per core)
        self.store = ModelStore(self.state_dir, keep_unused=keep_unused)
        self.outbox = EventOutbox(self.state_dir / "outbox.json")
        self._state_path = self.state_dir / "state.json"
        self._state: dict[str, Any] = read_json(self._state_path, {}) or {}
        self._lock = threading.RLock()  # state, sessions, stats
        self._checkin_lock = threading.Lock()  # one check-in at a time
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._latencies: dict[tuple[str, Any], list[float]] = {}
        self._outcomes: dict[tuple[str, Any], list[int]] = {}  # [correct, total]

    # -- enrollment and configuration

    @property
    def enrolled(self) -> bool:
        return bool(self._state.get("device_token"))

    @property
    def device_id(self) -> str | None:
        return self._state.get("device_id")

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._state.get("config") or {})

    @property
    def models(self) -> list[str]:
        return list(self._state.get("models") or [])

    def enroll(
        self,
        server_url: str,
        enrollment_key: str,
        config: Mapping[str, Any],
        *,
        models: list[str],
        device_id: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Enroll with the project's enrollment key; stores the device token and the project public key."""
        if self.enrolled and not force:
            raise AgentError(f"already enrolled as device {self.device_id}; pass force=True (--force) to enroll again")
        device_id = device_id or self._state.get("device_id") or str(uuid.uuid4())
        config = dict(config)
        server_url = server_url.rstrip("/")
        response = self.transport.request(
            "POST",
            f"{server_url}{API_PREFIX}/enroll",
            json_body={"enrollment_key": enrollment_key, "device_id": device_id, "config": config},
        )
        if response.status not in (200, 201):
            raise AgentError(f"enrollment refused: HTTP {response.status} {_detail(response)}")
        answer = response.json()
        if not isinstance(answer, dict) or not answer.get("device_token"):
            raise AgentError("enrollment answer has no device_token")
        public_key = answer.get("public_key")
        if not _is_ed25519_public_key(public_key):
            raise AgentError("enrollment answer has no valid public_key (base64 of 32 bytes)")
        with self._lock:
            self._state = {
                "server_url": server_url,
                "device_id": str(answer.get("device_id") or device_id),
                "device_token": answer["device_token"],
                "project": answer.get("project"),
                "public_key": public_key,
                "checkin_interval_s": _interval(answer.get("checkin_interval_s"), 300),
                "config": config,
                "models": list(dict.fromkeys(models)),
                # Enrollment carried the config, so the server knows this fingerprint.
                "config_fingerprint_sent": config_fingerprint(config),
                "enrolled_at": utc_now_iso(),
            }
            self._save_state()
        return self.status()

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change the configuration (e.g. ``app_version`` after an app upgrade); the next check-in sends it.

        ``attributes`` replaces the whole attribute dict; use ``set_attributes`` to merge.
        """
        with self._lock:
            config = self.config
            config.update({key: value for key, value in changes.items() if value is not None})
            self._state["config"] = config
            self._save_state()
            return config

    def set_attributes(self, **attributes: Any) -> dict[str, Any]:
        with self._lock:
            merged = dict(self.config.get("attributes") or {}, **attributes)
        return self.update_config(attributes=merged)

    def set_models(self, models: list[str]) -> None:
        with self._lock:
            self._state["models"] = list(dict.fromkeys(models))
            self._save_state()

    # -- check-in

    def checkin(self) -> CheckinResult:
        """One check-in: report, fetch the answer, install what changed, flush events."""
        with self._checkin_lock:
            self._require_enrollment()
            self._queue_inference_stats()
            status, answer = self._post_checkin()
            result = CheckinResult(http_status=status)
            if answer is not None:
                for model, entry in (answer.get("models") or {}).items():
                    if model in self.models and isinstance(entry, dict):
                        result.models[model] = self._apply_assignment(model, entry)
            result.events_sent = self.flush_events()
            result.next_checkin_s = int(self._state.get("checkin_interval_s", 300))
            with self._lock:
                self._state["last_checkin_at"] = utc_now_iso()
                self._save_state()
            return result

    def run_forever(self, stop: threading.Event | None = None, *, max_cycles: int | None = None) -> None:
        """Check in every ``checkin_interval_s`` (±10 % jitter) until ``stop`` is set; back off on errors."""
        stop = stop or threading.Event()
        failures = 0
        cycles = 0
        while not stop.is_set():
            try:
                result = self.checkin()
                failures = 0
                log.info("check-in: %s", result.as_dict())
            except (TransportError, OSError) as exc:
                failures += 1
                log.warning("check-in failed (%s); backing off", exc)
            cycles += 1
            if max_cycles is not None and cycles >= max_cycles:
                return
            interval = int(self._state.get("checkin_interval_s", 300))
            delay = min(interval * 2 ** min(failures, 4), interval * 10) if failures else interval
            stop.wait(delay * random.uniform(0.9, 1.1))

    def _post_checkin(self) -> tuple[int, dict[str, Any] | None]:
        config = self.config
        fingerprint = config_fingerprint(config)
        body: dict[str, Any] = {
            "fingerprint": fingerprint,
            "models": self.models,
            "installed": self._installed_report(),
        }
        if self._state.get("config_fingerprint_sent") != fingerprint:
            body["config"] = config
        headers = {}
        if self._state.get("last_etag") and not self._has_pending_work():
            headers["If-None-Match"] = self._state["last_etag"]
        url = f"{self._state['server_url']}{API_PREFIX}/checkin"
        token = self._state["device_token"]
        response = self.transport.request("POST", url, json_body=body, headers=headers, auth_token=token)
        if response.status == 409 and "config" not in body and _need_config(response):
            body["config"] = config
            response = self.transport.request("POST", url, json_body=body, headers=headers, auth_token=token)
        if response.status in (401, 403):
            raise AgentError(f"the server rejected the device token (HTTP {response.status}); enroll again")
        if response.status not in (200, 304):
            raise TransportError(f"check-in failed: HTTP {response.status} {_detail(response)}")
        answer = None
        if response.status == 200:
            answer = response.json()
            if not isinstance(answer, dict):
                raise TransportError("check-in answer is not a JSON object")
        with self._lock:
            self._state["config_fingerprint_sent"] = fingerprint
            etag = response.headers.get("ETag")
            if answer is not None or etag:  # a 304 may carry a re-issued ETag for the same answer
                self._state["last_etag"] = etag
            if answer is not None:
                self._state["last_answer"] = answer
                self._state["checkin_interval_s"] = _interval(
                    answer.get("checkin_interval_s"), self._state.get("checkin_interval_s", 300)
                )
            self._save_state()
        return response.status, answer

    def _has_pending_work(self) -> bool:
        """Whether the last answer assigned something not installed yet (then a fresh answer, with a fresh
        download URL, is needed rather than a 304)."""
        now = time.time()
        for model, entry in ((self._state.get("last_answer") or {}).get("models") or {}).items():
            if model not in self.models or not isinstance(entry, dict):
                continue
            manifest = entry.get("manifest") or {}
            if entry.get("status") not in ("assigned", "fallback") or not manifest.get("sha256"):
                continue
            if _is_current(self.store.current(model), manifest):
                continue
            if self.store.blocked_reason(model, str(manifest["sha256"]), now=now) is None:
                return True
        return False

    def _installed_report(self) -> dict[str, dict[str, Any]]:
        report = {}
        for model, entry in self.store.entries().items():
            current = entry.get("current")
            if current:
                report[model] = {
                    "version_id": current["version_id"],
                    "sha256": current["sha256"],
                    "state": current.get("state", "running"),
                }
        return report

    # -- delivery

    def _apply_assignment(self, model: str, entry: dict[str, Any]) -> str:
        status = entry.get("status")
        if status not in ("assigned", "fallback"):
            return f"no version assigned ({entry.get('reason') or status}); keeping what is installed"
        manifest = entry.get("manifest")
        if not isinstance(manifest, dict):
            return "assignment without a manifest; ignored"
        current = self.store.current(model)
        if current is not None and _is_current(current, manifest):
            return f"up to date (version {current['version_id']})"
        version_id = manifest.get("version_id")
        sha256 = str(manifest.get("sha256") or "")
        now = time.time()
        blocked = self.store.blocked_reason(model, sha256, now=now) if sha256 else None
        if blocked:
            return f"version {version_id} not retried yet: {blocked}"
        problem = self._manifest_problem(model, manifest)
        if problem:
            self._reject(model, version_id, sha256, "install_failed", problem)
            return f"rejected version {version_id}: {problem}"
        # Cache hit: a version seen before, or the same bytes under a new version id; nothing to fetch.
        blob = self.store.cached(sha256)
        if blob is None:
            blob, failure = self._download(model, manifest)
            if blob is None:
                return f"download of version {version_id} failed: {failure}"
        return self._install(model, manifest, blob)

    def _manifest_problem(self, model: str, manifest: dict[str, Any]) -> str | None:
        missing = [name for name in MANIFEST_FIELDS if manifest.get(name) in (None, "")]
        if missing:
            return f"manifest lacks {', '.join(missing)}"
        if manifest["model"] != model:
            return f"manifest is for model {manifest['model']!r}, not {model!r}"
        if not SHA256_RE.match(str(manifest["sha256"])):
            return "manifest sha256 is not a lowercase hex sha256"
        if isinstance(manifest["size"], bool) or not isinstance(manifest["size"], int) or manifest["size"] <= 0:
            return "manifest size is not a positive integer"
        if str(manifest["format"]).lower() != "onnx":
            return f"package format {manifest['format']!r} is not onnx"
        if not verify_manifest(self._state["public_key"], manifest):
            return "manifest signature invalid"
        return None

    def _download(self, model: str, manifest: dict[str, Any]) -> tuple[Path | None, str]:
        version_id, sha256 = manifest["version_id"], manifest["sha256"]
        url = urljoin(self._state["server_url"] + "/", str(manifest["download_url"]))
        # The device token goes only to our own server, never to a storage host the URL points at.
        token = self._state["device_token"] if same_origin(url, self._state["server_url"]) else None
        self.outbox.add("download_started", model=model, version_id=version_id)
        try:
            path = download_package(
                self.transport,
                url,
                self.store.blob_path(sha256),
                sha256=sha256,
                size=manifest["size"],
                auth_token=token,
                attempts=self.download_attempts,
                retry_delay_s=self.retry_delay_s,
            )
        except DownloadError as exc:
            self.outbox.add("download_failed", model=model, version_id=version_id, reason=exc.reason)
            if exc.permanent:
                self._block(model, sha256, exc.reason)
            return None, exc.reason
        self.outbox.add("download_completed", model=model, version_id=version_id)
        return path, ""

    def _install(self, model: str, manifest: dict[str, Any], blob: Path) -> str:
        version_id, sha256 = manifest["version_id"], manifest["sha256"]
        session = None
        if self.verify_load:
            try:
                session = _load_session(blob, self.session_threads)
            except Exception as exc:  # onnxruntime raises several unrelated types for a bad model
                reason = f"onnxruntime cannot load the package: {_short(exc)}"
                self._reject(model, version_id, sha256, "install_failed", reason)
                return f"install of version {version_id} failed: {reason}"
        record = {
            "model": model,
            "version_id": version_id,
            "version": manifest.get("version"),
            "sha256": sha256,
            "size": manifest["size"],
            "format": manifest["format"],
            "runtime": manifest.get("runtime") or {},
            "signature": manifest["signature"],
            "installed_at": utc_now_iso(),
            "state": "running",
        }
        self.store.install(model, record)
        with self._lock:
            if session is not None:
                self._sessions[sha256] = session
        self.outbox.add("install_succeeded", model=model, version_id=version_id)
        self.store.prune()
        self._forget_unused_sessions()
        return f"installed version {version_id}"

    def _reject(self, model: str, version_id: Any, sha256: str, event_type: str, reason: str) -> None:
        self.outbox.add(event_type, model=model, version_id=version_id, reason=reason)
        if SHA256_RE.match(sha256):
            self._block(model, sha256, reason)

    def _block(self, model: str, sha256: str, reason: str) -> None:
        base = max(60, int(self._state.get("checkin_interval_s", 300)))
        self.store.block(model, sha256, reason, base_delay_s=base, now=time.time())

    # -- running models

    def run(self, model_name: str, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """Run the installed version of ``model_name`` on ``feeds``; returns onnxruntime's outputs.

        If the installed file cannot be loaded (damaged on disk), the previous
        version is put back (a ``rollback`` event) and run instead.
        """
        record = self.store.current(model_name)
        if record is None or record.get("state") != "running":
            raise AgentError(f"no working version of {model_name!r} is installed")
        try:
            session = self._session(record)
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad model
            reason = f"cannot load installed file: {_short(exc)}"
            restored = self.rollback(model_name, reason, only_sha256=record["sha256"])
            if restored is None or restored.get("state") != "running":
                raise AgentError(f"{model_name!r} cannot be loaded and there is no previous version") from exc
            record = restored
            session = self._session(record)
        started = time.perf_counter()
        outputs = session.run(None, dict(feeds))
        elapsed_ms = (time.perf_counter() - started) * 1000
        with self._lock:
            latencies = self._latencies.setdefault((model_name, record["version_id"]), [])
            if len(latencies) < MAX_LATENCIES:
                latencies.append(elapsed_ms)
        return outputs

    def model_inputs(self, model_name: str) -> list[tuple[str, list[Any], str]]:
        """(name, shape, onnx type) of each input of the installed version, e.g. ("x", [1, 4], "tensor(float)")."""
        record = self.store.current(model_name)
        if record is None or record.get("state") != "running":
            raise AgentError(f"no working version of {model_name!r} is installed")
        return [(arg.name, list(arg.shape), arg.type) for arg in self._session(record).get_inputs()]

    def record_accuracy(self, model_name: str, correct: bool) -> None:
        """Count one labelled outcome for the installed version; reported as ``accuracy`` in inference stats."""
        record = self.store.current(model_name)
        if record is None:
            return
        with self._lock:
            counts = self._outcomes.setdefault((model_name, record["version_id"]), [0, 0])
            counts[0] += int(bool(correct))
            counts[1] += 1

    def rollback(self, model_name: str, reason: str, *, only_sha256: str | None = None) -> dict[str, Any] | None:
        """Abandon the installed version for the previous one; returns the install now current (None if none).

        ``only_sha256``: roll back only if that is still the installed file (another thread may have already).
        """
        abandoned, restored = self.store.rollback(model_name, only_sha256=only_sha256)
        if abandoned is None:
            return restored
        self._block(model_name, abandoned["sha256"], reason)
        target = f"version {restored['version_id']}" if restored else "nothing (no previous version)"
        # version_id names the abandoned version: that is the one the server should count against.
        self.outbox.add(
            "rollback", model=model_name, version_id=abandoned["version_id"], reason=f"{reason}; back to {target}"
        )
        with self._lock:
            self._sessions.pop(abandoned["sha256"], None)
        return restored

    def _session(self, record: dict[str, Any]) -> ort.InferenceSession:
        sha256 = record["sha256"]
        with self._lock:
            session = self._sessions.get(sha256)
        if session is not None:
            return session
        path = self.store.cached(sha256)
        if path is None:
            raise AgentError(f"the file of version {record['version_id']} is missing or damaged")
        session = _load_session(path, self.session_threads)
        with self._lock:
            self._sessions[sha256] = session
        return session

    def _forget_unused_sessions(self) -> None:
        live = {record["sha256"] for entry in self.store.entries().values() if (record := entry.get("current"))}
        with self._lock:
            for sha256 in list(self._sessions):
                if sha256 not in live:
                    del self._sessions[sha256]

    def _queue_inference_stats(self) -> None:
        with self._lock:
            latencies, self._latencies = self._latencies, {}
            outcomes, self._outcomes = self._outcomes, {}
        for (model, version_id), values in latencies.items():
            stats: dict[str, Any] = {
                "count": len(values),
                "latency_ms_p50": round(float(np.percentile(values, 50)), 3),
                "latency_ms_p90": round(float(np.percentile(values, 90)), 3),
            }
            correct, total = outcomes.pop((model, version_id), (0, 0))
            if total:
                stats["accuracy"] = round(correct / total, 4)
            self.outbox.add("inference_stats", model=model, version_id=version_id, stats=stats)
        # Outcomes without runs in this period are dropped: accuracy is only reported next to its latencies.

    # -- events

    def flush_events(self) -> int:
        """Send pending events in batches; a failed batch stays pending, same ids, for the next flush."""
        if not self.enrolled:
            return 0
        url = f"{self._state['server_url']}{API_PREFIX}/events"
        sent = 0
        while batch := self.outbox.next_batch(EVENT_BATCH_SIZE):
            try:
                response = self.transport.request(
                    "POST", url, json_body={"events": batch}, auth_token=self._state["device_token"]
                )
            except TransportError as exc:
                log.info("events not sent (%s); kept for the next check-in", exc)
                break
            if response.status == 200:
                self.outbox.acknowledge([event["id"] for event in batch])
                sent += len(batch)
            elif response.status in (400, 422):
                # The server says the batch itself is malformed: resending it would block the queue forever.
                log.warning("server refused %d events as malformed (%s); dropped", len(batch), _detail(response))
                self.outbox.acknowledge([event["id"] for event in batch])
            else:
                log.info("events not accepted (HTTP %s); kept for the next check-in", response.status)
                break
        return sent

    # -- status and helpers for the app

    def status(self) -> dict[str, Any]:
        """What the agent knows, without secrets (the token is never shown)."""
        config = self.config
        return {
            "state_dir": str(self.state_dir),
            "enrolled": self.enrolled,
            "server_url": self._state.get("server_url"),
            "project": self._state.get("project"),
            "device_id": self.device_id,
            "models": self.models,
            "config": config,
            "fingerprint": config_fingerprint(config) if config else None,
            "checkin_interval_s": self._state.get("checkin_interval_s"),
            "last_checkin_at": self._state.get("last_checkin_at"),
            "installed": self.store.entries(),
            "pending_events": len(self.outbox.pending()),
            "dropped_events": self.outbox.dropped(),
        }

    def bucket(self, salt: str) -> int:
        """This device's bucket under ``salt``: the same number the server computes (devices.bucketing)."""
        return bucket(salt, self._require_device_id())

    def in_percentage(self, salt: str, percent: float) -> bool:
        return in_percentage(salt, self._require_device_id(), percent)

    def _require_device_id(self) -> str:
        if not self.device_id:
            raise AgentError("not enrolled: no device id yet")
        return self.device_id

    def _require_enrollment(self) -> None:
        if not self.enrolled:
            raise AgentError(f"not enrolled; run `model-agent --state-dir {self.state_dir} enroll ...` first")

    def _save_state(self) -> None:
        write_private_json(self._state_path, self._state)


def _is_current(current: dict[str, Any] | None, manifest: dict[str, Any]) -> bool:
    return bool(
        current
        and current.get("state") == "running"
        and current["sha256"] == manifest.get("sha256")
        and current["version_id"] == manifest.get("version_id")
    )


def _load_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a rejected package is reported as an event, not console noise
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _interval(value: Any, default: Any) -> int:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = int(default)
    return max(MIN_INTERVAL_S, min(MAX_INTERVAL_S, seconds))


def _need_config(response: Any) -> bool:
    try:
        answer = response.json()
    except TransportError:
        return False
    return isinstance(answer, dict) and bool(answer.get("need_config"))


def _detail(response: Any) -> str:
    try:
        answer = response.json()
    except TransportError:
        return ""
    return str(answer.get("detail", "")) if isinstance(answer, dict) else ""


def _is_ed25519_public_key(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:200]


def _detect_accelerator() -> str:
    providers = set(ort.get_available_providers())
    for provider, name in (
        ("CUDAExecutionProvider", "cuda"),
        ("TensorrtExecutionProvider", "tensorrt"),
        ("CoreMLExecutionProvider", "coreml"),
        ("DmlExecutionProvider", "directml"),
        ("OpenVINOExecutionProvider", "openvino"),
        ("QNNExecutionProvider", "qnn"),
    ):
        if provider in providers:
            return name
    return "none"


def _memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (AttributeError, ValueError, OSError):
        return 0
