from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.dispatch import Signal

from console.projects import roles

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$", "Use lowercase letters, digits and dashes (at most 63, starting with a letter/digit)."
)


# Sent after rows that decide what devices are served changed (sender: the model class; ``project_ids``: the ids
# of the projects concerned, a set (None in it: every project, e.g. a built-in device type) or a query of ids).
# devices.signals turns it into a new plan generation; console does not know what devices cache.
delivery_inputs_changed = Signal()


class DeliveryInputQuerySet(models.QuerySet):
    """The queryset of a model whose rows decide what devices are served (devices.delivery.cache reads them).

    ``save()`` and ``delete()`` of one row send post_save/post_delete, but ``update()`` and ``bulk_create()``
    send nothing: these announce the projects whose rows they changed themselves (``delivery_inputs_changed``),
    so no writer has to remember to. ``bulk_update()`` runs through ``update()``; ``delete()`` through
    Django's collector, which sends post_delete for each row. A write that touches none of ``delivery_fields``
    (say, a version's benchmark figures) announces nothing, because a new plan generation makes every device
    of the project resolve again.
    """

    project_path: str = "project_id"  # lookup from a row to its project's id
    delivery_fields: frozenset[str] | None = None  # fields delivery reads; None: all of them

    def touches(self, names) -> bool:
        """Whether a write of these field names (or attnames) can change what delivery reads."""
        if self.delivery_fields is None:
            return True
        return any(self.model._meta.get_field(name).name in self.delivery_fields for name in names)

    def project_ids(self) -> set[int | None]:
        return set(self.order_by().values_list(self.project_path, flat=True).distinct())

    def projects_of(self, rows):
        """The projects of ``rows`` (instances, saved or not) as their fields say now: a set of ids, or a
        query of ids when they are a join away (so the caller's UPDATE can take it as a subquery)."""
        head, _, rest = self.project_path.partition("__")
        field = self.model._meta.get_field(head)
        values = {getattr(row, field.attname) for row in rows}
        if not rest:
            return values
        return field.related_model._base_manager.filter(pk__in=values - {None}).order_by().values(rest)

    def _moves_rows(self, names) -> bool:
        """Whether a write of these fields can move rows to another project."""
        head = self.model._meta.get_field(self.project_path.partition("__")[0])
        return any(self.model._meta.get_field(name) == head for name in names)

    def announce(self, project_ids) -> None:
        delivery_inputs_changed.send(sender=self.model, project_ids=project_ids)

    def update(self, **kwargs):
        if not self.touches(kwargs):
            return super().update(**kwargs)
        with transaction.atomic(using=self.db, savepoint=False):
            moved = list(self.values_list("pk", flat=True)) if self._moves_rows(kwargs) else []
            before = self.project_ids()
            rows = super().update(**kwargs)
            if moved:
                before.update(
                    self.model._base_manager.filter(pk__in=moved)
                    .order_by()
                    .values_list(self.project_path, flat=True)
                    .distinct()
                )
            if rows and before:
                self.announce(before)
        return rows

    # Django's own marker (templates never call a method that alters data); mypy has no way to type an
    # attribute set on a function.
    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(self, objs, *args, **kwargs):
        with transaction.atomic(using=self.db, savepoint=False):
            created = super().bulk_create(objs, *args, **kwargs)
            if created:
                self.announce(self.projects_of(created))
        return created

    # Django's own marker (templates never call a method that alters data); mypy has no way to type an
    # attribute set on a function.
    bulk_create.alters_data = True  # type: ignore[attr-defined]


class Project(models.Model):
    """A tenant: one app or product line. Every other object hangs off a project."""

    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Owners' choice: rules and default versions change only through an approved rollout (devices.rules.services).
    require_approval = models.BooleanField(
        default=False,
        help_text="require approval for any change that moves devices: rules and default versions are changed "
        "through an approved rollout only",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=roles.ROLE_CHOICES)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class ModelQuerySet(DeliveryInputQuerySet):
    delivery_fields = frozenset({"project", "name", "default_version"})


