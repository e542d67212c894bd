"""The engine's pure rules: the rate cap's share, stage health against thresholds, the beat's next step, and
the rollout decider in front of the targeting rules."""

from __future__ import annotations

import pytest

from devices.core import rollout_plan
from devices.core.resolution import (
    ASSIGNED,
    ROLLOUT,
    RULE,
    DeviceFacts,
    ModelPlan,
    RolloutFacts,
    VersionFacts,
    resolve_model,
)
from devices.core.rollout_plan import THRESHOLD_DEFAULTS, Figures, health, next_step, offered_percent
from devices.core.targeting.rules import Rule

STAGES = [
    {"percent": 1, "dwell_minutes": 60},
    {"percent": 10, "dwell_minutes": 60},
    {"percent": 100, "dwell_minutes": 60},
]
CAPPED = {**THRESHOLD_DEFAULTS, "max_devices_per_minute": 10, "rate_growth_factor": 2.0}


# -- rate cap ----------------------------------------------------------------------------------------------


def test_offered_percent__without_a_cap__is_the_stage_percent():
    assert offered_percent(STAGES, 1, THRESHOLD_DEFAULTS, minutes_elapsed=0, eligible_devices=5000) == 10


def test_offered_percent__with_a_cap__lets_in_n_times_growth_per_stage_devices_per_minute_above_the_stage_before():
    # stage 1 (0-based): 10 x 2^1 = 20 devices a minute of 10 000 eligible = 0.2 % a minute, above the 1 % before
    share = [offered_percent(STAGES, 1, CAPPED, minutes_elapsed=m, eligible_devices=10_000) for m in (0, 0.5, 1, 4)]

    assert share == [1.2, 1.2, 1.4, 2.0]


def test_offered_percent__with_a_cap__never_passes_the_stage_percent_and_never_goes_down():
    shares = [offered_percent(STAGES, 0, CAPPED, minutes_elapsed=m, eligible_devices=3000) for m in range(0, 30)]

    assert shares == sorted(shares)
    assert max(shares) == 1 and shares[0] == pytest.approx(0.33)


def test_offered_percent__rounds_down_to_the_bucket_unit_so_the_cap_is_never_exceeded():
    # 10 devices of 70 000 eligible is 0.0143 %: offered 0.01 % (about 7 devices), never more than the cap.
    assert offered_percent(STAGES, 0, CAPPED, minutes_elapsed=0, eligible_devices=70_000) == 0.01


# -- health ------------------------------------------------------------------------------------------------


def test_health__a_download_failure_rate_above_the_threshold_is_crossed_with_its_figures():
    figures = Figures(download_completed=44, download_failed=6)

    download = health(figures, {**THRESHOLD_DEFAULTS, "min_devices_per_stage": 50})[0]

    assert (download.judged, download.crossed) == (True, True)
    assert download.sentence == "download failures 12% (6 of 50) > 5%"


def test_health__is_not_judged_before_min_devices_reported():
    figures = Figures(download_completed=1, download_failed=9, install_succeeded=1, install_failed=9)

    measures = health(figures, {**THRESHOLD_DEFAULTS, "min_devices_per_stage": 20})

    assert [(m.judged, m.crossed) for m in measures] == [(False, False)] * 3
    assert "not judged until 20 devices reported" in measures[0].sentence


def test_health__latency_regression_against_the_replaced_version():
    figures = Figures(install_succeeded=30, latency_count=100, latency_p50_weighted=650.0, previous_latency_p50_ms=5.0)

    latency = health(figures, {**THRESHOLD_DEFAULTS, "max_latency_regression": 0.2})[2]

    assert latency.value == pytest.approx(0.3)
    assert latency.crossed and latency.sentence == "latency p50 +30% (6.5 ms vs 5 ms on the replaced version) > 20%"


def test_figures_since__are_what_was_reported_after_the_baseline():
    start = Figures(download_completed=10, download_failed=1, previous_latency_p50_ms=4.0)
    now = Figures(download_completed=15, download_failed=4, previous_latency_p50_ms=4.5)

    assert now.since(start) == Figures(download_completed=5, download_failed=3, previous_latency_p50_ms=4.5)


