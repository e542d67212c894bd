from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from console.models import slug_validator

PRECISIONS = ["fp32", "fp16", "int8"]


class DeviceType(models.Model):
    """A hardware/runtime profile that versions are checked against.

    Built-in profiles have no project and are shared by all projects; a project
    may add its own.
    """

    class Build(models.TextChoices):
        FULL = "full", "Full build (all operators)"
        MOBILE = "mobile", "Mobile pre-built package (reduced operator set)"

    project = models.ForeignKey(
        "console.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="device_types"
    )
    slug = models.SlugField(max_length=63, validators=[slug_validator])
    name = models.CharField(max_length=200)
    cpu_arch = models.CharField(max_length=32, default="arm64")
    accelerator = models.CharField(max_length=64, blank=True, help_text="e.g. CUDA, NNAPI, none")
    execution_provider = models.CharField(max_length=64, default="CPUExecutionProvider")
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    storage_mb = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    max_model_mb = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Largest model file this device may download and hold."
    )
    runtime = models.CharField(max_length=32, default="onnxruntime")
    runtime_version = models.CharField(max_length=16, help_text="major.minor, e.g. 1.17")
    runtime_build = models.CharField(max_length=16, choices=Build.choices, default=Build.FULL)
    precisions = models.JSONField(default=list, help_text="Precisions it runs well: fp32, fp16, int8")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="unique_device_type_slug_per_project"),
            models.UniqueConstraint(
                fields=["slug"], condition=models.Q(project__isnull=True), name="unique_builtin_device_type_slug"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def profile(self) -> dict:
        """The plain dict the compatibility checker reads (no ORM in tooling)."""
        return {
            "slug": self.slug,
            "name": self.name,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "runtime_build": self.runtime_build,
            "execution_provider": self.execution_provider,
            "precisions": list(self.precisions),
            "max_model_bytes": self.max_model_mb * 1024 * 1024,
            "memory_bytes": self.memory_mb * 1024 * 1024,
        }
