"""Shapes and validation of projects and members."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from console.models import Membership, Project
from console.projects import roles


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "require_approval", "created_at", "role"]
        read_only_fields = ["created_at", "role"]

    def get_role(self, project) -> str | None:
        return getattr(project, "my_role", None)


class ProjectSettingsSerializer(ProjectSerializer):
    """What an owner may change of a project; the slug is its address and stays."""

    class Meta(ProjectSerializer.Meta):
        read_only_fields = ["slug", "created_at", "role"]
        extra_kwargs = {
            "require_approval": {
                "help_text": "true: rules and default versions change only through an approved rollout; direct "
                "changes are refused"
            }
        }


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = ["id", "created_at"]


class MemberInputSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=roles.ROLE_CHOICES)

    def validate_username(self, value):
        user = get_user_model().objects.filter(username=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"No active user named {value!r}.")
        return user