# -- the beat's step ---------------------------------------------------------------------------------------


def _step(**overrides):
    values = {
        "stages": STAGES,
        "stage_index": 0,
        "offered": 1.0,
        "minutes_in_stage": 61,
        "figures": Figures(download_completed=100, install_succeeded=100),
        "thresholds": THRESHOLD_DEFAULTS,
        "eligible_devices": None,
    }
    return next_step(**{**values, **overrides})


def test_next_step__waits_for_the_dwell_then_advances_then_completes_after_the_last_stage():
    assert _step(minutes_in_stage=59).action == rollout_plan.WAIT
    assert _step(minutes_in_stage=60).action == rollout_plan.ADVANCE
    assert _step(stage_index=2, offered=100.0).action == rollout_plan.COMPLETE


def test_next_step__a_crossed_threshold_halts_even_before_the_dwell():
    step = _step(minutes_in_stage=2, figures=Figures(download_completed=90, download_failed=10))

    assert step.action == rollout_plan.HALT and step.reason == "download failures 10% (10 of 100) > 5%"


def test_minutes_to_open__is_when_the_capped_share_reaches_the_stage_percent():
    # stage 0: 10 devices a minute of 3000 eligible; 1 % is 30 devices: the third minute (index 2)
    assert rollout_plan.minutes_to_open(STAGES, 0, CAPPED, eligible_devices=3000) == 2
    assert rollout_plan.minutes_to_open(STAGES, 0, THRESHOLD_DEFAULTS, eligible_devices=3000) == 0


def test_next_step__under_a_rate_cap_counts_the_dwell_from_when_the_stage_is_fully_open():
    capped = {"thresholds": CAPPED, "offered": 1.0, "eligible_devices": 3000}

    assert _step(minutes_in_stage=61, **capped).action == rollout_plan.WAIT
    assert _step(minutes_in_stage=62, **capped).action == rollout_plan.ADVANCE


def test_next_step__under_a_rate_cap_opens_the_stage_before_advancing():
    step = _step(thresholds=CAPPED, offered=0.1, minutes_in_stage=61, eligible_devices=100_000)

    # 10 devices a minute of 100 000 for 62 started minutes: 0.62 %, still short of the stage's 1 %
    assert (step.action, step.percent) == (rollout_plan.OFFER, 0.62)
    assert _step(thresholds=CAPPED, offered=0.62, minutes_in_stage=61.5, eligible_devices=100_000).action == "wait"


# -- resolution --------------------------------------------------------------------------------------------

V1, V2 = 1, 2
DEVICE_TYPE = 5


def _version(number: int) -> VersionFacts:
    return VersionFacts(
        id=number,
        number=number,
        state="ready",
        servable=True,
        sha256=f"{number:064x}",
        size=100,
        format="onnx",
        parent_id=None,
        runtime={},
        runnable_on=frozenset({DEVICE_TYPE}),
        blocked_on={},
    )


def _plan(*rollouts: RolloutFacts) -> ModelPlan:
    return ModelPlan(
        model_id=1,
        name="m",
        rules=[Rule.from_dict({"id": 9, "version": V1, "conditions": {}})],
        default_version_id=V1,
        versions={V1: _version(V1), V2: _version(V2)},
        children={},
        rollouts=rollouts,
    )


def _rollout(state: str = rollout_plan.RUNNING, percent: float = 50.0, **fields) -> RolloutFacts:
    values = {
        "id": 3,
        "state": state,
        "version_id": V2,
        "previous_version_id": V1,
        "target": Rule.from_dict({"id": "t", "conditions": {"regions": ["DE"]}}),
        "salt": "rollout:abc",
        "stage": 1,
        "percent": percent,
    }
    return RolloutFacts(**{**values, **fields})


def _device(number: int, region: str = "DE") -> DeviceFacts:
    return DeviceFacts(f"device-{number}", DEVICE_TYPE, "gateway", region, "1.0.0", {})


