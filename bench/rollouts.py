"""Benchmark of staged rollouts: the beat's work per fleet size, check-in with running rollouts, halt latency.

    python bench/rollouts.py [--quick] [--json]

On a dedicated PostgreSQL database (dropped at the end; the machinery is bench/checkin.py's):

- **advance** and **halt** of a running rollout by the beat (``devices.rollouts.engine.step_rollout``) on
  fleets of 1k, 10k and 100k enrolled devices (``--quick``: 100 and 1000): wall time and the number of
  database writes (INSERT/UPDATE/DELETE statements, counted with Django's CaptureQueriesContext). A stage is
  computed at check-in from the rollout's salt, so both should be flat in fleet size (hawkBit assigns each
  device a row).
- **check-in throughput** with 0 and with 10 running rollouts of the model (over disjoint targets, as the
  services require), under gunicorn with wrk: steady (a check-in ticket: 304 without the database), row (304
  from the device row) and full (200, resolved from the cached plans) answers, each as a ratio to the trivial
  endpoint measured in alternating rounds of the same run (bench/checkin.py's ``measure_point``).
- **halt latency**: from the moment failing download events are posted by devices until a check-in of a
  device in the stage stops being offered the version; the beat runs in this process every
  ``--beat-interval`` seconds (the goal: under one beat interval plus the generation cache).

``--json`` prints one object: ``advance_ms``, ``advance_writes``, ``halt_ms``, ``halt_writes`` (each
``{"<fleet size>": value}``), ``checkin_ratio_no_rollouts`` and ``checkin_ratio_rollouts`` (each ``{"steady",
"row", "full"}``), ``halt_latency_s``, ``beat_interval_s``, ``fleets``. Needs ``wrk``, PostgreSQL
(DATABASE_URL's server) and Redis (REDIS_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import checkin as machinery  # noqa: E402 - after the path is set

WRITES = ("INSERT", "UPDATE", "DELETE")
STAGES = [
    {"percent": 10, "dwell_minutes": 30},
    {"percent": 50, "dwell_minutes": 30},
    {"percent": 100, "dwell_minutes": 30},
]


# -- seeding --------------------------------------------------------------------------------------------------


def seed() -> dict[str, Any]:
    """A project with the check-in bench's model at version 1 (its default) and a version 2 to roll out; an owner
    who proposes and an approver who signs off."""
    from django.contrib.auth import get_user_model

    from console.catalog import services as catalog_services
    from console.projects import roles
    from console.projects import services as project_services
    from devices.fleet import services as fleet_services
    from devices.rules import services as rules_services

    users = get_user_model().objects
    owner = users.create_user("bench-owner", password="bench-pass-2026")
    approver = users.create_user("bench-approver", password="bench-pass-2026")
    project = project_services.create_project(slug="bench", name="Benchmark", owner=owner)
    project_services.set_member(project=project, user=approver, role=roles.APPROVER)
    model = catalog_services.create_model(project=project, name=machinery.MODEL)
    v1 = machinery.ready_version(model, machinery.tiny_onnx(), 1)
    payload = machinery.tiny_onnx().replace(b"add", b"ad2")  # the graph renamed: other bytes, the same model
    assert payload != machinery.tiny_onnx()
    v2 = machinery.ready_version(model, payload, 2)
    rules_services.set_default_version(model=model, version=v1)
    fleet_services.fleet_settings_for(project)
    return {
        "project": project,
        "model": model,
        "version": v1,
        "v2": v2,
        "owner": owner,
        "approver": approver,
        "etags": [],
        "tickets": [],
    }


def start_rollout(world: dict[str, Any], target: dict[str, Any] | None = None, stages=STAGES):
    from devices.rollouts import services

    model, owner = world["model"], world["owner"]
    rollout = services.propose_rollout(model=model, version=world["v2"], user=owner, target=target or {}, stages=stages)
    rollout = services.submit_rollout(rollout=rollout, user=owner)
    rollout = services.approve_rollout(rollout=rollout, user=world["approver"], comment="bench")
    return services.start_rollout(rollout=rollout, user=owner)


def report_failures(world: dict[str, Any], rollout, count: int) -> None:
    """``count`` failed downloads of the rollout's version, reported by the fleet's first device."""
    from django.utils import timezone

    from devices.models import Device
    from devices.telemetry.events import record_events

    device = Device.objects.filter(project=world["project"]).order_by("pk").first()
    now = timezone.now()
    events = [
        {
            "id": uuid.uuid4().hex,
            "type": "download_failed",
            "model": machinery.MODEL,
            "version_id": rollout.version_id,
            "at": now,
            "reason": "bench",
            "stats": {},
        }
        for _ in range(count)
    ]
    record_events(device=device, events=events, now=now)


# -- the beat's work per fleet size ---------------------------------------------------------------------------


def timed_step(rollout_id: int, now) -> tuple[str | None, float, int]:
    """(action, milliseconds, writes) of one beat step of one rollout."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from devices.rollouts import engine

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        action = engine.step_rollout(rollout_id, now)
        elapsed = (time.perf_counter() - started) * 1000
    writes = sum(1 for query in queries.captured_queries if query["sql"].lstrip().upper().startswith(WRITES))
    return action, round(elapsed, 2), writes


