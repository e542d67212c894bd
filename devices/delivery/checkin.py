"""The check-in: ``answer_checkin`` answers a valid check-in body in the cheapest way that is still true.

1. **Ticket**: If-None-Match holds a check-in ticket (devices.core.tickets) issued to this token for this very
   request under the project's current plan generation: ``304`` without reading the database.
2. **Steady**: the device row (one query, ``auth.device_for_token``) says its last check-in had the same
   inputs (``_inputs_key``) and was answered with the ETag in If-None-Match: ``304`` with nothing resolved,
   signed or written.
3. **Full**: every model is resolved from the cached plans (devices.delivery.cache), desired vs installed is
   remembered when it changed, and the answer is ``200`` (``304`` when only the inputs changed, not the answer).

HTTP is devices.delivery.api's: it parses the body, supplies the throttle (``admit``) and renders the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import status

from devices import conf
from devices.core import tickets
from devices.core.manifests import answer_etag, etag_matches, signed_manifest, with_download_url
from devices.core.resolution import DeviceFacts, ModelPlan, Outcome, resolve_model
from devices.core.signing import canonical_json
from devices.delivery import cache, presence
from devices.delivery.auth import DeviceRecord, DeviceTokenAuthentication, TicketHolder, device_for_token
from devices.fleet import keys
from devices.models import Device, DeviceEvent, DeviceModelState, FleetSettings
from devices.telemetry import delivery_counts
from devices.telemetry.events import server_event

NEED_CONFIG = {
    "detail": "The server does not know this configuration fingerprint; send the config.",
    "need_config": True,
}


@dataclass(frozen=True)
class CheckinRequest:
    """A valid check-in body (its config, if any, already taken) and the request's If-None-Match."""

    fingerprint: str
    models: list[str]
    installed: dict[str, dict[str, Any]]
    if_none_match: str = ""
    config_sent: bool = False

    @classmethod
    def of(cls, data: dict[str, Any], if_none_match: str = "") -> CheckinRequest:
        """From validated data (``serializers.common_checkin`` or ``CheckinSerializer``)."""
        return cls(
            fingerprint=data["fingerprint"],
            models=data["models"],
            installed=data["installed"],
            if_none_match=if_none_match,
            config_sent=data.get("config") is not None,
        )


@dataclass(frozen=True)
class CheckinResult:
    """What to answer: ``status`` (200, 304 or 409), ``body`` (None for a 304) and ``headers`` (the ETag).
    ``device`` is who checked in: its record, or on the ticket path the device the ticket stands for."""

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    device: DeviceRecord | TicketHolder | None = None


def _admit_all(device: DeviceRecord | TicketHolder) -> None:
    return None


def answer_checkin(
    checkin: CheckinRequest,
    *,
    token: str,
    now: datetime | None = None,
    admit: Callable[[DeviceRecord | TicketHolder], None] = _admit_all,
    device: DeviceRecord | None = None,
) -> CheckinResult:
    """The answer to ``checkin`` from the holder of ``token``: from its ticket, from its row, or resolved in full.

    ``admit`` is called with the device as soon as it is known, before anything is resolved or written: the
    caller's throttle, which raises to refuse. ``device`` is the token's record when the caller has looked it
    up already (DRF authenticated and throttled the request); then no ticket is tried. A check-in that sent
    a config is never answered from a ticket either: it was just recorded, so its row is looked up again.
    An unknown or revoked token raises AuthenticationFailed (a ticket is no credential without its token).
    """
    now = now or timezone.now()
    if device is None:
        if not checkin.config_sent:
            found = _ticket(checkin, token, now)
            if found is not None:  # the answer is unchanged, and no row was read to know it
                holder, ticket_etag = found
                admit(holder)
                presence.note_seen(holder.pk, now)
                return CheckinResult(status.HTTP_304_NOT_MODIFIED, None, {"ETag": ticket_etag}, holder)
        device = device_for_token(token)
        if device is None or device.is_revoked:
            DeviceTokenAuthentication.refuse(device)
        admit(device)
    if not checkin.config_sent and checkin.fingerprint != device.fingerprint:
        return CheckinResult(status.HTTP_409_CONFLICT, NEED_CONFIG, {}, device)
    etag = _steady_etag(device, checkin)
    if etag is not None:  # nothing resolved, signed or written
        presence.note_seen(device.pk, now, device.last_seen_at)
        return CheckinResult(status.HTTP_304_NOT_MODIFIED, None, {"ETag": ticketed(device, checkin, etag, now)}, device)
    answer = _resolve_and_remember(device, checkin, now)
    presence.note_seen(device.pk, now, device.last_seen_at)
    headers = {"ETag": ticketed(device, checkin, answer.etag, now)}
    if etag_matches(checkin.if_none_match, answer.etag):  # something changed, but not the answer
        return CheckinResult(status.HTTP_304_NOT_MODIFIED, None, headers, device)
    body = answer.body(device_id=device.device_id, now=now, ttl_s=conf.download_token_ttl_s())
    return CheckinResult(status.HTTP_200_OK, body, headers, device)


