"""The audit log: who changed what, when, from where, before and after (issue 12, item 5).

Kept by django-auditlog: it is database-agnostic (the console also runs on SQLite, which rules out
django-pghistory's triggers) and stores one diff per change (``{field: [before, after]}``) with the actor and
the remote address, where django-simple-history would store a full copy of each row per save.

What we add, in ``recording``: ``track(model, project_path=...)`` registers a model and stamps every entry
with its project's id (``additional_data["project_id"]``, how the pages keep projects apart) and with where
the change came from (``additional_data["via"]``: page, api-token, api-session, api-basic, admin or system,
the last for Celery tasks, beat and commands). Writes that bypass model signals (``QuerySet.update()``)
call ``record_update`` next to the write.
"""

from console.audit.recording import record_update, track, where

__all__ = ["record_update", "track", "where"]
