"""State changes of device types, and the one place their slug rules live.

A project sees the built-in catalog plus its own types under one namespace of slugs (DeviceType.objects
.visible_to), so a slug names one type for a project only if:

- built-in slugs are unique (also a database constraint);
- a project's own slugs are unique within the project (also a database constraint);
- a project's own slug never equals a built-in slug, whichever came first. No constraint can say this, so the
  check runs under a per-slug lock: two requests claiming one slug at once (a project's type and a new built-in,
  say) take turns, and the second sees the first.

Adding a device type, or changing a field the compatibility check reads, deletes its compatibility rows in the
same transaction and queues a re-check of the ready versions concerned (console.jobkinds.recheck): until the job
has written new rows, delivery treats those pairs as never checked.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q

from console.errors import AlreadyExists
from console.jobkinds.recheck import forget_and_recheck
from devices.models import DeviceType

# First key of the PostgreSQL advisory lock taken per slug; the second is the slug's hash.
_SLUG_LOCK_SPACE = 0x64747970  # "dtyp"


def create_device_type(*, project, slug: str, **fields: Any) -> DeviceType:
    """A new device type: ``project``'s own, or a built-in when ``project`` is None (callers let only staff do
    that). ``fields`` are the other model fields, already validated. AlreadyExists when the slug is taken."""
    return save_device_type(DeviceType(project=project, slug=slug, **fields))


def update_device_type(*, device_type: DeviceType, **changes: Any) -> DeviceType:
    """Change fields of ``device_type`` (a rename included); AlreadyExists when a new slug is taken."""
    for name, value in changes.items():
        setattr(device_type, name, value)
    return save_device_type(device_type)


def save_device_type(device_type: DeviceType) -> DeviceType:
    """Save ``device_type`` as its fields now say, new or changed (the admin's form fills the instance itself);
    AlreadyExists when its slug is taken."""
    try:
        with transaction.atomic():
            _lock_slug(device_type.slug)
            clash = _clash(device_type)
            if clash is not None:
                raise AlreadyExists(_taken_message(device_type, clash))
            # Locked: a concurrent edit saves after this one and compares with what this one wrote.
            before = (
                DeviceType.objects.select_for_update(no_key=True).filter(pk=device_type.pk).first()
                if device_type.pk
                else None
            )
            device_type.save()
            if before is None or _checked_profile(before) != _checked_profile(device_type):
                forget_and_recheck(device_type)
    except IntegrityError as exc:  # a unique constraint caught what the check could not see
        clash = _clash(device_type)
        if clash is not None:
            raise AlreadyExists(_taken_message(device_type, clash)) from exc
        raise
    return device_type


def slug_taken(device_type: DeviceType) -> str | None:
    """Why ``device_type``'s slug may not be saved, or None: for a form to show next to the field. Advisory
    only (no lock): ``save_device_type`` checks again under the lock."""
    clash = _clash(device_type)
    return None if clash is None else _taken_message(device_type, clash)


def _checked_profile(device_type: DeviceType) -> dict:
    """What the compatibility check reads of a device type: its profile less the words that only label it."""
    profile = device_type.profile()
    for label in ("slug", "name"):
        profile.pop(label)
    return profile


def _lock_slug(slug: str) -> None:
    """Serialize every claim on ``slug`` until the transaction ends. SQLite needs none: its IMMEDIATE
    transactions (console/settings.py) already run one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_SLUG_LOCK_SPACE, slug])


def _clash(device_type: DeviceType) -> DeviceType | None:
    """Another device type whose slug ``device_type`` may not share: for a built-in, any type anywhere (a
    project that already has the slug would see two); for a project's type, a built-in or its project's own."""
    others = DeviceType.objects.filter(slug=device_type.slug).exclude(pk=device_type.pk)
    if device_type.project_id is not None:
        others = others.filter(Q(project=None) | Q(project=device_type.project_id))
    return others.order_by(F("project").asc(nulls_first=True)).first()  # a built-in first: the name people know


def _taken_message(device_type: DeviceType, clash: DeviceType) -> str:
    slug = device_type.slug
    if clash.project_id is None:
        return f"The built-in device type {slug!r} already has that slug; pick another slug."
    if clash.project_id == device_type.project_id:
        return f"This project already has a device type {slug!r}; pick another slug."
    return (
        f"A project has its own device type {slug!r}, and its devices would see two types under one slug; "
        "pick another slug for the built-in."
    )