# -- 1. the ticket ----------------------------------------------------------------------------------------


def _ticket(checkin: CheckinRequest, token: str, now: datetime) -> tuple[TicketHolder, str] | None:
    """The device of a ticket in If-None-Match that is valid for this token and request, and the ticket (as
    the ETag to answer with). None: the database must answer."""
    found = tickets.parse(checkin.if_none_match)
    if not found:
        return None
    token_hash = keys.hash_token(token)
    for ticket in found:
        state = cache.ticket_state(ticket.project_id)
        if state is None or token_hash in state.voided:  # a revoked or replaced token: the row path says 401
            continue
        key = tickets.request_key(
            generation=state.generation,
            fingerprint=checkin.fingerprint,
            models=checkin.models,
            installed=checkin.installed,
        )
        if tickets.is_valid(
            keys.checkin_ticket_secret(),
            ticket,
            token_hash=token_hash,
            key=key,
            now=int(now.timestamp()),
            ttl_s=conf.checkin_ticket_ttl_s(),
        ):
            return TicketHolder(pk=ticket.device_pk, project_id=ticket.project_id), ticket.etag
    return None


def ticketed(device: DeviceRecord, checkin: CheckinRequest, answer_etag: str, now: datetime) -> str:
    """The ETag to send for ``answer_etag``: a check-in ticket that lets this device's next check-in with the
    same request be answered without the database (devices.core.tickets)."""
    key = tickets.request_key(
        generation=device.plan_generation,
        fingerprint=checkin.fingerprint,
        models=checkin.models,
        installed=checkin.installed,
    )
    return tickets.issue(
        keys.checkin_ticket_secret(),
        answer=answer_etag,
        project_id=device.project_id,
        device_pk=device.pk,
        token_hash=device.token_hash,
        key=key,
        now=int(now.timestamp()),
    )


# -- 2. the device row ------------------------------------------------------------------------------------


def _inputs_key(device: DeviceRecord, checkin: CheckinRequest) -> str:
    """A digest of everything the answer and the state rows are a function of: the plans of the project's
    generation (a new one on any change to what resolution reads, see devices.signals), the device's
    configuration and interval, and the request's models and installed report."""
    key = [
        device.plan_generation,
        device.fingerprint,
        device.device_type_id,
        device.checkin_interval_s,
        checkin.models,
        checkin.installed,
    ]
    return hashlib.sha256(canonical_json(key)).hexdigest()[:20]


def _steady_etag(device: DeviceRecord, checkin: CheckinRequest) -> str | None:
    """The ETag to answer 304 with when the last check-in had the same inputs and If-None-Match holds that
    answer's ETag; else None."""
    stored = device.delivery_digest
    if len(stored) != 64 or stored[20:40] != _inputs_key(device, checkin):
        return None
    etag = f'"{stored[40:]}"'
    return etag if etag_matches(checkin.if_none_match, etag) else None


def _delivery_digest(rows: list[dict[str, Any]], *, inputs: str, etag: str) -> str:
    """What the device row keeps of its last check-in, in 64 characters: a digest of the state rows (so an
    unchanged check-in writes nothing), its inputs key and its ETag (so the next check-in with the same
    inputs can answer 304 at once, see ``_steady_etag``)."""
    return hashlib.sha256(canonical_json(rows)).hexdigest()[:20] + inputs + etag.strip('"')


# -- 3. in full -------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    """The resolved answer; ``etag`` is computed without download URLs, which ``body`` adds."""

    stable: dict[str, Any]
    etag: str
    digest: str  # what the device row keeps of it (``_delivery_digest``)
    states: list[dict[str, Any]]

    def body(self, *, device_id: str, now: datetime, ttl_s: int) -> dict[str, Any]:
        expires_at = int(now.timestamp()) + ttl_s
        secret = keys.download_secret()
        body = {**self.stable, "models": dict(self.stable["models"])}
        for name, entry in body["models"].items():
            if entry.get("manifest"):
                manifest = with_download_url(
                    entry["manifest"], secret=secret, device_id=device_id, expires_at=expires_at
                )
                body["models"][name] = {**entry, "manifest": manifest}
        return body


