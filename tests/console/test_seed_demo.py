from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from console.models import Model, Project

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def demo_asked_for(settings):
    settings.CONSOLE_DEMO = True


def test_seed_demo__without_console_demo__refuses_and_creates_no_user(settings):
    settings.CONSOLE_DEMO = False
    with pytest.raises(CommandError, match="CONSOLE_DEMO=1"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
    assert not Project.objects.exists()


def test_seed_demo__with_the_demo_users_flag__creates_them_without_console_demo(settings):
    settings.CONSOLE_DEMO = False
    call_command("seed_demo", "--demo-users")
    assert get_user_model().objects.get(username="demo").is_superuser


def test_seed_demo__creates_a_checked_demo_model_with_its_dataset_and_is_idempotent():
    call_command("seed_demo")
    call_command("seed_demo")
    project = Project.objects.get(slug="demo")
    assert sorted(project.memberships.values_list("role", flat=True)) == ["approver", "developer", "owner", "viewer"]
    model = Model.objects.get(project=project, name="digit-classifier")
    # v1 as trained; v2 the variant the Android phones' mobile package runs (made by optimize-for-device: the
    # rewrite that makes it runnable there, then whatever smaller variant of that rewrite stays within budget).
    assert list(model.versions.order_by("number").values_list("number", "state")) == [(1, "ready"), (2, "ready")]
    android = model.versions.get(number=2)
    assert android.parent.number == 1
    # What the version page says it was made by ("by <transform> <params>") names the rewrite it rests on.
    assert "make_runnable" in f"{android.transform} {android.transform_params}"
    assert android.compatibility.get(device_type__slug="android-arm64-phone").compatible
    assert model.datasets.get().rows > 100


def test_seed_demo__opens_on_a_fleet_that_installed_what_it_can_run(client):
    from devices.models import DailyRollup, Device, DeviceModelState

    call_command("seed_demo")
    call_command("seed_demo")

    project = Project.objects.get(slug="demo")
    assert Device.objects.filter(project=project).count() == 24
    states = DeviceModelState.objects.filter(device__project=project).select_related("device__device_type")
    # v1 fails the phones' mobile runtime: they are served its Android variant (v2), the rest run v1.
    phones = [s for s in states if s.device.device_type.slug == "android-arm64-phone"]
    others = [s for s in states if s.device.device_type.slug != "android-arm64-phone"]
    assert phones and all(s.desired_version.number == 2 and "compatible variant" in s.reason for s in phones)
    assert all(s.up_to_date and s.installed_state == "running" for s in phones + others)
    assert others and all(s.desired_version.number == 1 for s in others)
    totals = [(r.download_completed, r.install_succeeded) for r in DailyRollup.objects.filter(project=project)]
    assert sum(done for done, _ in totals) == sum(ok for _, ok in totals) == len(phones) + len(others)
    client.force_login(project.memberships.get(role="viewer").user)
    assert client.get("/p/demo/fleet/").status_code == 200
