"""Kinds of job: what runs each one, on which queue, and how it cleans up after failing.

Quick checks and heavy optimization have their own queues so a long
compression job never holds up the check of a fresh upload.

The engine knows no kind: the apps that own the work register theirs from their
``AppConfig.ready()`` (the console registers check and optimize), so ``jobs``
imports nothing from them.
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
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}") from None


def kinds() -> dict[str, JobKind]:
    return dict(_KINDS)
