"""Re-checking the ready versions of a project against one device type that was added or changed.

A version's check job judged it against the device types of that moment. When a device type is added, or changed
in a field the check reads, its rows are deleted in the same transaction as the change (``forget_and_recheck``),
so delivery treats every pair as never checked instead of trusting an old answer; one job per project concerned
then writes the new rows from the facts the check job stored in each version's ``metadata``. The model file is
not read again: the facts do not depend on the device type.
"""

from __future__ import annotations

from django.db import transaction

from jobs.registry import QUEUE_CHECKS, JobKind, register
from jobs.tooling import compat

KIND = "recheck_device_type"


def forget_and_recheck(device_type) -> list:
    """Delete ``device_type``'s compatibility rows and queue a recheck for each project with a ready version that
    can see it (its own project, or every project for a built-in). Call inside the transaction that saves the
    change, so no one ever reads the new type next to an old row. Returns the queued jobs."""
    from console.models import SERVABLE_STATES, CompatibilityResult, Project
    from jobs.services import start_job

    # Through the queryset: Django's collector sends post_delete per row, which starts a new plan generation.
    CompatibilityResult.objects.filter(device_type=device_type).delete()
    projects = Project.objects.filter(models__versions__state__in=SERVABLE_STATES)
    if device_type.project_id is not None:
        projects = projects.filter(pk=device_type.project_id)
    return [
        start_job(project=project, kind=KIND, params={"device_type_id": device_type.pk})
        for project in projects.distinct().order_by("pk")
    ]


def run_recheck(job, progress):
    from console.models import CompatibilityResult, ModelVersion
    from devices.models import DeviceType

    device_type_id = job.params.get("device_type_id")
    # Progress is reported outside the transaction: it writes the job row, which the heartbeat writes too.
    progress(5, "re-checking the ready versions against the device type")
    with transaction.atomic():
        # The device type locked (FOR NO KEY UPDATE: enrolling a device into it still goes on) so that an edit
        # waits for these rows and then deletes them, instead of leaving rows computed from the old profile.
        device_type = (
            DeviceType.objects.visible_to(job.project_id).select_for_update(no_key=True).filter(pk=device_type_id)
        ).first()
        if device_type is None:
            return {"checked": 0, "device_type": None}, None  # deleted since: its rows went with it
        profile = device_type.profile()
        # Locked too, so a version deleted meanwhile cannot leave a row pointing at nothing.
        versions = list(
            ModelVersion.objects.servable()
            .filter(model__project=job.project_id)
            .select_for_update(no_key=True, of=("self",))
            .order_by("pk")
        )
        rows, unchecked = [], []
        for version in versions:
            try:
                ok, reasons = compat.check_device(version.metadata, version.size_bytes, profile)
                placement = compat.placement_for(version.metadata, profile)
            except (KeyError, TypeError, AttributeError):
                # Facts missing or malformed (a version from before they were stored): no row, so delivery
                # keeps treating the pair as never checked rather than guessing.
                unchecked.append(str(version))
                continue
            rows.append(
                CompatibilityResult(
                    version=version, device_type=device_type, compatible=ok, reasons=reasons, placement=placement
                )
            )
        # Replaces the rows a previous run wrote: running twice leaves the same rows.
        CompatibilityResult.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["version", "device_type"],
            update_fields=["compatible", "reasons", "placement", "checked_at"],
        )
    passing = sum(1 for row in rows if row.compatible)
    message = f"{passing} of {len(rows)} version(s) run on {device_type.slug}"
    if unchecked:
        message += f"; not checked, their facts are missing (check them again): {', '.join(unchecked)}"
    progress(100, message)
    return {"device_type": device_type.slug, "checked": len(rows), "compatible": passing, "unchecked": unchecked}, None


RECHECK_DEVICE_TYPE = register(
    JobKind(name=KIND, queue=QUEUE_CHECKS, run=run_recheck, label="Re-check versions against a device type")
)