DEVICES = [_device(n) for n in range(400)]


def _inside(percent: float) -> set[str]:
    return {d.device_id for d in DEVICES if rollout_plan.in_stage(d.device_id, "rollout:abc", percent)}


def test_running_rollout__gives_its_version_to_the_stage_and_leaves_the_rest_to_the_rules():
    plan = _plan(_rollout(percent=50.0))

    outcomes = {d.device_id: resolve_model(plan, d) for d in DEVICES}

    on_v2 = {device for device, outcome in outcomes.items() if outcome.version_id == V2}
    assert on_v2 == _inside(50.0) and 0 < len(on_v2) < len(DEVICES)
    some = outcomes[next(iter(on_v2))]
    assert (some.status, some.resolution, some.reason) == (ASSIGNED, ROLLOUT, "rollout 3, stage 2 (50% of its target)")
    assert all(outcomes[d].resolution == RULE for d in set(outcomes) - on_v2)


def test_running_rollout__outside_its_target__leaves_the_device_to_the_rules():
    outcome = resolve_model(_plan(_rollout(percent=100.0)), _device(1, region="FR"))

    assert (outcome.version_id, outcome.resolution) == (V1, RULE)


@pytest.mark.parametrize("state", [rollout_plan.PAUSED, rollout_plan.HALTED])
def test_paused_or_halted_rollout__keeps_its_version_where_installed_and_offers_it_to_no_one_else(state):
    plan = _plan(_rollout(state=state, percent=100.0))

    kept = resolve_model(plan, _device(1), installed_version_id=V2)
    new = resolve_model(plan, _device(2), installed_version_id=V1)

    assert (kept.version_id, kept.resolution) == (V2, ROLLOUT) and "keeps it" in kept.reason
    assert (new.version_id, new.resolution) == (V1, RULE)


def test_halted_rollout__keeps_the_compatible_variant_a_device_installed_of_its_version():
    variant = VersionFacts(**{**_version(7).__dict__, "parent_id": V2})
    blocked = VersionFacts(**{**_version(V2).__dict__, "runnable_on": frozenset()})
    plan = _plan(_rollout(state=rollout_plan.HALTED, percent=100.0))
    plan.versions = {**plan.versions, V2: blocked, 7: variant}
    plan.children = {V2: (7,)}

    kept = resolve_model(plan, _device(1), installed_version_id=7)

    assert (kept.version_id, kept.decision.resolution) == (7, ROLLOUT)


def test_halted_rollout_after_a_retry__offers_its_version_to_the_listed_devices_with_the_generation():
    inside = sorted(_inside(100.0))
    plan = _plan(
        _rollout(state=rollout_plan.HALTED, percent=100.0, retry_generation=2, retry_devices=frozenset(inside[:1]))
    )

    retried = resolve_model(plan, _device(int(inside[0].split("-")[1])), installed_version_id=V1)
    other = resolve_model(plan, _device(int(inside[1].split("-")[1])), installed_version_id=V1)

    assert (retried.version_id, retried.decision.retry_generation) == (V2, 2)
    assert "retrying a device whose download or install failed" in retried.reason
    assert other.version_id == V1


def test_rolled_back_rollout__sends_devices_on_its_version_back_to_the_previous_one():
    plan = _plan(_rollout(state=rollout_plan.ROLLED_BACK, percent=100.0), _rollout(id=4, percent=0.0))

    back = resolve_model(plan, _device(1), installed_version_id=V2)
    untouched = resolve_model(plan, _device(1), installed_version_id=V1)

    assert (back.version_id, back.resolution) == (V1, ROLLOUT) and "rolled back" in back.reason
    assert (untouched.version_id, untouched.resolution) == (V1, RULE)


def test_stage_membership__is_nested_as_the_stage_grows():
    assert _inside(1.0) <= _inside(10.0) <= _inside(50.0) <= _inside(100.0) == {d.device_id for d in DEVICES}
