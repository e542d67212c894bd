"""Benchmark of device check-in and package download against the real console under gunicorn.

    python bench/checkin.py [--quick] [--json]

It creates a dedicated PostgreSQL database (dropped at the end), migrates it, seeds a project, starts the
console under gunicorn (DEBUG=false, 127.0.0.1 only) and drives it with wrk from another process:

- check-in requests per second and latency p50/p99, as a ratio to the trivial JSON endpoint ``/api/health/live/``
  of the same server in the same run, with 1k, 10k and 100k enrolled devices and 10 and 500 rules;
- download throughput of a 50 MB package through Django, from nginx directly, and through Django handing
  the file to nginx with X-Accel-Redirect.

Three check-in figures per row, each for a random device that installed what it was assigned (as a fleet
does between changes) and each divided by the trivial endpoint's rate measured just before and after it, in
alternating rounds (medians reported, with the spread of the steady ratio):

- **steady** (``checkin_rps``, ``ratio``, ``p50_ms``, ``p99_ms``): the device sends ``If-None-Match`` with
  the ETag of its current answer, a check-in ticket (devices.core.tickets), as the agent does, and gets ``304``:
  body check, the ticket's MAC against the token and the request, the project's plan generation (cached for
  a second), throttle; no device row read, nothing resolved, signed or written.
- **row** (``row_rps``, ``row_ratio``): the same with an ETag that is not a valid ticket (e.g. expired): the
  device row is read by its token and its stored digest answers ``304``.
- **full** (``full_rps``, ``full_ratio``, ``full_p50_ms``, ``full_p99_ms``): the same request without
  ``If-None-Match``, answered ``200`` with the resolved answer from the cached plans, the (cached) signed
  manifest and a fresh HMAC download URL; nothing written either (the device row already holds its state).

Devices spread over the four built-in device types and 8 regions; rules spread over the same 32 segments,
each with an app-version range and a sticky percentage, plus a catch-all last rule (so ~15 candidate rules
per device with 500 rules). Devices, their desired/installed rows and their stored digests (holding the ETag
of their current answer, computed with ``devices.delivery.checkin.settled_state`` as a check-in would, and the
ticket a check-in would issue for it) are bulk-inserted; before each row a sample of devices is checked to
really get 304 with those ETags. Needs
``wrk`` and ``nginx`` (``apt-get install -y wrk nginx``), PostgreSQL (DATABASE_URL's server, default
postgres://postgres@127.0.0.1:5432) and Redis (REDIS_URL). Load loops are bounded in time; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a checkout without an editable install

REGIONS = ["DE", "FR", "US", "IN", "BR", "JP", "GB", "IT"]
SEGMENTS = 32  # 4 built-in device types x 8 regions; device i is in segment i % 32
MODEL = "digit-classifier"
BIG_MODEL = "big-model"
BIG_BYTES = 50 * 1024 * 1024
WORKERS = 2 * (os.cpu_count() or 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout_s: float = 120.0) -> None:  # 4 workers boot Django and onnxruntime on a busy 2-core box
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


# -- database -------------------------------------------------------------------------------------------------


def admin_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def bench_url(database_url: str, name: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(("postgres", parts.netloc, f"/{name}", "", ""))


def run_sql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(sql)


# -- seeding (in this process, on the benchmark database) -----------------------------------------------------


def tiny_onnx() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    constant = helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "add", [x], [y], [constant])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def ready_version(model, payload: bytes, number: int):
    """A version row as a passed check leaves it (the check job itself is benchmarked elsewhere)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from console.models import CompatibilityResult, ModelVersion
    from devices.models import DeviceType

    sha256 = hashlib.sha256(payload).hexdigest()
    name = default_storage.save(f"projects/{model.project_id}/models/{model.pk}/{sha256}.onnx", ContentFile(payload))
    version = ModelVersion.objects.create(
        model=model,
        number=number,
        file=name,
        sha256=sha256,
        size_bytes=len(payload),
        state="ready",
        metadata={"opset_imports": {"ai.onnx": 13}},
    )
    CompatibilityResult.objects.bulk_create(
        [
            CompatibilityResult(version=version, device_type=t, compatible=True)
            for t in DeviceType.objects.filter(project=None)
        ]
    )
    return version


