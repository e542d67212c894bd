"""State changes of the fleet and of delivery: keys, enrollment, check-in, events, rules, revocation."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from console.models import Model, ModelVersion, Project
from devices.signing import canonical_json, generate_keypair

from . import conf, keys, presence, rollups
from .manifests import answer_etag, etag_matches, signed_manifest, with_download_url
from .models import Device, DeviceEvent, DeviceModelState, DeviceType, FleetSettings, TargetingRule, VoidedToken
from .plans import bump_plan_generation, forget_ticket_states, model_plans, new_generation
from .resolution import DeviceFacts, ModelPlan, Outcome, resolve_model

CONFIG_COLUMNS = ("runtime", "runtime_version", "os", "cpu_arch", "accelerator", "memory_mb", "region",
                  "app_version", "attributes")


class DeviceRevoked(Exception):
    pass


# -- project keys ----------------------------------------------------------------------------------------------


def fleet_settings_for(project: Project) -> FleetSettings:
    """The project's fleet settings, created with a fresh signing key pair on first use."""
    fleet = FleetSettings.objects.filter(project=project).first()
    if fleet is not None:
        return fleet
    private_pem, public_key = generate_keypair()
    try:
        with transaction.atomic():
            return FleetSettings.objects.create(
                project=project, signing_key_encrypted=keys.encrypt_private_key(private_pem), public_key=public_key,
                plan_generation=new_generation(),
            )
    except IntegrityError:  # created by a concurrent request
        return FleetSettings.objects.get(project=project)


def rotate_enrollment_key(*, project: Project) -> tuple[FleetSettings, str]:
    """A new enrollment key (returned raw, once); the previous key stops working at once."""
    fleet = fleet_settings_for(project)
    raw = keys.new_enrollment_key()
    with transaction.atomic():
        fleet = FleetSettings.objects.select_for_update().get(pk=fleet.pk)
        fleet.enrollment_key_hash = keys.hash_token(raw)
        fleet.enrollment_key_prefix = raw[: len(keys.ENROLLMENT_KEY_PREFIX) + 4]
        fleet.enrollment_key_rotated_at = timezone.now()
        fleet.save(update_fields=["enrollment_key_hash", "enrollment_key_prefix", "enrollment_key_rotated_at"])
    return fleet, raw


def set_project_checkin_interval(*, fleet: FleetSettings, seconds: int) -> FleetSettings:
    with transaction.atomic():
        FleetSettings.objects.filter(pk=fleet.pk).update(checkin_interval_s=seconds)
        bump_plan_generation(pk=fleet.pk)  # every answer states the interval; check-in tickets must not hold
    fleet.checkin_interval_s = seconds
    return fleet


def fleet_for_enrollment_key(raw: str) -> FleetSettings | None:
    return FleetSettings.objects.select_related("project").filter(enrollment_key_hash=keys.hash_token(raw)).first()


def device_type_for(project_id: int, slug: str) -> DeviceType | None:
    """A built-in device type or one of this project's own (never another project's)."""
    return DeviceType.objects.visible_to(project_id).filter(slug=slug).first()


# -- enrollment ------------------------------------------------------------------------------------------------


def _config_columns(config: dict[str, Any], device_type: DeviceType) -> dict[str, Any]:
    columns = {name: config[name] for name in CONFIG_COLUMNS}
    columns.update(device_type=device_type, config=config["raw"], fingerprint=config["fingerprint"])
    return columns


def _server_event(device: Device, event_type: str, now: datetime, reason: str = "", **fields: Any) -> DeviceEvent:
    """A history entry recorded by the server (unsaved)."""
    return DeviceEvent(
        project_id=device.project_id, device=device, event_id=f"server:{uuid.uuid4().hex}", type=event_type,
        at=now, received_at=now, reason=reason[:2000], **fields,
    )


