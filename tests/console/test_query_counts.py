"""Every list page and list API reads a bounded number of queries, whatever the number of rows it lists.

Each list below holds more rows than its query budget, so a query per row (an N+1) cannot fit in it.
"""

from __future__ import annotations

import hashlib

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from console.catalog import services as catalog_services
from console.models import CompatibilityResult, Dataset, ModelVersion
from console.projects import roles
from console.projects import services as project_services
from devices.fleet import services as fleet_services
from devices.models import (
    DailyRollup,
    DeliveryRollup,
    DeviceEvent,
    DeviceType,
    Experiment,
    ExperimentArm,
    ExperimentArmDayRollup,
    ExperimentRollup,
)
from devices.rules import services as rules_services
from jobs.models import Job
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import enroll

pytestmark = pytest.mark.django_db

ROWS = 20  # per list; more than any budget below


def _version(model, number, **fields) -> ModelVersion:
    digest = hashlib.sha256(f"{model.pk}:{number}".encode()).hexdigest()
    return ModelVersion.objects.create(
        model=model,
        number=number,
        file=f"versions/{digest}.onnx",
        sha256=digest,
        size_bytes=1000 + number,
        state=ModelVersion.State.READY,
        **fields,
    )


@pytest.fixture
def fleet(project, model, owner, django_user_model):
    """``ROWS`` of everything a list shows in ``project``, most of it around ``model``."""
    cache.clear()  # the enroll throttle counts per process
    builtin = list(DeviceType.objects.filter(project=None))
    versions = [_version(model, number) for number in range(1, ROWS + 1)]
    for version in versions[1:]:
        version.parent = versions[0]
        version.transform = "quantize_dynamic"
        version.save(update_fields=["parent", "transform"])
    for version in versions:
        CompatibilityResult.objects.bulk_create(
            CompatibilityResult(version=version, device_type=device_type, compatible=True) for device_type in builtin
        )
        Job.objects.create(
            project=project, kind="check", input_version=version, output_version=version, state="succeeded"
        )
    for index in range(ROWS):
        digest = hashlib.sha256(f"dataset {index}".encode()).hexdigest()
        Dataset.objects.create(
            model=model,
            name=f"set {index}",
            file=f"datasets/{digest}.npz",
            format="npz",
            sha256=digest,
            size_bytes=10,
            rows=5,
            summary={"checked_against": 1},
        )
        catalog_services.create_model(project=project, name=f"model-{index}", user=owner)
        DeviceType.objects.create(
            project=project,
            slug=f"kiosk-{index}",
            name=f"Kiosk {index}",
            memory_mb=512,
            storage_mb=1024,
            max_model_mb=16,
            runtime_version="1.17",
            precisions=["fp32"],
        )
        project_services.set_member(
            project=project, user=django_user_model.objects.create_user(username=f"member-{index}"), role=roles.VIEWER
        )
        rules_services.create_rule(
            model=model, version=versions[index], priority=index, conditions={"regions": ["DE"]} if index % 2 else {}
        )
        other = project_services.create_project(slug=f"also-{index}", name=f"Also {index}", owner=owner)
        assert other.pk
    _, key = fleet_services.rotate_enrollment_key(project=project)
    for index in range(ROWS):
        response, _ = enroll(key, device_id=f"device-{index:02d}", region="DE" if index % 2 else "FR")
        assert response.status_code == 201, response.content
    device = project.devices.get(device_id="device-00")
    now = timezone.now()
    DeviceEvent.objects.bulk_create(
        DeviceEvent(
            project=project,
            device=device,
            event_id=f"e{index}",
            type="download_started",
            model=model,
            version=versions[index],
            at=now,
            received_at=now,
        )
        for index in range(ROWS)
    )
    DailyRollup.objects.bulk_create(
        DailyRollup(
            project=project,
            day=now.date(),
            model=model,
            version=versions[index],
            device_type=builtin[index % len(builtin)],
            region="DE",
            download_started=index,
        )
        for index in range(ROWS)
    )
    DeliveryRollup.objects.bulk_create(
        DeliveryRollup(
            project=project,
            day=now.date(),
            model=model,
            version=versions[index],
            device_type=builtin[index % len(builtin)],
            region="DE" if index % 2 else "FR",
            app_version=f"2.{index}.0",
            offered=index + 1,
            download_started=index,
            download_failed=index % 3,
            failed_network=index % 3,
            installed_within_1h=index,
            latency_count=10,
            latency_p50_weighted=30.0,
        )
        for index in range(ROWS)
    )
    experiments = []
    for index in range(ROWS):
        experiment = Experiment.objects.create(
            project=project,
            model=model,
            name=f"ab-{index}",
            traffic_bp=10_000,
            primary_metric="latency",
            guardrail_metrics=["accuracy", "install_failure_rate"],
            salt=f"s{index}",
        )
        experiments.append(experiment)
        for position in range(2):
            arm = ExperimentArm.objects.create(
                experiment=experiment,
                name=f"v{position + 1}",
                version=versions[position],
                weight_bp=5000,
                position=position,
            )
            if index == 0:
                # The fine rows (read when filtered) and their sums per arm and day (read by the page as is).
                sums = {
                    "latency_n": 10,
                    "latency_sum": 100.0,
                    "latency_sum_sq": 1100.0,
                    "feedback_count": 10,
                    "feedback_correct": 8,
                }
                days = [now.date() - timezone.timedelta(days=day) for day in range(ROWS)]
                ExperimentRollup.objects.bulk_create(
                    ExperimentRollup(
                        experiment=experiment, arm=arm, day=day, device_type=builtin[0], region="DE", **sums
                    )
                    for day in days
                )
                ExperimentArmDayRollup.objects.bulk_create(
                    ExperimentArmDayRollup(experiment=experiment, arm=arm, day=day, **sums) for day in days
                )
    return {
        "model": model.name,
        "number": ROWS,
        "device": device.device_id,
        "experiment": experiments[0].pk,
    }


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# (what, URL, query budget): the budget is what the page reads today plus a little room, and below ROWS.
PAGES = [
    ("home", "/", 6),
    ("project", "/p/kiosk/", 9),
    ("model", "/p/kiosk/m/{model}/", 11),
    ("version", "/p/kiosk/m/{model}/v/{number}/", 14),
    ("device types", "/p/kiosk/device-types/", 7),
    ("fleet", "/p/kiosk/fleet/", 16),
    ("device", "/p/kiosk/fleet/{device}/", 10),
    ("rules", "/p/kiosk/m/{model}/delivery/", 14),
    ("experiments", "/p/kiosk/m/{model}/experiments/", 12),
    ("experiment", "/p/kiosk/m/{model}/experiments/{experiment}/", 12),
    ("jobs", "/p/kiosk/jobs/", 8),
    ("overview", "/p/kiosk/overview/", 17),
    ("download status", "/p/kiosk/downloads/", 10),
    ("versions compared", "/p/kiosk/m/{model}/dashboard/", 13),
    # A chart's CSV builds that chart alone: its one query beside the session's and the role check's.
    ("overview chart CSV", "/p/kiosk/overview/?csv=funnel", 4),
    ("download status CSV", "/p/kiosk/downloads/?csv=download_status", 4),
    ("versions compared CSV", "/p/kiosk/m/{model}/dashboard/?csv=latency_ratio", 6),  # + the model, its versions
]


