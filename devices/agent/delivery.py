"""The agent's side of the device protocol (``PROTOCOL.md``): enroll, check in, install, report.

A check-in reports the configuration and what is installed, and gets per
model the version to run. For a new version the agent verifies the signed
manifest against the project key it enrolled with, takes the package from its
cache or downloads it (resuming, checking the sha256), proves onnxruntime can
load it, and installs it; the replaced install stays as the rollback target.
A version that failed is not retried until its back-off ends. Every step is
an event in the outbox, sent in batches at the end of each check-in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from devices.agent.download import download_package
from devices.agent.errors import AgentError, DownloadError, TransportError, first_line
from devices.agent.inference import Sessions
from devices.agent.outbox import EventOutbox, utc_now_iso
from devices.agent.state import API_PREFIX, AgentState, is_ed25519_public_key
from devices.agent.store import SHA256_RE, ModelStore
from devices.agent.transport import Response, Transport, same_origin
from devices.core.signing import verify_manifest

log = logging.getLogger(__name__)

EVENT_BATCH_SIZE = 100
MANIFEST_FIELDS = ("model", "version_id", "sha256", "size", "format", "download_url", "signature")
MIN_BLOCK_S = 60  # a failed version waits at least this long (or one check-in interval) before a retry


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


def manifest_problem(manifest: dict[str, Any], *, model: str, public_key: str) -> str | None:
    """Why the agent must not install from ``manifest`` (None when it is complete, for ``model`` and signed by the
    project key)."""
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
    if not verify_manifest(public_key, manifest):
        return "manifest signature invalid"
    return None


class Delivery:
    def __init__(
        self,
        state: AgentState,
        transport: Transport,
        store: ModelStore,
        outbox: EventOutbox,
        sessions: Sessions,
        *,
        download_attempts: int = 3,
        retry_delay_s: float = 1.0,
        verify_load: bool = True,
    ) -> None:
        self.state = state
        self.transport = transport
        self.store = store
        self.outbox = outbox
        self.sessions = sessions
        self.download_attempts = download_attempts
        self.retry_delay_s = retry_delay_s
        self.verify_load = verify_load

    # -- enrollment

    def enroll(
        self, server_url: str, enrollment_key: str, config: dict[str, Any], *, models: list[str], device_id: str
    ) -> None:
        """Exchange the project's enrollment key for a device token; the state starts afresh from the answer."""
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
        if not is_ed25519_public_key(answer.get("public_key")):
            raise AgentError("enrollment answer has no valid public_key (base64 of 32 bytes)")
        self.state.record_enrollment(
            server_url=server_url, answer=answer, device_id=device_id, config=config, models=models
        )

    # -- check-in

    def checkin(self) -> CheckinResult:
        """Report, fetch the answer, install what changed, flush events."""
        status, answer = self._post_checkin()
        result = CheckinResult(http_status=status)
        if answer is not None:
            models = self.state.models
            for model, entry in (answer.get("models") or {}).items():
                if model in models and isinstance(entry, dict):
                    result.models[model] = self._apply_assignment(model, entry)
        result.events_sent = self.flush_events()
        result.next_checkin_s = self.state.checkin_interval_s
        self.state.record_checkin()
        return result

    def _post_checkin(self) -> tuple[int, dict[str, Any] | None]:
        fingerprint, config = self.state.config_to_send()
        body: dict[str, Any] = {"fingerprint": fingerprint, "models": self.state.models, "installed": self._installed()}
        if config is not None:
            body["config"] = config
        headers = {}
        if self.state.last_etag and not self._has_pending_work():
            headers["If-None-Match"] = self.state.last_etag
        url = self.state.endpoint("checkin")
        token = self.state.device_token
        response = self.transport.request("POST", url, json_body=body, headers=headers, auth_token=token)
        if response.status == 409 and "config" not in body and _need_config(response):
            body["config"] = self.state.config
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
        self.state.record_answer(fingerprint=fingerprint, etag=response.headers.get("ETag"), answer=answer)
        return response.status, answer

    def _has_pending_work(self) -> bool:
        """Whether the last answer assigned something not installed yet (then a fresh answer, with a fresh
        download URL, is needed rather than a 304)."""
        now = time.time()
        models = self.state.models
        for model, entry in (self.state.last_answer.get("models") or {}).items():
            if model not in models or not isinstance(entry, dict):
                continue
            manifest = entry.get("manifest") or {}
            if entry.get("status") not in ("assigned", "fallback") or not manifest.get("sha256"):
                continue
            if _is_current(self.store.current(model), manifest):
                continue
            if self.store.blocked_reason(model, str(manifest["sha256"]), now=now) is None:
                return True
        return False

    def _installed(self) -> dict[str, dict[str, Any]]:
        """The check-in's ``installed``: per model, the version running now."""
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

    # -- one model's assignment

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
        retry = entry.get("retry")
        if isinstance(retry, int) and not isinstance(retry, bool) and retry > 0:
            self.store.accept_retry(model, retry)  # the server asks failed devices to try again: no back-off
        blocked = self.store.blocked_reason(model, sha256, now=time.time()) if sha256 else None
        if blocked:
            return f"version {version_id} not retried yet: {blocked}"
        problem = manifest_problem(manifest, model=model, public_key=self.state.public_key)
        if problem:
            self._reject(model, version_id, sha256, problem)
            return f"rejected version {version_id}: {problem}"
        # Cache hit: a version seen before, or the same bytes under a new version id; nothing to fetch.
        blob = self.store.cached(sha256)
        if blob is None:
            blob, failure = self._download(model, manifest)
            if blob is None:
                return f"download of version {version_id} failed: {failure}"
        return self._install(model, manifest, blob)

    def _download(self, model: str, manifest: dict[str, Any]) -> tuple[Path | None, str]:
        version_id, sha256 = manifest["version_id"], manifest["sha256"]
        server_url = self.state.server_url
        url = urljoin(server_url + "/", str(manifest["download_url"]))
        # The device token goes only to our own server, never to a storage host the URL points at.
        token = self.state.device_token if same_origin(url, server_url) else None
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
                session = self.sessions.load(blob)
            except Exception as exc:  # onnxruntime raises several unrelated types for a bad model
                reason = f"onnxruntime cannot load the package: {first_line(exc)}"
                self._reject(model, version_id, sha256, reason)
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
        if session is not None:
            self.sessions.keep(sha256, session)
        self.outbox.add("install_succeeded", model=model, version_id=version_id)
        self.store.prune()
        self.sessions.forget_unused()
        return f"installed version {version_id}"

    # -- failures

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
        self.sessions.forget(abandoned["sha256"])
        return restored

    def _reject(self, model: str, version_id: Any, sha256: str, reason: str) -> None:
        self.outbox.add("install_failed", model=model, version_id=version_id, reason=reason)
        if SHA256_RE.match(sha256):
            self._block(model, sha256, reason)

    def _block(self, model: str, sha256: str, reason: str) -> None:
        base = max(MIN_BLOCK_S, self.state.checkin_interval_s)
        self.store.block(model, sha256, reason, base_delay_s=base, now=time.time())

    # -- events

    def flush_events(self) -> int:
        """Send pending events in batches; a failed batch stays pending, same ids, for the next flush."""
        if not self.state.enrolled:
            return 0
        url = self.state.endpoint("events")
        sent = 0
        while batch := self.outbox.next_batch(EVENT_BATCH_SIZE):
            try:
                response = self.transport.request(
                    "POST", url, json_body={"events": batch}, auth_token=self.state.device_token
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


def _is_current(current: dict[str, Any] | None, manifest: dict[str, Any]) -> bool:
    return bool(
        current
        and current.get("state") == "running"
        and current["sha256"] == manifest.get("sha256")
        and current["version_id"] == manifest.get("version_id")
    )


def _need_config(response: Response) -> bool:
    try:
        answer = response.json()
    except TransportError:
        return False
    return isinstance(answer, dict) and bool(answer.get("need_config"))


def _detail(response: Response) -> str:
    try:
        answer = response.json()
    except TransportError:
        return ""
    return str(answer.get("detail", "")) if isinstance(answer, dict) else ""
