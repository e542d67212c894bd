"""Plan invalidation does not rest on writers remembering it: every model a check-in reads to resolve declares a
DeliveryInputQuerySet, whose update() and bulk_create() start a new plan generation of the projects concerned,
as save() and delete() do. A new such model without the queryset fails the first test here."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.models import CompatibilityResult, Model, ModelVersion
from devices.delivery import cache
from devices.fleet import services as fleet_services
from devices.models import (
    Device,
    DeviceModelState,
    DeviceType,
    Experiment,
    ExperimentArm,
    FleetSettings,
    Rollout,
    TargetingRule,
)
from devices.rules import services as rules_services
from devices.signals import delivery_input_models
from tests.devices.fleet_helpers import checkin, ready_version

pytestmark = pytest.mark.django_db

# What a check-in reads that is the device's own: changes reach its answer through its inputs key and its
# ticket's request key (fingerprint, type, interval), not through the plans (devices.delivery.checkin).
DEVICE_OWN = {Device, DeviceModelState}

_TABLE = re.compile(r'(?:FROM|JOIN) "(\w+)"')
_COLUMN = re.compile(r'"(\w+)"\."(\w+)"')


def generation(project) -> str:
    return FleetSettings.objects.get(project=project).plan_generation


def _models_by_table() -> dict[str, type]:
    return {model._meta.db_table: model for model in apps.get_models()}


def test_every_model_a_full_checkin_reads__declares_a_delivery_input_queryset_covering_the_columns_read(
    enrolled, device_api, model, ready_v1
):
    _, _, config = enrolled
    rules_services.create_rule(model=model, version=ready_v1, conditions={"regions": ["DE"]})
    rules_services.set_default_version(model=model, version=ready_v1)
    cache.clear_cache()

    with CaptureQueriesContext(connection) as queries:
        assert checkin(device_api, config).status_code == 200  # loads the plans, signs a manifest

    by_table = _models_by_table()
    sql = [query["sql"] for query in queries.captured_queries]
    read = {by_table[table] for statement in sql for table in _TABLE.findall(statement) if table in by_table}
    assert {Model, ModelVersion, TargetingRule, CompatibilityResult, DeviceType, FleetSettings} <= read
    undeclared = read - DEVICE_OWN - set(delivery_input_models())
    assert not undeclared, f"give these a DeliveryInputQuerySet (console.models): {undeclared}"
    for statement in sql:
        for table, column in _COLUMN.findall(statement):
            model_class = by_table.get(table)
            if model_class is None or model_class in DEVICE_OWN or column == "id":
                continue
            watched = model_class._default_manager.get_queryset().delivery_fields
            field = next(f for f in model_class._meta.concrete_fields if f.column == column)
            assert watched is None or field.name in watched, f"{model_class.__name__}.{field.name} is read"


@dataclass
class Change:
    """A write to try through a model's queryset: an update of some rows and a new row to bulk-create."""

    rows: Callable[[dict], Any]  # context -> queryset
    update: dict[str, Any] | Callable[[dict], dict[str, Any]]
    new_row: Callable[[dict], Any] | None  # None: a new row of it concerns no existing plan (why below)


def _own_type(project, slug: str) -> DeviceType:
    return DeviceType(
        project=project, slug=slug, name=slug, memory_mb=1024, storage_mb=1024, max_model_mb=64, runtime_version="1.17"
    )


