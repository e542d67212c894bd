"""Reading the audit log: one project's entries, filtered; each entry as a row for the API, the page and CSV."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime, time, timedelta
from typing import Any

from auditlog.models import LogEntry
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers

from console.audit.recording import KINDS
from console.models import Project

ACTIONS = {LogEntry.Action.CREATE: "create", LogEntry.Action.UPDATE: "update", LogEntry.Action.DELETE: "delete"}
CSV_COLUMNS = ["time", "action", "kind", "object_id", "object", "actor", "via", "token", "remote_addr", "changes"]


class AuditQuerySerializer(serializers.Serializer):
    """The audit filters, from a query string."""

    kind = serializers.ChoiceField(choices=[], required=False, help_text="what changed: rule, model, version, ...")
    object_id = serializers.IntegerField(min_value=1, required=False, help_text="one object of that kind")
    actor = serializers.CharField(max_length=150, required=False, help_text="username of who changed it")
    action = serializers.ChoiceField(choices=sorted(ACTIONS.values()), required=False)
    since = serializers.DateField(required=False, help_text="from this day (inclusive, server time zone)")
    until = serializers.DateField(required=False, help_text="up to this day (inclusive)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Kinds are registered from the apps' ready(), after this module is imported.
        self.fields["kind"].choices = sorted(KINDS)

    def validate(self, attrs):
        if "object_id" in attrs and "kind" not in attrs:
            raise serializers.ValidationError({"object_id": "Say which kind of object with kind=."})
        if "since" in attrs and "until" in attrs and attrs["since"] > attrs["until"]:
            raise serializers.ValidationError({"until": "until is before since."})
        return attrs


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def entries_of(project: Project, filters: dict[str, Any] | None = None) -> QuerySet[LogEntry]:
    """``project``'s entries, newest first, narrowed by validated ``filters``. An entry belongs to the project
    its row belonged to when it was written (``additional_data.project_id``): another project's never shows."""
    filters = filters or {}
    entries = LogEntry.objects.filter(additional_data__project_id=project.pk)
    if "kind" in filters:
        app_label, model_name = KINDS[filters["kind"]].split(".")
        entries = entries.filter(content_type__app_label=app_label, content_type__model=model_name)
    if "object_id" in filters:
        entries = entries.filter(object_pk=str(filters["object_id"]))
    if "actor" in filters:
        entries = entries.filter(actor__username=filters["actor"])
    if "action" in filters:
        entries = entries.filter(action={word: code for code, word in ACTIONS.items()}[filters["action"]])
    if "since" in filters:
        entries = entries.filter(timestamp__gte=_day_start(filters["since"]))
    if "until" in filters:
        entries = entries.filter(timestamp__lt=_day_start(filters["until"] + timedelta(days=1)))
    return entries.select_related("actor", "content_type").order_by("-timestamp", "-pk")


_KIND_OF_LABEL: dict[str, str] = {}


def kind_of(entry: LogEntry) -> str:
    if len(_KIND_OF_LABEL) != len(KINDS):
        _KIND_OF_LABEL.update({label: kind for kind, label in KINDS.items()})
    label = f"{entry.content_type.app_label}.{entry.content_type.model}"
    return _KIND_OF_LABEL.get(label, label)


def row(entry: LogEntry) -> dict[str, Any]:
    """One entry as the API, the page and the CSV show it; ``changes`` is ``{field: [before, after]}``."""
    extra = entry.additional_data or {}
    return {
        "id": entry.pk,
        "time": entry.timestamp,
        "action": ACTIONS.get(entry.action, str(entry.action)),
        "kind": kind_of(entry),
        "object_id": entry.object_pk,
        "object": entry.object_repr,
        "actor": entry.actor.get_username() if entry.actor else None,
        "via": extra.get("via", ""),
        "token": extra.get("token", ""),
        "task": extra.get("task", ""),
        "remote_addr": entry.remote_addr,
        "changes": entry.changes_dict,
    }


def csv_rows(entries: Iterable[LogEntry]) -> Iterator[list[str]]:
    yield CSV_COLUMNS
    for entry in entries:
        shown = row(entry)
        shown["time"] = shown["time"].isoformat()
        shown["changes"] = json.dumps(shown["changes"], sort_keys=True)
        yield ["" if shown[name] is None else str(shown[name]) for name in CSV_COLUMNS]


class AuditEntrySerializer(serializers.Serializer):
    """An audit entry (read-only: the log has no write API)."""

    id = serializers.IntegerField()
    time = serializers.DateTimeField()
    action = serializers.ChoiceField(choices=sorted(ACTIONS.values()))
    kind = serializers.CharField(help_text="rule, model, version, device-type, fleet, member, project, ...")
    object_id = serializers.CharField()
    object = serializers.CharField(help_text="the object as it was named when the change was made")
    actor = serializers.CharField(allow_null=True, help_text="username; null for the system")
    via = serializers.CharField(help_text="page, api-token, api-session, api-basic, admin or system")
    token = serializers.CharField(help_text="the API token's prefix when via is api-token")
    task = serializers.CharField(help_text="the Celery task when via is system")
    remote_addr = serializers.IPAddressField(allow_null=True)
    changes = serializers.DictField(
        child=serializers.JSONField(), help_text="{field: [before, after]}; secrets show as a marker"
    )

    def to_representation(self, instance):
        return super().to_representation(row(instance))
