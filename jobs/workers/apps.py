from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "jobs.workers"
    label = "workers"
    verbose_name = "Workers"

    def ready(self) -> None:
        # Connects the Celery signals that start and stop a worker's heartbeat; harmless in web processes.
        from . import heartbeat  # noqa: F401
