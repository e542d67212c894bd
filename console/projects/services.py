"""State changes of projects and their members."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from console.errors import AlreadyExists, Refused
from console.models import Membership, Project
from console.projects import roles


def create_project(*, slug: str, name: str, owner, description: str = "") -> Project:
    """A new project with ``owner`` as its owner; AlreadyExists when the slug is taken, even by a request that
    checked at the same moment (the unique constraint decides)."""
    try:
        with transaction.atomic():
            project = Project.objects.create(slug=slug, name=name, description=description)
            Membership.objects.create(project=project, user=owner, role=roles.OWNER)
    except IntegrityError as exc:
        if Project.objects.filter(slug=slug).exists():
            raise AlreadyExists(f"A project with the slug {slug!r} already exists; pick another slug.") from exc
        raise
    return project


def _refuse_leaving_no_owner(project: Project, user) -> None:
    """Refuse when ``user`` is the project's only owner. Locks the owner rows (in primary-key order), so of two
    owners demoting or removing each other at once, the second sees the first's change and is refused."""
    owners = list(
        Membership.objects.select_for_update()
        .filter(project=project, role=roles.OWNER)
        .order_by("pk")
        .values_list("user_id", flat=True)
    )
    if owners == [user.pk]:
        raise Refused(
            f"A project keeps at least one owner and {user.get_username()} is the last one; "
            "make someone else owner first."
        )


def set_member(*, project: Project, user, role: str) -> Membership:
    """Add ``user`` with ``role`` or change their role; Refused when that would leave the project without an owner."""
    with transaction.atomic():
        if role != roles.OWNER:
            _refuse_leaving_no_owner(project, user)
        membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def remove_member(*, membership: Membership) -> None:
    """Remove a member; Refused when they are the last owner."""
    with transaction.atomic():
        _refuse_leaving_no_owner(membership.project, membership.user)
        Membership.objects.filter(pk=membership.pk).delete()


SETTINGS_FIELDS = ("name", "description", "require_approval")


def update_project_settings(*, project: Project, **changes) -> Project:
    """An owner's change of the project's name, description or ``require_approval`` (see devices.rules.services)."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise Refused(f"cannot change {', '.join(sorted(unknown))} of a project here.")
    with transaction.atomic():
        for name, value in changes.items():
            setattr(project, name, value)
        project.save(update_fields=list(changes) or None)
    return project
