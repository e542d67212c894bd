"""The verdict in words: what a person reads first on an experiment's page.

"v7 is 18% faster than v6 on raspberry-pi-4, 95% CI 12-24%; accuracy no worse within 0.5 points." A sample
ratio mismatch blocks every verdict: when the arms do not hold the devices the plan says, the comparison is
broken, whatever its p-values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devices.core.experiment_stats import Comparison
from devices.experiments.metrics import MEAN, Metric

if TYPE_CHECKING:
    from devices.experiments.results import Results


def srm_sentence(results: Results) -> str | None:
    srm = results.srm
    if srm is None or not srm.mismatch:
        return None
    observed = " / ".join(f"{arm.devices:,}" for arm in results.arms)
    planned = " / ".join(f"{arm.arm.weight_bp / 100:g} %" for arm in results.arms)
    return (
        f"Sample ratio mismatch: the arms hold {observed} devices where the plan says {planned} "
        f"(chi-square p = {srm.p_value:.2g}). No verdict until it is explained: an arm is losing devices or "
        "events (a crash, a failing download, a filter), so its figures are not comparable."
    )


def compare_words(metric: Metric, comparison: Comparison, arm: str, control: str, scope: str, significant: bool) -> str:
    where = f" {scope}" if scope else ""
    level = "95% CI"
    if not comparison.known:
        return f"{metric.label}: not enough data yet to compare {arm} with {control}{where}."
    if metric.kind == MEAN:
        rel, low, high = comparison.relative, comparison.relative_low, comparison.relative_high
        if rel is None or low is None or high is None:
            return f"{metric.label}: {control} has no data to compare with{where}."
        better = (rel < 0) == metric.lower_is_better
        size, a, b = abs(rel) * 100, abs(low) * 100, abs(high) * 100
        if significant:
            word = metric.better if better else metric.worse
            return f"{arm} is {size:.0f}% {word} than {control}{where}, {level} {min(a, b):.0f}-{max(a, b):.0f}%."
        worst = (high if metric.lower_is_better else -low) * 100
        return (
            f"{metric.label}: no significant difference between {arm} and {control}{where} "
            f"({level} {low * 100:+.1f}% to {high * 100:+.1f}%); {arm} is no worse within {max(worst, 0):.1f}%."
        )
    diff, low, high = (x * 100 for x in (comparison.diff, comparison.diff_low, comparison.diff_high))  # type: ignore[operator]
    better = (diff < 0) == metric.lower_is_better
    if significant:
        word = metric.better if better else metric.worse
        a, b = sorted((abs(low), abs(high)))
        return (
            f"{arm} {metric.verb} {abs(diff):.1f} points {word} than {control}{where}, {level} {a:.1f}-{b:.1f} points."
        )
    worst = high if metric.lower_is_better else -low
    return (
        f"{metric.label}: no significant difference{where} ({level} {low:+.1f} to {high:+.1f} points); "
        f"{arm} is no worse than {control} within {max(worst, 0):.1f} points."
    )


def sentences(results: Results, scope: str) -> list[str]:
    blocked = srm_sentence(results)
    out = [blocked] if blocked else []
    control = results.control.arm.name
    for arm_result in results.arms[1:]:
        if blocked:
            break
        for name in results.metrics():
            own = arm_result.metrics[name]
            out.append(compare_words(own.metric, own.comparison, arm_result.arm.name, control, scope, own.significant))
    out.extend(f"Arm {line}" for line in results.stopped_arms)
    return out
