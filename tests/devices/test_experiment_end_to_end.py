"""End to end: real device agents against the live console, in an experiment whose arms differ by a known amount.

Each agent installs the version of its arm, runs it in onnxruntime (timed with an injected clock that draws
latencies from the arm's distribution: the challenger 15 % faster) and reports labelled feedback (the challenger
10 points more accurate). The results API must find both differences with the right sign, and promoting the
winner must propose a rollout.
"""

from __future__ import annotations

import numpy as np
import pytest

from devices.agent.client import Agent, default_config
from devices.experiments import services
from devices.fleet import services as fleet_services
from devices.models import ExperimentArm, Rollout
from devices.rules import services as rules_services
from tests.conftest import api_client_for
from tests.devices.fleet_helpers import ready_version

MODEL = "digit-classifier"
DEVICES = 24
ROUNDS = 3
RUNS_PER_ROUND = 20
FEEDBACK_PER_ROUND = 25
CONTROL_MS, CHALLENGER_MS = 20.0, 17.0  # 15 % faster
CONTROL_ACCURACY, CHALLENGER_ACCURACY = 0.80, 0.90


class DrawnClock:
    """A clock whose every second reading is a latency drawn for the installed version later than the first."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.mean_ms = 0.0
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:  # the end of a run
            sigma = 0.25
            self.now += self.rng.lognormal(np.log(self.mean_ms) - sigma**2 / 2, sigma) / 1000
        return self.now


@pytest.mark.django_db(transaction=True)
def test_experiment__agents_report_known_differences__verdict_finds_them_and_promoting_proposes_a_rollout(
    live_server, owner, project, model, tmp_path
):
    control, challenger = ready_version(model, seed=1), ready_version(model, seed=2)
    rules_services.set_default_version(model=model, version=control)
    experiment = services.create_experiment(
        model=model,
        user=owner,
        name="faster",
        arms=[services.ArmSpec(control, 50), services.ArmSpec(challenger, 50)],
        traffic_percent=100,
        primary_metric="latency",
        guardrail_metrics=["accuracy"],
        target={"device_types": ["x86-gateway"]},
    )
    services.start_experiment(experiment=experiment, user=owner)
    _, key = fleet_services.rotate_enrollment_key(project=project)
    rng = np.random.default_rng(2026)
    means = {control.pk: CONTROL_MS, challenger.pk: CHALLENGER_MS}
    accuracy = {control.pk: CONTROL_ACCURACY, challenger.pk: CHALLENGER_ACCURACY}
    agents = []
    for i in range(DEVICES):
        clock = DrawnClock(rng)
        agent = Agent(tmp_path / f"device-{i}", retry_delay_s=0, session_threads=1, clock=clock)
        agent.enroll(live_server.url, key, default_config(device_type="x86-gateway", region="DE"), models=[MODEL])
        agent.checkin()
        installed = agent.status()["installed"][MODEL]["current"]["version_id"]
        clock.mean_ms = means[installed]
        agents.append((agent, installed))
    assert {installed for _, installed in agents} == {control.pk, challenger.pk}

    for _ in range(ROUNDS):
        for agent, installed in agents:
            (name, shape, _), *_ = agent.model_inputs(MODEL)
            feed = {name: rng.random([d if isinstance(d, int) else 1 for d in shape]).astype(np.float32)}
            for _ in range(RUNS_PER_ROUND):
                agent.run(MODEL, feed)
            for _ in range(FEEDBACK_PER_ROUND):
                label = int(rng.integers(0, 10))
                correct = rng.random() < accuracy[installed]
                agent.report_feedback(MODEL, label if correct else (label + 1) % 10, label)
            agent.checkin()  # queues the inference stats and sends every pending event

    client = api_client_for(owner)
    base = f"/api/projects/{project.slug}/models/{MODEL}/experiments/{experiment.pk}/"
    results = client.get(base + "results/").json()
    control_arm, challenger_arm = results["arms"]
    assert control_arm["control"] and control_arm["devices"] + challenger_arm["devices"] == DEVICES
    by_metric = {m["metric"]: m for m in challenger_arm["metrics"]}
    latency = by_metric["latency"]["versus_control"]
    assert latency["significant"] and latency["relative"] < 0
    assert latency["relative_low"] < -0.15 < latency["relative_high"]
    feedback = by_metric["accuracy"]["versus_control"]
    assert feedback["significant"] and feedback["diff"] > 0
    assert feedback["diff_low"] < CHALLENGER_ACCURACY - CONTROL_ACCURACY < feedback["diff_high"]
    assert results["verdict"][0].startswith("v2 is 1") and "% faster than v1" in results["verdict"][0]
    assert "points more accurate than v1" in results["verdict"][1]
    assert not results["srm"]["mismatch"]

    winner = ExperimentArm.objects.get(experiment=experiment, position=1)
    response = client.post(base + "promote/", {"arm": winner.pk}, format="json")
    assert response.status_code == 201, response.content
    rollout = Rollout.objects.get()
    assert (rollout.version_id, rollout.state) == (challenger.pk, "draft")
