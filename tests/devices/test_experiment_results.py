"""Results, guardrails and the dashboard from filled rollups: SRM blocks the verdict, a guardrail stops an arm
and the page says why, filters narrow every figure, and the CSV holds every chart's numbers."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from devices.core.resolution import DeviceFacts, resolve_model
from devices.delivery.cache import load_model_plans, running_experiments
from devices.experiments.guardrails import enforce_guardrails
from devices.experiments.results import experiment_results
from devices.experiments.services import stop_arm
from devices.experiments.tasks import enforce_all_guardrails
from devices.models import DeviceEvent, ExperimentArm, ExperimentArmDayRollup, ExperimentRollup
from devices.rules import services as rules_services
from devices.telemetry.bulk import count_bulk
from tests.conftest import api_client_for
from tests.devices.experiment_helpers import arm_of, enroll_devices, running_experiment
from tests.devices.fleet_helpers import ready_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def arms(model):
    return ready_version(model, seed=1), ready_version(model, seed=2)


def _stats_event(model, version_id, day, now, **stats):
    return DeviceEvent(
        type="inference_stats",
        model_id=model.pk,
        version_id=version_id,
        at=now - timedelta(days=day),
        received_at=now,
        stats={"count": 10, **stats},
    )


def _fill(experiment, model, devices, per_arm, days=3, drop=None):
    """Events for each device from ``per_arm[version_id](rng)`` -> list of DeviceEvent kwargs; ``drop``: a
    version whose devices' events are all lost (a broken arm)."""
    rng = np.random.default_rng(11)
    now = timezone.now()
    events = {}
    for device in devices:
        version_id = arm_of(experiment, device).version_id
        if version_id == drop:
            continue
        events[device.pk] = [
            DeviceEvent(model_id=model.pk, version_id=version_id, at=now - timedelta(days=day), received_at=now, **kw)
            for day in range(days)
            for kw in per_arm[version_id](rng)
        ]
    count_bulk(devices, events)


def _latency(mean):
    return lambda rng: [{"type": "inference_stats", "stats": {"count": 10, "latency_ms_mean": rng.normal(mean, 1)}}]


def test_srm__an_arm_losing_devices__warns_and_blocks_the_verdict(owner, enrollment_key, model, arms):
    control, challenger = arms
    experiment = running_experiment(model, owner, control, challenger, sequential=False)
    devices = enroll_devices(enrollment_key, 90)
    # Four in five of the challenger's devices never report: as if they crashed before their first report.
    keep = {d.pk for i, d in enumerate(devices) if arm_of(experiment, d).version_id == control.pk or i % 5 == 0}
    _fill(
        experiment, model, [d for d in devices if d.pk in keep], {control.pk: _latency(20), challenger.pk: _latency(15)}
    )

    results = experiment_results(experiment)

    assert results.srm is not None and results.srm.mismatch
    assert results.sentences[0].startswith("Sample ratio mismatch")
    assert not any("faster" in sentence for sentence in results.sentences)


def test_guardrail__an_arm_much_worse_on_installs__stops_being_served_and_the_page_says_why(
    owner, enrollment_key, model, arms
):
    control, challenger = arms
    experiment = running_experiment(
        model, owner, control, challenger, sequential=False, guardrail_metrics=["install_failure_rate"]
    )
    devices = enroll_devices(enrollment_key, 40)

    def installs(failure_rate):
        def draw(rng):
            failed = rng.random() < failure_rate
            return [
                {"type": "install_failed" if failed else "install_succeeded", "stats": {}},
                {"type": "inference_stats", "stats": {"count": 5, "latency_ms_mean": 10.0 + rng.random()}},
            ]

        return draw

    _fill(experiment, model, devices, {control.pk: installs(0.02), challenger.pk: installs(0.6)}, days=10)

    assert enforce_all_guardrails() == {str(experiment.pk): ["v2"]}
    arm = ExperimentArm.objects.get(experiment=experiment, position=1)
    assert arm.stopped_at is not None
    assert arm.stop_reason.startswith("guardrail install_failure_rate: v2 has")
    assert "more install failures than v1" in arm.stop_reason
    assert enforce_guardrails(experiment) == []  # runs twice: already stopped
    assert not any(a.serving for p in running_experiments([model.pk])[model.pk] for a in p.arms if a.id == arm.pk)

    client = Client()
    client.force_login(owner)
    page = client.get(f"/p/kiosk/m/{model.name}/experiments/{experiment.pk}/").content.decode()
    assert "stopped: guardrail install_failure_rate" in page


