"""The exceptions the model tooling raises for permanent failures.

A Celery task catches ``TransformError`` (which includes ``DatasetError``) and fails the job at once with
``str(exc)`` as the reason: retrying a bad model or a bad dataset gives the same answer.
"""

from __future__ import annotations


class TransformError(Exception):
    """A transform, evaluation or verification cannot be done; the message tells a person what to change."""


class DatasetError(TransformError):
    """A dataset does not fit the model; ``problems`` lists every mismatch, one sentence each."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(self.problems)  # args hold the list, so pickling (Celery results) rebuilds the same error

    def __str__(self) -> str:
        return "dataset does not fit the model: " + "; ".join(self.problems)
