"""State changes of projects and their members."""

from __future__ import annotations

from django.db import transaction

from console.models import Membership, Project
from console.projects import roles


def create_project(*, slug: str, name: str, owner, description: str = "") -> Project:
    with transaction.atomic():
        project = Project.objects.create(slug=slug, name=name, description=description)
        Membership.objects.create(project=project, user=owner, role=roles.OWNER)
    return project


def set_member(*, project: Project, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def remove_member(*, membership: Membership) -> None:
    """Remove a member, refusing to leave the project without an owner."""
    with transaction.atomic():
        owners = Membership.objects.select_for_update().filter(project=membership.project, role=roles.OWNER)
        if membership.role == roles.OWNER and owners.count() <= 1:
            raise ValueError("A project keeps at least one owner; make someone else owner first.")
        membership.delete()
