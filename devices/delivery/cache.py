"""Delivery plans: what resolution reads, loaded from the database once and cached in each web process.

A check-in must not read every rule, version and compatibility row again. Each project's ``FleetSettings``
carries ``plan_generation``, a random token replaced whenever anything resolution reads changes: ``invalidate``
is the one way to say so. Nobody has to remember to call it for rows: every model resolution reads has a
``console.models.DeliveryInputQuerySet``, and ``devices.signals`` calls it for their saves, deletes, updates
and bulk creations. The device row a check-in loads anyway comes with its project's generation, so a cached
plan is used only while the generation matches, and for at most ``DEVICE_PLAN_CACHE_TTL_S`` seconds in any
case (a backstop for writes that bypass the querysets, e.g. raw SQL).

A check-in answered from its ticket (devices.core.tickets) reads no device row, so it checks the ticket against
``ticket_state``: the generation and the voided tokens as this process read them at most
``DEVICE_GENERATION_CACHE_S`` seconds ago (a change made through another process reaches it that much
later; this process drops its copies at once).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from console.models import CompatibilityResult, Model, ModelVersion, Project, is_servable
from devices import conf
from devices.core import rollout_plan
from devices.core.experiment_assign import ArmPlan, ExperimentPlan
from devices.core.resolution import ModelPlan, RolloutFacts, VersionFacts
from devices.core.targeting.rules import Rule
from devices.models import ExperimentArm, FleetSettings, Rollout, TargetingRule, VoidedToken
from jobs.tooling.runtimes import published_runtimes

_MAX_CACHED_PLANS = 10_000
_lock = threading.Lock()
# (project id, model name) -> (generation, loaded at (monotonic), plan or None for "no such model")
_cache: dict[tuple[int, str], tuple[str, float, ModelPlan | None]] = {}
# project id -> (TicketState or None for "no fleet settings", read at (monotonic))
_ticket_states: dict[int, tuple[TicketState | None, float]] = {}


def new_generation() -> str:
    return uuid.uuid4().hex


def invalidate(projects: Project | int | Iterable[int | None] | QuerySet, *, tokens_only: bool = False) -> None:
    """Say that what check-in answers of ``projects`` are made of changed.

    ``projects``: a Project, a project id, ids (``None`` among them: every project, for a built-in device
    type), or a query of projects or of project ids. Their new plan generation makes every web process load
    their plans again and fails every check-in ticket they issued (this process at once, others within
    ``DEVICE_GENERATION_CACHE_S``). Call it inside the transaction that makes the change.

    ``tokens_only``: just a device token stopped working (it is in ``VoidedToken`` now). The plans stay, so the
    rest of the fleet keeps its tickets; this process reads the voided tokens again at once.
    """
    if not tokens_only:
        fleets = _fleets_of(projects)
        if fleets is not None:
            fleets.update(plan_generation=new_generation())
    _ticket_states.clear()
    transaction.on_commit(_ticket_states.clear)  # a read before the commit saw the old state


def _fleets_of(projects) -> QuerySet[FleetSettings] | None:
    if isinstance(projects, QuerySet):
        lookup = "project__in" if projects.model is Project else "project_id__in"
        return FleetSettings.objects.filter(**{lookup: projects})
    if isinstance(projects, Project):
        return FleetSettings.objects.filter(project_id=projects.pk)
    if isinstance(projects, int):
        return FleetSettings.objects.filter(project_id=projects)
    ids = set(projects)
    if None in ids:
        return FleetSettings.objects.all()
    return FleetSettings.objects.filter(project_id__in=ids) if ids else None


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _ticket_states.clear()


@dataclass(frozen=True)
class TicketState:
    """What a check-in ticket is checked against: the project's plan generation and the token hashes that
    stopped working within a ticket's lifetime (devices.models.VoidedToken)."""

    generation: str
    voided: frozenset[str]


