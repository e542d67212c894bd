"""Importing this package registers every job kind."""

from . import check  # noqa: F401