def enroll_device(
    *, fleet: FleetSettings, device_id: str, config: dict[str, Any], device_type: DeviceType,
    now: datetime | None = None,
) -> tuple[Device, str]:
    """Enroll (or enroll again) ``device_id`` in the fleet's project; returns the device and its new raw token.

    Enrolling an existing device id again issues a new token and the old one stops working. A revoked
    device stays revoked (DeviceRevoked): enrolling again must not undo a revocation.
    """
    now = now or timezone.now()
    token = keys.new_device_token()
    columns = _config_columns(config, device_type)
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(project_id=fleet.project_id, device_id=device_id).first()
        if device is not None and device.revoked_at is not None:
            raise DeviceRevoked(device_id)
        if device is None:
            device = Device.objects.create(
                project_id=fleet.project_id, device_id=device_id, token_hash=keys.hash_token(token), enrolled_at=now,
                **columns,
            )
            _server_event(device, DeviceEvent.Type.ENROLLED, now, f"enrolled as {device_type.slug}").save()
        else:
            void_token(project_id=device.project_id, token_hash=device.token_hash, now=now)
            for name, value in columns.items():
                setattr(device, name, value)
            device.token_hash = keys.hash_token(token)
            device.delivery_digest = ""
            device.save()
            _server_event(device, DeviceEvent.Type.ENROLLED, now,
                          "enrolled again: the previous token no longer works").save()
    return device, token


# -- check-in --------------------------------------------------------------------------------------------------


@dataclass
class CheckinAnswer:
    """The resolved answer; ``etag`` is computed without download URLs, which ``body`` adds."""

    stable: dict[str, Any]
    etag: str

    def body(self, *, device_id: str, now: datetime, ttl_s: int) -> dict[str, Any]:
        expires_at = int(now.timestamp()) + ttl_s
        secret = keys.download_secret()
        body = {**self.stable, "models": dict(self.stable["models"])}
        for name, entry in body["models"].items():
            if entry.get("manifest"):
                manifest = with_download_url(entry["manifest"], secret=secret, device_id=device_id,
                                             expires_at=expires_at)
                body["models"][name] = {**entry, "manifest": manifest}
        return body


def _config_changes(device: Device, columns: dict[str, Any]) -> list[str]:
    changes = []
    for name, value in columns.items():
        if name in ("config", "fingerprint"):
            continue
        old = getattr(device, name)
        if name == "device_type":
            old, value = old.slug, value.slug
        if old != value:
            changes.append(f"{name} {old!r} -> {value!r}" if name != "attributes" else "attributes changed")
    return changes


def apply_config(*, device: Device, config: dict[str, Any], device_type: DeviceType, now: datetime) -> None:
    """Take a configuration the device sent at check-in; records what changed in its history."""
    columns = _config_columns(config, device_type)
    with transaction.atomic():
        stored = Device.objects.select_for_update().select_related("device_type").get(pk=device.pk)
        if stored.fingerprint == config["fingerprint"] and stored.config == config["raw"]:
            return
        changes = _config_changes(stored, columns)
        Device.objects.filter(pk=device.pk).update(**columns)
        _server_event(device, DeviceEvent.Type.CONFIG_CHANGED, now, "; ".join(changes) or "configuration resent").save()
    for name, value in columns.items():
        setattr(device, name, value)


def device_facts(device: Device) -> DeviceFacts:
    return DeviceFacts(
        device_id=device.device_id, device_type_id=device.device_type_id, device_type=device.device_type.slug,
        region=device.region, app_version=device.app_version, attributes=device.attributes,
    )


def checkin(
    *, device: Device, fleet: FleetSettings, models: list[str], installed: dict[str, dict[str, Any]],
    now: datetime | None = None,
) -> CheckinAnswer:
    """Resolve every model the device asks for, remember desired vs installed, and build the answer.

    Reads the cached plans of the fleet's current generation; writes only when the resolution, the installed
    report or what decides the answer (``inputs_key``) changed since the last check-in.
    """
    now = now or timezone.now()
    plans = model_plans(device.project_id, fleet.plan_generation, models)
    stable, states = resolve_checkin(device=device, fleet=fleet, plans=plans, models=models, installed=installed)
    etag = answer_etag(stable)
    inputs = inputs_key(device=device, fleet=fleet, models=models, installed=installed)
    _remember_states(device, states, now, delivery_digest(states, inputs=inputs, etag=etag))
    presence.note_seen(device.pk, now, device.last_seen_at)
    return CheckinAnswer(stable=stable, etag=etag)


