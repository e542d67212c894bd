"""Helpers shared by tests that need checked versions."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from console.catalog import services as catalog_services
from console.catalog.uploads import temporary_upload
from console.models import ModelVersion
from jobs.models import Job
from jobs.tasks import execute_job
from tests.conftest import make_mlp


def unrunnable_model_bytes() -> bytes:
    """Valid ONNX that fails at run time: Reshape to a fixed 3 elements while each input row has 8."""
    shape = numpy_helper.from_array(np.array([3], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "bad-reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def uploaded_version(model, payload: bytes, user=None) -> ModelVersion:
    with temporary_upload("m.onnx", payload) as upload:
        return catalog_services.upload_version(model=model, uploaded=upload, user=user)


def ready_version(model, payload: bytes | None = None) -> ModelVersion:
    """Upload and run the check job, as a worker would; asserts the version is ready."""
    version = uploaded_version(model, payload if payload is not None else make_mlp().SerializeToString())
    execute_job(Job.objects.get(input_version=version, kind="check").pk)
    version.refresh_from_db()
    assert version.state == ModelVersion.State.READY, version.error
    return version


def run_pending_checks() -> None:
    for job in Job.objects.filter(kind="check", state="queued"):
        execute_job(job.pk)
