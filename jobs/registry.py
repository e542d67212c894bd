"""Kinds of job: what runs each one, on which queue, and what it settles when the job ends.

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


def _nothing(*args) -> None:
    return None


@dataclass(frozen=True)
class JobKind:
    """A kind of job. The hooks run inside the transaction that moves the job to its end state, so the job and
    what it works on never disagree: a job that is not marked succeeded, failed or cancelled changed nothing
    through them.

    - ``run(job, progress) -> (result dict, output_version or None)``: the work, outside any transaction.
    - ``on_success(job)``: what the kind settles when the job succeeded (a check marks its version ready).
    - ``on_failure(job, reason)``: what the kind undoes when the job failed or was cancelled.
    - ``reap(now) -> int``: periodic clean-up run by the reaper, for what jobs of this kind left unsettled
      (rows from before these hooks were transactional, or a job row removed by hand); returns how many it fixed.
    """

    name: str
    queue: str
    run: Callable
    on_failure: Callable = _nothing
    on_success: Callable = _nothing
    reap: Callable | None = None
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