def resolve_checkin(
    *, device: Device, fleet: FleetSettings, plans: dict[str, ModelPlan | None], models: list[str],
    installed: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer without download URLs and the state rows to remember; reads nothing but the signing key
    (once per version and plan)."""
    facts = device_facts(device)
    entries: dict[str, dict[str, Any]] = {}
    states: list[dict[str, Any]] = []
    for name in models:
        plan = plans[name]
        if plan is None:
            entries[name] = {"status": "none", "reason": f"this project has no model named {name}", "manifest": None}
            continue
        report = installed.get(name)
        installed_id = report["version_id"] if report and report["version_id"] in plan.versions else None
        outcome = resolve_model(plan, facts, installed_version_id=installed_id)
        manifest = None
        if outcome.version_id is not None:
            manifest = signed_manifest(plan, plan.versions[outcome.version_id],
                                       lambda: keys.decrypt_private_key(fleet.signing_key_encrypted))
        entries[name] = {"status": outcome.status, "reason": outcome.reason, "manifest": manifest}
        states.append(state_row(plan, outcome, report))
    stable = {"checkin_interval_s": device.checkin_interval_s or fleet.checkin_interval_s, "models": entries}
    return stable, states


def inputs_key(*, device: Device, fleet: FleetSettings, models: list[str], installed: dict[str, dict[str, Any]]
               ) -> str:
    """A digest of everything the answer and the state rows are a function of: the plans of the project's
    generation (bumped on any change to rules, default versions, versions, compatibility rows or device
    types, see devices.signals), the device's configuration and interval, and the request's models and
    installed report."""
    key = [fleet.plan_generation, device.fingerprint, device.device_type_id,
           device.checkin_interval_s or fleet.checkin_interval_s, models, installed]
    return hashlib.sha256(canonical_json(key)).hexdigest()[:20]


def steady_checkin(*, device: Device, fleet: FleetSettings, models: list[str], installed: dict[str, dict[str, Any]],
                   if_none_match: str, now: datetime) -> str | None:
    """The ETag to answer 304 with when the last check-in had the same inputs and the device's If-None-Match
    holds that answer's ETag: nothing to resolve, sign or write (the device is noted as seen). Else None."""
    stored = device.delivery_digest
    if len(stored) != 64 or stored[20:40] != inputs_key(device=device, fleet=fleet, models=models,
                                                        installed=installed):
        return None
    etag = f'"{stored[40:]}"'
    if not etag_matches(if_none_match, etag):
        return None
    presence.note_seen(device.pk, now, device.last_seen_at)
    return etag


def state_row(plan: ModelPlan, outcome: Outcome, report: dict[str, Any] | None) -> dict[str, Any]:
    """What a check-in remembers about one model: desired (resolved) and installed (reported)."""
    installed_id = report["version_id"] if report else None
    return {
        "model_id": plan.model_id,
        "desired_version_id": outcome.version_id,
        "status": outcome.status,
        "resolution": outcome.resolution,
        "reason": outcome.reason[:500],
        # A version id the device reports that is not of this model is kept as its sha256 only.
        "installed_version_id": installed_id if installed_id in plan.versions else None,
        "installed_sha256": report["sha256"] if report else "",
        "installed_state": report["state"] if report else "",
    }


def delivery_digest(rows: list[dict[str, Any]], *, inputs: str, etag: str) -> str:
    """What the device row keeps of its last check-in, in 64 characters: a digest of the state rows (so an
    unchanged check-in writes nothing), its ``inputs_key`` and its ETag (so the next check-in with the same
    inputs can answer 304 at once, see ``steady_checkin``)."""
    return hashlib.sha256(canonical_json(rows)).hexdigest()[:20] + inputs + etag.strip('"')


def _remember_states(device: Device, rows: list[dict[str, Any]], now: datetime, digest: str) -> None:
    if digest == device.delivery_digest:
        return  # the usual case: nothing changed since the last check-in
    if digest[:20] == device.delivery_digest[:20]:  # same rows, new inputs (e.g. a plan change elsewhere)
        Device.objects.filter(pk=device.pk).update(delivery_digest=digest)
        device.delivery_digest = digest
        return
    created, changed, history = [], [], []
    with transaction.atomic():
        existing = {state.model_id: state for state in DeviceModelState.objects.select_for_update()
                    .filter(device=device, model_id__in=[row["model_id"] for row in rows])}
        for row in rows:
            state = existing.get(row["model_id"])
            if state is None or (state.desired_version_id, state.status) != (row["desired_version_id"], row["status"]):
                history.append(_server_event(device, DeviceEvent.Type.ASSIGNMENT_CHANGED, now, row["reason"],
                                             model_id=row["model_id"], version_id=row["desired_version_id"],
                                             reported_version_id=row["desired_version_id"]))
            if state is None:
                created.append(DeviceModelState(device=device, resolved_at=now, **row))
            elif any(getattr(state, name) != value for name, value in row.items()):
                for name, value in row.items():
                    setattr(state, name, value)
                state.resolved_at = now
                changed.append(state)
        DeviceModelState.objects.bulk_create(created)
        if changed:
            DeviceModelState.objects.bulk_update(changed, [*rows[0].keys(), "resolved_at"])
        DeviceEvent.objects.bulk_create(history)
        Device.objects.filter(pk=device.pk).update(delivery_digest=digest)
    device.delivery_digest = digest


# -- events ----------------------------------------------------------------------------------------------------


def record_events(*, device: Device, events: list[dict[str, Any]], now: datetime | None = None) -> tuple[int, int]:
    """Store a batch of device events and count them into the daily rollups; returns (accepted, duplicates).

    An event id already stored for this device (a batch resent because its answer was lost) is a duplicate
    and is counted nowhere. Batches of one device are serialized by a lock on its row, so two copies of the
    same batch arriving together cannot both be counted.
    """
    now = now or timezone.now()
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=device.pk).values_list("pk", flat=True).first()
        ids = [event["id"] for event in events]
        known = set(DeviceEvent.objects.filter(device=device, event_id__in=ids).values_list("event_id", flat=True))
        fresh: list[dict[str, Any]] = []
        for event in events:
            if event["id"] not in known:
                known.add(event["id"])
                fresh.append(event)
        models = dict(Model.objects.filter(project_id=device.project_id, name__in={e["model"] for e in fresh})
                      .values_list("name", "id"))
        versions = dict(ModelVersion.objects.filter(
            model__project_id=device.project_id, pk__in={e["version_id"] for e in fresh if e["version_id"]},
        ).values_list("pk", "model_id"))
        rows = []
        for event in fresh:
            model_id = models.get(event["model"])
            version_id = event["version_id"] if versions.get(event["version_id"]) == model_id else None
            rows.append(DeviceEvent(
                project_id=device.project_id, device=device, event_id=event["id"], type=event["type"],
                model_id=model_id, version_id=version_id, reported_version_id=event["version_id"],
                at=min(event["at"], now), received_at=now, reason=event["reason"], stats=event["stats"],
            ))
        DeviceEvent.objects.bulk_create(rows)
        rollups.count_events(device, rows)
    return len(fresh), len(events) - len(fresh)


