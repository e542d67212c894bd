"""Kinds of job: what runs each one, on which queue, and how it cleans up after failing.

Quick checks and heavy optimization have their own queues so a long
compression job never holds up the check of a fresh upload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

QUEUE_CHECKS = "checks"
QUEUE_HEAVY = "heavy"
ALL_QUEUES = ("default", QUEUE_CHECKS, QUEUE_HEAVY)


class PermanentJobError(Exception):
    """A failure that retrying will not fix (bad model, shape mismatch); the message is shown to people."""


class JobCancelled(Exception):
    pass


def _nothing(job, reason: str) -> None:
    return None


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str
    run: Callable  # run(job, progress) -> (result dict, output_version or None)
    on_failure: Callable = _nothing
    label: str = ""


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    _load_handlers()
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}") from None


def kinds() -> dict[str, JobKind]:
    _load_handlers()
    return dict(_KINDS)


def _load_handlers() -> None:
    from . import handlers  # noqa: F401  (registers the kinds on import)
