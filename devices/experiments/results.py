"""An experiment's results, from its rollups and enrollments only: a fixed number of queries at any volume.

Per arm and metric: the value with its interval, the difference to control with its interval and p-value (Holm
adjusted with more than two arms), latency quantiles from the merged sketches; per day, the same cumulated, for
the charts; devices per arm and the sample-ratio check; the sample size still needed; the verdict in words.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from django.db import connection
from django.db.models import Count, Sum

from devices.core import experiment_stats as st
from devices.experiments import verdict
from devices.experiments.metrics import MEAN, METRICS, Metric
from devices.models import Experiment, ExperimentArm, ExperimentArmDayRollup, ExperimentEnrollment, ExperimentRollup
from devices.telemetry import sketches
from devices.telemetry.rollups import METRIC_FIELDS

QUANTILES = (0.5, 0.9, 0.99)
DETECTABLE_LATENCY_CHANGE = 0.05  # the power estimate: devices needed to see a 5 % latency change
DETECTABLE_RATE_CHANGE = 0.01  # ... or a one-point change of a rate
_Z = 1.959963984540054  # the two-sided 95 % normal quantile


@dataclass
class MetricResult:
    metric: Metric
    units: float  # reports (latency), feedback (accuracy), downloads, installs, runs
    value: float | None
    low: float | None
    high: float | None
    comparison: st.Comparison = st.UNKNOWN  # against control; UNKNOWN for control itself
    p_adjusted: float | None = None
    significant: bool = False
    quantiles: dict[str, float | None] = field(default_factory=dict)
    sd: float | None = None  # means: the spread of one report


@dataclass
class ArmResult:
    arm: ExperimentArm
    devices: int
    metrics: dict[str, MetricResult]


@dataclass
class Results:
    experiment: Experiment
    arms: list[ArmResult]
    ineligible: int
    srm: st.SampleRatio | None
    series: dict[str, list[dict[str, Any]]]  # metric -> rows (day, arm, value, low, high, diff, ...)
    sentences: list[str]
    stopped_arms: list[str]
    more_devices_per_arm: int | None
    power_sentence: str
    filters: dict[str, str]

    @property
    def control(self) -> ArmResult:
        return self.arms[0]

    def metrics(self) -> list[str]:
        return [self.experiment.primary_metric, *self.experiment.guardrail_metrics]


def experiment_results(experiment: Experiment, *, device_type: str = "", region: str = "") -> Results:
    """Everything the dashboard and the results API show, for all devices or one device type and/or region."""
    arms = list(experiment.arms.select_related("version").order_by("position"))
    enrollments = ExperimentEnrollment.objects.filter(experiment=experiment)
    filters = {}
    if device_type:
        enrollments = enrollments.filter(device_type__slug=device_type)
        filters["device_type"] = device_type
    if region:
        enrollments = enrollments.filter(region=region.upper())
        filters["region"] = region.upper()
    daily, blobs = _daily_sums(experiment, device_type, region.upper())
    # COUNT(*): the (experiment, arm) index answers it alone, without reading the enrollments.
    devices: dict[int | None, int] = dict(
        enrollments.values_list("arm_id").annotate(n=Count("*")).values_list("arm_id", "n")
    )

    metric_names = [experiment.primary_metric, *experiment.guardrail_metrics]
    cumulated = {arm.pk: _cumulate(daily.get(arm.pk, [])) for arm in arms}
    totals = {pk: days[-1][1] if days else {} for pk, days in cumulated.items()}
    arm_results = []
    for arm in arms:
        by_metric = {name: _own(METRICS[name], totals[arm.pk], experiment.sequential) for name in metric_names}
        if "latency" in by_metric:
            merged = sketches.merged(blobs.get(arm.pk, []))
            values = sketches.quantiles(merged, QUANTILES)
            by_metric["latency"].quantiles = {f"p{round(q * 100)}": v for q, v in zip(QUANTILES, values, strict=True)}
        arm_results.append(ArmResult(arm, devices.get(arm.pk, 0), by_metric))
    for name in metric_names:
        _compare(METRICS[name], arm_results, totals, experiment.sequential)

    srm = None
    if len(arms) >= 2 and any(devices.get(arm.pk) for arm in arms):
        srm = st.sample_ratio_mismatch([devices.get(arm.pk, 0) for arm in arms], [arm.weight_bp for arm in arms])
    more, power_sentence = _power(experiment, arm_results)
    if experiment.planned_sample_size:
        reached = min(result.devices for result in arm_results) / experiment.planned_sample_size
        power_sentence += f" Planned {experiment.planned_sample_size:,} devices per arm: {reached:.0%} reached" + (
            "." if experiment.sequential or reached >= 1 else "; a fixed-horizon verdict waits for all of them."
        )
    scope = " and ".join(filter(None, [device_type and f"on {device_type}", region and f"in {region.upper()}"]))
    results = Results(
        experiment=experiment,
        arms=arm_results,
        ineligible=devices.get(None, 0),
        srm=srm,
        series={name: _series(METRICS[name], arms, cumulated, experiment.sequential) for name in metric_names},
        sentences=[],
        stopped_arms=[f"{arm.name}: {arm.stop_reason}" for arm in arms if arm.stopped_at],
        more_devices_per_arm=more,
        power_sentence=power_sentence,
        filters=filters,
    )
    results.sentences = verdict.sentences(results, scope)
    return results


Daily = dict[int, list[tuple[date, dict[str, float]]]]


def _daily_sums(experiment: Experiment, device_type: str, region: str) -> tuple[Daily, dict[int, list[bytes]]]:
    """Per arm: its days' sums in day order, and the latency sketches that add up to its quantiles."""
    daily: Daily = defaultdict(list)
    blobs: dict[int, list[bytes]] = defaultdict(list)
    if not device_type and not region:
        # One row per arm and day, its sketch merged already: read as they are, in one query.
        rows = ExperimentArmDayRollup.objects.filter(experiment=experiment).order_by("arm_id", "day")
        for arm_id, day, *values, blob in rows.values_list("arm_id", "day", *METRIC_FIELDS, "latency_sketch"):
            sums = dict(zip(METRIC_FIELDS, values, strict=True))
            daily[arm_id].append((day, sums))
            if sums["latency_n"]:
                blobs[arm_id].append(blob)
        return daily, blobs
    rollups = ExperimentRollup.objects.filter(experiment=experiment)
    if device_type:
        rollups = rollups.filter(device_type__slug=device_type)
    if region:
        rollups = rollups.filter(region=region)
    summed: Any = rollups.values("arm_id", "day").annotate(**{name: Sum(name) for name in METRIC_FIELDS})
    for row in summed.order_by("arm_id", "day"):
        daily[row["arm_id"]].append((row["day"], {name: row[name] or 0 for name in METRIC_FIELDS}))
    for arm_id, blob in _sketch_rows(rollups.exclude(latency_n=0).order_by().values_list("arm_id", "latency_sketch")):
        blobs[arm_id].append(blob)
    return daily, blobs