def measure_engine(world: dict[str, Any], fleets: list[int]) -> dict[str, dict[str, float]]:
    from devices.rollouts import services

    figures: dict[str, dict[str, float]] = {"advance_ms": {}, "advance_writes": {}, "halt_ms": {}, "halt_writes": {}}
    enrolled = 0
    for fleet in fleets:
        machinery.add_devices(world, enrolled, fleet)
        enrolled = fleet
        rollout = start_rollout(world)
        action, ms, writes = timed_step(rollout.pk, rollout.stage_started_at + timedelta(minutes=30))
        if action != "advance":
            raise RuntimeError(f"expected an advance, the beat did {action}")
        figures["advance_ms"][str(fleet)], figures["advance_writes"][str(fleet)] = ms, writes
        report_failures(world, rollout, 40)
        action, ms, writes = timed_step(rollout.pk, rollout.stage_started_at + timedelta(minutes=31))
        if action != "halt":
            raise RuntimeError(f"expected a halt, the beat did {action}")
        figures["halt_ms"][str(fleet)], figures["halt_writes"][str(fleet)] = ms, writes
        rollout.refresh_from_db()
        services.rollback_rollout(rollout=rollout, user=world["owner"])
    return figures


# -- check-in with and without rollouts -----------------------------------------------------------------------


