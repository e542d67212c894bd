"""A fleet of simulated devices against a running console, for demos, dashboards and load checks.

    python -m devices.agent.simulate --url http://127.0.0.1:8000 --key <enrollment key> \\
        --devices 200 --fail-rate 0.05 --duration 60

Each simulated device is a real ``Agent`` (own state dir under a temp dir, own
thread) with a configuration drawn from the profile (device types, regions,
app versions, attributes). Downloads break halfway at ``fail_rate``, which
exercises resume and the failure events the rollout halting reads. Devices
check in every ``interval_s`` (not the server's interval, so a one-minute run
shows several rounds) and run the installed model on random inputs.

Bounded: at most ``MAX_DEVICES`` devices and ``MAX_DURATION_S`` seconds, and
only the given server is contacted; a non-loopback URL needs ``allow_remote``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devices.agent.cli import parse_attribute
from devices.agent.client import Agent, default_config
from devices.agent.errors import AgentError, TransportError
from devices.agent.transport import Response, Stream, Transport, is_loopback_url, same_origin
from devices.catalog.builtin import BUILTIN_DEVICE_TYPE_SLUGS

MAX_DEVICES = 2000
MAX_DURATION_S = 3600
MAX_ERRORS_KEPT = 20

DEFAULT_DEVICE_TYPES = BUILTIN_DEVICE_TYPE_SLUGS  # the console's built-in catalog
DEFAULT_REGIONS = ("US", "DE", "FR", "IN", "BR", "JP")
DEFAULT_APP_VERSIONS = ("2.2.0", "2.3.1", "2.4.0", "3.0.0-beta.1")
DEFAULT_ATTRIBUTES: dict[str, tuple[Any, ...]] = {"tier": ("free", "pro"), "beta": (True, False)}
DEFAULT_MODELS = ("digit-classifier",)

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class FleetProfile:
    device_types: tuple[str, ...] = DEFAULT_DEVICE_TYPES
    regions: tuple[str, ...] = DEFAULT_REGIONS
    app_versions: tuple[str, ...] = DEFAULT_APP_VERSIONS
    attributes: dict[str, tuple[Any, ...]] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    models: tuple[str, ...] = DEFAULT_MODELS

    def config_for(self, rng: random.Random) -> dict[str, Any]:
        return default_config(
            device_type=rng.choice(self.device_types),
            region=rng.choice(self.regions),
            app_version=rng.choice(self.app_versions),
            attributes={name: rng.choice(values) for name, values in self.attributes.items()},
        )


@dataclass
class SimulationReport:
    devices: int = 0
    enrolled: int = 0
    checkins: int = 0
    checkin_errors: int = 0
    installs: int = 0
    download_failures: int = 0
    injected_failures: int = 0
    inferences: int = 0
    elapsed_s: float = 0.0
    installed_versions: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> version id -> devices
    errors: list[str] = field(default_factory=list)  # the first few, for a human to read


class FlakyTransport(Transport):
    """A transport that only talks to one origin and breaks package downloads halfway at ``fail_rate``."""

    def __init__(self, base_url: str, fail_rate: float, rng: random.Random, *, allow_remote: bool = False) -> None:
        super().__init__(timeout_s=30.0)
        self.base_url = base_url
        self.fail_rate = fail_rate
        self.rng = rng
        self.allow_remote = allow_remote
        self.injected = 0
        self._lock = threading.Lock()

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self._check_target(url)
        return super().request(method, url, **kwargs)

    def open(self, url: str, **kwargs: Any) -> Stream:
        self._check_target(url)
        stream = super().open(url, **kwargs)
        if stream.status in (200, 206) and self.rng.random() < self.fail_rate:
            with self._lock:
                self.injected += 1
            length = int(stream.headers.get("Content-Length") or 0)
            return _BreakingStream(stream, break_after=length // 2)
        return stream

    def _check_target(self, url: str) -> None:
        if not self.allow_remote and not same_origin(url, self.base_url):
            raise TransportError(f"simulator refuses to contact {url}: not the server under test")


class _BreakingStream(Stream):
    def __init__(self, inner: Stream, *, break_after: int) -> None:
        super().__init__(inner.status, inner.headers, inner)
        self._left = break_after

    def read(self, size: int) -> bytes:
        if self._left <= 0:
            raise ConnectionResetError("simulated connection drop")
        chunk = super().read(min(size, self._left))
        self._left -= len(chunk)
        return chunk


def check_target(url: str, *, allow_remote: bool) -> None:
    """Refuse anything but an http(s) URL on a loopback host, unless ``allow_remote``."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--url must be an http(s) URL, got {url!r}")
    if not allow_remote and not is_loopback_url(url):
        raise ValueError(f"{url} is not on this machine (loopback); pass --allow-remote to simulate against it")


