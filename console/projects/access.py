"""The one place where project membership scopes every lookup.

Views never fetch a project-owned object by bare primary key: they go through
these helpers, which answer 404 to outsiders (so existence does not leak) and
403 to members whose role does not allow the action.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from console.models import Membership, Model, ModelVersion, Project
from console.projects import roles

ACTION_WORDS = {
    roles.CHANGE: "change this project (upload, create models, start jobs)",
    roles.APPROVE: "approve in this project",
    roles.MANAGE: "manage this project's members and settings",
}


def membership_for(user, project_slug: str) -> Membership:
    if not user.is_authenticated:
        raise Http404("No such project.")
    membership = Membership.objects.select_related("project").filter(user=user, project__slug=project_slug).first()
    if membership is None:
        raise Http404("No such project.")
    return membership


def project_for(user, project_slug: str, action: str = roles.VIEW) -> tuple[Project, Membership]:
    membership = membership_for(user, project_slug)
    if not roles.role_allows(membership.role, action):
        raise PermissionDenied(
            f"Your role in {membership.project.slug} is {membership.role}; it may not {ACTION_WORDS.get(action, action)}."
        )
    return membership.project, membership


def model_for(user, project_slug: str, model_name: str, action: str = roles.VIEW) -> tuple[Model, Membership]:
    project, membership = project_for(user, project_slug, action)
    return get_object_or_404(Model.objects.select_related("project"), project=project, name=model_name), membership


def version_for(
    user, project_slug: str, model_name: str, number: int, action: str = roles.VIEW
) -> tuple[ModelVersion, Membership]:
    model, membership = model_for(user, project_slug, model_name, action)
    version = get_object_or_404(ModelVersion.objects.select_related("model__project", "parent"), model=model, number=number)
    return version, membership


def can(membership: Membership, action: str) -> bool:
    return roles.role_allows(membership.role, action)
