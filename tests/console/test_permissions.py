"""Membership and roles, declared once per view: outsiders get 404, members whose role forbids the action get a 403
that names their role, before any body is read; lookups stay inside the project."""

from __future__ import annotations

import pytest
from django.test import Client

from console.projects.permissions import ScopedMixin
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import enroll, ready_version

pytestmark = pytest.mark.django_db

MODEL = "/api/projects/kiosk/models/digit-classifier"

# (method, URL, an invalid body): a viewer must get 403 for each, never the validation message.
INVALID_WRITES = [
    ("post", "/api/projects/kiosk/models/", {"name": "Not A Slug!"}),
    ("post", "/api/projects/kiosk/device-types/", {"slug": "odd", "precisions": 5}),
    ("post", f"{MODEL}/rules/", {"version": 99, "conditions": {"regions": ["Germany"]}}),
    ("put", f"{MODEL}/default-version/", {"version": "latest"}),
    ("post", f"{MODEL}/versions/1/optimize/", {"transform": "no-such-transform"}),
    ("post", f"{MODEL}/versions/1/optimize-for-device/", {"device_type": 7}),
    ("post", f"{MODEL}/versions/", {}),
    ("post", f"{MODEL}/datasets/", {}),
    ("patch", "/api/projects/kiosk/devices/device-1/", {"checkin_interval_s": -5}),
    ("post", "/api/projects/kiosk/members/", {"username": 12, "role": "emperor"}),
]


@pytest.fixture
def world(project, model):
    from devices.fleet import services as fleet_services

    ready_version(model)
    _, key = fleet_services.rotate_enrollment_key(project=project)
    assert enroll(key, device_id="device-1")[0].status_code == 201


@pytest.mark.parametrize(("method", "url", "body"), INVALID_WRITES, ids=[f"{m} {u}" for m, u, _ in INVALID_WRITES])
def test_viewer__invalid_body__is_refused_with_403_naming_the_role(world, viewer, method, url, body):
    response = getattr(api_client_for(viewer), method)(url, body, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["detail"].startswith("Your role in kiosk is viewer; it may not ")


def test_developer__managing_members__is_403_naming_the_role_and_what_it_may_not_do(project, teammate):
    response = api_client_for(teammate).post("/api/projects/kiosk/members/", {"username": "x"}, format="json")

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "Your role in kiosk is developer; it may not manage this project's members and settings."
    )


@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/kiosk/",
        f"{MODEL}/",
        f"{MODEL}/versions/1/",
        "/api/projects/kiosk/devices/device-1/",
        f"{MODEL}/rules/",
        "/api/projects/kiosk/jobs/",
    ],
)
def test_outsider__gets_the_same_404_as_for_a_project_that_does_not_exist(world, outsider, url):
    client = api_client_for(outsider)

    theirs = client.get(url)
    missing = client.get(url.replace("/kiosk/", "/no-such-project/"))

    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json() == missing.json() == {"detail": "No such project."}


def test_outsider__writing__gets_404_not_403(world, outsider):
    response = api_client_for(outsider).post("/api/projects/kiosk/models/", {"name": "mine"}, format="json")
    assert response.status_code == 404


def test_member__object_the_url_names_outside_the_project__is_404(world, other_project, viewer, outsider):
    from console.catalog import services as catalog_services

    catalog_services.create_model(project=other_project, name="theirs", user=outsider)
    client = api_client_for(viewer)

    assert client.get("/api/projects/kiosk/models/theirs/").status_code == 404
    assert client.get(f"{MODEL}/versions/7/").status_code == 404
    assert client.get("/api/projects/kiosk/devices/nobody/events/").status_code == 404