def simulate(
    url: str,
    enrollment_key: str,
    *,
    devices: int = 200,
    fail_rate: float = 0.05,
    duration_s: float = 60.0,
    interval_s: float = 5.0,
    infer_runs: int = 3,
    profile: FleetProfile | None = None,
    seed: int = 0,
    allow_remote: bool = False,
    state_root: Path | None = None,
) -> SimulationReport:
    """Run ``devices`` simulated agents for ``duration_s`` seconds and report what they did.

    Device ids are uuid5 of (url, seed, index), so re-running with the same seed
    brings back the same devices (and the same sticky buckets).
    """
    check_target(url, allow_remote=allow_remote)
    if not 1 <= devices <= MAX_DEVICES:
        raise ValueError(f"devices must be 1..{MAX_DEVICES}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be within 0..{MAX_DURATION_S} seconds")
    if not 0 <= fail_rate <= 1:
        raise ValueError("fail rate must be within 0..1")
    if interval_s <= 0:
        raise ValueError("interval must be positive")
    profile = profile or FleetProfile()
    report = SimulationReport(devices=devices)
    lock = threading.Lock()
    stop = threading.Event()
    started = time.monotonic()
    deadline = started + duration_s
    with tempfile.TemporaryDirectory(prefix="fleet-sim-", ignore_cleanup_errors=True) as temp_dir:
        root = state_root or Path(temp_dir)
        agents: list[Agent | None] = [None] * devices
        threads = [
            threading.Thread(
                target=_run_device,
                name=f"sim-device-{index}",
                args=(index, url, enrollment_key, profile, fail_rate, interval_s, infer_runs, seed, allow_remote),
                kwargs={
                    "root": root,
                    "deadline": deadline,
                    "stop": stop,
                    "report": report,
                    "lock": lock,
                    "agents": agents,
                },
                daemon=True,
            )
            for index in range(devices)
        ]
        try:
            for thread in threads:
                thread.start()
            # One shared grace period after the deadline for the last check-ins and event flushes.
            hard_deadline = deadline + 30
            for thread in threads:
                thread.join(max(0.0, hard_deadline - time.monotonic()))
        finally:
            stop.set()
        for agent in agents:
            if agent is None:
                continue
            for model in profile.models:
                current = agent.store.current(model)
                if current:
                    versions = report.installed_versions.setdefault(model, {})
                    versions[str(current["version_id"])] = versions.get(str(current["version_id"]), 0) + 1
    report.elapsed_s = round(time.monotonic() - started, 2)
    return report


def _run_device(
    index: int,
    url: str,
    enrollment_key: str,
    profile: FleetProfile,
    fail_rate: float,
    interval_s: float,
    infer_runs: int,
    seed: int,
    allow_remote: bool,
    *,
    root: Path,
    deadline: float,
    stop: threading.Event,
    report: SimulationReport,
    lock: threading.Lock,
    agents: list[Agent | None],
) -> None:
    rng = random.Random(seed * 1_000_003 + index)
    transport = FlakyTransport(url, fail_rate, rng, allow_remote=allow_remote)
    # One onnxruntime thread per device: hundreds of sessions with a pool per core would swamp the machine.
    agent = Agent(
        root / f"device-{index:05d}", transport=transport, download_attempts=1, retry_delay_s=0, session_threads=1
    )
    agents[index] = agent

    def note_error(exc: Exception) -> None:
        with lock:
            report.checkin_errors += 1
            if len(report.errors) < MAX_ERRORS_KEPT:
                report.errors.append(f"device {index}: {exc}")

    # Spread the first check-ins over one interval so the server does not see a thundering herd.
    if stop.wait(rng.uniform(0, min(interval_s, max(0.0, deadline - time.monotonic()) / 2))):
        return
    device_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#simulated-device-{seed}-{index}"))
    config = profile.config_for(rng)
    try:
        if not agent.enrolled:  # a kept state dir from an earlier run is already enrolled
            agent.enroll(url, enrollment_key, config, models=list(profile.models), device_id=device_id)
    except AgentError as exc:
        note_error(exc)
        return
    with lock:
        report.enrolled += 1
    while time.monotonic() < deadline and not stop.is_set():
        try:
            result = agent.checkin()
        except (AgentError, OSError) as exc:
            note_error(exc)
        else:
            outcomes = Counter(
                "install" if text.startswith("installed") else "download_failure" if "download of" in text else ""
                for text in result.models.values()
            )
            inferences = _infer(agent, profile, rng, infer_runs)
            with lock:
                report.checkins += 1
                report.installs += outcomes["install"]
                report.download_failures += outcomes["download_failure"]
                report.inferences += inferences
        stop.wait(min(interval_s * rng.uniform(0.9, 1.1), max(0.0, deadline - time.monotonic())))
    try:
        agent.flush_events()
    except OSError as exc:
        note_error(exc)
    with lock:
        report.injected_failures += transport.injected


