"""The check-in: one entry point that answers from a ticket, from the device row, or resolves in full."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import status

from devices import conf
from devices.core import tickets
from devices.core.manifests import answer_etag, etag_matches, signed_manifest, with_download_url
from devices.core.resolution import DeviceFacts, ModelPlan, Outcome, resolve_model
from devices.core.signing import canonical_json
from devices.delivery import cache as plans
from devices.delivery import checkin as delivery_checkin
from devices.delivery import presence
from devices.delivery.auth import (
    TicketHolder,
)
from devices.delivery.cache import model_plans
from devices.fleet import keys
from devices.models import Device, DeviceEvent, DeviceModelState, FleetSettings
from devices.telemetry.events import server_event


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
                history.append(server_event(device, DeviceEvent.Type.ASSIGNMENT_CHANGED, now, row["reason"],
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


NEED_CONFIG = {"detail": "The server does not know this configuration fingerprint; send the config.",
               "need_config": True}


def ticketed(device, data: dict, answer_etag: str, now) -> str:
    """The ETag to send for ``answer_etag``: a check-in ticket that lets this device's next check-in with the
    same request be answered without the database (see devices.tickets)."""
    key = tickets.request_key(generation=device.fleet.plan_generation, fingerprint=data["fingerprint"],
                              models=data["models"], installed=data["installed"])
    return tickets.issue(keys.checkin_ticket_secret(), answer=answer_etag, project_id=device.project_id,
                         device_pk=device.pk, token_hash=device.token_hash, key=key, now=int(now.timestamp()))


def checkin_answer(device, data: dict, if_none_match: str, now) -> tuple[int, dict | None, dict[str, str]]:
    """(status, body, headers) of a valid check-in whose config, if any, is taken: 409, 304 or 200."""
    if data.get("config") is None and data["fingerprint"] != device.fingerprint:
        return status.HTTP_409_CONFLICT, NEED_CONFIG, {}
    fleet = device.fleet
    etag = delivery_checkin.steady_checkin(device=device, fleet=fleet, models=data["models"], installed=data["installed"],
                                   if_none_match=if_none_match, now=now)
    if etag is not None:  # nothing resolved, signed or written
        return status.HTTP_304_NOT_MODIFIED, None, {"ETag": ticketed(device, data, etag, now)}
    answer = delivery_checkin.checkin(device=device, fleet=fleet, models=data["models"], installed=data["installed"], now=now)
    headers = {"ETag": ticketed(device, data, answer.etag, now)}
    if etag_matches(if_none_match, answer.etag):  # something changed, but not the answer
        return status.HTTP_304_NOT_MODIFIED, None, headers
    body = answer.body(device_id=device.device_id, now=now, ttl_s=conf.download_token_ttl_s())
    return status.HTTP_200_OK, body, headers


def ticket_checkin(request: HttpRequest, data: dict, raw_token: str) -> tuple[TicketHolder, str] | None:
    """The device of a check-in whose If-None-Match holds a valid ticket for this token and request: its
    answer is unchanged and it gets 304 (with that ticket as ETag) without its row being read. None: the
    database must answer."""
    found = tickets.parse(request.META.get("HTTP_IF_NONE_MATCH", ""))
    if not found:
        return None
    token_hash = keys.hash_token(raw_token)
    now = int(time.time())
    for ticket in found:
        state = plans.ticket_state(ticket.project_id)
        if state is None or token_hash in state.voided:  # a revoked or replaced token: the row path says 401
            continue
        key = tickets.request_key(generation=state.generation, fingerprint=data["fingerprint"],
                                  models=data["models"], installed=data["installed"])
        if tickets.is_valid(keys.checkin_ticket_secret(), ticket, token_hash=token_hash, key=key, now=now,
                            ttl_s=conf.checkin_ticket_ttl_s()):
            return TicketHolder(pk=ticket.device_pk, project_id=ticket.project_id), ticket.etag
    return None
