"""Server time of the dashboard pages at fleet scale, and the rate at which device events are ingested.

    python bench/dashboards.py [--events N] [--devices N] [--quick] [--json]

It creates a dedicated PostgreSQL database (dropped at the end; DATABASE_URL names the server), migrates it and
seeds a project with 3 models of 4 versions, the 4 built-in device types, 20 regions, 5 app versions and
``--devices`` devices (10k), then:

- **ingestion** (``events_per_s``): batches of 100 events (as the agent sends them, each device about its model's
  two newest versions) POSTed to the device events endpoint through Django's full request path (in this process,
  no HTTP server), each batch stored and counted into the rollups in its request;
- **fill**: ``--events`` (1M) events over 90 days stored in bulk, and their rollup rows written at once by
  ``devices.telemetry.delivery_counts.bulk_rows`` (and ``sum_per_type``), proven equal to batch-by-batch ingestion by
  ``tests/devices/test_delivery_counts.py``;
- **pages**: the server time (median of 5, in-process, after one warm-up) of each dashboard page and chart CSV,
  for the filled project and for an empty one with the same models, and their ratio.

``--quick``: 20k events, 300 devices (a minute). ``--json`` prints ``{"rows": [{"page", "ms_full", "ms_empty",
"ratio"}], "events_per_s": x, "events": n, "devices": n}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.checkin import admin_url, bench_url, run_sql  # noqa: E402 - the database helpers the benches share

MODELS, VERSIONS_PER_MODEL, DAYS, APP_VERSIONS = 3, 4, 90, ("2.1.0", "2.2.0", "2.3.1", "3.0.0", "3.1.0")
REGIONS = ("DE", "FR", "US", "GB", "JP", "IN", "BR", "CA", "AU", "ES", "IT", "NL", "SE", "PL", "MX", "KR", "SG",
           "ZA", "NG", "AR")  # fmt: skip
# (type, share) of generated events
MIX = (
    ("assignment_changed", 0.08),
    ("download_started", 0.15),
    ("download_completed", 0.13),
    ("download_failed", 0.02),
    ("install_succeeded", 0.12),
    ("install_failed", 0.01),
    ("inference_stats", 0.49),
)
REASONS = ("download incomplete after 3 attempts", "sha256 mismatch", "signature does not verify",
           "No space left on device", "cancelled by the user")  # fmt: skip
BATCH = 100  # devices.agent.delivery.EVENT_BATCH_SIZE


def seed_catalog(slug: str, owner):
    """A project with 3 models of 4 ready versions (rows only: dashboards never read the files)."""
    from console.models import ModelVersion
    from console.projects import services as project_services

    project = project_services.create_project(slug=slug, name=slug.title(), owner=owner)
    versions = []
    for m in range(MODELS):
        model = project.models.create(name=f"model-{m}")
        for n in range(1, VERSIONS_PER_MODEL + 1):
            digest = uuid.uuid4().hex * 2
            versions.append(
                ModelVersion.objects.create(
                    model=model, number=n, file=f"bench/{digest}.onnx", sha256=digest, size_bytes=1000 * n,
                    state=ModelVersion.State.READY,
                    metrics={"benchmark": {"latency_1_thread": {"median_ms": 2.0 * n}, "download_bytes": 800 * n}},
                )
            )  # fmt: skip
    return project, versions


def seed_devices(project, count: int, rng: random.Random) -> tuple[list, dict[str, str]]:
    """``count`` devices spread over types, regions and app versions; returns them and raw tokens of 50."""
    from devices.fleet import keys
    from devices.fleet.services import fleet_settings_for
    from devices.models import Device, DeviceType

    fleet_settings_for(project)  # the token lookup reads the project's fleet settings

    types = list(DeviceType.objects.filter(project=None).order_by("slug"))
    now = datetime.now(UTC)
    tokens, rows = {}, []
    for index in range(count):
        raw = keys.new_device_token()
        if index < 50:
            tokens[f"device-{index:06d}"] = raw
        rows.append(
            Device(
                project=project, device_id=f"device-{index:06d}", token_hash=keys.hash_token(raw),
                device_type=types[index % len(types)], region=REGIONS[(index // 4) % len(REGIONS)],
                app_version=APP_VERSIONS[index % len(APP_VERSIONS)], fingerprint="0" * 64, enrolled_at=now,
                last_seen_at=now - timedelta(hours=rng.randrange(0, 24 * 14)),
            )
        )  # fmt: skip
    return Device.objects.bulk_create(rows, batch_size=2000), tokens


def seed_states(devices, versions, rng: random.Random) -> None:
    """Desired vs installed for the first model: what the stuck list and devices-by-version read."""
    from devices.models import DeviceModelState

    model_versions = [v for v in versions if v.model.name == "model-0"]
    now = datetime.now(UTC)
    DeviceModelState.objects.bulk_create(
        (
            DeviceModelState(
                device=device, model_id=model_versions[0].model_id, desired_version=model_versions[-1],
                installed_version=rng.choice(model_versions), installed_state="running", status="assigned",
                resolution="rule", resolved_at=now - timedelta(hours=rng.randrange(0, 96)),
            )
            for device in devices
        ),
        batch_size=2000,
    )  # fmt: skip


def fill(project, devices, versions, events: int, rng: random.Random) -> float:
    """Store ``events`` events over ``DAYS`` days and write their rollup rows in bulk; returns seconds taken.
    Devices are filled in groups of one configuration, so no two groups share a rollup row."""
    from devices.models import DeliveryRollup, DeviceEvent
    from devices.telemetry.delivery_counts import bulk_rows, sum_per_type

    started = time.perf_counter()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    types, weights = zip(*MIX, strict=True)
    groups: dict[tuple, list] = {}
    for device in devices:
        groups.setdefault((device.device_type_id, device.region, device.app_version), []).append(device)
    per_device = max(1, events // len(devices))
    for group in groups.values():
        by_device = {}
        for device in group:
            home = versions[(device.pk % MODELS) * VERSIONS_PER_MODEL : (device.pk % MODELS + 1) * VERSIONS_PER_MODEL]
            rows = []
            for index in range(per_device):
                version = rng.choice(home)
                kind = rng.choices(types, weights)[0]
                at = today - timedelta(days=rng.randrange(DAYS), seconds=rng.randrange(86400))
                reason = rng.choice(REASONS) if kind.endswith("_failed") else ""
                stats = (
                    {"count": 20, "latency_ms_p50": 3.0 + version.number, "accuracy": 0.9}
                    if kind == "inference_stats"
                    else {}
                )
                rows.append(
                    DeviceEvent(
                        project=project, device=device, event_id=f"b{index}", type=kind, model_id=version.model_id,
                        version=version, reported_version_id=version.pk, at=at, received_at=at, reason=reason,
                        stats=stats,
                    )
                )  # fmt: skip
            by_device[device] = rows
        DeviceEvent.objects.bulk_create([e for rows in by_device.values() for e in rows], batch_size=5000)
        DeliveryRollup.objects.bulk_create(bulk_rows(project.pk, by_device), batch_size=5000)
    sum_per_type(project.pk)
    return time.perf_counter() - started


def analyze() -> None:
    """Planner statistics for the tables just filled, as autovacuum gathers them on a live database some seconds
    after a bulk load: without them PostgreSQL takes 10k devices for one and picks nested loops over them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def ingest(project, tokens: dict[str, str], versions, total: int, rng: random.Random) -> float:
    """Events per second through POST /api/device/v1/events, in batches of ``BATCH``, counted as they arrive."""
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    names = [v.model.name for v in versions]
    sent, started = 0, time.perf_counter()
    devices = list(tokens.items())
    batch_index = 0
    while sent < total:
        device_id, raw = devices[batch_index % len(devices)]
        batch = []
        # A device runs one model: its reports name that model's two newest versions (the installed one and the
        # one it is moving to), as a fleet's batches do.
        home = (batch_index % len(devices)) % MODELS * VERSIONS_PER_MODEL
        for _ in range(min(BATCH, total - sent)):
            index = home + VERSIONS_PER_MODEL - 1 - rng.randrange(2)
            kind = rng.choices(*zip(*MIX[1:], strict=True))[0]
            batch.append({
                "id": uuid.uuid4().hex, "type": kind, "model": names[index], "version_id": versions[index].pk,
                "at": (datetime.now(UTC) - timedelta(minutes=rng.randrange(600))).isoformat(),
                "reason": rng.choice(REASONS) if kind.endswith("_failed") else "",
                "stats": {"count": 20, "latency_ms_p50": 4.0} if kind == "inference_stats" else {},
            })  # fmt: skip
        response = client.post(
            "/api/device/v1/events", {"events": batch}, content_type="application/json",
            HTTP_AUTHORIZATION=f"Device {raw}",
        )  # fmt: skip
        if response.status_code != 200:
            raise RuntimeError(f"events endpoint answered {response.status_code}: {response.content[:300]!r}")
        sent += len(batch)
        batch_index += 1
    return sent / (time.perf_counter() - started)