def _infer(agent: Agent, profile: FleetProfile, rng: random.Random, runs: int) -> int:
    done = 0
    for model in profile.models:
        try:
            inputs = agent.model_inputs(model)
        except Exception:  # nothing installed yet, or a file onnxruntime cannot load
            continue
        feeds = _random_feeds(inputs, np.random.default_rng(rng.getrandbits(32)))
        if feeds is None:
            continue
        for _ in range(runs):
            try:
                agent.run(model, feeds)
            except Exception:  # a model that rejects invented inputs must not end the device
                break
            # Synthetic labels: about nine in ten right, so the accuracy charts have something to draw.
            agent.record_accuracy(model, rng.random() < 0.9)
            done += 1
    return done


def _random_feeds(inputs: list[tuple[str, list[Any], str]], rng: np.random.Generator) -> dict[str, np.ndarray] | None:
    feeds: dict[str, np.ndarray] = {}
    for name, shape, type_name in inputs:
        dtype = _NUMPY_TYPES.get(type_name)
        if dtype is None:
            return None  # strings, sequences, maps: nothing sensible to invent
        dims = [dim if isinstance(dim, int) and dim > 0 else 1 for dim in shape]
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(dims).astype(dtype)
        else:
            feeds[name] = np.zeros(dims, dtype=dtype)
    return feeds


def _choices(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return values


def _attribute_choices(text: str) -> tuple[str, tuple[Any, ...]]:
    key, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,VALUE...], got {text!r}")
    return key.strip(), tuple(parse_attribute(f"{key}={value}")[1] for value in _choices(raw))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.agent.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="console base URL (loopback only unless --allow-remote)")
    parser.add_argument("--key", required=True, help="project enrollment key")
    parser.add_argument("--devices", type=int, default=200, help=f"simulated devices, at most {MAX_DEVICES}")
    parser.add_argument("--fail-rate", type=float, default=0.05, help="share of downloads that break halfway")
    parser.add_argument("--duration", type=float, default=60.0, help=f"seconds, at most {MAX_DURATION_S}")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a device's check-ins")
    parser.add_argument("--infer", type=int, default=3, help="model runs per device per check-in")
    parser.add_argument("--device-types", type=_choices, default=DEFAULT_DEVICE_TYPES)
    parser.add_argument("--regions", type=_choices, default=DEFAULT_REGIONS)
    parser.add_argument("--app-versions", type=_choices, default=DEFAULT_APP_VERSIONS)
    parser.add_argument(
        "--attr",
        type=_attribute_choices,
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="an attribute and its values (repeatable); replaces the default attributes",
    )
    parser.add_argument("--models", type=_choices, default=DEFAULT_MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-remote", action="store_true", help="allow a server that is not on this machine")
    parser.add_argument("--keep-state", type=Path, help="keep device state dirs here instead of a temp dir")
    args = parser.parse_args(argv)
    profile = FleetProfile(
        device_types=args.device_types,
        regions=tuple(region.upper() for region in args.regions),
        app_versions=args.app_versions,
        attributes=dict(args.attr) if args.attr else dict(DEFAULT_ATTRIBUTES),
        models=args.models,
    )
    if args.keep_state:
        args.keep_state.mkdir(parents=True, exist_ok=True)
    try:
        report = simulate(
            args.url,
            args.key,
            devices=args.devices,
            fail_rate=args.fail_rate,
            duration_s=args.duration,
            interval_s=args.interval,
            infer_runs=args.infer,
            profile=profile,
            seed=args.seed,
            allow_remote=args.allow_remote,
            state_root=args.keep_state,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(asdict(report), indent=2))
    return 0 if report.enrolled else 1


if __name__ == "__main__":
    sys.exit(main())
