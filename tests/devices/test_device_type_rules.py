"""Device type slugs: one slug names one type for every project (devices.catalog.services holds the rules)."""

from __future__ import annotations

import pytest

from console.errors import AlreadyExists
from devices.catalog.services import create_device_type, update_device_type
from devices.fleet.services import device_type_for
from devices.models import DeviceType
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db

FIELDS = {
    "name": "Kiosk v2",
    "memory_mb": 2048,
    "storage_mb": 4096,
    "max_model_mb": 50,
    "runtime_version": "1.17",
    "precisions": ["fp32", "int8"],
}


def builtin(slug: str) -> DeviceType:
    return DeviceType.objects.get(project=None, slug=slug)


def test_create__project_type_with_a_builtin_slug__is_refused_and_creates_nothing(project):
    with pytest.raises(AlreadyExists, match="built-in device type 'raspberry-pi-4'"):
        create_device_type(project=project, slug="raspberry-pi-4", **FIELDS)
    assert DeviceType.objects.filter(slug="raspberry-pi-4").count() == 1


def test_create__project_type_twice_in_one_project__is_refused(project):
    create_device_type(project=project, slug="kiosk-v2", **FIELDS)
    with pytest.raises(AlreadyExists, match="This project already has a device type 'kiosk-v2'"):
        create_device_type(project=project, slug="kiosk-v2", **FIELDS)


def test_create__same_slug_in_two_projects__is_allowed_each_sees_its_own(project, other_project):
    mine = create_device_type(project=project, slug="kiosk-v2", **FIELDS)
    theirs = create_device_type(project=other_project, slug="kiosk-v2", **FIELDS)
    assert device_type_for(project.pk, "kiosk-v2") == mine
    assert device_type_for(other_project.pk, "kiosk-v2") == theirs


def test_create__builtin_with_a_slug_a_project_uses__is_refused(project):
    create_device_type(project=project, slug="orin-nano", **FIELDS)
    with pytest.raises(AlreadyExists, match="A project has its own device type 'orin-nano'"):
        create_device_type(project=None, slug="orin-nano", **FIELDS)
    assert not DeviceType.objects.filter(project=None, slug="orin-nano").exists()


def test_create__new_builtin__is_seen_by_every_project(project, other_project):
    created = create_device_type(project=None, slug="orin-nano", **FIELDS)
    assert device_type_for(project.pk, "orin-nano") == created == device_type_for(other_project.pk, "orin-nano")


def test_rename__project_type_onto_a_builtin_slug__is_refused_and_keeps_both_intact(project):
    own = create_device_type(project=project, slug="kiosk-v2", **FIELDS)
    with pytest.raises(AlreadyExists, match="built-in device type 'x86-gateway'"):
        update_device_type(device_type=own, slug="x86-gateway")
    own.refresh_from_db()
    assert own.slug == "kiosk-v2"
    # What the defect broke: the built-in's page and enrollment under its slug still find the built-in alone.
    assert DeviceType.objects.visible_to(project).filter(slug="x86-gateway").count() == 1
    assert device_type_for(project.pk, "x86-gateway") == builtin("x86-gateway")


def test_rename__builtin_onto_another_builtin_slug__is_refused_not_a_database_error():
    pi = builtin("raspberry-pi-4")
    with pytest.raises(AlreadyExists, match="built-in device type 'x86-gateway'"):
        update_device_type(device_type=pi, slug="x86-gateway")
    assert builtin("raspberry-pi-4").pk == pi.pk


def test_rename__builtin_onto_a_project_slug__is_refused(project):
    create_device_type(project=project, slug="kiosk-v2", **FIELDS)
    with pytest.raises(AlreadyExists, match="A project has its own device type 'kiosk-v2'"):
        update_device_type(device_type=builtin("raspberry-pi-4"), slug="kiosk-v2")


def test_update__other_fields_keeping_the_slug__is_allowed(project):
    own = create_device_type(project=project, slug="kiosk-v2", **FIELDS)
    update_device_type(device_type=own, slug="kiosk-v2", memory_mb=4096)
    update_device_type(device_type=builtin("x86-gateway"), notes="racks in the back office")
    own.refresh_from_db()
    assert own.memory_mb == 4096
    assert builtin("x86-gateway").notes == "racks in the back office"


def test_rename__project_type_to_a_free_slug__is_allowed(project):
    own = create_device_type(project=project, slug="kiosk-v2", **FIELDS)
    update_device_type(device_type=own, slug="kiosk-v3")
    assert device_type_for(project.pk, "kiosk-v3") == own
    assert device_type_for(project.pk, "kiosk-v2") is None


# --- through the API (devices/catalog/serializers.py saves through the services above) ------------------------


def type_url(project, slug=""):
    return f"/api/projects/{project.slug}/device-types/{slug + '/' if slug else ''}"


def test_api_patch__project_type_onto_a_builtin_slug__is_409_and_the_builtin_page_still_works(project, teammate):
    client = api_client_for(teammate)
    assert client.post(type_url(project), {"slug": "kiosk-v2", **FIELDS}, format="json").status_code == 201

    response = client.patch(type_url(project, "kiosk-v2"), {"slug": "x86-gateway"}, format="json")

    assert response.status_code == 409
    assert "built-in device type 'x86-gateway'" in response.json()["detail"]
    assert client.get(type_url(project, "x86-gateway")).json()["builtin"] is True
    assert client.get(type_url(project, "kiosk-v2")).status_code == 200


def test_api_patch__staff_renames_a_builtin_onto_another_builtin__is_409_not_500(project, owner):
    owner.is_staff = True
    owner.save()
    response = api_client_for(owner).patch(type_url(project, "raspberry-pi-4"), {"slug": "x86-gateway"}, format="json")
    assert response.status_code == 409
    assert "built-in device type 'x86-gateway'" in response.json()["detail"]
    assert builtin("raspberry-pi-4")


def test_api_post__project_type_with_a_builtin_slug__is_refused(project, teammate):
    response = api_client_for(teammate).post(type_url(project), {"slug": "x86-gateway", **FIELDS}, format="json")
    assert response.status_code == 400
    assert "x86-gateway" in str(response.json()["slug"])
    assert DeviceType.objects.filter(slug="x86-gateway").count() == 1
