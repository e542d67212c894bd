from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from console.projects import roles

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$", "Use lowercase letters, digits and dashes (at most 63, starting with a letter/digit)."
)


class Project(models.Model):
    """A tenant: one app or product line. Every other object hangs off a project."""

    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
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

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_model_name_per_project")]

    def __str__(self) -> str:
        return self.name


class VersionQuerySet(models.QuerySet):
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


# The one rule of what may be served, optimized, targeted or deployed: a version whose check passed.
SERVABLE_STATES = frozenset({ModelVersion.State.READY.value})


def is_servable(version_or_state: ModelVersion | str) -> bool:
    """Only a checked (ready) version may be deployed, targeted, optimized or delivered."""
    state = version_or_state.state if isinstance(version_or_state, ModelVersion) else version_or_state
    return state in SERVABLE_STATES


class CompatibilityResult(models.Model):
    """One cell row of the compatibility matrix: may this version run on this device type?"""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="compatibility")
    device_type = models.ForeignKey("devices.DeviceType", on_delete=models.CASCADE, related_name="compatibility")
    compatible = models.BooleanField()
    reasons = models.JSONField(default=list, blank=True)
    checked_at = models.DateTimeField(auto_now=True)

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
