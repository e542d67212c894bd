"""Developer REST API for projects and members."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from console.models import Membership, Project
from console.projects import access, roles
from console.projects import services as project_services
from console.projects.serializers import MemberInputSerializer, MembershipSerializer, ProjectSerializer


class ProjectList(generics.ListCreateAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        role = Membership.objects.filter(project=OuterRef("pk"), user=self.request.user).values("role")[:1]
        return Project.objects.filter(memberships__user=self.request.user).annotate(my_role=Subquery(role))

    def perform_create(self, serializer):
        data = serializer.validated_data
        project = project_services.create_project(
            slug=data["slug"], name=data["name"], description=data.get("description", ""), owner=self.request.user
        )
        project.my_role = roles.OWNER
        serializer.instance = project


class ProjectDetail(generics.RetrieveAPIView):
    serializer_class = ProjectSerializer

    def get_object(self):
        project, membership = access.project_for(self.request.user, self.kwargs["project"])
        project.my_role = membership.role
        return project


class MemberList(generics.ListCreateAPIView):
    serializer_class = MembershipSerializer

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        return project.memberships.select_related("user").order_by("user__username")

    @extend_schema(request=MemberInputSerializer, responses={201: MembershipSerializer})
    def post(self, request, *args, **kwargs):
        project, _ = access.project_for(request.user, kwargs["project"], roles.MANAGE)
        data = MemberInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = project_services.set_member(project=project, user=data.validated_data["username"],
                                         role=data.validated_data["role"])
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(generics.DestroyAPIView):
    serializer_class = MembershipSerializer

    def get_object(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"], roles.MANAGE)
        return get_object_or_404(Membership.objects.select_related("project"), project=project,
                                 user__username=self.kwargs["username"])

    def perform_destroy(self, instance):
        try:
            project_services.remove_member(membership=instance)
        except ValueError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
