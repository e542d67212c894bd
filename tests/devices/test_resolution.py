"""devices.resolution on plain values: deciders, compatibility and the lineage fallback."""

from __future__ import annotations

from devices.core.resolution import (
    ASSIGNED,
    COMPATIBLE_VARIANT,
    FALLBACK,
    KEPT_INSTALLED,
    NONE,
    NOTHING,
    Decision,
    DeviceFacts,
    ModelPlan,
    VersionFacts,
    resolve_model,
)
from devices.core.targeting.rules import Rule

PI, GATEWAY = 1, 2
DEVICE = DeviceFacts(
    device_id="d-1",
    device_type_id=PI,
    device_type="raspberry-pi-4",
    region="DE",
    app_version="2.3.1",
    attributes={"tier": "pro"},
)


def version(
    vid: int,
    *,
    size: int = 1000,
    parent: int | None = None,
    runs_on=(PI, GATEWAY),
    state: str = "ready",
    blocked: dict | None = None,
) -> VersionFacts:
    return VersionFacts(
        id=vid,
        number=vid,
        state=state,
        servable=state == "ready",
        sha256=f"{vid:064x}",
        size=size,
        format="onnx",
        parent_id=parent,
        runtime={"name": "onnxruntime"},
        runnable_on=frozenset(runs_on),
        blocked_on=blocked or {},
    )


def plan(versions: list[VersionFacts], rules: list[dict] | None = None, default: int | None = None) -> ModelPlan:
    children: dict[int, list[int]] = {}
    for facts in versions:
        if facts.parent_id is not None:
            children.setdefault(facts.parent_id, []).append(facts.id)
    return ModelPlan(
        model_id=1,
        name="digit-classifier",
        rules=[Rule.from_dict(r) for r in rules or []],
        default_version_id=default,
        versions={v.id: v for v in versions},
        children={k: tuple(v) for k, v in children.items()},
    )


def test_resolve__matching_rule__assigns_its_version_with_the_rule_as_reason():
    outcome = resolve_model(plan([version(1)], [{"id": 7, "version": 1, "conditions": {"regions": ["DE"]}}]), DEVICE)

    assert (outcome.status, outcome.version_id) == (ASSIGNED, 1)
    assert outcome.reason == "rule 7 (region DE in [DE])"


def test_resolve__lower_priority_number_wins_over_a_later_match():
    rules = [{"id": 1, "priority": 20, "version": 1}, {"id": 2, "priority": 10, "version": 2}]
    assert resolve_model(plan([version(1), version(2)], rules), DEVICE).version_id == 2


def test_resolve__no_rule_matches__default_version_is_a_fallback():
    outcome = resolve_model(
        plan([version(1)], [{"id": 1, "version": 1, "conditions": {"regions": ["FR"]}}], default=1), DEVICE
    )

    assert (outcome.status, outcome.version_id) == (FALLBACK, 1)
    assert "default version" in outcome.reason


def test_resolve__no_rule_and_no_default__is_none():
    outcome = resolve_model(plan([version(1)]), DEVICE)
    assert (outcome.status, outcome.resolution, outcome.version_id) == (NONE, NOTHING, None)


def test_resolve__version_device_cannot_run__falls_back_to_closest_then_smallest_descendant():
    versions = [
        version(1, runs_on=(GATEWAY,), blocked={PI: "opset 21 is too new"}),
        version(2, parent=1, size=900, runs_on=(GATEWAY,), blocked={PI: "still too new"}),
        version(3, parent=1, size=800, runs_on=(GATEWAY,)),  # never checked on the Pi
        version(4, parent=2, size=500),  # runnable, two steps down
        version(5, parent=2, size=300),  # runnable, two steps down, smaller
        version(6, parent=5, size=10),  # runnable but three steps down
    ]
    outcome = resolve_model(plan(versions, [{"id": 1, "version": 1}]), DEVICE)

    assert (outcome.status, outcome.resolution, outcome.version_id) == (FALLBACK, COMPATIBLE_VARIANT, 5)
    assert "cannot run on raspberry-pi-4 (opset 21 is too new)" in outcome.reason
    assert "serving version 5" in outcome.reason


def test_resolve__unchecked_version__is_never_served():
    outcome = resolve_model(plan([version(1, runs_on=(GATEWAY,))], [{"id": 1, "version": 1}]), DEVICE)

    assert outcome.version_id is None
    assert "was never checked against raspberry-pi-4" in outcome.reason


def test_resolve__not_ready_descendant__is_skipped():
    versions = [version(1, runs_on=()), version(2, parent=1, state="checking"), version(3, parent=1, state="failed")]
    assert resolve_model(plan(versions, [{"id": 1, "version": 1}]), DEVICE).version_id is None


def test_resolve__nothing_runnable_with_an_installed_version__keeps_it():
    outcome = resolve_model(plan([version(1, runs_on=())], [{"id": 1, "version": 1}]), DEVICE, installed_version_id=1)

    assert (outcome.status, outcome.resolution, outcome.version_id) == (NONE, KEPT_INSTALLED, None)
    assert "keeping the installed version" in outcome.reason


def test_resolve__deciders_before_rules__take_precedence():
    def experiment_arm(plan, device, installed_version_id):
        return Decision(2, "experiment", "experiment 4 arm B")

    outcome = resolve_model(
        plan([version(1), version(2)], [{"id": 1, "version": 1}]), DEVICE, deciders=(experiment_arm,)
    )

    assert outcome.version_id == 2 and outcome.reason == "experiment 4 arm B"


def test_rules_for__skips_rules_of_other_types_and_regions_without_changing_the_answer():
    rules = [{"id": i, "version": 1, "conditions": {"regions": ["FR"]}} for i in range(1, 400)]
    rules += [{"id": 400, "version": 2, "conditions": {"device_types": ["raspberry-pi-4"], "regions": ["de"]}}]
    model_plan = plan([version(1), version(2)], rules)

    assert [rule.id for rule in model_plan.rules_for("raspberry-pi-4", "DE")] == [400]
    assert resolve_model(model_plan, DEVICE).version_id == 2
