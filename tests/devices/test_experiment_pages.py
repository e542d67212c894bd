"""The experiments page: a developer creates a draft from the form; a bad form says why and creates nothing;
a viewer sees the list but no form and may not post."""

from __future__ import annotations

import pytest
from django.test import Client

from devices.models import Experiment
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db

URL = "/p/kiosk/m/digit-classifier/experiments/"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form(**overrides):
    data = {
        "name": "faster",
        "arms": "1:10, 2:10",
        "traffic_percent": "20",
        "device_types": ["x86-gateway"],
        "primary_metric": "latency",
        "guardrail_metrics": ["accuracy"],
        "sequential": "on",
    }
    data.update(overrides)
    return data


def test_form__creates_a_draft_and_opens_its_dashboard(teammate, model):
    ready_version(model, seed=1), ready_version(model, seed=2)
    response = _client(teammate).post(URL, _form())
    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/experiments/{experiment.pk}/")
    assert (experiment.state, experiment.traffic_bp, experiment.guardrail_metrics) == ("draft", 2000, ["accuracy"])
    assert [(a.version.number, a.weight_bp) for a in experiment.arms.order_by("position")] == [(1, 1000), (2, 1000)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"arms": "1:10, 2:5"}, "add up to 15 % but the traffic share is 20 %"),
        ({"arms": "one:ten"}, "write version:weight"),
        ({"arms": "1:10, 1:10"}, "two arms use version 1"),
    ],
)
def test_form__bad_input__says_why_and_creates_nothing(teammate, model, overrides, message):
    ready_version(model, seed=1), ready_version(model, seed=2)
    response = _client(teammate).post(URL, _form(**overrides), follow=True)
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not Experiment.objects.exists()


def test_viewer__sees_the_list_without_the_form_and_may_not_create(viewer, model):
    client = _client(viewer)
    page = client.get(URL).content.decode()
    assert "new-experiment" not in page
    assert client.post(URL, _form()).status_code == 403
    assert not Experiment.objects.exists()
