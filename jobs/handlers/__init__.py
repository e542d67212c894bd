"""Importing this package registers every job kind."""

from . import check, optimize  # noqa: F401
