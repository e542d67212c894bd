"""The compatibility check: inspect a version, run it, and check it against every device type."""

from __future__ import annotations

from django.db import transaction

from jobs.files import local_path
from jobs.registry import QUEUE_CHECKS, JobKind, PermanentJobError, register
from jobs.tooling import compat, live_runtime
from jobs.tooling.inspect import inspect_model
from jobs.tooling.modelfile import ModelFileError, load_model


def run_check(job, progress):
    from console.models import CompatibilityResult, ModelVersion
    from devices.models import DeviceType

    version = ModelVersion.objects.select_related("model__project", "parent").get(pk=job.input_version_id)
    progress(5, f"checking {version}")
    with local_path(version.file, suffix=f".{version.format}") as path:
        if version.format == "ort":
            # ORT format is a flatbuffer onnx cannot read: the graph facts are the parent's, the run is real.
            facts = {**(version.parent.metadata if version.parent else {}), "facts_from_parent": True}
            facts.pop("smoke_run", None)
        else:
            try:
                model = load_model(path)
            except ModelFileError as exc:
                raise PermanentJobError(str(exc)) from exc
            progress(20, "inspecting graph, parameters and compute")
            facts = inspect_model(model)
            del model
        progress(45, f"running the model in onnxruntime {live_runtime.version()} on generated inputs")
        try:
            facts["smoke_run"] = live_runtime.smoke_run(path)
        except live_runtime.RunFailure as exc:
            raise PermanentJobError(str(exc)) from exc
    facts["server_runtime"] = live_runtime.capabilities()

    device_types = list(DeviceType.objects.visible_to(version.model.project_id))
    progress(70, f"checking against {len(device_types)} device type(s)")
    rows = []
    for device_type in device_types:
        ok, reasons = compat.check_device(facts, version.size_bytes, device_type.profile())
        rows.append((device_type, ok, reasons))

    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        for device_type, ok, reasons in rows:
            CompatibilityResult.objects.update_or_create(
                version=locked, device_type=device_type, defaults={"compatible": ok, "reasons": reasons}
            )
        locked.metadata = facts
        locked.state = ModelVersion.State.READY
        locked.error = ""
        locked.save(update_fields=["metadata", "state", "error"])
    passing = sum(1 for _, ok, _ in rows if ok)
    progress(100, f"compatible with {passing} of {len(rows)} device type(s)")
    return {"compatible": passing, "device_types": len(rows)}, None


def on_check_failure(job, reason: str) -> None:
    from console.models import ModelVersion

    if job.input_version_id:
        ModelVersion.objects.filter(pk=job.input_version_id, state=ModelVersion.State.CHECKING).update(
            state=ModelVersion.State.FAILED, error=reason
        )


CHECK = register(JobKind(name="check", queue=QUEUE_CHECKS, run=run_check, on_failure=on_check_failure,
                         label="Compatibility check"))