CHANGES: dict[type, Change] = {
    Model: Change(
        lambda c: Model.objects.filter(pk=c["model"].pk),
        lambda c: {"default_version": c["version"]},
        lambda c: Model(project=c["project"], name="bulk-made"),
    ),
    ModelVersion: Change(
        lambda c: ModelVersion.objects.filter(pk=c["version"].pk),
        {"state": "failed"},
        lambda c: ModelVersion(model=c["model"], number=99, file="x.onnx", sha256="f" * 64, size_bytes=1),
    ),
    CompatibilityResult: Change(
        lambda c: CompatibilityResult.objects.filter(version=c["version"]),
        {"compatible": False},
        lambda c: CompatibilityResult(version=c["version"], device_type=c["own_type"], compatible=True),
    ),
    DeviceType: Change(
        lambda c: DeviceType.objects.filter(pk=c["own_type"].pk),
        {"max_model_mb": 5},
        lambda c: _own_type(c["project"], "bulk-box"),
    ),
    TargetingRule: Change(
        lambda c: TargetingRule.objects.filter(pk=c["rule"].pk),
        {"priority": 5},
        lambda c: TargetingRule(model=c["model"], version=c["version"]),
    ),
    # A stage advance, a halt, a retry: what resolution reads of a rollout.
    Rollout: Change(
        lambda c: Rollout.objects.filter(pk=c["rollout"].pk),
        {"current_stage": 1, "offered_percent": 50.0},
        lambda c: Rollout(
            project=c["project"], model=c["model"], version=c["version"], stages=[], salt="s", state="running"
        ),
    ),
    Experiment: Change(
        lambda c: Experiment.objects.filter(pk=c["experiment"].pk),
        {"state": "stopped"},
        lambda c: Experiment(
            project=c["project"], model=c["model"], name="bulk", traffic_bp=100, primary_metric="latency", salt="s"
        ),
    ),
    ExperimentArm: Change(
        lambda c: ExperimentArm.objects.filter(experiment=c["experiment"]),
        {"weight_bp": 50},
        lambda c: ExperimentArm(
            experiment=c["armless_experiment"],
            name="b",
            version=c["version"],
            weight_bp=1,
            position=0,
        ),
    ),
    # A project has one FleetSettings row, made with a fresh generation: a new row has nothing to invalidate.
    FleetSettings: Change(
        lambda c: FleetSettings.objects.filter(project=c["project"]), {"checkin_interval_s": 60}, None
    ),
}


@pytest.fixture
def context(enrollment_key, project, model, ready_v1) -> dict[str, Any]:
    own_type = _own_type(project, "own-box")
    own_type.save()
    experiment = Experiment.objects.create(
        project=project, model=model, name="e", traffic_bp=100, primary_metric="latency", salt="s", state="running"
    )
    ExperimentArm.objects.create(experiment=experiment, name="a", version=ready_v1, weight_bp=100, position=0)
    armless = Experiment.objects.create(
        project=project, model=model, name="f", traffic_bp=1, primary_metric="latency", salt="t", state="running"
    )
    return {
        "experiment": experiment,
        "armless_experiment": armless,
        "project": project,
        "model": model,
        "version": ready_v1,
        "own_type": own_type,
        "rule": rules_services.create_rule(model=model, version=ready_v1),
        "rollout": Rollout.objects.create(
            project=project,
            model=model,
            version=ready_v1,
            stages=[{"percent": 100, "dwell_minutes": 1}],
            salt="s",
            state="running",
        ),
    }


def test_every_delivery_input_model__has_a_change_tried_here():
    assert set(CHANGES) == set(delivery_input_models())


@pytest.mark.parametrize("model_class", list(CHANGES), ids=lambda m: m.__name__)
def test_queryset_update__starts_a_new_plan_generation(context, model_class):
    change = CHANGES[model_class]
    before = generation(context["project"])

    updated = change.rows(context).update(**(change.update(context) if callable(change.update) else change.update))

    assert updated >= 1
    assert generation(context["project"]) != before


@pytest.mark.parametrize(
    "model_class", [m for m, change in CHANGES.items() if change.new_row], ids=lambda m: m.__name__
)
def test_queryset_bulk_create__starts_a_new_plan_generation(context, model_class):
    change = CHANGES[model_class]
    before = generation(context["project"])

    model_class.objects.bulk_create([change.new_row(context)])

    assert generation(context["project"]) != before


@pytest.mark.parametrize("model_class", list(CHANGES), ids=lambda m: m.__name__)
def test_queryset_bulk_update__starts_a_new_plan_generation(context, model_class):
    change = CHANGES[model_class]
    rows = list(change.rows(context))
    values = change.update(context) if callable(change.update) else change.update
    for row in rows:
        for name, value in values.items():
            setattr(row, name, value)
    before = generation(context["project"])

    model_class.objects.bulk_update(rows, list(values))

    assert generation(context["project"]) != before


@pytest.mark.parametrize("model_class", [m for m in CHANGES if m is not FleetSettings], ids=lambda m: m.__name__)
def test_queryset_delete__starts_a_new_plan_generation(context, model_class):
    if model_class in (Model, ModelVersion):
        TargetingRule.objects.all().delete()  # a rule protects the version it serves
        Rollout.objects.all().delete()  # and so does a rollout
        ExperimentArm.objects.all().delete()  # so does an experiment's arm
    before = generation(context["project"])

    CHANGES[model_class].rows(context).delete()

    assert generation(context["project"]) != before


