"""An in-process server speaking devices/agent/PROTOCOL.md, with knobs to misbehave.

It uses the same shared functions the real server will (signing, download
tokens, fingerprints), so the agent tests also pin the server's half.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import onnx
from onnx import TensorProto, helper

from devices.core.fingerprint import config_fingerprint
from devices.core.signing import (
    canonical_json,
    check_download_token,
    generate_keypair,
    make_download_token,
    sign_manifest,
)

MODEL = "digit-classifier"
API = "/api/device/v1"


def make_model_bytes(add: float) -> bytes:
    """A tiny ONNX model: y = x + add, x of shape [1, 4] float32."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    constant = helper.make_tensor("c", TensorProto.FLOAT, [1], [add])
    graph = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "add", [x], [y], [constant])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


@dataclass
class FakeVersion:
    version_id: int
    version: str
    data: bytes
    served: bytes | None = None  # bytes actually sent, when they should differ from ``data``
    signing_key: bytes | None = None  # sign with another key than the project's

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def body(self) -> bytes:
        return self.data if self.served is None else self.served


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped connections are deliberate here


class FakeDeviceServer:
    def __init__(self, *, enrollment_key: str = "enroll-secret", checkin_interval_s: int = 60) -> None:
        self.enrollment_key = enrollment_key
        self.checkin_interval_s = checkin_interval_s
        self.private_pem, self.public_key = generate_keypair()
        self.download_secret = os.urandom(32)
        self.lock = threading.Lock()
        self.devices: dict[str, dict[str, Any]] = {}  # token -> device
        self.assignments: dict[str, FakeVersion | None] = {}
        self.requests: list[dict[str, Any]] = []
        self.downloads: list[dict[str, Any]] = []
        self.event_posts: list[list[str]] = []
        self.events: dict[str, dict[str, Any]] = {}
        self.drop_downloads = 0  # next N downloads send half the body, then the connection drops
        self.fail_event_posts = 0  # next N event posts get a 500
        self.lose_event_answers = 0  # next N event posts are stored, then the connection drops unanswered
        self.forget_configs = False  # answer 409 need_config unless the config comes along
        self.etag_ticket = ""  # appended to the answer's ETag, as the console appends a check-in ticket
        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeDeviceServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def assign(self, version: FakeVersion | None, model: str = MODEL) -> None:
        with self.lock:
            self.assignments[model] = version

    def requests_to(self, path_prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [request for request in self.requests if request["path"].startswith(path_prefix)]

    # -- protocol

    def manifest_for(self, device: dict[str, Any], model: str, version: FakeVersion) -> dict[str, Any]:
        manifest = {
            "model": model,
            "version_id": version.version_id,
            "version": version.version,
            "sha256": version.sha256,
            "size": len(version.data),
            "format": "onnx",
            "runtime": {"name": "onnxruntime", "min_version": "1.17", "opset": 13},
        }
        manifest["signature"] = sign_manifest(version.signing_key or self.private_pem, manifest)
        expires_at = int(time.time()) + 300
        token = make_download_token(
            self.download_secret, version_id=version.version_id, device_id=device["device_id"], expires_at=expires_at
        )
        manifest["download_url"] = f"{API}/download/{version.version_id}?token={token}"
        manifest["expires_at"] = expires_at
        return manifest

    def checkin_answer(self, device: dict[str, Any], models: list[str]) -> dict[str, Any]:
        answer: dict[str, Any] = {"checkin_interval_s": self.checkin_interval_s, "models": {}}
        for model in models:
            version = self.assignments.get(model)
            if version is None:
                answer["models"][model] = {"status": "none", "reason": "no rule matches", "manifest": None}
            else:
                answer["models"][model] = {
                    "status": "assigned",
                    "reason": "rule 1",
                    "manifest": self.manifest_for(device, model, version),
                }
        return answer


def answer_etag(answer: dict[str, Any]) -> str:
    """Over the answer without its per-request download URLs, so an unchanged assignment keeps its ETag."""
    stable = json.loads(json.dumps(answer))
    for entry in stable["models"].values():
        if entry.get("manifest"):
            entry["manifest"].pop("download_url", None)
            entry["manifest"].pop("expires_at", None)
    return '"' + hashlib.sha256(canonical_json(stable)).hexdigest()[:32] + '"'


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeConsole/1"

    @property
    def fake(self) -> FakeDeviceServer:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # keep pytest output clean

    def _record(self, body: Any) -> None:
        with self.fake.lock:
            self.fake.requests.append(
                {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body}
            )

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"null")

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _device(self) -> dict[str, Any] | None:
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Device "):
            return None
        return self.fake.devices.get(auth.removeprefix("Device "))

    def _drop_connection(self) -> None:
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self._read_json()
        self._record(body)
        path = urlsplit(self.path).path
        if path == f"{API}/enroll":
            return self._enroll(body)
        device = self._device()
        if device is None:
            return self._send_json(401, {"detail": "unknown device token"})
        if path == f"{API}/checkin":
            return self._checkin(device, body)
        if path == f"{API}/events":
            return self._events(device, body)
        return self._send_json(404, {"detail": "no such endpoint"})

    def _enroll(self, body: dict[str, Any]) -> None:
        if body.get("enrollment_key") != self.fake.enrollment_key:
            return self._send_json(403, {"detail": "unknown enrollment key"})
        token = os.urandom(16).hex()
        config = body["config"]
        with self.fake.lock:
            self.fake.devices[token] = {
                "device_id": body["device_id"],
                "config": config,
                "fingerprints": {config_fingerprint(config)},
            }
        self._send_json(
            201,
            {
                "device_token": token,
                "device_id": body["device_id"],
                "project": "demo",
                "public_key": self.fake.public_key,
                "checkin_interval_s": self.fake.checkin_interval_s,
            },
        )

    def _checkin(self, device: dict[str, Any], body: dict[str, Any]) -> None:
        with self.fake.lock:
            if "config" in body:
                if config_fingerprint(body["config"]) != body["fingerprint"]:
                    return self._send_json(400, {"detail": "fingerprint does not match config"})
                device["config"] = body["config"]
                device["fingerprints"].add(body["fingerprint"])
            elif self.fake.forget_configs or body["fingerprint"] not in device["fingerprints"]:
                return self._send_json(409, {"detail": "send your configuration", "need_config": True})
            device["installed"] = body.get("installed") or {}
            answer = self.fake.checkin_answer(device, body.get("models") or [])
        etag = answer_etag(answer)
        sent = self.headers.get("If-None-Match") or ""
        if self.fake.etag_ticket:
            etag = f'{etag[:-1]}.{self.fake.etag_ticket}"'
        if sent.strip('"').split(".")[0] == etag.strip('"').split(".")[0]:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return None
        return self._send_json(200, answer, {"ETag": etag})

    def _events(self, device: dict[str, Any], body: dict[str, Any]) -> None:
        ids = [event["id"] for event in body["events"]]
        with self.fake.lock:
            self.fake.event_posts.append(ids)
            if self.fake.fail_event_posts:
                self.fake.fail_event_posts -= 1
                return self._send_json(500, {"detail": "try again"})
            accepted = duplicates = 0
            for event in body["events"]:
                if event["id"] in self.fake.events:
                    duplicates += 1
                else:
                    self.fake.events[event["id"]] = dict(event, device_id=device["device_id"])
                    accepted += 1
            lose = self.fake.lose_event_answers > 0
            if lose:
                self.fake.lose_event_answers -= 1
        if lose:
            return self._drop_connection()
        return self._send_json(200, {"accepted": accepted, "duplicates": duplicates})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record(None)
        parts = urlsplit(self.path)
        match = re.fullmatch(rf"{API}/download/(\d+)", parts.path)
        device = self._device()
        if match is None:
            return self._send_json(404, {"detail": "no such endpoint"})
        if device is None:
            return self._send_json(401, {"detail": "unknown device token"})
        version_id = int(match[1])
        token = (parse_qs(parts.query).get("token") or [""])[0]
        problem = check_download_token(
            self.fake.download_secret, token, version_id=version_id, device_id=device["device_id"], now=int(time.time())
        )
        if problem:
            return self._send_json(403, {"detail": f"download token {problem}"})
        with self.fake.lock:
            version = next((v for v in self.fake.assignments.values() if v and v.version_id == version_id), None)
        if version is None:
            return self._send_json(404, {"detail": "no such version"})
        self._send_file(version)
        return None

    def _send_file(self, version: FakeVersion) -> None:
        body = version.body
        etag = f'"{version.sha256}"'
        start = 0
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if range_header and (if_range is None or if_range == etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header)[1])  # type: ignore[index]
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self._log_download(version, 416, start, 0)
        status = 206 if start else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", etag)
        self.send_header("X-Content-SHA256", version.sha256)
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        with self.fake.lock:
            drop = self.fake.drop_downloads > 0
            if drop:
                self.fake.drop_downloads -= 1
        chunk = body[start:]
        if drop:
            half = len(chunk) // 2
            self.wfile.write(chunk[:half])
            self._log_download(version, status, start, half)
            return self._drop_connection()
        self.wfile.write(chunk)
        return self._log_download(version, status, start, len(chunk))

    def _log_download(self, version: FakeVersion, status: int, start: int, sent: int) -> None:
        with self.fake.lock:
            self.fake.downloads.append(
                {
                    "version_id": version.version_id,
                    "status": status,
                    "start": start,
                    "sent": sent,
                    "range": self.headers.get("Range"),
                    "if_range": self.headers.get("If-Range"),
                    "authorization": self.headers.get("Authorization"),
                }
            )
