from __future__ import annotations

import pytest

from jobs.tooling.choose import accuracy_drop_points, choose_variant

PARENT = {"size_bytes": 1000, "latency_ms": 10.0, "accuracy": 0.95}


def variant(name, size, latency, accuracy=None, agreement=None, runnable=True):
    return {
        "name": name,
        "size_bytes": size,
        "latency_ms": latency,
        "accuracy": accuracy,
        "agreement": agreement,
        "runnable_on_device": runnable,
    }


def test_accuracy_drop_points__uses_accuracy_then_falls_back_to_disagreement():
    assert accuracy_drop_points(PARENT, {"accuracy": 0.94}) == pytest.approx(1.0)
    assert accuracy_drop_points(PARENT, {"agreement": 0.995}) == pytest.approx(0.5)
    assert accuracy_drop_points({"size_bytes": 1}, {"accuracy": 0.9}) is None


def test_choose_variant__size__picks_the_smallest_within_budget_and_explains_every_other():
    candidates = [
        variant("int8", 260, 8.0, accuracy=0.945),
        variant("fp16", 500, 9.0, accuracy=0.95),
        variant("pruned", 200, 9.0, accuracy=0.90),
        variant("npu-only", 100, 2.0, accuracy=0.95, runnable=False),
    ]
    result = choose_variant(PARENT, candidates, objective="size")
    assert result["choice"] == "int8"
    assert result["reasons"]["int8"].startswith("picked: smallest")
    assert result["reasons"]["fp16"] == "within budget but larger than int8"
    assert "5.00 accuracy points, over the 1-point budget" in result["reasons"]["pruned"]
    assert result["reasons"]["npu-only"] == "does not run on this device type"


def test_choose_variant__size__prefers_a_not_slower_variant_over_a_smaller_slower_one():
    candidates = [variant("tiny-but-slow", 100, 12.0, accuracy=0.95), variant("small", 300, 9.0, accuracy=0.95)]
    result = choose_variant(PARENT, candidates, objective="size")
    assert result["choice"] == "small"
    assert "slower than its parent" in result["reasons"]["tiny-but-slow"]


def test_choose_variant__size__never_picks_a_slower_variant_even_when_it_is_the_only_smaller_one():
    decision = choose_variant(PARENT, [variant("slow", 100, 12.0, accuracy=0.95)])
    assert decision["choice"] is None
    assert "slower than its parent" in decision["reasons"]["slow"]


def test_choose_variant__latency_within_measurement_noise__counts_as_not_slower():
    parent_latency = PARENT["latency_ms"]
    decision = choose_variant(PARENT, [variant("noisy", 100, parent_latency * 1.03, accuracy=0.95)])
    assert decision["choice"] == "noisy"


def test_choose_variant__latency__never_picks_a_variant_slower_than_its_parent():
    candidates = [variant("slow", 100, 12.0, accuracy=0.95), variant("same", 900, 10.0, accuracy=0.95)]
    result = choose_variant(PARENT, candidates, objective="latency")
    assert result["choice"] is None
    assert result["reasons"]["slow"].startswith("slower than its parent (12 ms vs 10 ms)")
    assert result["reasons"]["same"] == "no faster than its parent"


def test_choose_variant__latency__picks_the_fastest_within_budget():
    candidates = [variant("fast", 900, 5.0, agreement=0.999), variant("faster", 800, 4.0, agreement=0.97)]
    result = choose_variant(PARENT, candidates, objective="latency", budget_points=1.0)
    assert result["choice"] == "fast"
    assert "over the 1-point budget" in result["reasons"]["faster"]


def test_choose_variant__nothing_measured__is_rejected_as_unknown():
    result = choose_variant(PARENT, [variant("unmeasured", 100, 1.0)])
    assert result["choice"] is None and "unknown" in result["reasons"]["unmeasured"]


def test_choose_variant__unknown_objective__is_refused():
    with pytest.raises(ValueError, match="objective"):
        choose_variant(PARENT, [], objective="energy")


def test_choose_variant__microsecond_differences_on_tiny_models__are_noise_not_slowness():
    tiny_parent = {"size_bytes": 1000, "latency_ms": 0.017, "accuracy": 0.95}
    decision = choose_variant(tiny_parent, [variant("int8", 300, 0.019, accuracy=0.95)])
    assert decision["choice"] == "int8"
