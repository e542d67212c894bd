"""State changes of the fleet: project keys, enrollment, device configuration, revocation, intervals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from console.audit import record_update
from console.models import Project
from devices import conf
from devices.core.signing import generate_keypair
from devices.delivery.cache import invalidate, new_generation
from devices.fleet import keys
from devices.models import Device, DeviceEvent, DeviceType, FleetSettings, VoidedToken
from devices.telemetry.events import server_event

CONFIG_COLUMNS = (
    "runtime",
    "runtime_version",
    "os",
    "cpu_arch",
    "accelerator",
    "memory_mb",
    "region",
    "app_version",
    "attributes",
)


class DeviceRevoked(Exception):
    pass


def fleet_settings_for(project: Project) -> FleetSettings:
    """The project's fleet settings, created with a fresh signing key pair on first use."""
    fleet = FleetSettings.objects.filter(project=project).first()
    if fleet is not None:
        return fleet
    private_pem, public_key = generate_keypair()
    try:
        with transaction.atomic():
            return FleetSettings.objects.create(
                project=project,
                signing_key_encrypted=keys.encrypt_private_key(private_pem),
                public_key=public_key,
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
        # Every answer states the interval: the queryset starts a new plan generation (check-in tickets fail).
        before = FleetSettings.objects.filter(pk=fleet.pk).values_list("checkin_interval_s", flat=True).first()
        FleetSettings.objects.filter(pk=fleet.pk).update(checkin_interval_s=seconds)
        fleet.checkin_interval_s = seconds
        record_update(fleet, {"checkin_interval_s": (before, seconds)})
    return fleet


def fleet_for_enrollment_key(raw: str) -> FleetSettings | None:
    return FleetSettings.objects.select_related("project").filter(enrollment_key_hash=keys.hash_token(raw)).first()


def device_type_for(project_id: int, slug: str) -> DeviceType | None:
    """A built-in device type or one of this project's own (never another project's)."""
    return DeviceType.objects.visible_to(project_id).filter(slug=slug).first()


def config_columns(config: dict[str, Any], device_type: DeviceType) -> dict[str, Any]:
    columns = {name: config[name] for name in CONFIG_COLUMNS}
    columns.update(device_type=device_type, config=config["raw"], fingerprint=config["fingerprint"])
    return columns


def enroll_device(
    *,
    fleet: FleetSettings,
    device_id: str,
    config: dict[str, Any],
    device_type: DeviceType,
    now: datetime | None = None,
) -> tuple[Device, str]:
    """Enroll (or enroll again) ``device_id`` in the fleet's project; returns the device and its new raw token.

    Enrolling an existing device id again issues a new token and the old one stops working. A revoked
    device stays revoked (DeviceRevoked): enrolling again must not undo a revocation. Of two first enrollments
    of one id at once, the one that loses the unique constraint enrolls again over the winner's row, so both
    get a 201 and the later token is the one that works.
    """
    now = now or timezone.now()
    token = keys.new_device_token()
    columns = config_columns(config, device_type)
    enrolled = Device.objects.select_for_update().filter(project_id=fleet.project_id, device_id=device_id)
    with transaction.atomic():
        device = enrolled.first()
        if device is None:
            try:
                with transaction.atomic():  # a savepoint, so the loser of a concurrent first enrollment goes on
                    device = Device.objects.create(
                        project_id=fleet.project_id,
                        device_id=device_id,
                        token_hash=keys.hash_token(token),
                        enrolled_at=now,
                        **columns,
                    )
            except IntegrityError:
                device = enrolled.first()  # the winner's row, committed by now
                if device is None:
                    raise
            else:
                server_event(device, DeviceEvent.Type.ENROLLED, now, f"enrolled as {device_type.slug}").save()
                return device, token
        if device.revoked_at is not None:
            raise DeviceRevoked(device_id)
        else:
            void_token(project_id=device.project_id, token_hash=device.token_hash, now=now)
            for name, value in columns.items():
                setattr(device, name, value)
            device.token_hash = keys.hash_token(token)
            device.delivery_digest = ""
            device.save()
            server_event(
                device, DeviceEvent.Type.ENROLLED, now, "enrolled again: the previous token no longer works"
            ).save()
    return device, token


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
    columns = config_columns(config, device_type)
    with transaction.atomic():
        stored = Device.objects.select_for_update().select_related("device_type").get(pk=device.pk)
        if stored.fingerprint == config["fingerprint"] and stored.config == config["raw"]:
            return
        changes = _config_changes(stored, columns)
        Device.objects.filter(pk=device.pk).update(**columns)
        server_event(device, DeviceEvent.Type.CONFIG_CHANGED, now, "; ".join(changes) or "configuration resent").save()
    for name, value in columns.items():
        setattr(device, name, value)


def revoke_device(*, device: Device, user=None, now: datetime | None = None) -> Device:
    """The device's token stops working at once; its history stays."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = Device.objects.filter(pk=device.pk, revoked_at=None).update(revoked_at=now)
        if changed:
            token_hash = Device.objects.filter(pk=device.pk).values_list("token_hash", flat=True).get()
            void_token(project_id=device.project_id, token_hash=token_hash, now=now)
            who = f" by {user.get_username()}" if user is not None else ""
            server_event(device, DeviceEvent.Type.REVOKED, now, f"revoked{who}").save()
    device.refresh_from_db()
    return device


def void_token(*, project_id: int, token_hash: str, now: datetime) -> None:
    """Refuse this token on the ticket path too (devices.core.tickets); prunes rows no ticket can need anymore."""
    VoidedToken.objects.create(project_id=project_id, token_hash=token_hash, voided_at=now)
    keep = timedelta(seconds=conf.checkin_ticket_ttl_s()) + timedelta(days=1)  # margin for a TTL raised later
    VoidedToken.objects.filter(project_id=project_id, voided_at__lt=now - keep).delete()
    invalidate(project_id, tokens_only=True)


def set_device_checkin_interval(*, device: Device, seconds: int | None) -> Device:
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).update(checkin_interval_s=seconds)
        invalidate(device.project_id)  # the device's check-in tickets must not hold
    device.checkin_interval_s = seconds
    return device