# -- fleet management ------------------------------------------------------------------------------------------


def revoke_device(*, device: Device, user=None, now: datetime | None = None) -> Device:
    """The device's token stops working at once; its history stays."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = Device.objects.filter(pk=device.pk, revoked_at=None).update(revoked_at=now)
        if changed:
            token_hash = Device.objects.filter(pk=device.pk).values_list("token_hash", flat=True).get()
            void_token(project_id=device.project_id, token_hash=token_hash, now=now)
            who = f" by {user.get_username()}" if user is not None else ""
            _server_event(device, DeviceEvent.Type.REVOKED, now, f"revoked{who}").save()
    device.refresh_from_db()
    return device


def void_token(*, project_id: int, token_hash: str, now: datetime) -> None:
    """Refuse this token on the ticket path too (devices.tickets); prunes rows no ticket can need anymore."""
    VoidedToken.objects.create(project_id=project_id, token_hash=token_hash, voided_at=now)
    keep = timedelta(seconds=conf.checkin_ticket_ttl_s()) + timedelta(days=1)  # margin for a TTL raised later
    VoidedToken.objects.filter(project_id=project_id, voided_at__lt=now - keep).delete()
    forget_ticket_states()


def set_device_checkin_interval(*, device: Device, seconds: int | None) -> Device:
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).update(checkin_interval_s=seconds)
        bump_plan_generation(project_id=device.project_id)  # the device's check-in tickets must not hold
    device.checkin_interval_s = seconds
    return device


# -- rules -----------------------------------------------------------------------------------------------------
# Saving or deleting a rule starts a new plan generation through devices.signals.


def create_rule(
    *, model: Model, version: ModelVersion, conditions: dict[str, Any] | None = None, priority: int = 100,
    description: str = "", user=None,
) -> TargetingRule:
    with transaction.atomic():
        return TargetingRule.objects.create(
            model=model, version=version, conditions=conditions or {}, priority=priority, description=description,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )


def update_rule(*, rule: TargetingRule, **changes: Any) -> TargetingRule:
    with transaction.atomic():
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.save()
    return rule


def delete_rule(*, rule: TargetingRule) -> None:
    with transaction.atomic():
        rule.delete()


def set_default_version(*, model: Model, version: ModelVersion | None) -> Model:
    with transaction.atomic():
        model.default_version = version
        model.save(update_fields=["default_version"])
    return model

