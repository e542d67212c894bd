from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from devices.core.bucketing import BUCKETS, bucket, in_percentage, percent_to_basis_points, pick_allocation


def test_bucket__matches_every_shared_vector(bucketing_vectors: list[dict]) -> None:
    assert len(bucketing_vectors) >= 40
    assert {"", "🚀📱", "東京-カメラ-01"} <= {v["key"] for v in bucketing_vectors}
    for vector in bucketing_vectors:
        assert bucket(vector["salt"], vector["key"]) == vector["bucket"], vector


def test_bucket__is_the_documented_formula() -> None:
    digest = hashlib.sha256("exp-1:München".encode()).digest()
    assert bucket("exp-1", "München") == int.from_bytes(digest[:8], "big") % 10_000


def test_bucket__spreads_devices_roughly_uniformly() -> None:
    buckets = [bucket("uniformity", f"device-{i}") for i in range(20_000)]
    deciles = Counter(b // 1000 for b in buckets)
    assert set(deciles) == set(range(10))
    # 2000 expected per decile; +-10 % is about 7 standard deviations.
    assert all(1800 <= count <= 2200 for count in deciles.values()), deciles
    assert min(buckets) >= 0 and max(buckets) < BUCKETS


def test_bucket__depends_on_the_salt() -> None:
    same = sum(bucket("rule:1", f"d{i}") == bucket("rule:2", f"d{i}") for i in range(1000))
    assert same < 10


def test_in_percentage__a_device_inside_stays_inside_as_the_percentage_grows() -> None:
    devices = [f"device-{i}" for i in range(2000)]
    previous: set[str] = set()
    for percent in (0, 1, 5, 10, 12.5, 20, 50, 99.99, 100):
        inside = {d for d in devices if in_percentage("rollout-9", d, percent)}
        assert previous <= inside
        previous = inside
    assert previous == set(devices)


def test_in_percentage__takes_about_the_requested_share() -> None:
    inside = sum(in_percentage("share", f"d{i}", 10) for i in range(20_000))
    assert 1800 <= inside <= 2200


def test_in_percentage__zero_takes_nobody() -> None:
    assert not any(in_percentage("s", f"d{i}", 0) for i in range(1000))


@pytest.mark.parametrize("percent", [-1, 100.01, float("nan"), "10", True])
def test_in_percentage__refuses_a_percentage_outside_0_to_100(percent: object) -> None:
    with pytest.raises(ValueError):
        in_percentage("s", "d", percent)  # type: ignore[arg-type]


def test_percent_to_basis_points__rounds_half_up_on_the_written_number() -> None:
    assert percent_to_basis_points(12.345) == 1235
    assert percent_to_basis_points(12.344) == 1234
    assert percent_to_basis_points(33.333333) == 3333
    assert percent_to_basis_points(0.01) == 1
    assert percent_to_basis_points(100) == 10_000


def test_pick_allocation__takes_the_first_cumulative_range_holding_the_bucket() -> None:
    arms = [("control", 5000), ("treatment", 3000)]
    assert pick_allocation(0, arms) == "control"
    assert pick_allocation(4999, arms) == "control"
    assert pick_allocation(5000, arms) == "treatment"
    assert pick_allocation(7999, arms) == "treatment"
    assert pick_allocation(8000, arms) is None  # the last 20 % are in no arm
    assert pick_allocation(9999, [("all", 10_000)]) == "all"


def test_pick_allocation__skips_zero_weight_arms() -> None:
    assert pick_allocation(0, [("off", 0), ("on", 10_000)]) == "on"


def test_pick_allocation__splits_a_fleet_by_weight() -> None:
    arms = [("a", 2500), ("b", 2500), ("c", 5000)]
    counts = Counter(pick_allocation(bucket("exp", f"d{i}"), arms) for i in range(20_000))
    assert 4500 <= counts["a"] <= 5500 and 4500 <= counts["b"] <= 5500 and 9000 <= counts["c"] <= 11_000


@pytest.mark.parametrize(
    ("bucket_value", "arms", "message"),
    [
        (10_000, [("a", 100)], "outside"),
        (-1, [("a", 100)], "outside"),
        (0, [("a", 6000), ("b", 6000)], "more than"),
        (0, [("a", -5)], "basis points"),
        (0, [("a", 50.5)], "basis points"),
    ],
)
def test_pick_allocation__refuses_bad_input(bucket_value: int, arms: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pick_allocation(bucket_value, arms)
