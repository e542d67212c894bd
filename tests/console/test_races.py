"""Two requests at once on one slug, name, device id or owner: a clear 4xx or a sensible merge, never a 500.

Each test holds the real writes in PostgreSQL (a trigger waits on an advisory lock the test holds) until both
requests have passed their checks and wait there or on the service's own lock; then lets them go. Whatever
interleaving the code allows then happens, every time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections

from console.errors import AlreadyExists, Refused
from console.models import Membership, Model, Project, hash_token
from console.projects import roles
from console.projects import services as project_services
from devices.catalog import services as device_type_services
from devices.models import Device, DeviceEvent, DeviceType
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import enroll

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="holds writes with a PostgreSQL trigger and advisory lock",
    ),
]

HOLD_KEY = 880_801
WAIT_S = 20


def _waiting_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@contextmanager
def writes_held(table: str, operation: str) -> Iterator[None]:
    """Every ``operation`` (INSERT, UPDATE, DELETE) on ``table`` waits inside the database until the block ends."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_hold_write() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_advisory_lock_shared({HOLD_KEY}); PERFORM pg_advisory_unlock_shared({HOLD_KEY}); "
            "RETURN COALESCE(NEW, OLD); END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER test_hold_write BEFORE {operation} ON {table} FOR EACH ROW "
            "EXECUTE FUNCTION test_hold_write()"
        )
        cursor.execute("SELECT pg_advisory_lock(%s)", [HOLD_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [HOLD_KEY])
            cursor.execute(f"DROP TRIGGER test_hold_write ON {table}")
            cursor.execute("DROP FUNCTION test_hold_write()")


def at_once(table: str, operation: str, *calls: Callable[[], Any]) -> list[Any]:
    """Run each call in its own thread (its own database connection) with ``operation`` on ``table`` held until
    every call waits on a lock; returns what each call returned or raised."""
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            results[index] = call()
        except Exception as exc:  # handed to the test to assert on
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    with writes_held(table, operation):
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + WAIT_S
        while _waiting_backends() < len(calls):
            if time.monotonic() > deadline or not all(t.is_alive() for t in threads):
                break  # a call finished without waiting: let the rest go and let the assertions say what happened
            time.sleep(0.005)
    for thread in threads:
        thread.join(WAIT_S)
    return results


def statuses(responses) -> list[int]:
    return sorted(r.status_code for r in responses)


def test_create_project__same_slug_at_once__one_is_201_the_other_409(owner, teammate):
    body = {"slug": "kiosk-2", "name": "Kiosk 2"}
    responses = at_once(
        "console_project",
        "INSERT",
        lambda: api_client_for(owner).post("/api/projects/", body, format="json"),
        lambda: api_client_for(teammate).post("/api/projects/", body, format="json"),
    )
    assert statuses(responses) == [201, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert "'kiosk-2' already exists" in refused.json()["detail"]
    project = Project.objects.get(slug="kiosk-2")
    assert list(project.memberships.values_list("role", flat=True)) == [roles.OWNER]


def test_create_model__same_name_at_once__one_is_201_the_other_409(project, owner, teammate):
    url = f"/api/projects/{project.slug}/models/"
    responses = at_once(
        "console_model",
        "INSERT",
        lambda: api_client_for(owner).post(url, {"name": "face-detector"}, format="json"),
        lambda: api_client_for(teammate).post(url, {"name": "face-detector"}, format="json"),
    )
    assert statuses(responses) == [201, 409]
    assert "'face-detector' already exists" in next(r for r in responses if r.status_code == 409).json()["detail"]
    assert Model.objects.filter(project=project, name="face-detector").count() == 1


DEVICE_TYPE_FIELDS = {
    "name": "Orin Nano",
    "memory_mb": 8192,
    "storage_mb": 65536,
    "max_model_mb": 500,
    "runtime_version": "1.18",
    "precisions": ["fp32", "fp16"],
}


def test_create_device_type__builtin_and_project_type_claim_one_slug_at_once__one_is_refused(project):
    results = at_once(
        "devices_devicetype",
        "INSERT",
        lambda: device_type_services.create_device_type(project=None, slug="orin-nano", **DEVICE_TYPE_FIELDS),
        lambda: device_type_services.create_device_type(project=project, slug="orin-nano", **DEVICE_TYPE_FIELDS),
    )
    assert sorted(type(r).__name__ for r in results) == ["AlreadyExists", "DeviceType"]
    assert DeviceType.objects.filter(slug="orin-nano").count() == 1
    assert DeviceType.objects.visible_to(project).filter(slug="orin-nano").count() == 1


def test_create_device_type__same_project_slug_at_once__one_is_refused(project):
    results = at_once(
        "devices_devicetype",
        "INSERT",
        lambda: device_type_services.create_device_type(project=project, slug="kiosk-v2", **DEVICE_TYPE_FIELDS),
        lambda: device_type_services.create_device_type(project=project, slug="kiosk-v2", **DEVICE_TYPE_FIELDS),
    )
    refused = [r for r in results if isinstance(r, AlreadyExists)]
    assert len(refused) == 1 and "already has a device type 'kiosk-v2'" in str(refused[0])
    assert DeviceType.objects.filter(slug="kiosk-v2").count() == 1


def test_first_enrollment__same_device_at_once__both_201_and_the_later_token_works(project):
    from devices.fleet import services as fleet_services

    _, key = fleet_services.rotate_enrollment_key(project=project)
    results = at_once("devices_device", "INSERT", lambda: enroll(key, "kiosk-1"), lambda: enroll(key, "kiosk-1"))
    responses = [response for response, _ in results]

    assert statuses(responses) == [201, 201], [r.content for r in responses]
    device = Device.objects.get(project=project, device_id="kiosk-1")
    tokens = [hash_token(r.json()["device_token"]) for r in responses]
    assert device.token_hash in tokens  # the other token was voided by enrolling again over it
    assert sorted(DeviceEvent.objects.filter(device=device, type="enrolled").values_list("reason", flat=True)) == [
        "enrolled again: the previous token no longer works",
        "enrolled as x86-gateway",
    ]


def test_demote_owners__two_owners_demote_each_other_at_once__one_is_refused_and_an_owner_remains(
    project, owner, teammate
):
    project_services.set_member(project=project, user=teammate, role=roles.OWNER)
    results = at_once(
        "console_membership",
        "UPDATE",
        lambda: project_services.set_member(project=project, user=teammate, role=roles.DEVELOPER),
        lambda: project_services.set_member(project=project, user=owner, role=roles.DEVELOPER),
    )
    refused = [r for r in results if isinstance(r, Refused)]
    assert len(refused) == 1 and "at least one owner" in str(refused[0])
    assert Membership.objects.filter(project=project, role=roles.OWNER).count() == 1


def test_remove_owners__two_owners_leave_at_once__one_is_refused_and_an_owner_remains(project, owner, teammate):
    project_services.set_member(project=project, user=teammate, role=roles.OWNER)
    memberships = list(Membership.objects.filter(project=project, role=roles.OWNER).select_related("project", "user"))
    results = at_once(
        "console_membership",
        "DELETE",
        *[lambda m=m: project_services.remove_member(membership=m) for m in memberships],
    )
    assert len([r for r in results if isinstance(r, Refused)]) == 1
    assert Membership.objects.filter(project=project, role=roles.OWNER).count() == 1
