from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        # The job kinds that act on versions register themselves with the engine (jobs.registry).
        from .jobkinds import check, optimize, recheck  # noqa: F401
