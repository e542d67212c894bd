"""The statistics of an experiment, from sufficient statistics only (counts, sums, sums of squares).

Pure: numbers in, numbers out; no Django, no raw events. The rollups keep, per day and arm, what these
functions need, so a result over millions of events costs a few additions.

- Rates (download failures, install failures, inference errors, accuracy from feedback): two-proportion
  z-test, pooled for the p-value (as ``statsmodels.stats.proportion.proportions_ztest``), unpooled Wald interval
  for the difference (``confint_proportions_2indep(method="wald")``).
- Means (latency): Welch's t-test and interval (``scipy.stats.ttest_ind(equal_var=False)``).
- Relative differences ("18 % faster") by the delta method on the ratio of the two estimates.
- More than two arms: Holm's step-down correction of the p-values (``multipletests(method="holm")``).
- Sample-ratio mismatch: chi-square of the observed units per arm against the planned weights.
- Sample size per arm for a relative change (normal approximation, ``NormalIndPower``).
- Always-valid intervals (a normal-mixture boundary, as GrowthBook's sequential testing, after Howard et al.
  2021 and Waudby-Smith et al. 2023): a team may look every day and the chance that any look excludes a true
  difference stays under alpha.

Distributions come from ``scipy.special`` (the ufuncs behind ``scipy.stats``, without its per-call overhead,
which a dashboard computing hundreds of intervals would feel). The tests compare each figure with scipy and statsmodels on fixed samples and check the error rates by
simulation (tests/devices/test_experiment_stats.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import special

ALPHA = 0.05
SRM_ALPHA = 0.001  # the usual SRM threshold: a broken split is loud, chance alone almost never trips it
# The sample size the sequential boundary is tightest at (GrowthBook's default tuning): a guess of the units
# per arm at the end; the boundary stays valid at any size, only its width at other sizes changes.
SEQUENTIAL_TUNING_N = 5000


@dataclass(frozen=True)
class Proportion:
    successes: float
    trials: float

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def variance_of_estimate(self) -> float:
        rate = self.rate or 0.0
        return rate * (1 - rate) / self.trials if self.trials else math.inf


@dataclass(frozen=True)
class MeanStats:
    """A mean from n observations, their sum and their sum of squares."""

    n: float
    total: float
    total_sq: float

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); 0 when it cannot be told."""
        if self.n < 2:
            return 0.0
        # max(0, ...): cancellation can make a constant sample's variance a tiny negative number.
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))

    @property
    def variance_of_estimate(self) -> float:
        return self.variance / self.n if self.n else math.inf

    def __add__(self, other: MeanStats) -> MeanStats:
        return MeanStats(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)


@dataclass(frozen=True)
class Comparison:
    """An arm against control: the difference (arm - control) and the relative one (difference / control)."""

    control: float | None
    value: float | None
    diff: float | None
    diff_low: float | None
    diff_high: float | None
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    p_value: float | None
    sequential: bool = False

    @property
    def known(self) -> bool:
        return self.diff is not None and self.p_value is not None

    def significant(self, alpha: float = ALPHA) -> bool:
        """The interval excludes no difference (with the sequential interval, that is the test)."""
        if self.diff_low is None or self.diff_high is None:
            return False
        return self.diff_low > 0 or self.diff_high < 0


UNKNOWN = Comparison(None, None, None, None, None, None, None, None, None)


def two_proportion_test(
    control: Proportion, arm: Proportion, *, alpha: float = ALPHA, sequential: bool = False
) -> Comparison:
    """Two-proportion z-test (pooled p-value) with the unpooled interval of the difference."""
    if not control.trials or not arm.trials:
        return _unknown(control.rate, arm.rate)
    p_c, p_a = control.rate or 0.0, arm.rate or 0.0
    diff = p_a - p_c
    pooled = (control.successes + arm.successes) / (control.trials + arm.trials)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / control.trials + 1 / arm.trials))
    if se_pooled == 0:
        p_value = 1.0 if diff == 0 else 0.0
    else:
        p_value = float(2 * special.ndtr(-abs(diff) / se_pooled))
    var_c, var_a = control.variance_of_estimate, arm.variance_of_estimate
    units = control.trials + arm.trials
    half = _half_width(var_c + var_a, units, alpha, sequential, critical=float(special.ndtri(1 - alpha / 2)))
    return _comparison(p_c, p_a, diff, half, var_c, var_a, units, alpha, sequential, p_value)


def welch_test(control: MeanStats, arm: MeanStats, *, alpha: float = ALPHA, sequential: bool = False) -> Comparison:
    """Welch's t-test of two means from their sufficient statistics, with its interval of the difference."""
    if control.n < 2 or arm.n < 2:
        return _unknown(control.mean, arm.mean)
    m_c, m_a = control.mean or 0.0, arm.mean or 0.0
    var_c, var_a = control.variance_of_estimate, arm.variance_of_estimate
    diff = m_a - m_c
    se = math.sqrt(var_c + var_a)
    if se == 0:
        return _comparison(m_c, m_a, diff, 0.0, 0.0, 0.0, control.n + arm.n, alpha, sequential, float(diff == 0))
    # Welch-Satterthwaite degrees of freedom.
    df = (var_c + var_a) ** 2 / (var_c**2 / (control.n - 1) + var_a**2 / (arm.n - 1))
    p_value = float(2 * special.stdtr(df, -abs(diff) / se))
    units = control.n + arm.n
    half = _half_width(var_c + var_a, units, alpha, sequential, critical=float(special.stdtrit(df, 1 - alpha / 2)))
    return _comparison(m_c, m_a, diff, half, var_c, var_a, units, alpha, sequential, p_value)


