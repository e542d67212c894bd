"""Guardrails: an arm significantly worse than control on a guardrail metric stops being served, saying why.

Judged on all the experiment's devices with the experiment's own intervals (always-valid when it is sequential,
so checking every few minutes does not trip a guardrail by chance more often than alpha says).
"""

from __future__ import annotations

from devices.experiments import services
from devices.experiments.results import experiment_results
from devices.experiments.verdict import compare_words
from devices.models import Experiment


def tripped(experiment: Experiment) -> dict[int, str]:
    """arm id -> why it must stop, for each serving challenger significantly worse on a guardrail metric."""
    results = experiment_results(experiment)
    control = results.control.arm.name
    reasons: dict[int, str] = {}
    for arm_result in results.arms[1:]:
        if arm_result.arm.stopped_at is not None:
            continue
        for name in experiment.guardrail_metrics:
            own = arm_result.metrics[name]
            diff = own.comparison.diff
            if not own.significant or diff is None:
                continue
            worse = diff > 0 if own.metric.lower_is_better else diff < 0
            if worse:
                words = compare_words(own.metric, own.comparison, arm_result.arm.name, control, "", True)
                reasons[arm_result.arm.pk] = f"guardrail {name}: {words}"
                break
    return reasons


def enforce_guardrails(experiment: Experiment) -> list[str]:
    """Stop every arm a guardrail tripped; returns their names."""
    if experiment.state != Experiment.State.RUNNING:
        return []
    reasons = tripped(experiment)
    stopped = []
    for arm in experiment.arms.filter(pk__in=list(reasons)).order_by("position"):
        services.stop_arm(arm=arm, reason=reasons[arm.pk])
        stopped.append(arm.name)
    return stopped