def _resolve(device: DeviceRecord, checkin: CheckinRequest, plans: dict[str, ModelPlan | None]) -> _Answer:
    """The answer without download URLs and the state rows to remember; reads nothing but the signing key
    (once per version and plan)."""
    facts = DeviceFacts(
        device_id=device.device_id,
        device_type_id=device.device_type_id,
        device_type=device.device_type_slug,
        region=device.region,
        app_version=device.app_version,
        attributes=device.attributes,
    )
    entries: dict[str, dict[str, Any]] = {}
    states: list[dict[str, Any]] = []
    for name in checkin.models:
        plan = plans[name]
        if plan is None:
            entries[name] = {"status": "none", "reason": f"this project has no model named {name}", "manifest": None}
            continue
        report = checkin.installed.get(name)
        installed_id = report["version_id"] if report and report["version_id"] in plan.versions else None
        outcome = resolve_model(plan, facts, installed_version_id=installed_id)
        manifest = None
        if outcome.version_id is not None:
            manifest = signed_manifest(plan, plan.versions[outcome.version_id], lambda: _signing_key(device))
        entries[name] = {"status": outcome.status, "reason": outcome.reason, "manifest": manifest}
        if outcome.decision is not None and outcome.decision.retry_generation and manifest is not None:
            entries[name]["retry"] = outcome.decision.retry_generation  # the agent drops its back-off once
        states.append(_state_row(plan, outcome, report))
    stable = {"checkin_interval_s": device.checkin_interval_s, "models": entries}
    etag = answer_etag(stable)
    digest = _delivery_digest(states, inputs=_inputs_key(device, checkin), etag=etag)
    return _Answer(stable=stable, etag=etag, digest=digest, states=states)


def _signing_key(device: DeviceRecord) -> bytes:
    return keys.decrypt_private_key(
        FleetSettings.objects.filter(pk=device.fleet_id).values_list("signing_key_encrypted", flat=True).get()
    )


def _state_row(plan: ModelPlan, outcome: Outcome, report: dict[str, Any] | None) -> dict[str, Any]:
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


def _resolve_and_remember(device: DeviceRecord, checkin: CheckinRequest, now: datetime) -> _Answer:
    """Resolve from the cached plans of the device's generation and remember desired vs installed; writes only
    when the resolution, the installed report or the inputs changed since the last check-in."""
    answer = _resolve(device, checkin, cache.model_plans(device.project_id, device.plan_generation, checkin.models))
    _remember_states(device, answer.states, now, answer.digest)
    return answer


def _remember_states(device: DeviceRecord, rows: list[dict[str, Any]], now: datetime, digest: str) -> None:
    if digest == device.delivery_digest:
        return  # the usual case: nothing changed since the last check-in
    if digest[:20] == device.delivery_digest[:20]:  # same rows, new inputs (e.g. a plan change elsewhere)
        Device.objects.filter(pk=device.pk).update(delivery_digest=digest)
        return
    created, changed, history = [], [], []
    with transaction.atomic():
        existing = {
            state.model_id: state
            for state in DeviceModelState.objects.select_for_update().filter(
                device_id=device.pk, model_id__in=[row["model_id"] for row in rows]
            )
        }
        for row in rows:
            state = existing.get(row["model_id"])
            if state is None or (state.desired_version_id, state.status) != (row["desired_version_id"], row["status"]):
                history.append(
                    server_event(
                        device,
                        DeviceEvent.Type.ASSIGNMENT_CHANGED,
                        now,
                        row["reason"],
                        model_id=row["model_id"],
                        version_id=row["desired_version_id"],
                        reported_version_id=row["desired_version_id"],
                    )
                )
            if state is None:
                created.append(DeviceModelState(device_id=device.pk, resolved_at=now, **row))
            elif any(getattr(state, name) != value for name, value in row.items()):
                for name, value in row.items():
                    setattr(state, name, value)
                state.resolved_at = now
                changed.append(state)
        DeviceModelState.objects.bulk_create(created)
        if changed:
            DeviceModelState.objects.bulk_update(changed, [*rows[0].keys(), "resolved_at"])
        DeviceEvent.objects.bulk_create(history)
        delivery_counts.count_delivery(device, history)  # assignments are the dashboards' offers
        Device.objects.filter(pk=device.pk).update(delivery_digest=digest)


# -- seeding ----------------------------------------------------------------------------------------------


def settled_state(
    device: DeviceRecord, checkin: CheckinRequest, plans: dict[str, ModelPlan | None]
) -> tuple[str, str, list[dict[str, Any]]]:
    """(delivery digest, answer ETag, state rows) of ``device`` once it checked in with ``checkin`` under
    ``plans``: what to store to put a fleet in its steady state without checking each device in (bench)."""
    answer = _resolve(device, checkin, plans)
    return answer.digest, answer.etag, answer.states


def record_of(device: Device, fleet: FleetSettings) -> DeviceRecord:
    """The record of a device row at hand (the demo fleet and the bench have the row, not the token)."""
    return DeviceRecord(
        pk=device.pk,
        project_id=device.project_id,
        device_id=device.device_id,
        token_hash=device.token_hash,
        device_type_id=device.device_type_id,
        device_type_slug=device.device_type.slug,
        region=device.region,
        app_version=device.app_version,
        attributes=device.attributes,
        fingerprint=device.fingerprint,
        own_checkin_interval_s=device.checkin_interval_s,
        delivery_digest=device.delivery_digest,
        last_seen_at=device.last_seen_at,
        revoked_at=device.revoked_at,
        fleet_id=fleet.pk,
        plan_generation=fleet.plan_generation,
        project_checkin_interval_s=fleet.checkin_interval_s,
    )
