"""Members through the API: a project always keeps an owner."""

from __future__ import annotations

import pytest

from console.models import Membership
from console.projects import roles
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


def members_url(project, username=""):
    return f"/api/projects/{project.slug}/members/{username + '/' if username else ''}"


def owners(project) -> list[str]:
    return sorted(Membership.objects.filter(project=project, role=roles.OWNER).values_list("user__username", flat=True))


def test_demote__last_owner__is_400_and_stays_owner(project, owner):
    response = api_client_for(owner).post(
        members_url(project), {"username": owner.username, "role": "developer"}, format="json"
    )
    assert response.status_code == 400
    assert "at least one owner" in response.json()["detail"]
    assert "make someone else owner first" in response.json()["detail"]
    assert owners(project) == [owner.username]


def test_demote__an_owner_while_another_remains__is_allowed(project, owner, teammate):
    client = api_client_for(owner)
    assert (
        client.post(members_url(project), {"username": teammate.username, "role": "owner"}, format="json").status_code
        == 201
    )
    response = client.post(members_url(project), {"username": owner.username, "role": "viewer"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "viewer"
    assert owners(project) == [teammate.username]


def test_demote__after_handing_over__the_new_last_owner_is_kept(project, owner, teammate):
    client = api_client_for(owner)
    client.post(members_url(project), {"username": teammate.username, "role": "owner"}, format="json")
    client.post(members_url(project), {"username": owner.username, "role": "developer"}, format="json")

    response = api_client_for(teammate).post(
        members_url(project), {"username": teammate.username, "role": "approver"}, format="json"
    )
    assert response.status_code == 400
    assert owners(project) == [teammate.username]


def test_remove__last_owner__is_400_and_stays(project, owner):
    response = api_client_for(owner).delete(members_url(project, owner.username))
    assert response.status_code == 400
    assert "at least one owner" in response.json()["detail"]
    assert owners(project) == [owner.username]


def test_remove__an_owner_while_another_remains__is_204(project, owner, teammate):
    client = api_client_for(owner)
    client.post(members_url(project), {"username": teammate.username, "role": "owner"}, format="json")
    assert client.delete(members_url(project, owner.username)).status_code == 204
    assert owners(project) == [teammate.username]


def test_change_role__of_a_non_owner__is_unaffected_by_the_owner_rule(project, owner, teammate):
    response = api_client_for(owner).post(
        members_url(project), {"username": teammate.username, "role": "viewer"}, format="json"
    )
    assert response.status_code == 201
    assert Membership.objects.get(project=project, user=teammate).role == roles.VIEWER
