from __future__ import annotations

import pytest

from jobs.tooling.choose import accuracy_drop_points, choose_variant
from jobs.tooling.fidelity import units_needed

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


def measured(name, *, size=500, ratio=0.9, ci=(0.85, 0.95), metric="top1_agreement", value=1.0, **extra):
    """A row as the optimize job builds it now: paired latency with its interval, fidelity, where it was measured."""
    return {
        "name": name,
        "size_bytes": size,
        "latency_ms": PARENT["latency_ms"] * ratio,
        "latency_ratio": ratio,
        "latency_ci": list(ci),
        "fidelity_metric": metric,
        "fidelity": value,
        "inputs_source": "samples",
        "lossy": False,
        "runnable_on_device": True,
        **extra,
    }


UNLABELED_PARENT = {"size_bytes": 1000, "latency_ms": 10.0, "accuracy": None}


def test_choose_variant__latency__a_ratio_whose_interval_straddles_1_is_a_tie_and_keeps_the_parent():
    ties = [measured("graph", ratio=0.996, ci=(0.98, 1.01)), measured("ort", ratio=1.0025, ci=(0.99, 1.02))]
    result = choose_variant(UNLABELED_PARENT, ties, objective="latency")
    assert result["choice"] is None
    assert result["reasons"]["graph"] == (
        "not faster than its parent beyond noise (latency ratio 0.996, interval 0.980-1.010); a tie keeps the parent"
    )
    assert result["reasons"]["ort"].startswith("not faster than its parent beyond noise")


def test_choose_variant__latency__picks_a_variant_faster_beyond_noise():
    result = choose_variant(UNLABELED_PARENT, [measured("graph", ratio=0.8, ci=(0.78, 0.83))], objective="latency")
    assert result == {
        "choice": "graph",
        "reasons": {
            "graph": "picked: fastest within the 1-point budget (50% of the parent's size, 80% of its latency; "
            "latency ratio 0.800, interval 0.780-0.830)"
        },
        "unverified": False,
    }


def test_choose_variant__noise_floor__is_judged_on_the_parent_time_of_the_same_paired_measurement():
    # A tiny model (0.01 ms): 20% slower is 2 µs, the timer's. A load spike during the baseline's own runs
    # (0.12 ms) must not turn that into "slower beyond noise" for one device type and not another.
    spiked_parent = {"size_bytes": 1000, "latency_ms": 0.12, "accuracy": None}
    tiny = measured("int8", size=300, ratio=1.2, ci=(1.12, 1.7), paired_parent_ms=0.011)
    assert choose_variant(spiked_parent, [tiny], objective="size")["choice"] == "int8"
    slow = measured("int8", size=300, ratio=1.2, ci=(1.12, 1.7), paired_parent_ms=0.12)
    assert choose_variant(spiked_parent, [slow], objective="size")["choice"] is None


def test_choose_variant__size__a_smaller_variant_slower_beyond_noise_is_refused_within_noise_is_kept():
    slower = measured("int8", size=260, ratio=1.04, ci=(1.01, 1.07))
    noisy = measured("fp16", size=500, ratio=1.03, ci=(0.97, 1.09))
    result = choose_variant(UNLABELED_PARENT, [slower, noisy], objective="size")
    assert result["choice"] == "fp16"
    assert result["reasons"]["int8"].startswith("slower than its parent beyond noise (latency ratio 1.040")


def test_choose_variant__without_labels__the_budget_applies_to_the_primary_fidelity_metric():
    candidates = [
        measured("seg-int8", size=300, metric="iou", value=0.97),
        measured("seg-fp16", size=500, metric="iou", value=0.995),
        measured("vad-int8", size=250, metric="pixel_flip_rate", value=0.02),
    ]
    result = choose_variant(UNLABELED_PARENT, candidates, objective="size", budget_points=1.0)
    assert result["choice"] == "seg-fp16"
    assert result["reasons"]["seg-int8"] == (
        "iou 0.97 is outside the 1-point budget (needs IoU of thresholded maps of at least 99%)"
    )
    assert result["reasons"]["vad-int8"] == (
        "pixel_flip_rate 0.02 is outside the 1-point budget (needs at most 1% of pixels flip)"
    )


def test_choose_variant__with_labels__the_budget_applies_to_accuracy_points_not_fidelity():
    labeled = measured("int8", size=300, metric="top1_agreement", value=0.97, accuracy=0.948)
    assert choose_variant(PARENT, [labeled])["choice"] == "int8"  # 0.2 points lost, though 3% of rows changed


def test_choose_variant__lossy_variant_verified_on_generated_inputs__is_refused_unless_accepted():
    int8 = measured("int8", size=260, inputs_source="generated", lossy=True)
    graph = measured("graph", size=900, inputs_source="generated", lossy=False)

    refused = choose_variant(UNLABELED_PARENT, [int8, graph])
    assert refused["choice"] == "graph" and refused["unverified"] is False  # lossless rewrites stay open
    assert refused["reasons"]["int8"] == "not verified on real inputs: attach sample inputs or a labeled dataset"

    accepted = choose_variant(UNLABELED_PARENT, [int8, graph], accept_unverified=True)
    assert accepted["choice"] == "int8" and accepted["unverified"] is True
    assert accepted["reasons"]["int8"].endswith(
        "unverified: its fidelity was measured on generated inputs only, as accepted"
    )


