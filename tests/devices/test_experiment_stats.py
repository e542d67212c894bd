"""The experiment statistics against scipy and statsmodels on fixed samples, and their error rates by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from devices.core.experiment_stats import (
    MeanStats,
    Proportion,
    holm,
    mean_sample_size,
    sample_ratio_mismatch,
    sample_size_per_arm,
    sequential_half_width,
    two_proportion_test,
    welch_test,
)

RNG_SEED = 20261203


def _sufficient(sample: np.ndarray) -> MeanStats:
    return MeanStats(len(sample), float(sample.sum()), float((sample**2).sum()))


def test_welch__matches_scipy_and_statsmodels_on_a_fixed_sample():
    rng = np.random.default_rng(RNG_SEED)
    control = rng.lognormal(3.0, 0.4, 400)
    arm = rng.lognormal(2.85, 0.6, 250)
    result = welch_test(_sufficient(control), _sufficient(arm))
    expected = stats.ttest_ind(arm, control, equal_var=False)
    low, high = CompareMeans(DescrStatsW(arm), DescrStatsW(control)).tconfint_diff(usevar="unequal")
    assert result.diff == pytest.approx(arm.mean() - control.mean(), rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6)
    assert result.diff_low == pytest.approx(low, rel=1e-6)
    assert result.diff_high == pytest.approx(high, rel=1e-6)
    assert result.relative == pytest.approx(arm.mean() / control.mean() - 1, rel=1e-9)


def test_two_proportions__matches_statsmodels_on_a_fixed_sample():
    control, arm = Proportion(130, 2000), Proportion(95, 1900)
    result = two_proportion_test(control, arm)
    _, p_value = proportions_ztest([95, 130], [1900, 2000])
    low, high = confint_proportions_2indep(95, 1900, 130, 2000, method="wald", compare="diff")
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.diff_low == pytest.approx(low, rel=1e-9)
    assert result.diff_high == pytest.approx(high, rel=1e-9)


def test_holm__matches_statsmodels():
    p_values = [0.01, 0.04, 0.03, 0.2, 0.001]
    assert holm(p_values) == pytest.approx(list(multipletests(p_values, method="holm")[1]))


def test_srm__matches_scipy_chisquare_and_flags_a_broken_split_only():
    observed, weights = [5100, 4900, 10050], [25, 25, 50]
    srm = sample_ratio_mismatch(observed, weights)
    expected = stats.chisquare(observed, [sum(observed) * w / 100 for w in weights])
    assert srm.chi_square == pytest.approx(expected.statistic)
    assert srm.p_value == pytest.approx(expected.pvalue)
    assert not srm.mismatch


def test_sample_size__matches_statsmodels_normal_power():
    n = sample_size_per_arm(sd=12.0, mde=1.5, alpha=0.05, power=0.8)
    expected = NormalIndPower().solve_power(effect_size=1.5 / 12.0, alpha=0.05, power=0.8, ratio=1.0)
    assert n == pytest.approx(expected, rel=1e-3)


def test_sample_size__for_a_relative_change_of_a_mean():
    latency = MeanStats(1000, 50_000.0, 50_000.0 * 50 + 999 * 100.0)  # mean 50, variance 100
    assert mean_sample_size(latency, 0.05) == pytest.approx(sample_size_per_arm(sd=10.0, mde=2.5))


def test_sequential_interval__is_wider_than_the_fixed_one_and_shrinks_with_data():
    fixed = 1.959964 * np.sqrt(0.01)
    assert sequential_half_width(0.01, 1000) > fixed
    assert sequential_half_width(0.01 / 10, 10_000) < sequential_half_width(0.01, 1000)


# -- simulation --------------------------------------------------------------------------------------------

EXPERIMENTS = 500
# The binomial interval around 5 % for 500 experiments (99 %: a correct test fails this gate 1 time in 100).
FPR_LOW, FPR_HIGH = stats.binom.ppf([0.005, 0.995], EXPERIMENTS, 0.05) / EXPERIMENTS


def _daily_sufficient(rng, days: int, per_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (n, sum, sum of squares) after each day, per experiment, of lognormal latencies."""
    values = rng.lognormal(3.0, 0.5, size=(EXPERIMENTS, days, per_day))
    n = np.cumsum(np.full((EXPERIMENTS, days), per_day), axis=1)
    return n, np.cumsum(values.sum(axis=2), axis=1), np.cumsum((values**2).sum(axis=2), axis=1)


def _rejections(control, arm, *, sequential: bool, look: slice) -> np.ndarray:
    """Whether each experiment's interval excluded 0 at any of the looked-at days."""
    rejected = np.zeros(EXPERIMENTS, dtype=bool)
    n_c, s_c, q_c = control
    n_a, s_a, q_a = arm
    days = range(n_c.shape[1])[look]
    for e in range(EXPERIMENTS):
        for d in days:
            result = welch_test(
                MeanStats(n_c[e, d], s_c[e, d], q_c[e, d]),
                MeanStats(n_a[e, d], s_a[e, d], q_a[e, d]),
                sequential=sequential,
            )
            if result.significant():
                rejected[e] = True
                break
    return rejected


def test_simulation__aa_fixed_horizon__false_positive_rate_is_about_5_percent():
    rng = np.random.default_rng(RNG_SEED)
    control, arm = _daily_sufficient(rng, 1, 200), _daily_sufficient(rng, 1, 200)
    rate = _rejections(control, arm, sequential=False, look=slice(-1, None)).mean()
    assert FPR_LOW <= rate <= FPR_HIGH


def test_simulation__aa_daily_peeking__inflates_fixed_horizon_but_not_sequential():
    rng = np.random.default_rng(RNG_SEED + 1)
    control, arm = _daily_sufficient(rng, 30, 40), _daily_sufficient(rng, 30, 40)
    peeking_fixed = _rejections(control, arm, sequential=False, look=slice(None)).mean()
    peeking_sequential = _rejections(control, arm, sequential=True, look=slice(None)).mean()
    assert peeking_fixed > FPR_HIGH  # looking every day and stopping at the first "win" is not a 5 % test
    assert peeking_sequential <= FPR_HIGH


def test_simulation__sequential_interval_still_finds_a_real_difference():
    rng = np.random.default_rng(RNG_SEED + 2)
    control = rng.lognormal(3.0, 0.5, 4000)
    arm = rng.lognormal(3.0 + np.log(0.85), 0.5, 4000)  # 15 % faster
    result = welch_test(_sufficient(control), _sufficient(arm), sequential=True)
    assert result.significant()
    assert result.relative_low < -0.15 < result.relative_high


def test_simulation__an_arm_dropping_10_percent_of_its_events__raises_srm():
    rng = np.random.default_rng(RNG_SEED + 3)
    arms = rng.choice(2, size=20_000, p=[0.5, 0.5])
    healthy = np.bincount(arms, minlength=2)
    kept = rng.random(20_000) >= np.where(arms == 1, 0.10, 0.0)  # arm 1's devices lose 10 % of their events
    broken = np.bincount(arms[kept], minlength=2)
    assert not sample_ratio_mismatch(healthy, [5000, 5000]).mismatch
    assert sample_ratio_mismatch(broken, [5000, 5000]).mismatch


def test_simulation__srm_check_rarely_fires_on_a_healthy_split():
    rng = np.random.default_rng(RNG_SEED + 4)
    counts = rng.multinomial(4000, [0.2, 0.3, 0.5], size=EXPERIMENTS)
    fired = sum(sample_ratio_mismatch(row, [20, 30, 50]).mismatch for row in counts)
    assert fired <= stats.binom.ppf(0.995, EXPERIMENTS, 0.001)