def test_device_type__non_list_precisions__owner_gets_400_saying_what_to_send(project, owner):
    url = "/api/projects/kiosk/device-types/"
    base = {"slug": "odd", "name": "Odd", "memory_mb": 1, "storage_mb": 1, "max_model_mb": 1, "runtime_version": "1.17"}
    client = api_client_for(owner)

    for precisions in (5, {"fp32": True}, "fp32", [["fp32"]], [], [None]):
        response = client.post(url, {**base, "precisions": precisions}, format="json")
        assert response.status_code == 400, (precisions, response.content)
        assert response.json()["precisions"] == ["Give a non-empty list drawn from fp32, fp16, int8."]
    assert client.post(url, {**base, "precisions": ["fp32", "int8"]}, format="json").status_code == 201


def test_device_type__builtin__developer_gets_403_even_for_an_invalid_body(project, teammate):
    response = api_client_for(teammate).patch(
        "/api/projects/kiosk/device-types/raspberry-pi-4/", {"precisions": 5}, format="json"
    )

    assert response.status_code == 403
    assert "only staff may change them" in response.json()["detail"]


def test_rules_preview__a_viewer_may_ask_what_a_device_would_get(world, viewer):
    response = api_client_for(viewer).post(f"{MODEL}/rules/preview/", {"device_type": "x86-gateway"}, format="json")
    assert response.status_code == 200, response.content


def test_job_of_another_project__cannot_be_cancelled_through_this_one(world, other_project, teammate):
    from jobs.models import Job

    theirs = Job.objects.create(project=other_project, kind="check")

    response = api_client_for(teammate).post(f"/api/projects/kiosk/jobs/{theirs.pk}/cancel/")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == Job.State.QUEUED


def test_every_developer_api_view_under_a_project__declares_its_scope():
    """A view under /api/projects/<project>/ without the mixin would have to check access by hand."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), getattr(pattern.callback, "cls", None)

    routes = [
        (route, view)
        for route, view in walk(get_resolver().url_patterns)
        if route.startswith("api/projects/<slug:project>/")
    ]
    assert len(routes) > 15
    assert [route for route, view in routes if not issubclass(view, ScopedMixin)] == []


# --- pages ---------------------------------------------------------------------------------------------------


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/p/kiosk/", {"name": "Not A Slug!"}),
        ("/p/kiosk/fleet/", {"action": "interval", "checkin_interval_s": "-1"}),
        ("/p/kiosk/fleet/device-1/", {"action": "interval", "checkin_interval_s": "x"}),
        ("/p/kiosk/m/digit-classifier/delivery/", {"action": "create", "regions": "Germany"}),
    ],
)
def test_pages__viewer_posting__gets_403_naming_the_role(world, viewer, url, body):
    response = _browser(viewer).post(url, body)

    assert response.status_code == 403
    assert "Your role in kiosk is viewer" in response.content.decode()


def test_pages__fleet_settings__are_the_owners_to_change(world, teammate):
    response = _browser(teammate).post("/p/kiosk/fleet/", {"action": "rotate_key"})

    assert response.status_code == 403
    assert "is developer; it may not manage" in response.content.decode()


def test_pages__outsider_gets_404_for_every_page_of_the_project(world, outsider):
    client = _browser(outsider)
    for url in (
        "/p/kiosk/",
        "/p/kiosk/m/digit-classifier/",
        "/p/kiosk/m/digit-classifier/v/1/",
        "/p/kiosk/fleet/",
        "/p/kiosk/fleet/device-1/",
        "/p/kiosk/device-types/",
        "/p/kiosk/m/digit-classifier/delivery/",
    ):
        assert client.get(url).status_code == 404, url


def test_options__offers_a_write_only_to_roles_that_may_make_it(world, project, owner, viewer):
    from jobs.models import Job

    job = Job.objects.create(project=project, kind="check")
    for url in (f"/api/projects/kiosk/jobs/{job.pk}/cancel/", "/api/projects/kiosk/models/"):
        as_owner = api_client_for(owner).options(url)
        as_viewer = api_client_for(viewer).options(url)

        assert (as_owner.status_code, as_viewer.status_code) == (200, 200), url
        assert "POST" in as_owner.json()["actions"]
        assert "actions" not in as_viewer.json()
