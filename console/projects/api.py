"""Developer REST API for projects and members."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from console.models import Membership
from console.projects import roles
from console.projects import services as project_services
from console.projects.permissions import ScopedMixin, projects_of
from console.projects.serializers import (
    MemberInputSerializer,
    MembershipSerializer,
    ProjectSerializer,
    ProjectSettingsSerializer,
)


class ProjectList(generics.ListCreateAPIView):
    """The projects I am a member of, with my role; any signed-in user may start one (and owns it)."""

    serializer_class = ProjectSerializer

    def get_queryset(self):
        return projects_of(self.request.user)

    def perform_create(self, serializer):
        data = serializer.validated_data
        project = project_services.create_project(
            slug=data["slug"], name=data["name"], description=data.get("description", ""), owner=self.request.user
        )
        project.my_role = roles.OWNER
        serializer.instance = project


class ProjectDetail(ScopedMixin, generics.RetrieveUpdateAPIView):
    """A project; its owners change its name, description and whether changes that move devices need approval."""

    serializer_class = ProjectSettingsSerializer
    required_role = {"PUT": roles.MANAGE, "PATCH": roles.MANAGE}

    def get_object(self):
        project = self.access.project
        project.my_role = self.access.role
        return project

    def perform_update(self, serializer):
        serializer.instance = project_services.update_project_settings(
            project=serializer.instance, **serializer.validated_data
        )


class MemberList(ScopedMixin, generics.ListCreateAPIView):
    serializer_class = MembershipSerializer
    queryset = Membership.objects.select_related("user").order_by("user__username")
    required_role = {"POST": roles.MANAGE}

    @extend_schema(request=MemberInputSerializer, responses={201: MembershipSerializer})
    def post(self, request, *args, **kwargs):
        data = MemberInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = project_services.set_member(
            project=self.access.project, user=data.validated_data["username"], role=data.validated_data["role"]
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(ScopedMixin, generics.DestroyAPIView):
    serializer_class = MembershipSerializer
    queryset = Membership.objects.select_related("project", "user")
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    required_role = {"DELETE": roles.MANAGE}

    def perform_destroy(self, instance):
        try:
            project_services.remove_member(membership=instance)
        except ValueError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
