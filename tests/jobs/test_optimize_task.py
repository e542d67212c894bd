"""Optimization jobs called as the worker calls them: child versions, lineage, figures, failures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from console.catalog.datasets import attach_dataset
from console.catalog.uploads import temporary_upload
from console.jobkinds import services as jobkind_services
from console.models import ModelVersion
from jobs.models import Job
from jobs.tasks import execute_job
from tests.conftest import make_mlp
from tests.jobs.helpers import ready_version, run_pending_checks

pytestmark = pytest.mark.django_db


def optimize(version, transform, params=None, dataset=None):
    job = jobkind_services.queue_optimization(
        version=version, kind="optimize", params={"transform": transform, "params": params or {}}, dataset=dataset
    )
    outcome = execute_job(job.pk)
    job.refresh_from_db()
    return outcome, job


def wide_mlp(hidden: int = 4096) -> bytes:
    return make_mlp(hidden=hidden).SerializeToString()


def test_quantize_dynamic__makes_a_checked_child_version_with_figures(model):
    parent = ready_version(model, wide_mlp())
    outcome, job = optimize(parent, "quantize_dynamic")

    assert outcome == "succeeded", job.error
    child = job.output_version
    assert (child.parent_id, child.transform, child.number) == (parent.pk, "quantize_dynamic", 2)
    assert child.transform_params["per_channel"] is False
    figures = child.metrics["vs_parent"]
    assert figures["size_ratio"] < 0.35  # int8 weights: about a quarter of float32 plus graph overhead
    assert figures["top1_agreement"] >= 0.9
    assert child.metrics["benchmark"]["latency_1_thread"]["median_ms"] > 0
    assert job.result["version"] == 2 and job.progress == 100
    assert child.state == "checking"  # every variant is compatibility-checked like an upload
    run_pending_checks()
    child.refresh_from_db()
    assert child.state == "ready" and child.metadata["precision"]["compute"] == "int8"
    parent.refresh_from_db()
    assert "benchmark" in parent.metrics


def test_quantize__already_quantized_model__fails_with_the_reason_and_no_version(model):
    parent = ready_version(model, wide_mlp())
    _, first = optimize(parent, "quantize_dynamic")
    run_pending_checks()
    outcome, job = optimize(first.output_version, "quantize_dynamic")
    assert outcome == "failed"
    assert "already quantized" in job.error
    assert ModelVersion.objects.filter(model=model).count() == 2


def test_fp16__values_overflowing_fp16__fail_instead_of_shipping_a_broken_variant(model):
    big = numpy_helper.from_array(np.full((8, 4), 1e6, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [big],
    )
    payload = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    payload.ir_version = 8
    parent = ready_version(model, payload.SerializeToString())
    outcome, job = optimize(parent, "fp16")
    assert outcome == "failed"
    assert "65504" in job.error or "overflow" in job.error
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_convert_opset__unreachable_target__fails_with_the_reason(model):
    parent = ready_version(model, make_mlp(opset=17).SerializeToString())
    outcome, job = optimize(parent, "convert_opset", {"target_opset": 13})
    assert outcome == "failed"
    assert "opset 17 to 13" in job.error
    assert not Job.objects.filter(state__in=["queued", "running"]).exclude(kind="check").exists()


def test_optimize__runs_twice__second_run_does_nothing(model):
    parent = ready_version(model, wide_mlp())
    job = jobkind_services.queue_optimization(
        version=parent, kind="optimize", params={"transform": "fp16", "params": {}}
    )
    assert execute_job(job.pk) == "succeeded"
    assert execute_job(job.pk) == "skipped"
    assert ModelVersion.objects.filter(model=model).count() == 2


def test_optimize__same_variant_twice__reuses_the_existing_version(model):
    parent = ready_version(model, wide_mlp())
    _, first = optimize(parent, "fp16")
    _, second = optimize(parent, "fp16")
    assert second.state == "succeeded"
    assert second.output_version_id == first.output_version_id
    assert "already exists" in second.result["note"]


def test_quantize_static__with_a_dataset__calibrates_and_reports_accuracy(model, digits_demo):
    model_path, data_path, _ = digits_demo
    parent = ready_version(model, model_path.read_bytes())
    with temporary_upload("digits.npz", data_path.read_bytes()) as upload:
        dataset = attach_dataset(model=model, uploaded=upload)
    outcome, job = optimize(parent, "quantize_static", {"calibrate_method": "minmax"}, dataset=dataset)
    assert outcome == "succeeded", job.error
    figures = job.output_version.metrics["vs_parent"]
    assert figures["accuracy_delta_points"] >= -1.0
    assert job.output_version.transform_params == {
        "per_channel": False,
        "calibrate_method": "minmax",
        "max_calibration_rows": 256,
        "preprocess": True,
        "quant_format": "qdq",
        "activation_type": "int8",
        "weight_type": "int8",
        "reduce_range": False,
        "op_types": None,
    }


def test_optimize_for_device__measures_candidates_and_keeps_only_a_smaller_not_slower_one(model, digits_demo):
    from jobs.tooling.choose import is_slower

    model_path, data_path, _ = digits_demo
    parent = ready_version(model, model_path.read_bytes())
    with temporary_upload("digits.npz", data_path.read_bytes()) as upload:
        dataset = attach_dataset(model=model, uploaded=upload)
    job = jobkind_services.queue_optimization(
        version=parent,
        kind="optimize_for_device",
        params={"device_type": "raspberry-pi-4", "objective": "size", "accuracy_budget": 1.0},
        dataset=dataset,
    )
    assert execute_job(job.pk) == "succeeded"
    job.refresh_from_db()
    result, baseline = job.result, job.result["parent"]

    int8 = next(
        row for row in result["candidates"] if row["name"] == "quantize_dynamic(per_channel=False, preprocess=False)"
    )
    assert int8["size_bytes"] < 0.5 * baseline["size_bytes"] and int8["runnable_on_device"]
    assert all(row["decision"] for row in result["candidates"])  # every candidate says why (not) chosen
    # fp16 is not tried for a device type that does not run fp16
    assert not any(row["transform"] == "fp16" for row in result["candidates"])
    if result["choice"] is None:  # e.g. every smaller variant measured slower on this machine
        assert job.output_version is None
        return
    chosen = next(row for row in result["candidates"] if row["decision"] == "chosen")
    assert chosen["size_bytes"] < baseline["size_bytes"]
    assert not is_slower(chosen["latency_ms"], baseline["latency_ms"])
    assert baseline["accuracy"] - chosen["accuracy"] <= 0.01
    child = job.output_version
    assert child.parent_id == parent.pk and child.metrics["chosen_for"] == "raspberry-pi-4"


def test_optimize__two_jobs_on_one_parent__keep_each_others_parent_figures(model):
    parent = ready_version(model, wide_mlp(hidden=256))
    rng = np.random.default_rng(0)
    labeled = io.BytesIO()
    np.savez(labeled, x=rng.standard_normal((64, 8)).astype(np.float32), labels=rng.integers(0, 4, 64))
    with temporary_upload("rows.npz", labeled.getvalue()) as upload:
        dataset = attach_dataset(model=model, uploaded=upload)

    _, with_data = optimize(parent, "fp16", dataset=dataset)  # measures the parent's accuracy on the dataset
    _, without = optimize(parent, "quantize_dynamic")  # measures the parent's latency again, without a dataset

    assert with_data.state == without.state == "succeeded", (with_data.error, without.error)
    parent.refresh_from_db()
    kept = parent.metrics["benchmark"]
    assert kept["evaluation"] == with_data.output_version.metrics["parent_benchmark"]["evaluation"]
    assert kept["latency_1_thread"] == without.output_version.metrics["parent_benchmark"]["latency_1_thread"]
