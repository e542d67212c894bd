"""The one place where project membership scopes every lookup and roles guard every action.

A view declares once what its URL is scoped to (a project, a model, a version or a device) and, where it
differs from the default, the role action each HTTP method needs:

    class RuleList(ScopedMixin, generics.ListCreateAPIView):
        scope = MODEL
        queryset = TargetingRule.objects.select_related("version")   # filtered to the model of the URL

    @scoped_page(PROJECT, required_role={"POST": roles.MANAGE})
    def fleet_page(request, access, project): ...

Safe methods need ``roles.VIEW`` and the others ``roles.CHANGE`` unless ``required_role`` says otherwise.
The check runs before the view reads the request body: an outsider gets 404 (so existence does not leak)
and a member whose role does not allow the action gets 403 naming that role, never a validation message
about a body they may not send. What each role may do lives in ``console.projects.roles`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from console.models import Membership, Model, ModelVersion, Project
from console.projects import roles
from devices.models import Device

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass

# What a URL names, outermost first: a model and a device live in a project, a version in a model.
PROJECT = "project"
MODEL = "model"
VERSION = "version"
DEVICE = "device"

ACTION_WORDS = {
    roles.VIEW: "see this project",
    roles.CHANGE: "change this project (upload, create models, start jobs, edit rules and devices)",
    roles.APPROVE: "approve in this project",
    roles.MANAGE: "manage this project's members and settings",
}


@dataclass(frozen=True)
class Access:
    """What the signed-in member reached through the URL, and with which role."""

    membership: Membership
    model: Model | None = None
    version: ModelVersion | None = None
    device: Device | None = None

    @property
    def project(self) -> Project:
        return self.membership.project

    @property
    def role(self) -> str:
        return self.membership.role

    def may(self, action: str) -> bool:
        return roles.role_allows(self.role, action)

    def require(self, action: str) -> None:
        """PermissionDenied, naming the member's role, unless that role allows ``action``."""
        if not self.may(action):
            raise PermissionDenied(
                f"Your role in {self.project.slug} is {self.role}; it may not {ACTION_WORDS.get(action, action)}."
            )

    def scoped_to(self, scope: str) -> Project | Model | ModelVersion | Device:
        return getattr(self, scope)


def action_for(method: str, required_role: Mapping[str, str]) -> str:
    """The role action ``method`` needs: as declared, else view for safe methods and change for the others."""
    if method in required_role:
        return required_role[method]
    if method == "HEAD" and "GET" in required_role:
        return required_role["GET"]
    return roles.VIEW if method in SAFE_METHODS else roles.CHANGE


def access_for(user, scope: str, url_kwargs: Mapping[str, Any]) -> Access:
    """Resolve ``scope`` from the URL for ``user``: Http404 unless a member and every object the URL names is
    in the project. Any role may get this far; ``Access.require`` checks the action."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    membership = (
        Membership.objects.select_related("project").filter(user=user, project__slug=url_kwargs["project"]).first()
    )
    if membership is None:
        raise Http404("No such project.")
    project = membership.project
    if scope == PROJECT:
        return Access(membership)
    if scope == DEVICE:
        device = get_object_or_404(
            Device.objects.select_related("device_type"), project=project, device_id=url_kwargs["device_id"]
        )
        device.project = project
        return Access(membership, device=device)
    model = get_object_or_404(
        Model.objects.select_related("default_version"), project=project, name=url_kwargs["model"]
    )
    model.project = project
    if scope == MODEL:
        return Access(membership, model=model)
    if scope == VERSION:
        version = get_object_or_404(
            ModelVersion.objects.select_related("parent"), model=model, number=url_kwargs["number"]
        )
        version.model = model
        return Access(membership, model=model, version=version)
    raise ValueError(f"unknown scope {scope!r}")


def projects_of(user) -> QuerySet[Project]:
    """The projects ``user`` is a member of, each with ``my_role``."""
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return Project.objects.filter(memberships__user=user).annotate(my_role=Subquery(role))


# --- the developer API -----------------------------------------------------------------------------------


class MemberRole(BasePermission):
    """Resolves the view's ``access`` (404 for outsiders) and checks the role the method needs (403)."""

    def has_permission(self, request, view) -> bool:
        # Raised rather than returned: DRF words a False itself, and ours name the member's role.
        view.access.require(action_for(request.method, view.required_role))
        return True


class ScopedMixin:
    """For API views under ``/api/projects/<project>/``: declare ``scope`` and, where the default does not
    fit, ``required_role``; ``self.access`` holds what the URL reached. A generic view's ``queryset`` is
    filtered to the scoped object (its ``project``, ``model``, ``version`` or ``device`` field), so a
    detail lookup never leaves the project."""

    scope: str = PROJECT
    required_role: Mapping[str, str] = {}
    permission_classes: Sequence[_PermissionClass] = [IsAuthenticated, MemberRole]
    request: Any  # set by the view it is mixed into, as are its URL kwargs
    kwargs: dict[str, Any]

    @cached_property
    def access(self) -> Access:
        return access_for(self.request.user, self.scope, self.kwargs)

    @property
    def schema_only(self) -> bool:
        """True while drf-spectacular builds the schema: there is no URL to resolve then."""
        return getattr(self, "swagger_fake_view", False)

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.schema_only:
            return queryset.none()
        return queryset.filter(**{self.scope: self.access.scoped_to(self.scope)})


# --- server-rendered pages -------------------------------------------------------------------------------


def scoped_page(scope: str, required_role: Mapping[str, str] | None = None) -> Callable:
    """Pages: sign-in required, then ``scope`` resolved and the method's role checked as for the API; the
    page gets the ``Access`` as its ``access`` argument, after the request and before the URL's own."""
    declared = required_role or {}

    def decorate(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def page(request, **url_kwargs):
            access = access_for(request.user, scope, url_kwargs)
            access.require(action_for(request.method, declared))
            return view(request, access, **url_kwargs)

        return page

    return decorate