def _sketch_rows(rows: Any) -> Any:
    """The rows' (arm, sketch) pairs; from PostgreSQL in its binary format: hundreds of fine rows' sketches sent
    as hex text took longer to send and decode than the rest of a filtered results page."""
    if connection.vendor != "postgresql":
        return rows
    sql, params = rows.query.sql_with_params()
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def _cumulate(days: list[tuple[date, dict[str, float]]]) -> list[tuple[date, dict[str, float]]]:
    running: dict[str, float] = defaultdict(float)
    out = []
    for day, sums in days:
        for name, value in sums.items():
            running[name] += value
        out.append((day, dict(running)))
    return out


def _own(metric: Metric, sums: dict[str, float], sequential: bool) -> MetricResult:
    """An arm's own value with its interval (fixed, or always-valid when the experiment is sequential)."""
    return _own_stats(metric, metric.stats(sums), sequential)


def _own_stats(metric: Metric, stats: st.MeanStats | st.Proportion, sequential: bool) -> MetricResult:
    sd = None
    if isinstance(stats, st.MeanStats):
        value, variance, units = stats.mean, stats.variance_of_estimate, stats.n
        sd = math.sqrt(stats.variance) if stats.n >= 2 else None
    else:
        value, variance, units = stats.rate, stats.variance_of_estimate, stats.trials
    if value is None or not units or math.isinf(variance):
        return MetricResult(metric, units, value, None, None, sd=sd)
    half = st.sequential_half_width(variance, units) if sequential else _Z * math.sqrt(variance)
    return MetricResult(metric, units, value, value - half, value + half, sd=sd)