def ticket_state(project_id: int) -> TicketState | None:
    """The project's ``TicketState``, read at most ``DEVICE_GENERATION_CACHE_S`` seconds ago by this process
    (None when the project has no fleet settings)."""
    now = time.monotonic()
    hit = _ticket_states.get(project_id)
    if hit is not None and now - hit[1] < conf.generation_cache_s():
        return hit[0]
    generation = FleetSettings.objects.filter(project_id=project_id).values_list("plan_generation", flat=True).first()
    state = None
    if generation is not None:
        since = timezone.now() - timedelta(seconds=conf.checkin_ticket_ttl_s())
        state = TicketState(
            generation,
            frozenset(
                VoidedToken.objects.filter(project_id=project_id, voided_at__gte=since).values_list(
                    "token_hash", flat=True
                )
            ),
        )
    with _lock:
        if len(_ticket_states) >= _MAX_CACHED_PLANS:
            _ticket_states.clear()
        _ticket_states[project_id] = (state, now)
    return state


def model_plans(project_id: int, generation: str, names: Iterable[str]) -> dict[str, ModelPlan | None]:
    """The plan of each named model of the project (None for names that are not a model of it)."""
    now = time.monotonic()
    ttl = conf.plan_cache_ttl_s()
    plans: dict[str, ModelPlan | None] = {}
    missing = []
    for name in names:
        hit = _cache.get((project_id, name))
        if hit is not None and hit[0] == generation and now - hit[1] < ttl:
            plans[name] = hit[2]
        else:
            missing.append(name)
    if missing:
        loaded = load_model_plans(project_id, missing)
        with _lock:
            if len(_cache) + len(missing) > _MAX_CACHED_PLANS:
                _cache.clear()
            for name in missing:
                plans[name] = loaded.get(name)
                _cache[(project_id, name)] = (generation, now, plans[name])
    return plans


# A rolled-back rollout sends the devices still on its version back for this long; after that the rules decide.
ROLLED_BACK_DECIDES_FOR = timedelta(days=30)


def load_model_plans(project_id: int, names: Iterable[str]) -> dict[str, ModelPlan]:
    """Six queries whatever the number of models, rules, versions, rollouts and experiments."""
    models = list(
        Model.objects.filter(project_id=project_id, name__in=list(names)).values("id", "name", "default_version_id")
    )
    model_ids = [row["id"] for row in models]
    rules_by_model: dict[int, list[Rule]] = defaultdict(list)
    for row in TargetingRule.objects.filter(model_id__in=model_ids).values(
        "id", "model_id", "priority", "version_id", "conditions"
    ):
        rules_by_model[row["model_id"]].append(
            Rule.from_dict(
                {
                    "id": row["id"],
                    "priority": row["priority"],
                    "version": row["version_id"],
                    "conditions": row["conditions"],
                }
            )
        )
    rollouts_by_model = _rollouts(model_ids)
    runnable: dict[int, set[int]] = defaultdict(set)
    blocked: dict[int, dict[int, str]] = defaultdict(dict)
    for check in CompatibilityResult.objects.filter(version__model_id__in=model_ids).values(
        "version_id", "device_type_id", "compatible", "reasons"
    ):
        if check["compatible"]:
            runnable[check["version_id"]].add(check["device_type_id"])
        else:
            reasons = check["reasons"] or ["the compatibility check failed"]
            blocked[check["version_id"]][check["device_type_id"]] = str(reasons[0])
    experiments = running_experiments(model_ids)
    versions: dict[int, dict[int, VersionFacts]] = defaultdict(dict)
    children: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for version in (
        ModelVersion.objects.filter(model_id__in=model_ids)
        .values(
            "id",
            "model_id",
            "number",
            "state",
            "sha256",
            "size_bytes",
            "format",
            "parent_id",
            "metadata__opset_imports",
        )
        .order_by("id")
    ):
        versions[version["model_id"]][version["id"]] = VersionFacts(
            id=version["id"],
            number=version["number"],
            state=version["state"],
            servable=is_servable(version["state"]),
            sha256=version["sha256"],
            size=version["size_bytes"],
            format=version["format"],
            parent_id=version["parent_id"],
            runtime=runtime_needs(version["metadata__opset_imports"]),
            runnable_on=frozenset(runnable.get(version["id"], ())),
            blocked_on=blocked.get(version["id"], {}),
        )
        if version["parent_id"] is not None:
            children[version["model_id"]][version["parent_id"]].append(version["id"])
    return {
        row["name"]: ModelPlan(
            model_id=row["id"],
            name=row["name"],
            rules=rules_by_model.get(row["id"], []),
            default_version_id=row["default_version_id"],
            versions=versions.get(row["id"], {}),
            children={parent: tuple(kids) for parent, kids in children.get(row["id"], {}).items()},
            rollouts=tuple(rollouts_by_model.get(row["id"], ())),
            experiments=experiments.get(row["id"], ()),
        )
        for row in models
    }