def test_list_pages__read_a_bounded_number_of_queries(fleet, owner, django_assert_max_num_queries):
    client = _page(owner)
    for name, url, budget in PAGES:
        with django_assert_max_num_queries(budget, info=f"the {name} page"):
            response = client.get(url.format(**fleet))
        assert response.status_code == 200, name


# (what, URL, query budget, rows listed)
APIS = [
    ("projects", "/api/projects/", 4, ROWS + 1),
    ("members", "/api/projects/kiosk/members/", 5, ROWS + 4),
    ("models", "/api/projects/kiosk/models/", 5, ROWS + 1),
    ("versions", "/api/projects/kiosk/models/{model}/versions/", 6, ROWS),
    ("datasets", "/api/projects/kiosk/models/{model}/datasets/", 6, ROWS),
    ("jobs", "/api/projects/kiosk/jobs/", 5, ROWS),
    ("device types", "/api/projects/kiosk/device-types/", 5, None),  # None: the project's and the built-in ones
    ("devices", "/api/projects/kiosk/devices/", 6, ROWS),
    ("device events", "/api/projects/kiosk/devices/{device}/events/", 6, ROWS + 1),
    ("rules", "/api/projects/kiosk/models/{model}/rules/", 6, ROWS),
    ("rollups", "/api/projects/kiosk/models/{model}/rollups/", 5, ROWS),
    ("experiments", "/api/projects/kiosk/models/{model}/experiments/", 6, ROWS),
]


