"""The compatibility check: inspect a version, run it, and check it against every device type.

The version leaves ``checking`` only in the transaction that ends its check job: ready with the job's success
(``on_check_success``), failed with its failure or cancellation (``on_check_failure``). The reaper fails a
version that is still checking with no live check job (``reap_unsettled_versions``).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef

from jobs.files import local_path
from jobs.registry import QUEUE_CHECKS, JobKind, PermanentJobError, register
from jobs.tooling import compat, live_runtime
from jobs.tooling.inspect import inspect_model
from jobs.tooling.modelfile import ModelFileError, load_model


def run_check(job, progress):
    from console.catalog.samples import sample_feed_options, sample_file
    from console.models import CompatibilityResult, ModelVersion
    from devices.models import DeviceType

    version = ModelVersion.objects.select_related("model__project", "model__sample_dataset", "parent").get(
        pk=job.input_version_id
    )
    model = version.model
    progress(5, f"checking {version}")
    with local_path(version.file, suffix=f".{version.format}") as path, sample_file(model) as sample:
        if version.format == "ort":
            # ORT format is a flatbuffer onnx cannot read: the graph facts are the parent's, the run is real.
            facts = {**(version.parent.metadata if version.parent else {}), "facts_from_parent": True}
            facts.pop("smoke_run", None)
        else:
            try:
                loaded = load_model(path)
            except ModelFileError as exc:
                raise PermanentJobError(str(exc)) from exc
            progress(20, "inspecting graph, parameters and compute")
            facts = inspect_model(loaded)
            del loaded
        feeding = f"its sample inputs '{sample[1].name}'" if sample else "generated inputs"
        if not sample and model.typical_dims:
            feeding += " at its typical sizes"
        progress(45, f"running the model in onnxruntime {live_runtime.version()} on {feeding}")
        try:
            # Only a session that cannot be created, or a run that fails on the sample inputs the user attached,
            # fails the version; a run on generated inputs that fails, or is skipped, is recorded with its reason
            # (smoke_run says why generated inputs prove little).
            facts["smoke_run"] = live_runtime.smoke_run(path, **sample_feed_options(model, sample))
        except live_runtime.RunFailure as exc:
            facts["smoke_run"] = {"failed": str(exc)}
            keep_facts(version, facts)
            raise PermanentJobError(str(exc)) from exc
        smoke = facts["smoke_run"]
        if smoke.get("failed"):
            keep_facts(version, facts)
            raise PermanentJobError(smoke["failed"])
        for note in (smoke.get("samples_refused"), smoke.get("warning") or smoke.get("skipped")):
            if note:
                progress(50, note)
    facts["server_runtime"] = live_runtime.capabilities()

    visible = DeviceType.objects.visible_to(version.model.project_id)
    progress(70, f"checking against {visible.count()} device type(s)")

    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        # The rows are computed from the device types as they are now, read under lock: an edit of a type
        # (which forgets its rows and queues a re-check of ready versions only) waits for this transaction or
        # is seen by it, so a checking version never keeps a row from a profile that changed meanwhile.
        rows = []
        for device_type in visible.select_for_update(no_key=True).order_by("pk"):
            profile = device_type.profile()
            ok, reasons = compat.check_device(facts, version.size_bytes, profile)
            rows.append((device_type, ok, reasons, compat.placement_for(facts, profile)))
        for device_type, ok, reasons, placement in rows:
            CompatibilityResult.objects.update_or_create(
                version=locked,
                device_type=device_type,
                defaults={"compatible": ok, "reasons": reasons, "placement": placement},
            )
        locked.metadata = facts
        locked.save(update_fields=["metadata"])  # ready only once the job succeeds: on_check_success
    passing = sum(1 for _, ok, _, _ in rows if ok)
    progress(100, f"compatible with {passing} of {len(rows)} device type(s)")
    return {"compatible": passing, "device_types": len(rows)}, None


def keep_facts(version, facts: dict) -> None:
    """Save what the check learned before it fails, so a failed version still shows its inputs, outputs,
    operators and parameters. Only while the version is still checking: a check cancelled meanwhile (the version
    already failed as cancelled) or a version settled by the reaper keeps what it has."""
    from console.models import ModelVersion

    facts = {**facts, "server_runtime": live_runtime.capabilities()}
    ModelVersion.objects.filter(pk=version.pk, state=ModelVersion.State.CHECKING).update(metadata=facts)


def on_check_success(job) -> None:
    """In the transaction that marks the job succeeded: a job cancelled first never gets here."""
    from console.models import ModelVersion

    if job.input_version_id:
        if ModelVersion.objects.filter(pk=job.input_version_id, state=ModelVersion.State.CHECKING).update(
            state=ModelVersion.State.READY, error=""
        ):
            _record_settled(job.input_version_id, ModelVersion.State.READY, "")


def on_check_failure(job, reason: str) -> None:
    from console.models import ModelVersion

    if job.input_version_id:
        made_by = ModelVersion.objects.filter(pk=job.input_version_id).values_list("transform", flat=True).first()
        if made_by:
            # A variant the console made: the user's model passed its own check, so the fault is the console's.
            reason = (
                f"{reason} (this variant was made by the console's {made_by}: a problem of the console's making, "
                "not of your model)"
            )
        if ModelVersion.objects.filter(pk=job.input_version_id, state=ModelVersion.State.CHECKING).update(
            state=ModelVersion.State.FAILED, error=reason
        ):
            _record_settled(job.input_version_id, ModelVersion.State.FAILED, reason)


def _record_settled(version_id: int, state: str, error: str) -> None:
    """The audit entry of a version leaving ``checking`` (an ``update()``, which auditlog does not see).
    A checking version has no error: a new one starts without, and a recheck clears it."""
    from console.audit import record_update
    from console.models import ModelVersion

    version = ModelVersion.objects.select_related("model").get(pk=version_id)
    record_update(version, {"state": (ModelVersion.State.CHECKING, state), "error": ("", error)})


def reap_unsettled_versions(*, now=None) -> int:
    """Settle versions left ``checking`` with no queued or running check job; returns how many.

    A version and its check job are created in one transaction and settled in one, so this finds only what
    older code left behind (the job failed but the version's clean-up did not run) or a job row removed by hand.
    The version fails with its last check's reason; with no failed check to blame, it is checked again.
    """
    from console.models import ModelVersion
    from jobs.models import Job
    from jobs.services import start_job

    live = Job.objects.filter(
        kind=CHECK.name, input_version=OuterRef("pk"), state__in=[Job.State.QUEUED, Job.State.RUNNING]
    )
    settled = 0
    unsettled = ModelVersion.objects.filter(state=ModelVersion.State.CHECKING).exclude(Exists(live))
    for version in unsettled.select_related("model__project"):
        with transaction.atomic():
            if not unsettled.filter(pk=version.pk).select_for_update().exists():
                continue  # settled meanwhile
            last = version.jobs.filter(kind=CHECK.name).order_by("-created_at").first()
            if last is None or last.state == Job.State.SUCCEEDED:
                start_job(project=version.model.project, kind=CHECK.name, input_version=version)
            else:
                reason = last.error or f"its compatibility check was {last.state}"
                ModelVersion.objects.filter(pk=version.pk).update(state=ModelVersion.State.FAILED, error=reason)
                _record_settled(version.pk, ModelVersion.State.FAILED, reason)
            settled += 1
    return settled


CHECK = register(
    JobKind(
        name="check",
        queue=QUEUE_CHECKS,
        run=run_check,
        on_failure=on_check_failure,
        on_success=on_check_success,
        reap=reap_unsettled_versions,
        label="Compatibility check",
    )
)
