from __future__ import annotations

import pytest
from django.core.management import call_command

from console.models import Model, Project

pytestmark = pytest.mark.django_db


def test_seed_demo__creates_a_checked_demo_model_with_its_dataset_and_is_idempotent():
    call_command("seed_demo")
    call_command("seed_demo")
    project = Project.objects.get(slug="demo")
    assert sorted(project.memberships.values_list("role", flat=True)) == ["approver", "developer", "owner", "viewer"]
    model = Model.objects.get(project=project, name="digit-classifier")
    assert list(model.versions.values_list("number", "state")) == [(1, "ready")]
    assert model.datasets.get().rows > 100
