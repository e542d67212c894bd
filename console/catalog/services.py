"""State changes of models and versions: create, upload, register; and which versions may be served."""

from __future__ import annotations

import logging

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Max

from console.audit import record_update
from console.catalog.uploads import sha256_of
from console.errors import AlreadyExists, Refused
from console.models import Dataset, Model, ModelVersion, Project
from jobs.services import start_job
from jobs.tooling.modelfile import ModelFileError, check_upload

logger = logging.getLogger(__name__)


class DuplicateVersion(Exception):
    def __init__(self, existing: ModelVersion):
        self.existing = existing
        super().__init__(
            f"This file is already version {existing.number} of {existing.model.name} (same sha256 {existing.sha256})."
        )


def create_model(*, project: Project, name: str, description: str = "", user=None) -> Model:
    """A new model; AlreadyExists when the project has one of that name, even one created by a request that
    checked at the same moment (the unique constraint decides)."""
    try:
        with transaction.atomic():
            return Model.objects.create(project=project, name=name, description=description, created_by=user)
    except IntegrityError as exc:
        if Model.objects.filter(project=project, name=name).exists():
            raise AlreadyExists(f"A model named {name!r} already exists in this project; pick another name.") from exc
        raise


def version_storage_name(model: Model, sha256: str, suffix: str = ".onnx") -> str:
    return f"projects/{model.project_id}/models/{model.pk}/{sha256}{suffix}"


def _check_duplicate(model: Model, sha256: str) -> None:
    existing = model.versions.filter(sha256=sha256).first()
    if existing is not None:
        raise DuplicateVersion(existing)


def upload_version(*, model: Model, uploaded, user=None, filename: str = "") -> ModelVersion:
    """Validate an uploaded file, store it, create a version in ``checking`` and queue its check.

    Raises ModelFileError (not a model we accept) or DuplicateVersion; either
    way nothing is stored. If anything fails after the file is stored, the
    stored file is removed again.
    """
    sha256 = sha256_of(uploaded)
    _check_duplicate(model, sha256)
    path = uploaded.temporary_file_path() if hasattr(uploaded, "temporary_file_path") else None
    if path is None:
        raise ModelFileError("The upload did not arrive as a file; send it as multipart/form-data field 'file'.")
    check_upload(path)  # structure always; parse + ONNX checker up to 32 MB, larger files in the check job
    return register_version(
        model=model, source=uploaded, sha256=sha256, user=user, filename=filename or uploaded.name or ""
    )


def register_version(
    *,
    model: Model,
    source,
    sha256: str,
    user=None,
    filename: str = "",
    parent: ModelVersion | None = None,
    transform: str = "",
    transform_params: dict | None = None,
    file_format: str = "onnx",
    metrics: dict | None = None,
) -> ModelVersion:
    """Store ``source`` (a Django File) and create its version row plus a check job, all or nothing.

    The check job is sent to the broker after the commit; a broker that does not take it leaves the job queued
    for the reaper to send again (jobs.services.enqueue), never a version without its file.
    """
    suffix = ".ort" if file_format == "ort" else ".onnx"
    stored_name = default_storage.save(
        version_storage_name(model, sha256, suffix), source if isinstance(source, File) else File(source)
    )
    try:
        with transaction.atomic():
            Model.objects.select_for_update().filter(pk=model.pk).first()  # serialize version numbering
            last = model.versions.aggregate(n=Max("number"))["n"] or 0
            version = ModelVersion.objects.create(
                model=model,
                number=last + 1,
                file=stored_name,
                original_filename=filename[:255],
                sha256=sha256,
                size_bytes=default_storage.size(stored_name),
                format=file_format,
                parent=parent,
                transform=transform,
                transform_params=transform_params or {},
                metrics=metrics or {},
                created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
            )
            start_job(project=model.project, kind="check", input_version=version, user=user)
    except IntegrityError:
        default_storage.delete(stored_name)
        existing = model.versions.filter(sha256=sha256).first()
        if existing is not None:
            raise DuplicateVersion(existing) from None
        raise
    except BaseException:
        _delete_unless_saved(stored_name)
        raise
    return version


def _delete_unless_saved(stored_name: str) -> None:
    """Remove a stored file that no version row holds (its transaction rolled back). A file whose row committed
    before the error is kept, and so is one we cannot tell about: a version without its file is worse than an
    orphan file."""
    try:
        saved = ModelVersion.objects.filter(file=stored_name).exists()
    except DatabaseError:
        return
    if not saved:
        default_storage.delete(stored_name)


class NotDeployable(ValueError):
    pass


_UNSET = object()


def set_representative_inputs(
    *, model: Model, sample_dataset: Dataset | None | object = _UNSET, typical_dims: dict | object = _UNSET
) -> Model:
    """Set the model's sample inputs and/or typical sizes (validated by the caller: ModelInputsSerializer).

    Leaves versions alone: a failed version is checked again on them through ``recheck_version``, the optimize
    jobs read them when they run.
    """
    fields = []
    if sample_dataset is not _UNSET:
        if isinstance(sample_dataset, Dataset) and sample_dataset.model_id != model.pk:
            raise Refused(f"dataset {sample_dataset.pk} is not one of {model.name}'s datasets")
        model.sample_dataset = sample_dataset  # type: ignore[assignment]
        fields.append("sample_dataset")
    if typical_dims is not _UNSET:
        model.typical_dims = typical_dims
        fields.append("typical_dims")
    if fields:
        with transaction.atomic():
            model.save(update_fields=fields)
    return model


class NotRecheckable(ValueError):
    """Only a failed version is checked again (a ready one is being served; a checking one is being checked)."""


def recheck_version(*, version: ModelVersion, user=None):
    """Move a failed version back to ``checking`` and queue a new check job, in one transaction.

    The check runs on the model's representative inputs as they are now (e.g. sample inputs attached since).
    Its facts from the failed check stay shown until the new check replaces them.
    """
    from console.jobkinds.check import CHECK

    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.state != ModelVersion.State.FAILED:
            raise NotRecheckable(
                f"v{locked.number} is {locked.state}; only a version whose check failed can be checked again"
            )
        ModelVersion.objects.filter(pk=locked.pk).update(state=ModelVersion.State.CHECKING, error="")
        record_update(locked, {"state": (locked.state, ModelVersion.State.CHECKING), "error": (locked.error, "")})
        job = start_job(project=version.model.project, kind=CHECK.name, input_version=locked, user=user)
    version.state, version.error = ModelVersion.State.CHECKING, ""
    return job
