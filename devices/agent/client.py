"""The device agent: enroll, check in, download, verify, install, run, report.

``Agent`` is the one object an app (or ``cli``, or ``simulate``) holds; it
wires the parts, each in its own module:

- ``state``: who this device is, its configuration, the server's last answer (``state.json``);
- ``delivery``: the protocol conversation: enroll, check in, verify, download, install, roll back, send events;
- ``inference``: onnxruntime sessions of the installed packages, timed runs, ``inference_stats``;
- ``store`` (installed versions and the package cache) and ``outbox`` (events not yet acknowledged).

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

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from devices.agent.delivery import CheckinResult, Delivery
from devices.agent.errors import AgentError, TransportError
from devices.agent.inference import Inference, Sessions
from devices.agent.outbox import EventOutbox
from devices.agent.state import AgentState, default_config
from devices.agent.storage import ensure_private_dir
from devices.agent.store import ModelStore
from devices.agent.transport import Transport
from devices.core.bucketing import bucket, in_percentage
from devices.core.fingerprint import config_fingerprint

__all__ = ["Agent", "CheckinResult", "default_config"]

log = logging.getLogger(__name__)


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
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``session_threads``: onnxruntime intra-op threads per session, 0 for its default (one per core).
        ``clock``: what inference latencies are timed with (seconds); injected by simulations and tests."""
        self.state_dir = ensure_private_dir(Path(state_dir).expanduser())
        self.transport = transport or Transport()
        self.store = ModelStore(self.state_dir, keep_unused=keep_unused)
        self.outbox = EventOutbox(self.state_dir / "outbox.json")
        self.state = AgentState(self.state_dir)
        sessions = Sessions(self.store, threads=session_threads)
        self.delivery = Delivery(
            self.state,
            self.transport,
            self.store,
            self.outbox,
            sessions,
            download_attempts=download_attempts,
            retry_delay_s=retry_delay_s,
            verify_load=verify_load,
        )
        self.inference = Inference(self.store, self.outbox, sessions, rollback=self.delivery.rollback, clock=clock)
        self._checkin_lock = threading.Lock()  # one check-in at a time

    # -- enrollment and configuration

    @property
    def enrolled(self) -> bool:
        return self.state.enrolled

    @property
    def device_id(self) -> str | None:
        return self.state.device_id

    @property
    def config(self) -> dict[str, Any]:
        return self.state.config

    @property
    def models(self) -> list[str]:
        return self.state.models

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
        device_id = device_id or self.device_id or str(uuid.uuid4())
        self.delivery.enroll(server_url, enrollment_key, dict(config), models=models, device_id=device_id)
        return self.status()

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change the configuration (e.g. ``app_version`` after an app upgrade); the next check-in sends it.

        ``attributes`` replaces the whole attribute dict; use ``set_attributes`` to merge.
        """
        return self.state.update_config(**changes)

    def set_attributes(self, **attributes: Any) -> dict[str, Any]:
        return self.state.set_attributes(**attributes)

    def set_models(self, models: list[str]) -> None:
        self.state.set_models(models)

    # -- check-in

    def checkin(self) -> CheckinResult:
        """One check-in: report, fetch the answer, install what changed, flush events."""
        with self._checkin_lock:
            self._require_enrollment()
            self.inference.queue_stats()
            return self.delivery.checkin()

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
            interval = self.state.checkin_interval_s
            delay = min(interval * 2 ** min(failures, 4), interval * 10) if failures else interval
            stop.wait(delay * random.uniform(0.9, 1.1))

    def flush_events(self) -> int:
        """Send pending events in batches; a failed batch stays pending, same ids, for the next flush."""
        return self.delivery.flush_events()

    def rollback(self, model_name: str, reason: str, *, only_sha256: str | None = None) -> dict[str, Any] | None:
        """Abandon the installed version for the previous one; returns the install now current (None if none)."""
        return self.delivery.rollback(model_name, reason, only_sha256=only_sha256)

    # -- running models

    def run(self, model_name: str, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """Run the installed version of ``model_name`` on ``feeds``; returns onnxruntime's outputs.

        If the installed file cannot be loaded (damaged on disk), the previous
        version is put back (a ``rollback`` event) and run instead.
        """
        return self.inference.run(model_name, feeds)

    def model_inputs(self, model_name: str) -> list[tuple[str, list[Any], str]]:
        """(name, shape, onnx type) of each input of the installed version, e.g. ("x", [1, 4], "tensor(float)")."""
        return self.inference.model_inputs(model_name)

    def record_accuracy(self, model_name: str, correct: bool) -> None:
        """Count one labelled outcome for the installed version; reported as ``accuracy`` in inference stats."""
        self.inference.record_accuracy(model_name, correct)

    def report_feedback(self, model_name: str, prediction: int | str, label: int | str) -> None:
        """Report the true label of a prediction the installed version made (a ``feedback`` event)."""
        self.inference.report_feedback(model_name, prediction, label)

    # -- status and helpers for the app

    def status(self) -> dict[str, Any]:
        """What the agent knows, without secrets (the token is never shown)."""
        config = self.config
        return {
            "state_dir": str(self.state_dir),
            "enrolled": self.enrolled,
            "server_url": self.state.server_url if self.enrolled else None,
            "project": self.state.project,
            "device_id": self.device_id,
            "models": self.models,
            "config": config,
            "fingerprint": config_fingerprint(config) if config else None,
            "checkin_interval_s": self.state.checkin_interval_s if self.enrolled else None,
            "last_checkin_at": self.state.last_checkin_at,
            "installed": self.store.entries(),
            "pending_events": len(self.outbox.pending()),
            "dropped_events": self.outbox.dropped(),
        }

    def bucket(self, salt: str) -> int:
        """This device's bucket under ``salt``: the same number the server computes (devices.core.bucketing)."""
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