class Model(models.Model):
    """A named slot that devices ask for, e.g. ``digit-classifier``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=63, validators=[slug_validator])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # What a device gets when no targeting rule matches (None: nothing until a rule says so).
    default_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="default_for"
    )
    # Representative inputs: what checks, latency and agreement run on instead of generated guesses. One of the
    # model's own datasets (real input tensors; labels optional), and a typical size per dynamic dimension
    # ({"height": 640} or {"audio:1": 16000}) for when inputs must still be generated.
    sample_dataset = models.ForeignKey(
        "Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="sample_for"
    )
    typical_dims = models.JSONField(default=dict, blank=True)

    objects = ModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_model_name_per_project")]

    def __str__(self) -> str:
        return self.name


class VersionQuerySet(DeliveryInputQuerySet):
    project_path = "model__project_id"
    # What a plan holds of a version (devices.delivery.cache.load_model_plans), not its figures or its error.
    delivery_fields = frozenset({"model", "number", "state", "sha256", "size_bytes", "format", "parent", "metadata"})

    def servable(self) -> VersionQuerySet:
        """The versions ``is_servable`` accepts, as a filter."""
        return self.filter(state__in=SERVABLE_STATES)


class ModelVersion(models.Model):
    """One immutable file of a model, with its facts, checks and lineage."""

    class State(models.TextChoices):
        CHECKING = "checking", "Checking"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    file = models.FileField(max_length=500)
    original_filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    format = models.CharField(max_length=16, default="onnx")
    state = models.CharField(max_length=16, choices=State.choices, default=State.CHECKING)
    error = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)  # what inspection found
    metrics = models.JSONField(default=dict, blank=True)  # benchmarks, accuracy
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    transform = models.CharField(max_length=64, blank=True)
    transform_params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    objects = VersionQuerySet.as_manager()

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="unique_version_number"),
            models.UniqueConstraint(fields=["model", "sha256"], name="unique_version_file_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def project(self) -> Project:
        return self.model.project

    @property
    def is_servable(self) -> bool:
        return is_servable(self.state)

    @property
    def is_unverified(self) -> bool:
        """A lossy variant chosen with fidelity measured on generated inputs only, as its job was allowed to."""
        return bool((self.metrics or {}).get("unverified"))


# The one rule of what may be served, optimized, targeted or deployed: a version whose check passed.
SERVABLE_STATES = frozenset({ModelVersion.State.READY.value})


def is_servable(version_or_state: ModelVersion | str) -> bool:
    """Only a checked (ready) version may be deployed, targeted, optimized or delivered."""
    state = version_or_state.state if isinstance(version_or_state, ModelVersion) else version_or_state
    return state in SERVABLE_STATES


class CompatibilityQuerySet(DeliveryInputQuerySet):
    project_path = "version__model__project_id"
    delivery_fields = frozenset({"version", "device_type", "compatible", "reasons"})


class CompatibilityResult(models.Model):
    """One cell row of the compatibility matrix: may this version run on this device type?"""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="compatibility")
    device_type = models.ForeignKey("devices.DeviceType", on_delete=models.CASCADE, related_name="compatibility")
    compatible = models.BooleanField()
    reasons = models.JSONField(default=list, blank=True)
    # Where the nodes run on a device type with an accelerator (jobs.tooling.placement); null on CPU-only types.
    placement = models.JSONField(null=True, blank=True)
    checked_at = models.DateTimeField(auto_now=True)

    objects = CompatibilityQuerySet.as_manager()

    class Meta:
        ordering = ["device_type__name"]
        constraints = [models.UniqueConstraint(fields=["version", "device_type"], name="one_result_per_device_type")]

    def __str__(self) -> str:
        return f"{self.version} on {self.device_type}: {'pass' if self.compatible else 'fail'}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token; only its sha256 is stored, the raw value is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        raw = "mdc_" + secrets.token_urlsafe(32)
        return cls.objects.create(user=user, name=name, prefix=raw[4:12], token_hash=hash_token(raw)), raw


class Dataset(models.Model):
    """Uploaded data attached to a model, for calibration, evaluation and training."""

    class Format(models.TextChoices):
        NPZ = "npz", "NPZ arrays"
        CSV = "csv", "CSV table"

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    file = models.FileField(max_length=500)
    format = models.CharField(max_length=8, choices=Format.choices)
    label_column = models.CharField(max_length=200, blank=True, default="label")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    rows = models.PositiveIntegerField()
    has_labels = models.BooleanField(default=False)
    summary = models.JSONField(default=dict, blank=True)  # arrays, shapes, dtypes, checked against which version
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["model", "sha256"], name="unique_dataset_file_per_model")]

    def __str__(self) -> str:
        return f"{self.name} ({self.rows} rows)"
