from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        # The job kinds that act on versions register themselves with the engine (jobs.registry).
        from .jobkinds import check, optimize, recheck  # noqa: F401

        self.track_changes()

    @staticmethod
    def track_changes() -> None:
        """The audit log records every change to these (console.audit); devices registers its own."""
        from . import audit
        from .audit.recording import connect_celery
        from .models import Membership, Model, ModelVersion, Project

        audit.track(Project, kind="project", project_path="pk", exclude_fields=["created_at"])
        audit.track(Membership, kind="member", exclude_fields=["created_at"])
        audit.track(Model, kind="model", exclude_fields=["created_at"])
        # A version's facts and figures are large and written by jobs; its state, error and origin are what
        # people change or need to see change.
        audit.track(
            ModelVersion,
            kind="version",
            project_path="model__project_id",
            exclude_fields=["created_at", "metadata", "metrics"],
        )
        connect_celery()
