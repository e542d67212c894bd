"""Superusers decide on rollouts in the Django admin under the same four-eyes rule as the API."""

from __future__ import annotations

import pytest
from django.test import Client

from devices.models import Rollout
from devices.rollouts import services
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

STAGES = [{"percent": 10, "dwell_minutes": 60}, {"percent": 100, "dwell_minutes": 60}]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="x", email="root@example.com")


def _pending(model, user):
    rollout = services.propose_rollout(model=model, version=ready_version(model), user=user, stages=STAGES)
    return services.submit_rollout(rollout=rollout, user=user)


def _decide(user, rollout, decision, comment=""):
    client = Client()
    client.force_login(user)
    return client.post(
        f"/admin/devices/rollout/{rollout.pk}/change/",
        {
            "decision": decision,
            "comment": comment,
            "approvals-TOTAL_FORMS": "0",
            "approvals-INITIAL_FORMS": "0",
            "approvals-MIN_NUM_FORMS": "0",
            "approvals-MAX_NUM_FORMS": "1000",
        },
    )


def test_superuser_who_proposed__may_not_approve_in_the_admin(model, superuser):
    rollout = _pending(model, superuser)
    answer = _decide(superuser, rollout, "approve")
    assert answer.status_code == 200 and "four eyes" in answer.content.decode()
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.PENDING_APPROVAL


def test_superuser_who_did_not_propose__approves_through_the_service(model, superuser, teammate):
    rollout = _pending(model, teammate)
    answer = _decide(superuser, rollout, "approve", "fine")
    assert answer.status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.APPROVED
    assert services.current_approval(rollout).approver == superuser


def test_reject_in_the_admin__needs_a_comment(model, superuser, teammate):
    rollout = _pending(model, teammate)
    answer = _decide(superuser, rollout, "reject")
    assert answer.status_code == 200 and "Say why" in answer.content.decode()
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.PENDING_APPROVAL