def pages(slug: str) -> list[tuple[str, str]]:
    return [
        ("overview", f"/p/{slug}/overview/?days=90"),
        ("overview funnel CSV", f"/p/{slug}/overview/?days=90&csv=funnel"),
        ("overview filtered", f"/p/{slug}/overview/?days=30&region=DE&app_version=2.3.1"),
        ("download status", f"/p/{slug}/downloads/?days=90"),
        ("download status CSV", f"/p/{slug}/downloads/?days=90&csv=download_status"),
        ("versions compared", f"/p/{slug}/m/model-0/dashboard/?days=90"),
    ]


def server_ms(client, url: str, rounds: int) -> float:
    response = client.get(url)  # warm-up (and a check)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--ingest", type=int, default=20_000, help="events sent through the endpoint")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20k events, 300 devices, 2k ingested")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events, args.devices, args.ingest, args.rounds = 20_000, 300, 2_000, 3
    if args.events < 1 or args.devices < 50 or args.ingest < 1:
        parser.error("--events and --ingest must be at least 1, --devices at least 50")
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not database_url.startswith("postgres"):
        parser.error("DATABASE_URL must point at a PostgreSQL server")
    name = f"bench_dashboards_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    env = {
        "DATABASE_URL": bench_url(database_url, name),
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "CONSOLE_VAR_DIR": str(tmp / "var"),
        "DEVICE_THROTTLE_RATE": "100000/min",  # one process sends every device's batches back to back
        "LOG_LEVEL": "WARNING",
    }
    run_sql(admin_url(database_url), f'CREATE DATABASE "{name}"')
    try:
        os.environ.update(env)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env=dict(os.environ), cwd=REPO, check=True
        )
        os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.test import Client

        rng = random.Random(7)
        owner = get_user_model().objects.create_user(username="bench-owner", password=uuid.uuid4().hex)
        project, versions = seed_catalog("fleet", owner)
        seed_catalog("empty", owner)
        devices, tokens = seed_devices(project, args.devices, rng)
        seed_states(devices, versions, rng)
        fill_s = fill(project, devices, versions, args.events, rng)  # into empty tables: bulk rows
        analyze()
        events_per_s = ingest(project, tokens, versions, args.ingest, rng)  # then on top, as a fleet reports
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(owner)
        rows = []
        for (page, url), (_, empty_url) in zip(pages("fleet"), pages("empty"), strict=True):
            full = round(server_ms(client, url, args.rounds), 1)
            empty = round(server_ms(client, empty_url, args.rounds), 1)
            rows.append({"page": page, "ms_full": full, "ms_empty": empty, "ratio": round(full / empty, 2)})
        from devices.models import DeviceEvent

        stored = DeviceEvent.objects.count()
    finally:
        from django.db import connections

        connections.close_all()
        run_sql(admin_url(database_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    result = {"rows": rows, "events_per_s": round(events_per_s, 1), "events": stored, "devices": args.devices}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{stored} events, {args.devices} devices; filled in {fill_s:.1f} s; ingestion {events_per_s:.0f} events/s"
        )
        print(f"{'page':<24}{'ms full':>10}{'ms empty':>10}{'ratio':>8}")
        for row in rows:
            print(f"{row['page']:<24}{row['ms_full']:>10}{row['ms_empty']:>10}{row['ratio']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
