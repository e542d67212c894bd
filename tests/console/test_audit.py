"""The audit log (issue 12, item 5): what is recorded, from where, and who may read it."""

from __future__ import annotations

import csv
import io

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from rest_framework.test import APIClient

from console.models import ApiToken, Membership, Model, ModelVersion
from console.projects import roles
from console.projects import services as project_services
from devices.models import DeviceType, FleetSettings, TargetingRule
from tests.conftest import api_client_for, project_device_type
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

MODEL_API = "/api/projects/kiosk/models/digit-classifier/"


def entries_for(model_class, pk=None):
    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model_class))
    if pk is not None:
        entries = entries.filter(object_pk=str(pk))
    return entries.order_by("timestamp", "pk")


def token_client(user) -> tuple[APIClient, ApiToken]:
    token, raw = ApiToken.issue(user, "ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client, token


# --- what is recorded ----------------------------------------------------------------------------------


def test_rule_change_through_the_api_by_token__records_actor_origin_and_before_after(teammate, project, model):
    v1, v2 = ready_version(model, seed=1), ready_version(model, seed=2)
    client, token = token_client(teammate)
    rule = client.post(f"{MODEL_API}rules/", {"version": 1, "priority": 10}, format="json").json()

    assert client.patch(f"{MODEL_API}rules/{rule['id']}/", {"version": 2}, format="json").status_code == 200

    created, changed = entries_for(TargetingRule, rule["id"])
    assert created.action == LogEntry.Action.CREATE and changed.action == LogEntry.Action.UPDATE
    assert changed.actor == teammate
    assert changed.additional_data == {"project_id": project.pk, "via": "api-token", "token": token.prefix}
    assert changed.changes["version"] == [str(v1.pk), str(v2.pk)]
    assert changed.remote_addr == "127.0.0.1"


def test_rule_deleted_through_the_api_by_session__is_recorded(teammate, project, model):
    ready_version(model)
    client = APIClient()
    client.force_login(teammate)
    rule = client.post(f"{MODEL_API}rules/", {"version": 1}, format="json").json()

    assert client.delete(f"{MODEL_API}rules/{rule['id']}/").status_code == 204

    deleted = entries_for(TargetingRule, rule["id"]).last()
    assert deleted.action == LogEntry.Action.DELETE
    assert (deleted.actor, deleted.additional_data["via"]) == (teammate, "api-session")


def test_default_version_set_on_the_page__is_recorded_with_via_page(client, teammate, project, model):
    version = ready_version(model)
    client.force_login(teammate)

    response = client.post(
        "/p/kiosk/m/digit-classifier/delivery/", {"action": "default", "default_version": version.number}
    )

    assert response.status_code == 302
    entry = entries_for(Model, model.pk).last()
    assert entry.changes == {"default_version": ["None", str(version.pk)]}
    assert (entry.actor, entry.additional_data) == (teammate, {"project_id": project.pk, "via": "page"})


def test_device_type_edit__is_recorded_with_before_and_after(teammate, project):
    project_device_type(project, "kiosk-arm")

    response = api_client_for(teammate).patch(
        "/api/projects/kiosk/device-types/kiosk-arm/", {"memory_mb": 2048}, format="json"
    )

    assert response.status_code == 200
    device_type = DeviceType.objects.get(project=project, slug="kiosk-arm")
    entry = entries_for(DeviceType, device_type.pk).last()
    assert entry.changes == {"memory_mb": ["1024", "2048"]}
    assert (entry.actor, entry.additional_data["via"]) == (teammate, "api-session")


def test_enrollment_key_rotation__is_recorded_without_the_secret(owner, project):
    issued = api_client_for(owner).post("/api/projects/kiosk/fleet/enrollment-key/")
    raw = issued.json()["enrollment_key"]
    fleet = FleetSettings.objects.get(project=project)

    entries = list(entries_for(FleetSettings, fleet.pk))

    rotation = entries[-1]
    assert rotation.action == LogEntry.Action.UPDATE and rotation.actor == owner
    assert rotation.changes["enrollment_key_hash"][1] == "(secret, not recorded)"
    assert "enrollment_key_rotated_at" in rotation.changes
    stored = " ".join(str(e.changes) + str(e.serialized_data) + e.changes_text for e in entries)
    assert raw not in stored and fleet.enrollment_key_hash not in stored
    assert "PRIVATE" not in stored and "gAAAA" not in stored  # neither the key nor its Fernet ciphertext


def test_checkin_interval_changed_by_update__is_recorded(owner, project):
    api_client_for(owner).patch("/api/projects/kiosk/fleet/", {"checkin_interval_s": 60}, format="json")
    fleet = FleetSettings.objects.get(project=project)

    entry = entries_for(FleetSettings, fleet.pk).last()

    assert entry.changes["checkin_interval_s"][1] == "60"
    assert entry.changes["checkin_interval_s"][0] != "60"
    assert (entry.actor, entry.additional_data["project_id"]) == (owner, project.pk)


def test_membership_role_change_and_removal__are_recorded(owner, teammate, project):
    client = api_client_for(owner)
    membership = Membership.objects.get(project=project, user=teammate)

    body = {"username": teammate.username, "role": roles.VIEWER}
    assert client.post("/api/projects/kiosk/members/", body, format="json").status_code == 201
    assert client.delete(f"/api/projects/kiosk/members/{teammate.username}/").status_code == 204

    changed, removed = list(entries_for(Membership, membership.pk))[-2:]
    assert changed.changes == {"role": [roles.DEVELOPER, roles.VIEWER]} and changed.actor == owner
    assert removed.action == LogEntry.Action.DELETE and removed.additional_data["project_id"] == project.pk


def test_check_job_marking_a_version_ready__is_recorded_as_the_system(model, project):
    version = ready_version(model)  # its check job runs as the worker would

    entry = entries_for(ModelVersion, version.pk).last()

    assert entry.changes == {"state": ["checking", "ready"]}
    assert entry.actor is None
    assert entry.additional_data == {"project_id": project.pk, "via": "system"}


def test_service_called_outside_a_request__is_recorded_as_the_system(project, teammate):
    project_services.set_member(project=project, user=teammate, role=roles.APPROVER)

    entry = entries_for(Membership).last()
    assert entry.additional_data == {"project_id": project.pk, "via": "system"}


# --- who reads it, and how -----------------------------------------------------------------------------

AUDIT_API = "/api/projects/kiosk/audit/"


@pytest.fixture
def changes_in_two_projects(owner, teammate, project, model, other_project, outsider):
    """A rule in ``project`` and a member change in ``other_project``, each by its own people."""
    ready_version(model)
    api_client_for(teammate).post(f"{MODEL_API}rules/", {"version": 1}, format="json")
    api_client_for(outsider).post(
        "/api/projects/other/members/", {"username": owner.username, "role": roles.VIEWER}, format="json"
    )


def test_audit_api__viewer_reads_the_project_entries_and_never_another_projects(viewer, changes_in_two_projects):
    response = api_client_for(viewer).get(AUDIT_API, {"limit": 500})

    assert response.status_code == 200
    rows = response.json()["results"]
    assert {"rule", "version", "member", "project", "model"} <= {r["kind"] for r in rows}
    assert "oscar-outsider" not in str(rows) and "Someone else" not in str(rows)
    rule = next(r for r in rows if r["kind"] == "rule")
    assert (rule["action"], rule["actor"], rule["via"]) == ("create", "dev-dan", "api-session")


def test_audit_api__filters_by_kind_actor_action_and_day(viewer, teammate, changes_in_two_projects):
    client = api_client_for(viewer)

    by_actor = client.get(AUDIT_API, {"actor": teammate.username}).json()["results"]
    rules = client.get(AUDIT_API, {"kind": "rule", "action": "create"}).json()["results"]
    tomorrow = client.get(AUDIT_API, {"since": "2999-01-01"}).json()["results"]

    assert by_actor and {r["actor"] for r in by_actor} == {"dev-dan"}
    assert len(rules) == 1 and rules[0]["kind"] == "rule"
    assert tomorrow == []


@pytest.mark.parametrize(
    ("query", "field"),
    [({"kind": "spaceship"}, "kind"), ({"object_id": 3}, "object_id"), ({"since": "yesterday"}, "since")],
)
def test_audit_api__bad_filter__is_400_naming_the_field(viewer, project, query, field):
    response = api_client_for(viewer).get(AUDIT_API, query)
    assert response.status_code == 400 and field in response.json()


def test_audit_api__outsider_gets_404_and_nobody_can_write(outsider, owner, changes_in_two_projects):
    assert api_client_for(outsider).get(AUDIT_API).status_code == 404
    for method in ("post", "put", "patch", "delete"):
        assert getattr(api_client_for(owner), method)(AUDIT_API, {}, format="json").status_code == 405


def test_audit_api__is_in_the_openapi_schema(owner):
    schema = api_client_for(owner).get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/projects/{project}/audit/"]
    assert set(operation) == {"get", "parameters"} or set(operation) == {"get"}
    assert {"kind", "actor", "since", "until", "object_id"} <= {p["name"] for p in operation["get"]["parameters"]}


def test_audit_page__per_object_history_shows_that_object_only(client, viewer, teammate, project, model):
    ready_version(model)
    api = api_client_for(teammate)
    first = api.post(f"{MODEL_API}rules/", {"version": 1, "description": "first"}, format="json").json()
    api.post(f"{MODEL_API}rules/", {"version": 1, "description": "second"}, format="json")
    api.patch(f"{MODEL_API}rules/{first['id']}/", {"priority": 7}, format="json")
    client.force_login(viewer)

    page = client.get("/p/kiosk/audit/", {"kind": "rule", "object_id": first["id"]})

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count(f"rule {first['id']} of") == 2  # created, then changed
    assert "second" not in html and "100 → 7" in html


def test_audit_page__outsider_gets_404(client, outsider, changes_in_two_projects):
    client.force_login(outsider)
    assert client.get("/p/kiosk/audit/").status_code == 404
    assert client.get("/p/kiosk/audit.csv").status_code == 404


def test_audit_csv__holds_exactly_the_filtered_rows(client, viewer, teammate, project, changes_in_two_projects):
    client.force_login(viewer)
    query = {"actor": teammate.username}

    response = client.get("/p/kiosk/audit.csv", query)

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = api_client_for(viewer).get(AUDIT_API, {**query, "limit": 500}).json()["results"]
    assert lines[0][:4] == ["time", "action", "kind", "object_id"]
    assert [line[1:5] for line in lines[1:]] == [
        [r["action"], r["kind"], str(r["object_id"]), r["object"]] for r in expected
    ]
    assert {line[5] for line in lines[1:]} == {"dev-dan"}


def test_audit_csv__bad_filter__is_400(client, viewer, project):
    client.force_login(viewer)
    assert client.get("/p/kiosk/audit.csv", {"until": "soon"}).status_code == 400


def test_admin__superuser_may_read_entries_but_not_add_change_or_delete_them(client, django_user_model, project):
    boss = django_user_model.objects.create_superuser(username="root", password="x-very-long-passphrase")
    entry = LogEntry.objects.first()
    client.force_login(boss)

    assert client.get("/admin/auditlog/logentry/").status_code == 200
    assert client.get(f"/admin/auditlog/logentry/{entry.pk}/change/").status_code == 200
    assert client.get("/admin/auditlog/logentry/add/").status_code == 403
    assert client.post(f"/admin/auditlog/logentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post("/admin/auditlog/logentry/", {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert bulk.status_code in (200, 302)
    assert LogEntry.objects.filter(pk=entry.pk).exists()
    assert client.post(f"/admin/auditlog/logentry/{entry.pk}/change/", {"action": 0}).status_code == 403
    assert LogEntry.objects.get(pk=entry.pk).changes == entry.changes


def test_admin__changes_made_there_are_recorded_with_via_admin(client, django_user_model, owner, project, model):
    boss = django_user_model.objects.create_superuser(username="root", password="x-very-long-passphrase")
    client.force_login(boss)

    response = client.post(
        f"/admin/console/model/{model.pk}/change/",
        {
            "project": project.pk,
            "name": model.name,
            "description": "edited in the admin",
            "typical_dims": "{}",
            "created_by": owner.pk,
        },
    )

    assert response.status_code == 302, response.content[:2000]
    entry = entries_for(Model, model.pk).last()
    assert entry.changes["description"] == ["", "edited in the admin"]
    assert (entry.actor, entry.additional_data["via"]) == (boss, "admin")


def test_audit_api__query_count_does_not_grow_with_entries(viewer, teammate, model, django_assert_max_num_queries):
    ready_version(model)
    api = api_client_for(teammate)
    for priority in range(20):
        api.post(f"{MODEL_API}rules/", {"version": 1, "priority": priority}, format="json")
    client = api_client_for(viewer)

    with django_assert_max_num_queries(6):
        rows = client.get(AUDIT_API, {"limit": 500}).json()["results"]

    assert len(rows) > 20


def test_model_and_version_pages__link_to_their_history(client, viewer, model):
    version = ready_version(model)
    client.force_login(viewer)

    model_page = client.get("/p/kiosk/m/digit-classifier/").content.decode()
    version_page = client.get("/p/kiosk/m/digit-classifier/v/1/").content.decode()

    assert f"/p/kiosk/audit/?kind=model&amp;object_id={model.pk}" in model_page
    assert f"/p/kiosk/audit/?kind=version&amp;object_id={version.pk}" in version_page