def disjoint_targets(count: int) -> list[dict[str, Any]]:
    """``count`` targets no two of which reach a common device: one (device type, region) segment each."""
    from devices.models import DeviceType

    types = sorted(DeviceType.objects.filter(project=None).values_list("slug", flat=True))
    return [
        {"device_types": [types[i % len(types)]], "regions": [machinery.REGIONS[i // len(types)]]} for i in range(count)
    ]


def measure_checkin(world, base: str, tmp: Path, devices: int, rounds: int, seconds: float) -> dict[str, Any]:
    def point() -> dict[str, float]:
        # The fleet settled under the current plans (its tickets carry the current generation), then measured.
        machinery.clear_devices(world)
        machinery.add_devices(world, 0, devices)
        scripts = machinery.write_scripts(tmp, devices, world)
        machinery.check_steady(base, world["tickets"][:devices], world["version"])
        row = machinery.measure_point(base, scripts, rounds, seconds)
        return {"steady": row["ratio"], "row": row["row_ratio"], "full": row["full_ratio"]}

    without = point()
    # Ten running rollouts of the model over disjoint segments, each offering version 2 to 0.01 % of its target
    # (a device or so): every full check-in asks them first, the fleet's answers stay those it settled on.
    first = [{"percent": 0.01, "dwell_minutes": 30}, {"percent": 100, "dwell_minutes": 30}]
    for target in disjoint_targets(10):
        start_rollout(world, target, first)
    return {"no_rollouts": without, "rollouts": point()}


# -- halt latency ---------------------------------------------------------------------------------------------


def post(base: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Device {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def measure_halt_latency(world: dict[str, Any], base: str, beat_interval_s: float) -> float:
    """Seconds from posting failing events until a check-in in the stage is no longer offered version 2."""
    from django.db import connections

    from devices.core.rollout_plan import in_stage
    from devices.models import Rollout
    from devices.rollouts import engine

    Rollout.objects.filter(state__in=["running", "paused", "halted"]).update(state="rolled_back")
    rollout = start_rollout(world, None, [{"percent": 50, "dwell_minutes": 30}, {"percent": 100, "dwell_minutes": 30}])
    index = next(i for i in range(len(world["etags"])) if in_stage(f"bench-{i:06d}", rollout.salt, 50))
    token = f"dev_bench_{index}"
    checkin = {
        "fingerprint": machinery._fingerprint_of(index),
        "models": [machinery.MODEL],
        "installed": machinery.installed_report(world["version"]),
    }

    def offered() -> int | None:
        status, answer = post(base, "/api/device/v1/checkin", token, checkin)
        if status != 200 or answer is None:
            raise RuntimeError(f"check-in answered {status}")
        return answer["models"][machinery.MODEL]["manifest"]["version_id"]

    if offered() != world["v2"].pk:
        raise RuntimeError("the device in the stage is not offered version 2")
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(beat_interval_s):
                engine.step_rollouts()
        finally:
            connections.close_all()

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        time.sleep(beat_interval_s * 0.37)  # fail at an arbitrary point of the beat's cycle
        started = time.monotonic()
        at = datetime.now(UTC).isoformat()
        events = [
            {"id": uuid.uuid4().hex, "type": "download_failed", "model": machinery.MODEL, "version_id": world["v2"].pk}
            | {"at": at, "reason": "bench"}
            for _ in range(40)
        ]
        status, _ = post(base, "/api/device/v1/events", token, {"events": events})
        if status != 200:
            raise RuntimeError(f"events answered {status}")
        while offered() == world["v2"].pk:
            if time.monotonic() - started > 10 * beat_interval_s + 30:
                raise RuntimeError("the rollout never halted")
            time.sleep(0.05)
        return round(time.monotonic() - started, 2)
    finally:
        stop.set()
        beater.join()


# -- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fleets of 100 and 1000, short check-in rounds")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--beat-interval", type=float, default=None, help="seconds between beats (halt latency)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install -y wrk")
    fleets, checkin_devices, rounds, seconds, beat_s = (
        ([100, 1000], 1000, 2, 1.5, 1.0) if args.quick else ([1000, 10_000, 100_000], 10_000, 5, 3.0, 5.0)
    )
    beat_s = args.beat_interval or beat_s
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not database_url.startswith("postgres"):
        parser.error("DATABASE_URL must point at a PostgreSQL server")
    name = f"bench_rollouts_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-rollouts-"))
    media = tmp / "media"
    media.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": machinery.bench_url(database_url, name),
        "DEBUG": "false",
        "DB_CONN_MAX_AGE": "600",
        "SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "CONSOLE_VAR_DIR": str(tmp / "var"),
        "STORAGE_ROOT": str(media),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        "LOG_LEVEL": "WARNING",
        "DEVICE_LAST_SEEN_FLUSH_S": "1",
        "DEVICE_LAST_SEEN_RESOLUTION_S": "0",
        "DEVICE_THROTTLE_RATE": "100000/min",
        "PYTHONPATH": str(REPO),
    }
    machinery.run_sql(machinery.admin_url(database_url), f'CREATE DATABASE "{name}"')
    processes = machinery.Processes()
    results: dict[str, Any] = {"fleets": fleets, "beat_interval_s": beat_s}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=REPO, check=True)
        for key in ("DATABASE_URL", "SECRET_KEY", "CONSOLE_VAR_DIR", "STORAGE_ROOT", "REDIS_URL", "DEBUG"):
            os.environ[key] = env[key]
        os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
        import django

        django.setup()
        world = seed()
        machinery.set_rules(world, 10)
        results.update(measure_engine(world, fleets))
        log("engine", results)
        base = machinery.gunicorn(processes, env, machinery.free_port(), tmp / "gunicorn.log")
        ratios = measure_checkin(world, base, tmp, checkin_devices, rounds, seconds)
        results["checkin_ratio_no_rollouts"] = ratios["no_rollouts"]
        results["checkin_ratio_rollouts"] = ratios["rollouts"]
        log("check-in", ratios)
        results["halt_latency_s"] = measure_halt_latency(world, base, beat_s)
    finally:
        processes.stop_all()
        from django.db import connections

        connections.close_all()
        machinery.run_sql(machinery.admin_url(database_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
    else:
        print_table(results)
    return 0


def log(what: str, figures: Any) -> None:
    print(f"{what}: {json.dumps(figures, default=str)}", file=sys.stderr, flush=True)


def print_table(results: dict[str, Any]) -> None:
    print("\nthe beat on one running rollout (writes = INSERT/UPDATE/DELETE statements)")
    print(f"{'devices':>9} {'advance ms':>11} {'writes':>7} {'halt ms':>8} {'writes':>7}")
    for fleet in results["fleets"]:
        key = str(fleet)
        print(
            f"{fleet:>9} {results['advance_ms'][key]:>11.2f} {results['advance_writes'][key]:>7} "
            f"{results['halt_ms'][key]:>8.2f} {results['halt_writes'][key]:>7}"
        )
    print("\ncheck-in throughput / trivial endpoint (median of alternating rounds)")
    print(f"{'':>16} {'steady':>7} {'row':>7} {'full':>7}")
    for label, key in (("no rollouts", "checkin_ratio_no_rollouts"), ("10 rollouts", "checkin_ratio_rollouts")):
        row = results[key]
        print(f"{label:>16} {row['steady']:>7.3f} {row['row']:>7.3f} {row['full']:>7.3f}")
    print(
        f"\nhalt latency: {results['halt_latency_s']} s from the failing events to the halt at check-in "
        f"(beat every {results['beat_interval_s']} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