def _unknown(control: float | None, value: float | None) -> Comparison:
    return Comparison(control, value, None, None, None, None, None, None, None)


def _half_width(variance: float, units: float, alpha: float, sequential: bool, *, critical: float) -> float:
    if not sequential:
        return critical * math.sqrt(variance)
    return sequential_half_width(variance, units, alpha)


def sequential_half_width(variance: float, units: float, alpha: float = ALPHA, tuning_n: float = 0) -> float:
    """Half-width of the always-valid interval of an estimate whose variance is ``variance`` after ``units``.

    The asymptotic confidence sequence of a normal mixture (Waudby-Smith et al. 2023, eq. 2.7; GrowthBook's
    sequential testing): with sigma^2 = variance * units the variance per unit and rho tuned for ``tuning_n``,
    half = sigma * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * log(sqrt(n rho^2 + 1) / alpha)).
    """
    tuning_n = tuning_n or SEQUENTIAL_TUNING_N
    rho_sq = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n
    sigma = math.sqrt(variance * units)
    n = units
    return sigma * math.sqrt(2 * (n * rho_sq + 1) / (n * n * rho_sq) * math.log(math.sqrt(n * rho_sq + 1) / alpha))


def _comparison(
    control: float,
    value: float,
    diff: float,
    half: float,
    var_c: float,
    var_a: float,
    units: float,
    alpha: float,
    sequential: bool,
    p_value: float,
) -> Comparison:
    relative = relative_low = relative_high = None
    if control != 0:
        relative = diff / control
        # Delta method for value/control - 1: var = var_a / c^2 + value^2 var_c / c^4.
        rel_var = var_a / control**2 + value**2 * var_c / control**4
        rel_half = half * math.sqrt(rel_var / (var_c + var_a)) if var_c + var_a > 0 else 0.0
        relative_low, relative_high = relative - rel_half, relative + rel_half
    return Comparison(
        control=control,
        value=value,
        diff=diff,
        diff_low=diff - half,
        diff_high=diff + half,
        relative=relative,
        relative_low=relative_low,
        relative_high=relative_high,
        p_value=p_value,
        sequential=sequential,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (family-wise error rate under alpha)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class SampleRatio:
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    chi_square: float
    p_value: float | None

    @property
    def mismatch(self) -> bool:
        return self.p_value is not None and self.p_value < SRM_ALPHA


def sample_ratio_mismatch(observed: Sequence[float], weights: Sequence[float]) -> SampleRatio:
    """Pearson's chi-square of the units observed per arm against the split the weights plan."""
    total = float(sum(observed))
    weight_sum = float(sum(weights))
    if len(observed) != len(weights) or len(observed) < 2 or weight_sum <= 0:
        raise ValueError("one planned weight per arm, at least two arms, weights adding up to more than 0")
    expected = tuple(total * w / weight_sum for w in weights)
    if total == 0:
        return SampleRatio(tuple(observed), expected, 0.0, None)
    chi_square = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    p_value = float(special.chdtrc(len(observed) - 1, chi_square))
    return SampleRatio(tuple(float(o) for o in observed), expected, chi_square, p_value)


def sample_size_per_arm(sd: float, mde: float, *, alpha: float = ALPHA, power: float = 0.8) -> float:
    """Units per arm for a two-sided test of two equal arms to detect an absolute difference ``mde``."""
    if mde <= 0:
        raise ValueError("the smallest difference to detect must be above 0")
    z = special.ndtri(1 - alpha / 2) + special.ndtri(power)
    return float(2 * (z * sd / mde) ** 2)


def mean_sample_size(stats: MeanStats, relative_mde: float, **kwargs: float) -> float | None:
    """Units per arm to detect a ``relative_mde`` change (0.05: 5 %) of a mean like ``stats``'."""
    if stats.n < 2 or not stats.mean:
        return None
    return sample_size_per_arm(math.sqrt(stats.variance), abs(stats.mean) * relative_mde, **kwargs)


def proportion_sample_size(stats: Proportion, absolute_mde: float, **kwargs: float) -> float | None:
    """Trials per arm to detect a change of ``absolute_mde`` (0.005: half a point) of a rate like ``stats``'."""
    if not stats.trials:
        return None
    rate = stats.rate or 0.0
    # A rate of 0 or 1 has no spread yet: use the variance it would have one change away.
    variance = max(rate * (1 - rate), absolute_mde * (1 - absolute_mde))
    return sample_size_per_arm(math.sqrt(variance), absolute_mde, **kwargs)
