"""Database access below the ORM, for the few statements on a hot path."""

from __future__ import annotations

import psycopg
from django.db import connection, models


def bound_cursor():
    """A cursor of the default connection that binds parameters on the server where it can (PostgreSQL).

    Django's own cursors bind on the client: psycopg then parses every statement for its placeholders and
    quotes each value into the text, and the server parses and plans the statement every time. A server-binding
    cursor sends the values apart, and psycopg prepares a statement it has run a few times on a connection
    (``prepare_threshold``, see DB_PREPARED_STATEMENTS in console/settings.py). Wrapped as Django wraps its
    cursors, so query logging, execute wrappers and error translation still apply. Elsewhere (SQLite), Django's.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


def column(model: type[models.Model], name: str) -> str:
    """The database column of ``model``'s field ``name`` (its primary key: ``"pk"``), for plain SQL."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return str(field.column)
