"""The metrics an experiment compares, and how each is read from a rollup's sufficient statistics (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from devices.core.experiment_stats import MeanStats, Proportion

MEAN = "mean"
RATE = "rate"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    kind: str  # MEAN or RATE
    lower_is_better: bool
    unit: str  # "ms" or "points" (a rate's difference is read in percentage points)
    better: str  # the word for a better arm: "faster", "more accurate", ...
    worse: str
    numerator: str = ""  # rates: rollup fields
    denominator: tuple[str, ...] = ()
    verb: str = "is"  # "v7 is 2 points more accurate", "v7 has 1 point fewer install failures"

    def stats(self, sums: Mapping[str, float]) -> MeanStats | Proportion:
        if self.kind == MEAN:
            return MeanStats(
                sums.get("latency_n") or 0, sums.get("latency_sum") or 0.0, sums.get("latency_sum_sq") or 0.0
            )
        return Proportion(sums.get(self.numerator) or 0, sum(sums.get(name) or 0 for name in self.denominator))


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("latency", "Inference latency", MEAN, True, "ms", "faster", "slower"),
        Metric(
            "accuracy",
            "Accuracy (labeled feedback)",
            RATE,
            False,
            "points",
            "more accurate",
            "less accurate",
            "feedback_correct",
            ("feedback_count",),
        ),
        Metric(
            "download_failure_rate",
            "Download failure rate",
            RATE,
            True,
            "points",
            "fewer download failures",
            "more download failures",
            "download_failed",
            ("download_started",),
            "has",
        ),
        Metric(
            "install_failure_rate",
            "Install failure rate",
            RATE,
            True,
            "points",
            "fewer install failures",
            "more install failures",
            "install_failed",
            ("install_succeeded", "install_failed"),
            "has",
        ),
        Metric(
            "inference_error_rate",
            "Inference error rate",
            RATE,
            True,
            "points",
            "fewer inference errors",
            "more inference errors",
            "inference_errors",
            ("inference_count",),
            "has",
        ),
    )
}
