"""What the agent knows about itself: ``state.json`` in its state dir.

Who this device is (its id and token, the server and the project key it
enrolled with), the configuration it reports and the fingerprint of the one
the server last received, and the server's last answer, ETag and check-in
interval. Every change is written at once, crash-safe and readable by the
owner only (the token is in it).
"""

from __future__ import annotations

import base64
import binascii
import os
import platform
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnxruntime as ort

from devices.agent.outbox import utc_now_iso
from devices.agent.storage import read_json, write_private_json
from devices.core.fingerprint import config_fingerprint

API_PREFIX = "/api/device/v1"
DEFAULT_INTERVAL_S = 300
MIN_INTERVAL_S, MAX_INTERVAL_S = 1, 24 * 3600


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


def clamp_interval(value: Any, default: Any) -> int:
    """The server's check-in interval in seconds, kept within 1 s .. 1 day (``default`` when it sent none)."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = int(default)
    return max(MIN_INTERVAL_S, min(MAX_INTERVAL_S, seconds))


def is_ed25519_public_key(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class AgentState:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"
        self._data: dict[str, Any] = read_json(self.path, {}) or {}
        self._lock = threading.RLock()

    # -- who this device is

    @property
    def enrolled(self) -> bool:
        return bool(self._data.get("device_token"))

    @property
    def device_id(self) -> str | None:
        return self._data.get("device_id")

    @property
    def server_url(self) -> str:
        return self._data["server_url"]

    @property
    def device_token(self) -> str:
        return self._data["device_token"]

    @property
    def public_key(self) -> str:
        return self._data["public_key"]

    @property
    def project(self) -> Any:
        return self._data.get("project")

    def endpoint(self, name: str) -> str:
        return f"{self.server_url}{API_PREFIX}/{name}"

    def record_enrollment(
        self, *, server_url: str, answer: Mapping[str, Any], device_id: str, config: dict[str, Any], models: list[str]
    ) -> None:
        """Start afresh from a (validated) enrollment answer: anything known about an earlier enrollment is gone."""
        with self._lock:
            self._data = {
                "server_url": server_url,
                "device_id": str(answer.get("device_id") or device_id),
                "device_token": answer["device_token"],
                "project": answer.get("project"),
                "public_key": answer["public_key"],
                "checkin_interval_s": clamp_interval(answer.get("checkin_interval_s"), DEFAULT_INTERVAL_S),
                "config": config,
                "models": list(dict.fromkeys(models)),
                # Enrollment carried the config, so the server knows this fingerprint.
                "config_fingerprint_sent": config_fingerprint(config),
                "enrolled_at": utc_now_iso(),
            }
            self._save()

    # -- what it reports

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._data.get("config") or {})

    @property
    def models(self) -> list[str]:
        return list(self._data.get("models") or [])

    def update_config(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            config = self.config
            config.update({key: value for key, value in changes.items() if value is not None})
            self._data["config"] = config
            self._save()
            return config

    def set_attributes(self, **attributes: Any) -> dict[str, Any]:
        with self._lock:
            return self.update_config(attributes=dict(self.config.get("attributes") or {}, **attributes))

    def set_models(self, models: list[str]) -> None:
        with self._lock:
            self._data["models"] = list(dict.fromkeys(models))
            self._save()

    def config_to_send(self) -> tuple[str, dict[str, Any] | None]:
        """The config's fingerprint, and the config itself when the server has not received this one yet."""
        config = self.config
        fingerprint = config_fingerprint(config)
        return fingerprint, (None if self._data.get("config_fingerprint_sent") == fingerprint else config)

    # -- what the server said

    @property
    def checkin_interval_s(self) -> int:
        return int(self._data.get("checkin_interval_s", DEFAULT_INTERVAL_S))

    @property
    def last_etag(self) -> str | None:
        return self._data.get("last_etag")

    @property
    def last_answer(self) -> dict[str, Any]:
        return self._data.get("last_answer") or {}

    @property
    def last_checkin_at(self) -> str | None:
        return self._data.get("last_checkin_at")

    def record_answer(self, *, fingerprint: str, etag: str | None, answer: dict[str, Any] | None) -> None:
        """The server accepted the config ``fingerprint`` and answered (``answer`` None for a 304)."""
        with self._lock:
            self._data["config_fingerprint_sent"] = fingerprint
            if answer is not None or etag:  # a 304 may carry a re-issued ETag for the same answer
                self._data["last_etag"] = etag
            if answer is not None:
                self._data["last_answer"] = answer
                self._data["checkin_interval_s"] = clamp_interval(
                    answer.get("checkin_interval_s"), self.checkin_interval_s
                )
            self._save()

    def record_checkin(self) -> None:
        with self._lock:
            self._data["last_checkin_at"] = utc_now_iso()
            self._save()

    def _save(self) -> None:
        write_private_json(self.path, self._data)


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
