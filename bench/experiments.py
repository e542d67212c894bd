"""Benchmark of an experiment's results page and results API as its events grow.

    python bench/experiments.py [--quick] [--json]

It creates a dedicated PostgreSQL database (dropped at the end; DATABASE_URL names the server), migrates it and
seeds a project with 10k devices over the four built-in device types and 8 regions, and two running two-arm
experiments of one model: one that received no events, and one whose devices reported 100k, then 1M events
(inference stats with a latency, labelled feedback, downloads and installs) spread over 30 days. The rollups are
filled through the bulk path (``devices.telemetry.bulk``, the grouping ingestion does, proven equal to it by
``tests/devices/test_rollups_bulk.py``); results read rollups only, so raw events are not stored.

Figures are server time in this process (Django's test client: routing, permissions, queries, statistics,
figures, template or JSON; no network), medians of repeated requests:

- ``ms_results_page`` / ``ms_results_api``: the loaded experiment's dashboard and results API;
- ``ms_results_page_empty`` / ``ms_results_api_empty``: the same for the experiment with no events;
- ``page_ratio`` / ``api_ratio``: loaded over empty, requested in alternation (the median of each round's
  ratio). The goal: under 300 ms at 1M events, at most 2x empty.

``--quick`` (used by tests/bench/test_experiments_bench.py): 1k devices, 10k events, 3 repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a checkout without an editable install

from bench.checkin import admin_url, bench_url, run_sql  # noqa: E402 - the database helpers the benches share

REGIONS = ("US", "DE", "FR", "IN", "BR", "JP", "GB", "CA")
DAYS = 30
CHUNK_DEVICES = 500


class Event(NamedTuple):
    """What the bulk counter reads of an event (a DeviceEvent without the row)."""

    type: str
    model_id: int
    version_id: int
    at: Any
    received_at: Any
    stats: dict


def seed(devices: int) -> dict[str, Any]:
    """A project, a model with two ready versions (checked for every built-in type), devices, two experiments."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from console.models import CompatibilityResult, ModelVersion
    from console.projects import services as project_services
    from devices.experiments import services as experiment_services
    from devices.models import Device, DeviceType

    user = get_user_model().objects.create_user(username="bench-owner", password="bench-password-123")
    project = project_services.create_project(slug="bench", name="Bench", owner=user)
    from console.catalog import services as catalog_services

    model = catalog_services.create_model(project=project, name="classifier", user=user)
    types = list(DeviceType.objects.filter(project=None).order_by("slug"))
    versions = []
    for number in (1, 2):
        version = ModelVersion.objects.create(
            model=model,
            number=number,
            file=f"bench/{number}.onnx",
            sha256=f"{number:064x}",
            size_bytes=1000,
            state=ModelVersion.State.READY,
        )
        CompatibilityResult.objects.bulk_create(
            CompatibilityResult(version=version, device_type=t, compatible=True, reasons=[]) for t in types
        )
        versions.append(version)
    now = timezone.now()
    Device.objects.bulk_create(
        (
            Device(
                project=project,
                device_id=f"device-{i:05d}",
                token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
                device_type=types[i % len(types)],
                region=REGIONS[(i // len(types)) % len(REGIONS)],
                app_version="2.3.1",
                fingerprint="0" * 64,
                enrolled_at=now,
            )
            for i in range(devices)
        ),
        batch_size=2000,
    )
    experiments = {}
    for name in ("empty", "loaded"):
        arms = [experiment_services.ArmSpec(versions[0], 50), experiment_services.ArmSpec(versions[1], 50)]
        experiment = experiment_services.create_experiment(
            model=model,
            user=user,
            name=name,
            arms=arms,
            traffic_percent=100,
            primary_metric="latency",
            guardrail_metrics=["accuracy", "install_failure_rate"],
            # Disjoint targets, so both may run: regions split between them, the loaded one gets most.
            target={"regions": list(REGIONS[:1] if name == "empty" else REGIONS[1:])},
        )
        experiments[name] = experiment_services.start_experiment(experiment=experiment, user=user)
    return {"user": user, "project": project, "model": model, "versions": versions, "experiments": experiments}


def fill(world: dict[str, Any], events: int, seed_value: int = 1) -> None:
    """``events`` events over 30 days from the loaded experiment's devices, counted through the bulk path."""
    import numpy as np
    from django.utils import timezone

    from devices.core.experiment_assign import IN_ARM, assign
    from devices.delivery.cache import running_experiments
    from devices.models import Device
    from devices.telemetry.bulk import BulkCounter
    from devices.telemetry.experiment_rollups import device_config

    rng = np.random.default_rng(seed_value)
    experiment = world["experiments"]["loaded"]
    model_id = world["model"].pk
    control = world["versions"][0].pk
    devices = list(Device.objects.filter(project=world["project"]).exclude(region=REGIONS[0]).order_by("pk"))
    per_device = max(1, events // len(devices))
    now = timezone.now()
    plan = next(p for p in running_experiments([model_id])[model_id] if p.id == experiment.pk)
    counter = BulkCounter()
    for start in range(0, len(devices), CHUNK_DEVICES):
        chunk = devices[start : start + CHUNK_DEVICES]
        events_of = {}
        for device in chunk:
            found = assign(plan, device_config(device), lambda version_id: True)
            if found.state != IN_ARM or found.arm is None:
                continue
            arm = found.arm
            mean = 20.0 if arm.version_id == control else 17.0
            correct_rate = 0.80 if arm.version_id == control else 0.82
            days = rng.integers(0, DAYS, per_device)
            kinds = rng.random(per_device)
            latencies = rng.lognormal(np.log(mean), 0.3, per_device)
            right = rng.random(per_device) < correct_rate
            rows = []
            for day, kind, latency, ok in zip(days, kinds, latencies, right, strict=True):
                at = now - timedelta(days=int(day), minutes=1)
                if kind < 0.5:
                    rows.append(
                        Event(
                            "inference_stats",
                            model_id,
                            arm.version_id,
                            at,
                            now,
                            {"count": 20, "latency_ms_mean": float(latency)},
                        )
                    )
                elif kind < 0.95:
                    rows.append(
                        Event("feedback", model_id, arm.version_id, at, now, {"prediction": 1, "label": 1 if ok else 0})
                    )
                else:
                    rows.append(
                        Event("install_succeeded" if ok else "install_failed", model_id, arm.version_id, at, now, {})
                    )
            events_of[device.pk] = rows
        counter.add(chunk, events_of)
    counter.write()


def measure(world: dict[str, Any], repeat: int) -> dict[str, float]:
    """Loaded and empty requests alternate, so load from neighbours on a shared machine hits both alike; each
    ratio is the median of the per-round ratios (loaded over the empty request beside it)."""
    from django.db import connection
    from django.test import Client

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # plans for the tables as filled, as autovacuum would make them in a while
    client = Client()
    client.force_login(world["user"])
    figures: dict[str, float] = {}
    for key, ratio, template in (
        ("ms_results_page", "page_ratio", "/p/bench/m/classifier/experiments/{}/"),
        ("ms_results_api", "api_ratio", "/api/projects/bench/models/classifier/experiments/{}/results/"),
    ):
        urls = {name: template.format(experiment.pk) for name, experiment in world["experiments"].items()}
        for url in urls.values():
            assert client.get(url).status_code == 200, url  # warm: plans, templates, imports
        times: dict[str, list[float]] = {"loaded": [], "empty": []}
        for _ in range(repeat):
            for name, url in urls.items():
                started = time.perf_counter()
                response = client.get(url)
                times[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, url
        figures[key] = round(statistics.median(times["loaded"]), 1)
        figures[key + "_empty"] = round(statistics.median(times["empty"]), 1)
        ratios = [full / empty for full, empty in zip(times["loaded"], times["empty"], strict=True)]
        figures[ratio] = round(statistics.median(ratios), 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/experiments.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k devices, 10k events, 3 repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    args = parser.parse_args(argv)
    devices, sizes, repeat = (1_000, [10_000], 3) if args.quick else (10_000, [100_000, 1_000_000], 15)

    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not database_url.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must point at a PostgreSQL server")
    name = f"bench_experiments_{os.getpid()}"
    run_sql(admin_url(database_url), f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = bench_url(database_url, name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex * 2)
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        world = seed(devices)
        filled = 0
        for size in sizes:
            fill(world, size - filled, seed_value=size)
            filled = size
            row = {"events": size, "devices": devices, "days": DAYS, **measure(world, repeat)}
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{size:>9,} events: page {row['ms_results_page']} ms ({row['page_ratio']}x empty), "
                    f"API {row['ms_results_api']} ms ({row['api_ratio']}x empty)",
                    flush=True,
                )
    finally:
        from django.db import connections

        connections.close_all()
        run_sql(admin_url(database_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