def test_update_of_fields_resolution_does_not_read__keeps_the_generation(context):
    """A benchmark figure or an enrollment key must not make a whole fleet resolve again."""
    before = generation(context["project"])

    ModelVersion.objects.filter(pk=context["version"].pk).update(metrics={"benchmark": {"p50_ms": 1.0}})
    fleet_services.rotate_enrollment_key(project=context["project"])
    TargetingRule.objects.filter(pk=context["rule"].pk).update(description="why this rule exists")

    assert generation(context["project"]) == before


def test_saving_a_rollout_that_never_started__keeps_the_generation__starting_it_changes_it(context, teammate):
    """Proposing or editing a rollout moves no device, so the fleet keeps its answers; a started one does."""
    from devices.rollouts import services as rollout_services

    before = generation(context["project"])

    draft = rollout_services.propose_rollout(
        model=context["model"], version=context["version"], user=teammate, stages=[{"percent": 100, "dwell_minutes": 5}]
    )
    rollout_services.edit_rollout(rollout=draft, user=teammate, stages=[{"percent": 100, "dwell_minutes": 9}])

    assert generation(context["project"]) == before
    draft.state = "running"
    draft.save()
    assert generation(context["project"]) != before


def test_builtin_device_type_changed__starts_a_new_generation_of_every_project(context, other_project):
    fleet_services.fleet_settings_for(other_project)
    before = {generation(context["project"]), generation(other_project)}

    DeviceType.objects.filter(project=None, slug="x86-gateway").update(notes="a built-in type, edited")

    assert not {generation(context["project"]), generation(other_project)} & before


def test_rule_moved_to_another_projects_model__starts_a_new_generation_of_both(context, other_project, outsider):
    from console.catalog import services as catalog_services

    theirs = catalog_services.create_model(project=other_project, name="theirs", user=outsider)
    fleet_services.fleet_settings_for(other_project)
    before = {generation(context["project"]), generation(other_project)}

    TargetingRule.objects.filter(pk=context["rule"].pk).update(model=theirs)

    assert not {generation(context["project"]), generation(other_project)} & before


# -- what a device sees ------------------------------------------------------------------------------------


def _steady(device_api, config, version) -> tuple[dict, str]:
    installed = {"digit-classifier": {"version_id": version.pk, "sha256": version.sha256, "state": "running"}}
    etag = checkin(device_api, config, installed=installed)["ETag"]
    assert checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag).status_code == 304
    return installed, etag


def test_rule_retargeted_with_a_queryset_update__reaches_a_device_holding_a_ticket(
    enrolled, device_api, model, ready_v1
):
    _, _, config = enrolled
    rule = rules_services.create_rule(model=model, version=ready_v1)
    installed, etag = _steady(device_api, config, ready_v1)
    v2 = ready_version(model, seed=1)

    TargetingRule.objects.filter(pk=rule.pk).update(version=v2)

    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["models"]["digit-classifier"]["manifest"]["version_id"] == v2.pk


def test_version_failed_with_a_queryset_update__is_no_longer_served_to_a_device_holding_a_ticket(
    enrolled, device_api, model, ready_v1
):
    _, _, config = enrolled
    rules_services.set_default_version(model=model, version=ready_v1)
    installed, etag = _steady(device_api, config, ready_v1)

    ModelVersion.objects.filter(pk=ready_v1.pk).update(state=ModelVersion.State.FAILED)

    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["models"]["digit-classifier"]["manifest"] is None


def test_compatibility_revoked_with_a_queryset_update__reaches_a_device_holding_a_ticket(
    enrolled, device_api, model, ready_v1
):
    _, _, config = enrolled
    rules_services.set_default_version(model=model, version=ready_v1)
    installed, etag = _steady(device_api, config, ready_v1)

    CompatibilityResult.objects.filter(version=ready_v1).update(compatible=False, reasons=["found wanting"])

    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)
    entry = response.json()["models"]["digit-classifier"]
    assert response.status_code == 200
    assert entry["manifest"] is None and "found wanting" in entry["reason"]


def test_rules_bulk_created__reach_a_device_holding_a_ticket(enrolled, device_api, model, ready_v1):
    _, _, config = enrolled
    rules_services.set_default_version(model=model, version=ready_v1)
    installed, etag = _steady(device_api, config, ready_v1)
    v2 = ready_version(model, seed=1)

    TargetingRule.objects.bulk_create([TargetingRule(model=model, version=v2, conditions={"regions": ["DE"]})])

    response = checkin(device_api, config, installed=installed, HTTP_IF_NONE_MATCH=etag)
    assert response.json()["models"]["digit-classifier"]["manifest"]["version_id"] == v2.pk
