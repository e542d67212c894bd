"""Recording audit entries: which models are tracked, and the project and origin stamped on each entry."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models.signals import pre_save
from django.dispatch import receiver

# The request being served (set by AuditMiddleware), and the Celery task being run (set from Celery's
# signals): what ``where()`` reads to say where a change came from.
_request: ContextVar[Any] = ContextVar("audit_request", default=None)
_task: ContextVar[str | None] = ContextVar("audit_task", default=None)

SECRET_MARKER = "(secret, not recorded)"

# What the pages and the API call each tracked model ("rule"), to its "app_label.model_name".
KINDS: dict[str, str] = {}


def hide_secret(value: str) -> str:
    """auditlog's ``mask_callable`` for key material: the entry says a secret changed, never any of it."""
    return "(none)" if value in ("", "None") else SECRET_MARKER


def _project_of(instance: models.Model, path: str) -> int | None:
    """Follow ``path`` (``project_id``, ``model__project_id``) from ``instance`` to its project's id."""
    value: Any = instance
    try:
        for part in path.split("__"):
            value = getattr(value, part)
    except ObjectDoesNotExist:  # a parent removed in the same cascade: the entry belongs to no project page
        return None
    return value


def track(model: type[models.Model], *, kind: str, project_path: str = "project_id", **options: Any) -> None:
    """Record every create, change and delete of ``model``'s rows through their save() and delete().

    ``kind`` is the word the audit pages filter by (``rule``, ``rollout``); ``project_path`` leads from a row to its project's id (``"model__project_id"`` for a rule); ``options``
    go to ``auditlog.register`` (``exclude_fields``, ``mask_fields`` with ``mask_callable=
    "console.audit.recording.hide_secret"`` for key material). Writes through ``QuerySet.update()`` send no
    signal: call ``record_update`` beside them.
    """
    if not hasattr(model, "get_additional_data"):
        # auditlog asks the instance for the entry's additional_data; the origin is added on save (below).
        def get_additional_data(instance: models.Model) -> dict[str, Any]:
            return {"project_id": _project_of(instance, project_path)}

        model.get_additional_data = get_additional_data  # type: ignore[attr-defined]
    auditlog.register(model, **options)
    KINDS[kind] = model._meta.label_lower


def record_update(instance: models.Model, changes: Mapping[str, tuple[Any, Any]]) -> LogEntry | None:
    """An entry for a change made by ``QuerySet.update()``, shaped like auditlog's own: ``{field: [before,
    after]}`` as text. Call it in the writer's transaction, after the write changed the row."""
    diff = {name: [_text(before), _text(after)] for name, (before, after) in changes.items() if before != after}
    if not diff:
        return None
    return LogEntry.objects.log_create(instance, action=LogEntry.Action.UPDATE, changes=diff)


def _text(value: Any) -> str:
    # auditlog stores values as their string form, None as "None"
    return str(value)


def where() -> dict[str, str]:
    """Where the change being recorded comes from: a page, the API (by token, session or Basic auth), the
    admin, or the system (a Celery task, beat, a command). A token is named by its prefix, never in full."""
    request = _request.get()
    if request is None:
        task = _task.get()
        return {"via": "system", "task": task} if task else {"via": "system"}
    path = request.path_info
    if path.startswith("/admin/"):
        return {"via": "admin"}
    if path.startswith("/api/"):
        from console.models import ApiToken

        auth = getattr(request, "auth", None)  # DRF copies its authentication result onto the HttpRequest
        if isinstance(auth, ApiToken):
            return {"via": "api-token", "token": auth.prefix}
        if request.headers.get("Authorization", "").lower().startswith("basic "):
            return {"via": "api-basic"}
        return {"via": "api-session"}
    return {"via": "page"}


@receiver(pre_save, sender=LogEntry, dispatch_uid="console.audit.stamp_entry")
def stamp_entry(sender, instance: LogEntry, **kwargs) -> None:
    """Every entry gets its origin; one made during an API call signed in by token gets its actor here
    (auditlog's middleware sees the user before DRF has authenticated the token)."""
    if instance.pk is not None:
        return
    instance.additional_data = {**(instance.additional_data or {}), **where()}
    request = _request.get()
    user = getattr(request, "user", None)
    if instance.actor_id is None and user is not None and user.is_authenticated:
        instance.actor = user
        instance.actor_email = getattr(user, "email", None)


class AuditMiddleware(AuditlogMiddleware):
    """auditlog's middleware (actor, remote address, correlation id) plus the request for ``where()``."""

    def __call__(self, request):
        token = _request.set(request)
        try:
            return super().__call__(request)
        finally:
            _request.reset(token)


def connect_celery() -> None:
    """Name the Celery task in the entries it causes (jobs, beat's reaper); a worker runs one task at a time
    per thread, so the name is set before each task and cleared after."""
    from celery import signals

    def started(task=None, **kwargs) -> None:
        _task.set(getattr(task, "name", None) or "celery")

    def finished(**kwargs) -> None:
        _task.set(None)

    signals.task_prerun.connect(started, weak=False, dispatch_uid="console.audit.task_started")
    signals.task_postrun.connect(finished, weak=False, dispatch_uid="console.audit.task_finished")
