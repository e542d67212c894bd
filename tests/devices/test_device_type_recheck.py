"""Adding or changing a device type re-checks the ready versions it concerns (console.jobkinds.recheck).

Until the re-check job has written the new row, delivery treats the pair as never checked: no device is served on
the strength of a row computed from the old profile.
"""

from __future__ import annotations

import pytest

from console.models import CompatibilityResult
from devices.catalog.services import create_device_type, update_device_type
from devices.models import DeviceType
from devices.rules import services as rules_services
from jobs.models import Job
from jobs.tasks import execute_job
from tests.devices.fleet_helpers import checkin, device_client, enroll, ready_version

pytestmark = pytest.mark.django_db

KIOSK = {
    "name": "Kiosk",
    "cpu_arch": "x86_64",
    "memory_mb": 4096,
    "storage_mb": 8192,
    "max_model_mb": 50,
    "runtime_version": "1.20",
    "precisions": ["fp32"],
}


def rechecks(project=None) -> list[Job]:
    jobs = Job.objects.filter(kind="recheck_device_type").order_by("pk")
    return list(jobs if project is None else jobs.filter(project=project))


def run_rechecks() -> None:
    for job in rechecks():
        if job.state == Job.State.QUEUED:
            assert execute_job(job.pk) == "succeeded", Job.objects.get(pk=job.pk).error


def rows_of(device_type: DeviceType) -> dict[int, tuple[bool, list[str]]]:
    results = CompatibilityResult.objects.filter(device_type=device_type)
    return {row.version_id: (row.compatible, row.reasons) for row in results}


@pytest.fixture
def kiosk(project):
    """The project's own device type, with its rows for every ready version written."""
    return create_device_type(project=project, slug="kiosk", **KIOSK)


def test_edit__max_model_mb_below_a_version__forgets_its_row_until_the_recheck_says_incompatible(
    project, model, enrollment_key
):
    big = ready_version(model, hidden=24000)  # about 1.1 MB of weights
    assert big.size_bytes > 1024 * 1024
    kiosk = create_device_type(project=project, slug="kiosk", **KIOSK)
    run_rechecks()
    assert rows_of(kiosk)[big.pk][0] is True
    rules_services.create_rule(model=model, version=big)
    response, config = enroll(enrollment_key, device_type="kiosk")
    device_api = device_client(response.json()["device_token"])
    assert checkin(device_api, config).json()["models"]["digit-classifier"]["status"] == "assigned"

    update_device_type(device_type=kiosk, max_model_mb=1)

    assert rows_of(kiosk) == {}
    entry = checkin(device_api, config).json()["models"]["digit-classifier"]
    assert entry["status"] == "none" and entry["manifest"] is None
    assert "was never checked against kiosk" in entry["reason"]
    assert [job.state for job in rechecks(project)] == [Job.State.SUCCEEDED, Job.State.QUEUED]

    run_rechecks()

    compatible, reasons = rows_of(kiosk)[big.pk]
    assert compatible is False
    assert "over this device type's limit of 1.0 MB" in reasons[0]
    entry = checkin(device_api, config).json()["models"]["digit-classifier"]
    assert entry["manifest"] is None and "cannot run on kiosk" in entry["reason"]


def test_create__new_device_type__queues_a_recheck_that_writes_a_row_for_every_ready_version(project, model):
    versions = [ready_version(model), ready_version(model, seed=1, opset=21)]

    kiosk = create_device_type(project=project, slug="kiosk", **KIOSK)

    assert rows_of(kiosk) == {}
    assert [job.state for job in rechecks(project)] == [Job.State.QUEUED]
    run_rechecks()
    assert set(rows_of(kiosk)) == {version.pk for version in versions}
    assert all(compatible for compatible, _ in rows_of(kiosk).values())


def test_create__new_builtin__queues_one_recheck_per_project_with_ready_versions(project, model, other_project, owner):
    from console.catalog import services as catalog_services

    mine = ready_version(model)
    theirs = ready_version(catalog_services.create_model(project=other_project, name="other", user=owner))

    orin = create_device_type(project=None, slug="orin-nano", **KIOSK)

    assert sorted(job.project_id for job in rechecks()) == sorted([project.pk, other_project.pk])
    run_rechecks()
    assert set(rows_of(orin)) == {mine.pk, theirs.pk}


@pytest.mark.parametrize("changes", [{"name": "Kiosk (lobby)"}, {"notes": "the one by the door"}])
def test_edit__field_the_check_does_not_read__queues_nothing_and_keeps_the_rows(project, model, kiosk, changes):
    version = ready_version(model)
    run_rechecks()
    before = rows_of(kiosk)
    assert version.pk in before
    queued = len(rechecks())

    update_device_type(device_type=kiosk, **changes)

    assert len(rechecks()) == queued
    assert rows_of(kiosk) == before


def test_recheck__runs_twice__leaves_the_same_rows(project, model, kiosk):
    version = ready_version(model, opset=21)
    update_device_type(device_type=kiosk, runtime_version="1.16")  # goes up to opset 19
    job = rechecks(project)[-1]
    assert execute_job(job.pk) == "succeeded"
    first = rows_of(kiosk)

    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)  # the message delivered again
    assert execute_job(job.pk) == "succeeded"

    assert rows_of(kiosk) == first
    assert first[version.pk][0] is False and "opset 21" in first[version.pk][1][0]
    assert CompatibilityResult.objects.filter(device_type=kiosk).count() == 1


def test_recheck__device_type_deleted_before_it_ran__succeeds_writing_nothing(project, model, kiosk):
    ready_version(model)
    update_device_type(device_type=kiosk, memory_mb=1024)
    job = rechecks(project)[-1]
    kiosk.delete()

    assert execute_job(job.pk) == "succeeded"

    assert not CompatibilityResult.objects.filter(version__model=model).exclude(device_type__project=None).exists()


def admin_form(device_type_project, slug: str, **overrides) -> dict:
    fields = {**KIOSK, "accelerator": "", "execution_provider": "CPUExecutionProvider", "runtime": "onnxruntime"}
    fields.update(runtime_build="full", notes="", precisions='["fp32"]', slug=slug, **overrides)
    fields["project"] = device_type_project.pk if device_type_project else ""
    return fields


def test_admin_edit__max_model_mb__forgets_the_rows_and_queues_a_recheck(admin_client, project, model, kiosk):
    version = ready_version(model)
    assert version.pk in rows_of(kiosk)

    response = admin_client.post(
        f"/admin/devices/devicetype/{kiosk.pk}/change/", admin_form(project, "kiosk", max_model_mb=1)
    )

    assert response.status_code == 302, response.content
    assert rows_of(kiosk) == {}
    assert [job.state for job in rechecks(project)] == [Job.State.QUEUED]
    run_rechecks()
    assert version.pk in rows_of(kiosk)


def test_admin_add__project_type_with_a_builtin_slug__shows_the_reason_and_saves_nothing(admin_client, project):
    response = admin_client.post("/admin/devices/devicetype/add/", admin_form(project, "raspberry-pi-4"))

    assert response.status_code == 200
    assert "The built-in device type &#x27;raspberry-pi-4&#x27; already has that slug" in response.content.decode()
    assert DeviceType.objects.filter(slug="raspberry-pi-4").count() == 1