def test_list_apis__read_a_bounded_number_of_queries(fleet, project, owner, django_assert_max_num_queries):
    client = api_client_for(owner)
    for name, url, budget, rows in APIS:
        if rows is None:
            rows = DeviceType.objects.visible_to(project).count()
        with django_assert_max_num_queries(budget, info=f"the {name} list"):
            response = client.get(url.format(**fleet))
        assert response.status_code == 200, name
        body = response.json()
        assert len(body["results"] if isinstance(body, dict) else body) == rows, name


def test_model_page__pages_versions_and_datasets_separately(project, model, owner):
    from console.catalog.views import PAGE_SIZE

    for number in range(1, PAGE_SIZE + 3):
        _version(model, number)
    client = _page(owner)

    first = client.get(f"/p/kiosk/m/{model.name}/")
    second = client.get(f"/p/kiosk/m/{model.name}/", {"versions_page": 2})

    assert [v.number for v in first.context["versions"]] == list(range(PAGE_SIZE + 2, 2, -1))
    assert [v.number for v in second.context["versions"]] == [2, 1]
    assert "?versions_page=2" in first.content.decode()
    assert 'href="/p/kiosk/m/digit-classifier/v/1/"' in second.content.decode()
    assert "datasets-pages" not in first.content.decode()  # one page of datasets: no links


@pytest.fixture
def rollouts(fleet, model, owner, teammate):
    """``ROWS`` rollouts of ``model``, each approved once, over the enrolled fleet of ``fleet``."""
    from devices.rollouts import services as rollout_services

    made = []
    for version in model.versions.order_by("number"):
        rollout = rollout_services.propose_rollout(
            model=model,
            version=version,
            user=teammate,
            target={"regions": ["DE"]} if version.number % 2 else {"regions": ["FR"]},
            stages=[{"percent": 10, "dwell_minutes": 60}, {"percent": 100, "dwell_minutes": 60}],
        )
        made.append(rollout)
    return made


# (what, URL, query budget) for a model's rollouts; the rollout and approval pages walk every targeted device.
ROLLOUT_PAGES = [
    ("rollouts", "/p/kiosk/m/{model}/rollouts/", 9),
    ("rollout", "/p/kiosk/m/{model}/rollouts/{rollout}/", 13),
    ("approval", "/p/kiosk/m/{model}/rollouts/{rollout}/approval/", 17),
]


def test_rollout_pages__read_a_bounded_number_of_queries(rollouts, fleet, owner, django_assert_max_num_queries):
    client = _page(owner)
    values = {**fleet, "rollout": rollouts[0].pk}
    for name, url, budget in ROLLOUT_PAGES:
        with django_assert_max_num_queries(budget, info=f"the {name} page"):
            response = client.get(url.format(**values))
        assert response.status_code == 200, name
    assert len(client.get(ROLLOUT_PAGES[0][1].format(**values)).context["page"]) == ROWS


def test_rollouts_api__reads_a_bounded_number_of_queries(rollouts, fleet, owner, django_assert_max_num_queries):
    with django_assert_max_num_queries(7, info="the rollouts list"):
        response = api_client_for(owner).get("/api/projects/kiosk/models/{model}/rollouts/".format(**fleet))
    assert len(response.json()["results"]) == ROWS