def _rollouts(model_ids: list[int]) -> dict[int, list[RolloutFacts]]:
    """The rollouts resolution asks first, per model: running, paused and halted ones, then the ones rolled
    back within ``ROLLED_BACK_DECIDES_FOR``; newest first within each group."""
    active = set(rollout_plan.DECIDING) - {rollout_plan.ROLLED_BACK}
    rows = (
        Rollout.objects.filter(model_id__in=model_ids)
        .filter(
            Q(state__in=active)
            | Q(state=rollout_plan.ROLLED_BACK, ended_at__gte=timezone.now() - ROLLED_BACK_DECIDES_FOR)
        )
        .order_by()  # sorted below; the default ordering would read created_at, which check-in never needs
        .values(
            "id",
            "model_id",
            "state",
            "version_id",
            "previous_version_id",
            "target",
            "salt",
            "current_stage",
            "offered_percent",
            "retry_generation",
            "retry_devices",
        )
    )
    by_model: dict[int, list[RolloutFacts]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["state"] == rollout_plan.ROLLED_BACK, -r["id"])):
        by_model[row["model_id"]].append(
            RolloutFacts(
                id=row["id"],
                state=row["state"],
                version_id=row["version_id"],
                previous_version_id=row["previous_version_id"],
                target=Rule.from_dict({"id": f"rollout {row['id']}", "conditions": row["target"] or {}}),
                salt=row["salt"],
                stage=row["current_stage"],
                percent=row["offered_percent"],
                retry_generation=row["retry_generation"],
                retry_devices=frozenset(str(device) for device in row["retry_devices"] or ()),
            )
        )
    return by_model


def running_experiments(model_ids: list[int]) -> dict[int, list[ExperimentPlan]]:
    """The running experiments of these models, arms control first (one query)."""
    grouped: dict[int, dict[int, tuple[Any, list[ArmPlan]]]] = defaultdict(dict)
    for arm in (
        ExperimentArm.objects.filter(experiment__model_id__in=model_ids, experiment__state="running")
        .values(
            "id",
            "name",
            "version_id",
            "weight_bp",
            "stopped_at",
            "experiment_id",
            "experiment__model_id",
            "experiment__salt",
            "experiment__target",
        )
        .order_by("experiment_id", "position")
    ):
        experiment = grouped[arm["experiment__model_id"]].setdefault(arm["experiment_id"], (arm, []))
        experiment[1].append(
            ArmPlan(arm["id"], arm["name"], arm["version_id"], arm["weight_bp"], arm["stopped_at"] is None)
        )
    return {
        model_id: [
            ExperimentPlan(experiment_id, first["experiment__salt"], first["experiment__target"] or {}, tuple(arms))
            for experiment_id, (first, arms) in by_experiment.items()
        ]
        for model_id, by_experiment in grouped.items()
    }


def runtime_needs(opset_imports: dict | None) -> dict:
    """The manifest's ``runtime``: the default-domain opset and the oldest onnxruntime release that runs it."""
    needs: dict = {"name": "onnxruntime"}
    opset = (opset_imports or {}).get("ai.onnx")
    if isinstance(opset, int):
        needs["opset"] = opset
        releases = [release for release, limits in published_runtimes().items() if limits.get("ai.onnx", 0) >= opset]
        if releases:
            needs["min_version"] = min(releases, key=lambda r: tuple(int(p) for p in r.split(".")))
    return needs
