"""optimize_for_profile on a model its device type cannot run: the other candidates start from the runnable rewrite."""

from __future__ import annotations

import onnx

from devices.catalog.builtin import builtin_profile
from jobs.tooling.device_optimize import optimize_for_profile
from jobs.tooling.inspect import inspect_model


def test_parent_the_phone_cannot_run__quantized_candidates_are_built_on_its_runnable_rewrite(digits, tmp_path):
    # The demo model's Identity and ArrayFeatureExtractor are not in the Android mobile package: quantizing the
    # parent itself keeps them, so only variants of the runnable rewrite can reach the phone smaller.
    profile = builtin_profile("android-arm64-phone")
    facts = inspect_model(onnx.load(str(digits.model)))

    result = optimize_for_profile(digits.model, profile, facts, workdir=tmp_path, data_path=digits.npz, has_labels=True)

    assert result.baseline["runnable_on_device"] is False
    built_on = [r for r in result.rows if r["name"].startswith("make_runnable + quantize")]
    assert built_on, [r["name"] for r in result.rows]
    measured = [r for r in built_on if "error" not in r]
    assert measured, [r.get("error") for r in built_on]
    for row in measured:
        assert row["runnable_on_device"], row["device_reasons"]
        assert row["lossy"] and row["size_bytes"] < result.baseline["size_bytes"]
        assert row["accuracy"] is not None  # verified against the parent on the labeled samples
        assert result.made[row["name"]].report.details["built_on"] == "make_runnable"
        # ... and the version it would become says so in its lineage (its transform parameters).
        assert result.made[row["name"]].params["built_on"] == "make_runnable(for android-arm64-phone)"