def _compare(metric: Metric, arm_results: list[ArmResult], totals: dict[int, dict], sequential: bool) -> None:
    control = metric.stats(totals[arm_results[0].arm.pk])
    challengers = arm_results[1:]
    # Several challengers: Holm for the p-values, and Bonferroni intervals (alpha / k) that agree with it.
    alpha = st.ALPHA / max(1, len(challengers))
    for result in challengers:
        stats = metric.stats(totals[result.arm.pk])
        if metric.kind == MEAN:
            comparison = st.welch_test(control, stats, alpha=alpha, sequential=sequential)  # type: ignore[arg-type]
        else:
            comparison = st.two_proportion_test(control, stats, alpha=alpha, sequential=sequential)  # type: ignore[arg-type]
        result.metrics[metric.name].comparison = comparison
    known = [r for r in challengers if r.metrics[metric.name].comparison.p_value is not None]
    adjusted = st.holm([r.metrics[metric.name].comparison.p_value for r in known])  # type: ignore[misc]
    for result, p_adjusted in zip(known, adjusted, strict=True):
        own = result.metrics[metric.name]
        own.p_adjusted = p_adjusted
        own.significant = own.comparison.significant() and (sequential or p_adjusted < st.ALPHA)


def _series(
    metric: Metric,
    arms: list[ExperimentArm],
    cumulated: dict[int, list[tuple[date, dict[str, float]]]],
    sequential: bool,
) -> list[dict[str, Any]]:
    """Per day and arm, the cumulated value and its band, and the difference to control: what the charts draw."""
    rows = []
    control_by_day = {day: metric.stats(sums) for day, sums in cumulated[arms[0].pk]}
    for arm in arms:
        for day, sums in cumulated[arm.pk]:
            a = metric.stats(sums)
            own = _own_stats(metric, a, sequential)
            row: dict[str, Any] = {
                "day": day.isoformat(),
                "arm": arm.name,
                "value": own.value,
                "low": own.low,
                "high": own.high,
                "units": own.units,
                "diff": None,
                "diff_low": None,
                "diff_high": None,
            }
            c = control_by_day.get(day)
            if arm.position and c is not None:
                comparison = (
                    st.welch_test(c, a, sequential=sequential)  # type: ignore[arg-type]
                    if metric.kind == MEAN
                    else st.two_proportion_test(c, a, sequential=sequential)  # type: ignore[arg-type]
                )
                row.update(diff=comparison.diff, diff_low=comparison.diff_low, diff_high=comparison.diff_high)
            rows.append(row)
    return rows


def _power(experiment: Experiment, arm_results: list[ArmResult]) -> tuple[int | None, str]:
    """Devices per arm still needed to detect a 5 % latency (or one-point rate) change of the primary metric."""
    metric = METRICS[experiment.primary_metric]
    control = arm_results[0]
    own = control.metrics[metric.name]
    if own.value is None or not control.devices:
        return None, "Not enough data yet to estimate the sample size."
    sums_units = min(result.metrics[metric.name].units for result in arm_results)
    if metric.kind == MEAN:
        needed = (
            st.sample_size_per_arm(own.sd, abs(own.value) * DETECTABLE_LATENCY_CHANGE) if own.sd and own.value else None
        )
        change = f"a {DETECTABLE_LATENCY_CHANGE:.0%} latency change"
    else:
        needed = st.proportion_sample_size(st.Proportion(own.value * own.units, own.units), DETECTABLE_RATE_CHANGE)
        change = f"a {DETECTABLE_RATE_CHANGE * 100:g}-point change of the {metric.label.lower()}"
    if needed is None:
        return None, "Not enough data yet to estimate the sample size."
    units_per_device = own.units / control.devices
    more_units = max(0.0, needed - sums_units)
    more = math.ceil(more_units / units_per_device) if units_per_device else None
    if more == 0:
        return 0, f"Enough data per arm to detect {change}."
    return more, f"About {more:,} more devices per arm to detect {change} (at {units_per_device:.1f} per device)."
