from __future__ import annotations

from django.conf import settings
from django.db import models


class Job(models.Model):
    """A long-running unit of work run by a Celery worker. The row is the truth."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)  # 0..100
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    input_version = models.ForeignKey(
        "console.ModelVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    output_version = models.ForeignKey(
        "console.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced_by"
    )
    result = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="job_state_heartbeat")]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def outlook(self):
        """For pages: None while the job moves, else what it waits for and when the reaper acts (services.outlook)."""
        from .services import outlook  # services import this module

        return outlook(self)
