from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """One Celery worker consuming one queue, as last heard from.

    A table, not the cache: the default cache is per process, and every web process, worker and machine of a
    deployment already shares the database.
    """

    worker = models.CharField(max_length=200)  # Celery's node name, e.g. celery@host
    queue = models.CharField(max_length=64)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["worker", "queue"], name="worker_heartbeat_worker_queue")]

    def __str__(self) -> str:
        return f"{self.worker} on {self.queue} (seen {self.seen_at:%H:%M:%S})"