def test_filters__narrow_the_results_to_a_device_type_and_the_csv_holds_every_chart_number(
    owner, enrollment_key, model, arms
):
    control, challenger = arms
    experiment = running_experiment(
        model,
        owner,
        control,
        challenger,
        target={"device_types": ["x86-gateway", "jetson-orin-nano"]},
        planned_sample_size=50,
    )
    gateways = enroll_devices(enrollment_key, 10, prefix="gw")
    _fill(experiment, model, gateways, {control.pk: _latency(20), challenger.pk: _latency(17)}, days=4)

    everyone = experiment_results(experiment)
    assert everyone.power_sentence.endswith(
        f"Planned 50 devices per arm: {min(a.devices for a in everyone.arms) / 50:.0%} reached."
    )
    only_jetson = experiment_results(experiment, device_type="jetson-orin-nano")
    assert sum(a.devices for a in everyone.arms) == 10
    assert sum(a.devices for a in only_jetson.arms) == 0
    assert only_jetson.series["latency"] == []

    client = Client()
    client.force_login(owner)
    response = client.get(f"/p/kiosk/m/{model.name}/experiments/{experiment.pk}/data.csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len([r for r in rows if r["metric"] == "latency"]) == 2 * 4  # two arms, four days
    assert {r["arm"] for r in rows} == {"v1", "v2"}
    last = [r for r in rows if r["metric"] == "latency" and r["arm"] == "v2"][-1]
    assert float(last["diff"]) == pytest.approx(everyone.arms[1].metrics["latency"].comparison.diff)


def test_stopped_arm__its_devices_resolve_by_rules_and_default_again(owner, enrollment_key, model, arms):
    control, challenger = arms
    rules_services.set_default_version(model=model, version=control)
    experiment = running_experiment(model, owner, control, challenger)
    devices = enroll_devices(enrollment_key, 12)
    device = next(d for d in devices if arm_of(experiment, d).version_id == challenger.pk)
    stop_arm(arm=ExperimentArm.objects.get(experiment=experiment, position=1), reason="guardrail test")

    plan = load_model_plans(model.project_id, [model.name])[model.name]
    facts = DeviceFacts(device.device_id, device.device_type_id, "x86-gateway", "DE", "2.3.1", {})
    outcome = resolve_model(plan, facts)
    assert (outcome.version_id, outcome.resolution) == (control.pk, "default")


def test_unfiltered_results__equal_a_filter_every_device_matches__to_the_last_digit(owner, enrollment_key, model, arms):
    """Unfiltered results read the per-arm-per-day rollups; a device type filter reads the fine ones and sums them
    over regions: the same figures either way."""
    control, challenger = arms
    experiment = running_experiment(
        model,
        owner,
        control,
        challenger,
        guardrail_metrics=["accuracy", "install_failure_rate", "inference_error_rate"],
    )
    devices = enroll_devices(enrollment_key, 12) + enroll_devices(enrollment_key, 12, prefix="fr", region="FR")

    def draws(mean):
        def draw(rng):
            # Whole milliseconds: float sums are then exact in any order, as they are in both tables.
            return [
                {
                    "type": "inference_stats",
                    "stats": {"count": 10, "errors": 1, "latency_ms_mean": rng.integers(mean, mean + 9)},
                },
                {"type": "feedback", "stats": {"prediction": 1, "label": int(rng.random() < 0.8)}},
                {"type": "install_failed" if rng.random() < 0.1 else "install_succeeded", "stats": {}},
            ]

        return draw

    _fill(experiment, model, devices, {control.pk: draws(20), challenger.pk: draws(17)}, days=5)
    assert ExperimentRollup.objects.count() > ExperimentArmDayRollup.objects.count()

    client = api_client_for(owner)
    url = f"/api/projects/kiosk/models/{model.name}/experiments/{experiment.pk}/results/"
    everyone = client.get(url).json()
    gateways = client.get(url, {"device_type": "x86-gateway"}).json()

    assert (everyone.pop("filters"), gateways.pop("filters")) == ({}, {"device_type": "x86-gateway"})
    assert [s.replace(" on x86-gateway", "") for s in gateways.pop("verdict")] == everyone.pop("verdict")
    assert gateways == everyone
    assert everyone["arms"][0]["metrics"][0]["quantiles"]["p50"] is not None