def test_choose_variant__lossy_without_the_field__is_judged_from_the_transform_name():
    row = measured("q", size=260, inputs_source="generated", lossy=None, transform="quantize_dynamic")
    assert choose_variant(UNLABELED_PARENT, [row])["reasons"]["q"].startswith("not verified on real inputs")


def test_choose_variant__parent_that_does_not_run_on_the_device__any_faithful_runnable_variant_beats_it():
    parent = {**PARENT, "runnable_on_device": False}
    runnable = {**variant("make_runnable", 1000, 10.5, accuracy=0.95), "latency_ci": [1.02, 1.08], "lossy": False}

    decision = choose_variant(parent, [runnable, variant("int8", 300, 8.0, accuracy=0.94, runnable=False)])

    assert decision["choice"] == "make_runnable"
    assert decision["reasons"]["make_runnable"].endswith("the parent itself does not run on this device type")
    assert decision["reasons"]["int8"] == "does not run on this device type"


def test_choose_variant__parent_that_does_not_run__a_smaller_lossy_variant_slower_than_the_runnable_rewrite_is_refused():
    # What the device gets otherwise is the rewrite that runs there: a lossy variant is judged against its speed.
    parent = {**UNLABELED_PARENT, "runnable_on_device": False}
    rewrite = measured("make_runnable", size=950, ratio=1.02, ci=(1.0, 1.04))
    slow_int8 = measured("int8", size=500, ratio=2.87, ci=(2.54, 2.92), lossy=True, fidelity_units=600)
    fast_int8 = measured("int8 MatMul", size=700, ratio=1.0, ci=(0.97, 1.03), lossy=True, fidelity_units=600)

    refused = choose_variant(parent, [rewrite, slow_int8])
    kept = choose_variant(parent, [rewrite, slow_int8, fast_int8])

    assert refused["choice"] == "make_runnable"
    assert refused["reasons"]["int8"].startswith("slower than make_runnable, which runs on this device type")
    assert kept["choice"] == "int8 MatMul"


def test_choose_variant__a_tiny_models_relative_slowdown_below_the_timer_floor__is_not_slower():
    parent = {"size_bytes": 1000, "latency_ms": 0.04, "accuracy": 0.95}
    tiny = {**variant("int8", 300, 0.046, accuracy=0.95), "latency_ci": [1.12, 1.2], "lossy": True}
    tiny["inputs_source"] = "dataset"

    assert choose_variant(parent, [tiny])["choice"] == "int8"  # 6 µs slower: noise at this size
    slow = {**tiny, "latency_ms": 46.0}
    assert choose_variant({**parent, "latency_ms": 40.0}, [slow])["choice"] is None


def share_variant(name: str, value: float, units: int) -> dict:
    """A lossy variant judged by the share of units (rows, sequences, decisions) that agree with its parent."""
    row = variant(name, 300, 9.0)
    row.update(
        fidelity_metric="ctc_decoded_equality",
        fidelity=value,
        fidelity_units=units,
        inputs_source="samples",
        lossy=True,
    )
    return row


def test_choose_variant__perfect_agreement_on_a_dozen_samples__is_refused_as_too_few_to_show_the_budget():
    # 12 of 12 text lines decoded alike can hide a variant that garbles one line in twelve.
    decision = choose_variant({"size_bytes": 1000, "latency_ms": 10.0}, [share_variant("int8", 1.0, 12)])
    assert decision["choice"] is None
    reason = decision["reasons"]["int8"]
    assert "on 12 units is too few to show the 1-point budget" in reason
    assert "at least 99% of decoded sequences are equal" in reason
    assert f"at least {units_needed(1.0)} units" in reason


def test_choose_variant__perfect_agreement_on_enough_samples__is_chosen():
    decision = choose_variant({"size_bytes": 1000, "latency_ms": 10.0}, [share_variant("int8", 1.0, units_needed(1.0))])
    assert decision["choice"] == "int8"


def test_choose_variant__share_below_the_bound__says_it_is_outside_the_budget_whatever_the_units():
    decision = choose_variant({"size_bytes": 1000, "latency_ms": 10.0}, [share_variant("int8", 0.95, 5000)])
    assert "outside the 1-point budget" in decision["reasons"]["int8"]


def test_choose_variant__lossless_rewrite_agreeing_on_a_dozen_samples__is_chosen():
    rewrite = share_variant("make_runnable", 1.0, 12) | {"lossy": False}
    decision = choose_variant({"size_bytes": 1000, "latency_ms": 10.0}, [rewrite])
    assert decision["choice"] == "make_runnable"
