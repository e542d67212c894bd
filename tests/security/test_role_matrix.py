"""Every route x every persona, generated from the URL configuration.

A route added tomorrow is in this matrix the day it is added: nothing here lists routes by hand except the few
that are public on purpose and the ones a developer may not use (managing the project). What every route must do:

- nobody ever gets a 5xx;
- an anonymous caller gets 401/403 from the API and is sent to sign in by pages;
- an outsider (a member of another project only) gets 404 for anything under another project: no leak that it exists;
- a viewer and an approver may read everything in their project (200) and change nothing (403 before any
  validation, so an invalid body still says 403);
- a developer may not manage the project (members, enrollment key, fleet settings): 403;
- the owner reads every route with 200, which also proves the fixture reached every object the routes name.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from console.projects import roles
from console.projects import services as project_services
from jobs.models import Job
from tests.conftest import project_device_type
from tests.devices.fleet_helpers import enroll, ready_version

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")
PUBLIC = {"api-health", "api-health-live", "api-schema", "api-docs", "api-redoc", "login", "logout", "api-transforms"}
DEVICE_ROUTES = re.compile(r"^api/device/")
# POSTs that change nothing (a preview): a viewer may send them.
READ_ONLY_POSTS = {("api-rules-preview", "post")}
# Approving is the approver's (and the owner's): a viewer and a developer get 403, an approver gets an answer.
APPROVE_ONLY = {("api-rollout-approve", "post"), ("api-rollout-reject", "post"), ("rollout-approval", "post")}
# Managing a project is the owner's: these (route, method) pairs refuse a developer.
MANAGE_ONLY = {
    ("api-members", "post"),
    ("api-member", "delete"),
    ("api-enrollment-key", "post"),
    ("api-fleet", "put"),
    ("api-fleet", "patch"),
    ("fleet", "post"),
    ("api-project", "put"),
    ("api-project", "patch"),
    ("project-settings", "post"),
}


def _routes():
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if str(pattern.pattern).startswith("admin/"):
                    continue  # Django's admin checks is_staff itself
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name, pattern.callback

    for route, name, callback in walk(get_resolver().url_patterns):
        view_class = getattr(callback, "cls", None)
        if view_class is not None:
            methods = [m for m in ("get", *UNSAFE) if hasattr(view_class, m) and m in view_class.http_method_names]
        else:
            methods = ["get", "post"]  # function views: pages (a page without POST answers 405, also checked)
        for method in methods:
            yield pytest.param(route, name, method, id=f"{method.upper()} {name}")


ROUTES = list(_routes())


@pytest.fixture
def world(project, model, owner, teammate, other_project):
    """One of everything a route can name, in ``project``."""
    from django.core.cache import cache

    from devices.fleet import services as fleet_services
    from devices.rollouts import services as rollout_services
    from devices.rules import services as rules_services

    cache.clear()  # throttle counts of earlier tests
    version = ready_version(model)
    rule = rules_services.create_rule(model=model, version=version)
    _, key = fleet_services.rotate_enrollment_key(project=project)
    assert enroll(key, device_id="device-1")[0].status_code == 201
    project_device_type(project, "kiosk-x86", cpu_arch="x86_64")
    job = Job.objects.filter(input_version=version).first()
    # Pending approval, proposed by the developer: the approver may approve it, the owner then meets a 409.
    rollout = rollout_services.propose_rollout(
        model=model,
        version=version,
        user=teammate,
        target={"device_types": ["x86-gateway"]},
        stages=[{"percent": 10, "dwell_minutes": 60}, {"percent": 100, "dwell_minutes": 60}],
    )
    rollout_services.submit_rollout(rollout=rollout, user=teammate)
    from devices.experiments import services as experiment_services

    experiment = experiment_services.create_experiment(
        model=model,
        user=teammate,
        name="ab",
        arms=[
            experiment_services.ArmSpec(version, 50),
            experiment_services.ArmSpec(ready_version(model, seed=9), 50),
        ],
        traffic_percent=100,
        primary_metric="latency",
        target={"device_types": ["x86-gateway"]},
    )
    return {
        "experiment_id": experiment.pk,
        "project": project.slug,
        "model": model.name,
        "number": version.number,
        "job_id": job.pk,
        "slug": "kiosk-x86",
        "username": "vic-viewer",
        "device_id": "device-1",
        "rule_id": rule.pk,
        "version_id": version.pk,
        "rollout_id": rollout.pk,
    }


def _url(route: str, values: dict) -> str:
    def fill(match: re.Match) -> str:
        return str(values[match.group(2)])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def _client(user, *, api: bool):
    client = APIClient() if api else Client()
    if user is not None:
        client.force_login(user)
    return client


def _send(user, route: str, name: str, method: str, values: dict):
    is_api = route.startswith("api/")
    client = _client(user, api=is_api)
    kwargs = {"format": "json"} if is_api and method != "get" else {}
    return getattr(client, method)(_url(route, values), {} if method != "get" else None, **kwargs)


def _is_project_route(route: str) -> bool:
    return "<slug:project>" in route


@pytest.mark.parametrize(("route", "name", "method"), ROUTES)
def test_route__every_persona__gets_its_role_answer_and_never_a_5xx(
    route, name, method, world, owner, teammate, approver, viewer, outsider
):
    personas = [
        ("anonymous", None),
        ("outsider", outsider),
        ("viewer", viewer),
        ("approver", approver),
        ("developer", teammate),
        ("owner", owner),
    ]  # the owner last: it may delete what it names
    answers = {who: _send(user, route, name, method, world) for who, user in personas}

    for who, response in answers.items():
        assert response.status_code < 500, f"{who}: {method.upper()} /{route} -> {response.status_code}"
    if name in PUBLIC:
        return
    if DEVICE_ROUTES.match(route):
        # Device endpoints take a device token (or, for enroll, an enrollment key), never a person's session.
        assert all(r.status_code >= 400 for r in answers.values()), {w: r.status_code for w, r in answers.items()}
        return
    anonymous = answers["anonymous"]
    if route.startswith("api/"):
        assert anonymous.status_code in (401, 403)
    else:
        assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    if not _is_project_route(route):
        return
    assert answers["outsider"].status_code == 404, answers["outsider"].content[:300]
    if method == "get":
        for who in ("viewer", "approver", "developer", "owner"):
            assert answers[who].status_code == 200, (who, answers[who].content[:300])
        return
    if (name, method) in READ_ONLY_POSTS:
        return
    if (name, method) in APPROVE_ONLY:
        for who in ("viewer", "developer"):
            assert answers[who].status_code == 403, (who, answers[who].content[:300])
        assert answers["approver"].status_code in (200, 400), answers["approver"].content[:300]
        return
    for who in ("viewer", "approver"):
        if answers[who].status_code != 405:
            assert answers[who].status_code == 403, (who, answers[who].content[:300])
    if (name, method) in MANAGE_ONLY:
        assert answers["developer"].status_code == 403


def test_matrix__covers_every_project_route():
    # A guard against the generator silently skipping routes (e.g. after a URL module moves).
    names = {param.values[1] for param in ROUTES}
    assert {"api-versions", "api-rules", "api-devices", "fleet", "version", "api-device-type"} <= names
    assert {"api-rollouts", "api-rollout", "api-rollout-approve", "api-rollout-rollback"} <= names
    assert {"rollouts", "rollout-propose", "rollout", "rollout-csv", "rollout-approval", "project-settings"} <= names
    assert {"api-experiments", "api-experiment-results", "api-experiment-promote", "experiment"} <= names


@pytest.mark.parametrize("role", [roles.VIEWER, roles.APPROVER])
def test_demoted_member__loses_writes_at_once(project, owner, teammate, model, role):
    project_services.set_member(project=project, user=teammate, role=role)
    response = _client(teammate, api=True).post(f"/api/projects/{project.slug}/models/", {"name": "x"}, format="json")
    assert response.status_code == 403
