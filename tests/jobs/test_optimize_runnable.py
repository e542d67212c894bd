"""Optimize for a device type that cannot run the model: the console makes it runnable, verified like any variant.

Both cases of the issue, on models exported in the test: a default scikit-learn export (IR 10, ZipMap output)
that onnxruntime 1.16 on the Raspberry Pi cannot load, and the demo digits classifier, whose Identity and
ArrayFeatureExtractor nodes are not in the Android mobile package.
"""

from __future__ import annotations

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from console.catalog.datasets import attach_dataset
from console.catalog.uploads import temporary_upload
from console.jobkinds import services as jobkind_services
from jobs.models import Job
from jobs.tasks import execute_job
from tests.jobs.helpers import ready_version, run_pending_checks

pytestmark = pytest.mark.django_db


def default_sklearn_export() -> tuple[bytes, np.ndarray]:
    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=500).fit(features, labels)
    onnx_model = to_onnx(classifier, features[:1].astype(np.float32))  # skl2onnx's defaults: ZipMap, recent IR
    return onnx_model.SerializeToString(), features.astype(np.float32)


def optimize_for(version, slug: str, dataset=None, **params) -> Job:
    job = jobkind_services.queue_optimization(
        version=version,
        kind="optimize_for_device",
        params={"device_type": slug, "objective": "size", "accuracy_budget": 1.0, **params},
        dataset=dataset,
    )
    assert execute_job(job.pk) == "succeeded", Job.objects.get(pk=job.pk).error
    job.refresh_from_db()
    return job


def console_variant(tmp_path, parent, onnx_model, transform: str, metrics: dict | None = None):
    """A child version registered as the optimize jobs register theirs (``catalog_services.register_version``)."""
    from django.core.files import File

    from console.catalog import services as catalog_services
    from console.catalog.uploads import sha256_of

    (tmp_path / "v.onnx").write_bytes(onnx_model.SerializeToString())
    with open(tmp_path / "v.onnx", "rb") as handle:
        source = File(handle, name="v.onnx")
        return catalog_services.register_version(
            model=parent.model,
            source=source,
            sha256=sha256_of(source),
            user=None,
            filename="v.onnx",
            parent=parent,
            transform=transform,
            transform_params={},
            file_format="onnx",
            metrics=metrics or {},
        )


def row(version, slug: str):
    return version.compatibility.get(device_type__slug=slug)


def test_default_sklearn_export__reaches_the_raspberry_pi_through_a_verified_runnable_variant(model):
    payload, _features = default_sklearn_export()
    parent = ready_version(model, payload)
    assert not row(parent, "raspberry-pi-4").compatible  # IR 10: onnxruntime 1.16 loads up to 9

    job = optimize_for(parent, "raspberry-pi-4")

    result = job.result
    assert result["parent"]["runnable_on_device"] is False
    assert result["choice"].startswith("make_runnable"), result["candidates"]
    chosen = next(r for r in result["candidates"] if r["decision"] == "chosen")
    assert chosen["vs_parent"]["fidelity"] == 1.0  # the same labels, compared through the ZipMap maps
    run_pending_checks()
    child = job.output_version
    child.refresh_from_db()
    assert child.state == "ready" and child.transform == "make_runnable"
    assert row(child, "raspberry-pi-4").compatible, row(child, "raspberry-pi-4").reasons


def test_default_sklearn_export__every_candidate_is_evaluated_or_refused_with_a_reason_never_a_crash(model, tmp_path):
    payload, features = default_sklearn_export()
    parent = ready_version(model, payload)
    np.savez(tmp_path / "iris.npz", X=features)  # real rows, no labels: sample inputs
    with temporary_upload("iris.npz", (tmp_path / "iris.npz").read_bytes()) as upload:
        samples = attach_dataset(model=model, uploaded=upload)

    job = optimize_for(parent, "x86-gateway", dataset=samples)

    for candidate in job.result["candidates"]:
        assert candidate["decision"], candidate  # chosen, or why not; an error is a sentence, not a traceback
        assert "Traceback" not in candidate.get("error", "") and "object has no attribute" not in candidate.get(
            "error", ""
        )


def test_demo_model__gets_an_android_variant_that_the_mobile_package_runs(model, digits_demo):
    model_path, _data_path, _ = digits_demo
    parent = ready_version(model, model_path.read_bytes())
    assert not row(parent, "android-arm64-phone").compatible

    job = optimize_for(parent, "android-arm64-phone")

    assert job.result["choice"] and job.result["choice"].startswith("make_runnable"), job.result["candidates"]
    run_pending_checks()
    child = job.output_version
    child.refresh_from_db()
    assert child.state == "ready"
    assert row(child, "android-arm64-phone").compatible, row(child, "android-arm64-phone").reasons


def test_lossy_variants_verified_on_generated_inputs_only__are_never_chosen_unless_accepted(model):
    from tests.conftest import make_mlp

    parent = ready_version(model, make_mlp(hidden=2048).SerializeToString())

    refused = optimize_for(parent, "x86-gateway")

    lossy_rows = [r for r in refused.result["candidates"] if r.get("lossy") and "error" not in r]
    assert lossy_rows and all(r["inputs_source"] == "generated" for r in lossy_rows)
    decisions = {r["name"]: r["decision"] for r in lossy_rows}
    assert "chosen" not in decisions.values(), decisions
    assert any(d.startswith("not verified on real inputs") for d in decisions.values()), decisions


def test_an_unverified_variant__is_marked_on_its_page_in_the_api_and_in_its_parents_list(
    model, client, owner, tmp_path
):
    from tests.conftest import make_mlp

    parent = ready_version(model, make_mlp(hidden=32).SerializeToString())
    # What the job writes when accept_unverified let it choose this variant:
    child = console_variant(tmp_path, parent, make_mlp(hidden=16), "quantize_dynamic", metrics={"unverified": True})
    client.force_login(owner)

    page = client.get(f"/p/{model.project.slug}/m/{model.name}/v/{child.number}/").content.decode()
    parent_page = client.get(f"/p/{model.project.slug}/m/{model.name}/v/{parent.number}/").content.decode()
    api = client.get(f"/api/projects/{model.project.slug}/models/{model.name}/versions/{child.number}/").json()

    assert 'class="state unverified"' in page and "Unverified: this lossy variant" in page
    assert 'class="state unverified"' in parent_page  # in the parent's list of variants
    assert api["unverified"] is True


def test_a_console_made_variant_that_fails_its_check__says_the_fault_is_the_consoles(model, tmp_path):
    from onnx import TensorProto, helper

    parent = ready_version(model, default_sklearn_export()[0])
    node = helper.make_node("Warp", ["x"], ["y"], domain="acme.vision")  # valid ONNX, no runtime has it
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    broken = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme.vision", 1)]
    )
    variant = console_variant(tmp_path, parent, broken, "optimize_graph")

    run_pending_checks()

    variant.refresh_from_db()
    assert variant.state == "failed"
    assert variant.error.endswith(
        "(this variant was made by the console's optimize_graph: a problem of the console's making, not of your model)"
    )