def seed_project() -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from console.catalog import services as catalog_services
    from console.projects import services as project_services
    from devices.fleet import services as fleet_services
    from devices.rules import services as rules_services

    owner = get_user_model().objects.create_user("bench-owner", password="bench-pass-2026")
    project = project_services.create_project(slug="bench", name="Benchmark", owner=owner)
    model = catalog_services.create_model(project=project, name=MODEL)
    version = ready_version(model, tiny_onnx(), 1)
    big = catalog_services.create_model(project=project, name=BIG_MODEL)
    big_version = ready_version(big, os.urandom(BIG_BYTES), 1)
    rules_services.set_default_version(model=big, version=big_version)
    fleet_services.fleet_settings_for(project)
    return {
        "project": project,
        "model": model,
        "version": version,
        "big_version": big_version,
        "etags": [],
        "tickets": [],
    }


def set_rules(seed: dict[str, Any], count: int) -> None:
    from devices.models import DeviceType, TargetingRule

    types = sorted(DeviceType.objects.filter(project=None).values_list("slug", flat=True))
    model, version = seed["model"], seed["version"]
    TargetingRule.objects.filter(model=model).delete()
    rules = [
        TargetingRule(
            model=model,
            version=version,
            priority=i,
            conditions={
                "device_types": [types[i % 4]],
                "regions": [REGIONS[(i // 4) % 8]],
                "app_version": f">=2.{i % 5}",
                "percentage": 10 + i % 90,
                "salt": f"bench-{i}",
            },
        )
        for i in range(count - 1)
    ]
    rules.append(TargetingRule(model=model, version=version, priority=1_000_000, conditions={}))
    TargetingRule.objects.bulk_create(rules)  # a new plan generation, as any change of rules


def segment_configs() -> list[dict[str, Any]]:
    from devices.models import DeviceType

    types = sorted(DeviceType.objects.filter(project=None).values_list("slug", flat=True))
    return [
        {
            "device_type": types[s % 4],
            "runtime": "onnxruntime",
            "runtime_version": "1.17.3",
            "os": "linux",
            "cpu_arch": "arm64",
            "accelerator": "none",
            "memory_mb": 4096,
            "region": REGIONS[(s // 4) % 8],
            "app_version": "2.3.1",
            "attributes": {"tier": "pro"},
        }
        for s in range(SEGMENTS)
    ]


def installed_report(version) -> dict[str, Any]:
    return {MODEL: {"version_id": version.pk, "sha256": version.sha256, "state": "running"}}


def add_devices(seed: dict[str, Any], start: int, stop: int) -> None:
    """Bulk-insert devices start..stop-1 in the steady state for the current rules (states, digests, the
    ETag of each one's current answer in ``seed["etags"]`` and a ticket for it in ``seed["tickets"]``)."""
    from django.utils import timezone

    from devices.core.fingerprint import config_fingerprint
    from devices.delivery.cache import load_model_plans
    from devices.delivery.checkin import CheckinRequest, record_of, settled_state, ticketed
    from devices.fleet.keys import hash_token
    from devices.models import Device, DeviceModelState, DeviceType, FleetSettings

    project = seed["project"]
    fleet = FleetSettings.objects.get(project=project)
    plans = load_model_plans(project.pk, [MODEL])
    types = {t.slug: t for t in DeviceType.objects.filter(project=None)}
    configs = segment_configs()
    installed = installed_report(seed["version"])
    now = timezone.now()
    for chunk_start in range(start, stop, 5000):
        devices, rows = [], []
        for i in range(chunk_start, min(stop, chunk_start + 5000)):
            config = configs[i % SEGMENTS]
            device = Device(
                project=project,
                device_id=f"bench-{i:06d}",
                token_hash=hash_token(f"dev_bench_{i}"),
                device_type=types[config["device_type"]],
                region=config["region"],
                app_version=config["app_version"],
                attributes=config["attributes"],
                config=config,
                runtime="onnxruntime",
                runtime_version="1.17.3",
                os="linux",
                cpu_arch="arm64",
                accelerator="none",
                memory_mb=4096,
                fingerprint=config_fingerprint(config),
                enrolled_at=now,
                last_seen_at=now,
            )
            request = CheckinRequest(fingerprint=device.fingerprint, models=[MODEL], installed=installed)
            device.delivery_digest, etag, states = settled_state(record_of(device, fleet), request, plans)
            seed["etags"].append(etag)
            devices.append(device)
            rows.append(states[0])
        Device.objects.bulk_create(devices, batch_size=2500)  # sets the primary keys (PostgreSQL)
        for device, etag in zip(devices, seed["etags"][chunk_start:], strict=False):
            request = CheckinRequest(fingerprint=device.fingerprint, models=[MODEL], installed=installed)
            seed["tickets"].append(ticketed(record_of(device, fleet), request, etag, timezone.now()))  # as a check-in
        DeviceModelState.objects.bulk_create(
            [
                DeviceModelState(device=device, resolved_at=now, **row)
                for device, row in zip(devices, rows, strict=True)
            ],
            batch_size=2500,
        )
    analyze()


def analyze() -> None:
    """Fresh planner statistics, so autovacuum does not wake up in the middle of a measurement."""
    from django.db import connection

    from devices.models import Device, DeviceModelState

    with connection.cursor() as cursor:
        for model in (Device, DeviceModelState):
            cursor.execute(f'VACUUM ANALYZE "{model._meta.db_table}"')


def clear_devices(seed: dict[str, Any]) -> None:
    from devices.models import Device, DeviceModelState

    DeviceModelState.objects.filter(device__project=seed["project"]).delete()
    Device.objects.filter(project=seed["project"]).delete()
    seed["etags"] = []
    seed["tickets"] = []


# -- load -----------------------------------------------------------------------------------------------------


# Both endpoints are driven through a Lua request() so wrk spends the same effort per request on each.
TRIVIAL_LUA = """
local devices = {devices}
math.randomseed(os.time())
request = function()
  local i = math.random(0, devices - 1)
  return wrk.format("GET", "/api/health/live/", {{["Authorization"] = "Device dev_bench_" .. i}})
end
"""
CHECKIN_LUA = """
local devices = {devices}
local fingerprints = {{{fingerprints}}}
local installed = '{installed}'
local etags = {{}}
for line in io.lines("{etags}") do etags[#etags + 1] = line end
local steady = {steady}
math.randomseed(os.time())
request = function()
  local i = math.random(0, devices - 1)
  local body = '{{"fingerprint":"' .. fingerprints[(i % {segments}) + 1] .. '","models":["{model}"],"installed":' .. installed .. '}}'
  local headers = {{["Authorization"] = "Device dev_bench_" .. i, ["Content-Type"] = "application/json"}}
  if steady then headers["If-None-Match"] = etags[i + 1] end
  return wrk.format("POST", "/api/device/v1/checkin", headers, body)
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 16,
    script: Path | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if script is not None:
        command += ["-s", str(script)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output)
    latency = {
        p: float(v) * _UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "rps": rps,
        "p50_ms": latency.get("50", 0.0),
        "p99_ms": latency.get("99", 0.0),
        "mb_s": float(transfer[1]) * _BYTES[transfer[2]] / 1024**2 if transfer else 0.0,
        "errors": int(errors[1]) if errors else 0,
    }


def measure_point(base: str, scripts: dict[str, Path], rounds: int, seconds: float) -> dict[str, float]:
    """Alternating rounds trivial, steady, row, full, ..., trivial: each check-in round is divided by the mean of
    the trivial rounds either side of it, and the medians are reported, so drift and noise from neighbours
    on a shared machine hit both sides of each ratio alike. ``ratio_min``/``ratio_max`` show the spread."""
    wrk(base, seconds=2, script=scripts["trivial"])  # warm every worker: connections, imports
    wrk(base, seconds=3, script=scripts["full"])  # and its cached plans, and the database's caches
    trivial = [wrk(base, seconds=seconds, script=scripts["trivial"])]
    steady, row, full = [], [], []
    for _ in range(rounds):
        steady.append(wrk(base, seconds=seconds, script=scripts["steady"]))
        row.append(wrk(base, seconds=seconds, script=scripts["row"]))
        full.append(wrk(base, seconds=seconds, script=scripts["full"]))
        trivial.append(wrk(base, seconds=seconds, script=scripts["trivial"]))
    if any(run["errors"] for run in steady + row + full):
        raise RuntimeError("some check-ins failed; the benchmark would be meaningless")
    around = [(trivial[i]["rps"] + trivial[i + 1]["rps"]) / 2 for i in range(rounds)]

    def ratios_of(runs: list[dict[str, float]]) -> list[float]:
        return [run["rps"] / base_rps for run, base_rps in zip(runs, around, strict=True)]

    ratios, row_ratios, full_ratios = ratios_of(steady), ratios_of(row), ratios_of(full)

    def median_of(runs: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(run[key] for run in runs), 2)

    return {
        "checkin_rps": median_of(steady, "rps"),
        "trivial_rps": median_of(trivial, "rps"),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "p50_ms": median_of(steady, "p50_ms"),
        "p99_ms": median_of(steady, "p99_ms"),
        "row_rps": median_of(row, "rps"),
        "row_ratio": round(statistics.median(row_ratios), 3),
        "full_rps": median_of(full, "rps"),
        "full_ratio": round(statistics.median(full_ratios), 3),
        "full_p50_ms": median_of(full, "p50_ms"),
        "full_p99_ms": median_of(full, "p99_ms"),
    }


def check_steady(base: str, etags: list[str], version) -> None:
    """A few devices sending their ETag must get 304, else the steady figure would measure something else."""
    for i in range(0, len(etags), max(1, len(etags) // 10)):
        body = json.dumps(
            {"fingerprint": _fingerprint_of(i), "models": [MODEL], "installed": installed_report(version)}
        ).encode()
        request = urllib.request.Request(
            f"{base}/api/device/v1/checkin",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Device dev_bench_{i}",
                "Content-Type": "application/json",
                "If-None-Match": etags[i],
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status != 304:
            raise RuntimeError(f"device {i} with its current ETag got {status}, not 304")


def write_scripts(tmp: Path, devices: int, seed: dict[str, Any]) -> dict[str, Path]:
    from devices.core.fingerprint import config_fingerprint

    fingerprints = ",".join(f'"{config_fingerprint(c)}"' for c in segment_configs())
    scripts = {}
    for kind, etags in (("steady", seed["tickets"]), ("row", seed["etags"]), ("full", [])):
        etags_file = tmp / f"etags-{kind}-{devices}.txt"
        etags_file.write_text("\n".join(etags[:devices]) + "\n")
        script = scripts[kind] = tmp / f"checkin-{kind}-{devices}.lua"
        script.write_text(
            CHECKIN_LUA.format(
                devices=devices,
                fingerprints=fingerprints,
                segments=SEGMENTS,
                model=MODEL,
                etags=etags_file,
                steady="true" if etags else "false",
                installed=json.dumps(installed_report(seed["version"]), separators=(",", ":")),
            )
        )
    scripts["trivial"] = tmp / f"trivial-{devices}.lua"
    scripts["trivial"].write_text(TRIVIAL_LUA.format(devices=devices))
    return scripts


# -- processes ------------------------------------------------------------------------------------------------


class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        handle = open(log, "ab")  # inherited by the process; closed when this one exits
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.running):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.running.clear()


def gunicorn(processes: Processes, env: dict[str, str], port: int, log: Path) -> str:
    processes.start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "console.wsgi",
            "-w",
            str(WORKERS),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--keep-alive",
            "5",
        ],
        env,
        log,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/api/health/live/")
    return base


NGINX_CONF = """
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    types {{ application/octet-stream onnx; }}
    server {{  # the stored files, served directly
        listen 127.0.0.1:{direct_port};
        location /media/ {{ alias {media}/; }}
    }}
    server {{  # the console behind nginx, downloads handed back with X-Accel-Redirect
        listen 127.0.0.1:{proxy_port};
        location / {{ proxy_pass http://127.0.0.1:{django_port}; proxy_set_header Host $host; }}
        location /protected-media/ {{
            internal;
            alias {media}/;
            etag off;
            add_header ETag $upstream_http_etag;
            add_header X-Content-SHA256 $upstream_http_x_content_sha256;
        }}
    }}
}}
"""


def download_url(base: str, device_index: int) -> str:
    body = json.dumps({"fingerprint": _fingerprint_of(device_index), "models": [BIG_MODEL]}).encode()
    request = urllib.request.Request(
        f"{base}/api/device/v1/checkin",
        data=body,
        method="POST",
        headers={"Authorization": f"Device dev_bench_{device_index}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["models"][BIG_MODEL]["manifest"]["download_url"]


def _fingerprint_of(device_index: int) -> str:
    from devices.core.fingerprint import config_fingerprint

    return config_fingerprint(segment_configs()[device_index % SEGMENTS])


def check_download(url: str, token: str, big_version) -> None:
    """The bytes and headers a device would check, through whichever server ``url`` points at."""
    etag = f'"{big_version.sha256}"'
    request = urllib.request.Request(
        url, headers={"Authorization": f"Device {token}", "Range": "bytes=1000-", "If-Range": etag}
    )  # as the agent resumes
    with urllib.request.urlopen(request, timeout=60) as response:
        data = response.read()
        if (
            response.status != 206
            or response.headers["X-Content-SHA256"] != big_version.sha256
            or response.headers["ETag"] != etag
        ):
            raise RuntimeError(f"{url}: status {response.status}, headers {dict(response.headers)}")
    if len(data) != BIG_BYTES - 1000:
        raise RuntimeError(f"{url}: {len(data)} bytes")


def measure_downloads(
    processes: Processes, env: dict[str, str], tmp: Path, media: Path, base: str, seed: dict[str, Any], seconds: float
) -> dict[str, float]:
    token = "dev_bench_0"
    path = download_url(base, 0)
    check_download(base + path, token, seed["big_version"])
    django = wrk(base + path, seconds=seconds, connections=4, headers={"Authorization": f"Device {token}"})

    accel_port, direct_port, proxy_port = free_port(), free_port(), free_port()
    accel_env = {**env, "DEVICE_DOWNLOAD_ACCEL_REDIRECT": "/protected-media/"}
    accel_base = gunicorn(processes, accel_env, accel_port, tmp / "gunicorn-accel.log")
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(tmp=tmp, media=media, direct_port=direct_port, proxy_port=proxy_port, django_port=accel_port)
    )
    processes.start(["nginx", "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"], env, tmp / "nginx.log")
    wait_for(f"{accel_base}/api/health/live/")
    wait_for(f"http://127.0.0.1:{proxy_port}/api/health/live/")
    via_nginx = f"http://127.0.0.1:{proxy_port}"
    check_download(via_nginx + path, token, seed["big_version"])
    accel = wrk(via_nginx + path, seconds=seconds, connections=4, headers={"Authorization": f"Device {token}"})
    direct = wrk(
        f"http://127.0.0.1:{direct_port}/media/{seed['big_version'].file.name}", seconds=seconds, connections=4
    )
    return {
        "django_mb_s": round(django["mb_s"], 1),
        "nginx_mb_s": round(direct["mb_s"], 1),
        "accel_redirect_mb_s": round(accel["mb_s"], 1),
    }


# -- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k devices, 10 rules, a few seconds per point")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed: apt-get install -y wrk nginx")
    device_counts, rule_counts, rounds, seconds = (
        ([1000], [10], 3, 2.0) if args.quick else ([1000, 10_000, 100_000], [10, 500], 5, 3.0)
    )
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not database_url.startswith("postgres"):
        parser.error("DATABASE_URL must point at a PostgreSQL server")
    name = f"bench_checkin_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-checkin-"))
    media = tmp / "media"
    media.mkdir()
    for path in (tmp, media):
        path.chmod(0o755)  # nginx workers run as another user
    env = {
        **os.environ,
        "DATABASE_URL": bench_url(database_url, name),
        "DEBUG": "false",
        "DB_CONN_MAX_AGE": "600",
        "SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "CONSOLE_VAR_DIR": str(tmp / "var"),
        "STORAGE_ROOT": str(media),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        "LOG_LEVEL": "WARNING",
        # Last-seen notes are written behind; flushing every second (production default: 5) makes each
        # check-in round pay for its own writes rather than the trivial round after it.
        "DEVICE_LAST_SEEN_FLUSH_S": "1",
        # Every check-in writes its last-seen time, as in a real fleet whose devices check in less often
        # than once a minute; by default the 1k rows (each device checking in twice a second here) would
        # skip nearly all those writes and flatter the small fleet.
        "DEVICE_LAST_SEEN_RESOLUTION_S": "0",
        "PYTHONPATH": str(REPO),
    }
    run_sql(admin_url(database_url), f'CREATE DATABASE "{name}"')
    processes = Processes()
    results: dict[str, Any] = {"rows": [], "download": {}}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=REPO, check=True)
        os.environ.update(
            {
                key: env[key]
                for key in ("DATABASE_URL", "SECRET_KEY", "CONSOLE_VAR_DIR", "STORAGE_ROOT", "REDIS_URL", "DEBUG")
            }
        )
        os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
        import django

        django.setup()
        seed = seed_project()
        base = gunicorn(processes, env, free_port(), tmp / "gunicorn.log")
        for rules in rule_counts:
            set_rules(seed, rules)
            clear_devices(seed)
            enrolled = 0
            for devices in device_counts:
                add_devices(seed, enrolled, devices)
                enrolled = devices
                scripts = write_scripts(tmp, devices, seed)
                for etags in (seed["tickets"], seed["etags"]):
                    check_steady(base, etags[:devices], seed["version"])
                row = {"devices": devices, "rules": rules, **measure_point(base, scripts, rounds, seconds)}
                results["rows"].append(row)
                if not args.json:
                    print(
                        f"{devices:>7} devices {rules:>4} rules: steady {row['checkin_rps']:>7.1f}/s "
                        f"(p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, ratio {row['ratio']}), "
                        f"row {row['row_rps']:>7.1f}/s (ratio {row['row_ratio']}), "
                        f"full {row['full_rps']:>7.1f}/s (ratio {row['full_ratio']}), "
                        f"trivial {row['trivial_rps']:>7.1f}/s",
                        file=sys.stderr,
                        flush=True,
                    )
        results["download"] = measure_downloads(processes, env, tmp, media, base, seed, 2 * seconds)
    finally:
        processes.stop_all()
        from django.db import connections

        connections.close_all()
        run_sql(admin_url(database_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
    else:
        print_table(results)
    return 0


def flatness(rows: list[dict[str, Any]]) -> list[tuple[int, int, int, float, float]]:
    """Per rule count: (rules, smallest fleet, largest fleet, steady ratio at each)."""
    by_rules: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_rules.setdefault(row["rules"], []).append(row)
    return [
        (rules, group[0]["devices"], group[-1]["devices"], group[0]["ratio"], group[-1]["ratio"])
        for rules, group in by_rules.items()
        if len(group) > 1
    ]


def print_table(results: dict[str, Any]) -> None:
    print(f"\ncheck-in under gunicorn ({WORKERS} sync workers), wrk 2 threads x 16 connections, loopback;")
    print("steady = If-None-Match with its current ETag, a check-in ticket (304 without the device row);")
    print("row = an ETag that is no ticket (304 from the device row); full = no If-None-Match (200);")
    print("ratio = / trivial, median of alternating rounds (spread = lowest and highest steady round)")
    print(
        f"{'devices':>8} {'rules':>6} {'trivial/s':>10} {'steady/s':>9} {'ratio':>6} {'spread':>12} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'row/s':>8} {'ratio':>6} {'full/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for row in results["rows"]:
        spread = f"{row['ratio_min']:.3f}-{row['ratio_max']:.3f}"
        print(
            f"{row['devices']:>8} {row['rules']:>6} {row['trivial_rps']:>10.1f} {row['checkin_rps']:>9.1f} "
            f"{row['ratio']:>6.3f} {spread:>12} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
            f"{row['row_rps']:>8.1f} {row['row_ratio']:>6.3f} "
            f"{row['full_rps']:>8.1f} {row['full_ratio']:>6.3f} {row['full_p50_ms']:>7.2f} {row['full_p99_ms']:>7.2f}"
        )
    for rules, small, large, before, after in flatness(results["rows"]):
        print(
            f"{rules} rules, {small} -> {large} devices: steady ratio {before:.3f} -> {after:.3f} "
            f"({100 * (after / before - 1):+.1f}%)"
        )
    download = results["download"]
    print(f"\ndownload of a {BIG_BYTES // 1024**2} MB package, wrk 4 connections (MB/s)")
    print(f"  Django (FileResponse, sendfile): {download['django_mb_s']:>8.1f}")
    print(f"  nginx directly:                  {download['nginx_mb_s']:>8.1f}")
    print(f"  Django + X-Accel-Redirect:       {download['accel_redirect_mb_s']:>8.1f}")


if __name__ == "__main__":
    sys.exit(main())
