"""Developer REST API for rollouts: propose and edit a plan, submit it, approve or reject it (four eyes),
start, pause, resume, retry the devices that failed, and roll it back."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from console.errors import Conflict
from console.projects import roles
from console.projects.permissions import MODEL, ScopedMixin
from devices.models import Rollout
from devices.rollouts import services
from devices.rollouts.serializers import DecisionSerializer, RolloutSerializer


def _answer(change: Callable[[], Rollout]) -> Rollout:
    """Run a service; its refusals become 403 (four eyes), 409 (state, overlap) or 400 (the rest)."""
    try:
        return change()
    except services.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc
    except (services.WrongState, services.Overlap) as exc:
        raise Conflict(str(exc)) from exc


class RolloutView(ScopedMixin, generics.GenericAPIView):
    scope = MODEL
    serializer_class = RolloutSerializer
    queryset = Rollout.objects.select_related("version", "previous_version", "proposer").prefetch_related(
        "approvals__approver"
    )

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not self.schema_only:
            context["model"] = self.access.model
        return context


class RolloutList(RolloutView, generics.ListCreateAPIView):
    """A model's rollouts, newest first. POST proposes a draft; nothing moves until it is submitted, approved
    by another member with the approver role, and started."""

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        model = serializer.context["model"]
        serializer.instance = _answer(lambda: services.propose_rollout(model=model, user=self.request.user, **data))


class RolloutDetail(RolloutView, generics.RetrieveUpdateAPIView):
    """One rollout. Changing the version, target, stages or thresholds of a pending or approved rollout voids
    its approval and sends it back to pending approval."""

    lookup_url_kwarg = "rollout_id"

    def perform_update(self, serializer):
        changes = dict(serializer.validated_data)
        serializer.instance = _answer(
            lambda: services.edit_rollout(rollout=serializer.instance, user=self.request.user, **changes)
        )


class RolloutAction(RolloutView):
    """One lifecycle action on a rollout: the subclass names the service and documents it."""

    lookup_url_kwarg = "rollout_id"

    def act(self, rollout: Rollout) -> Rollout:
        raise NotImplementedError

    def answer(self) -> Response:
        rollout = self.get_object()
        changed = _answer(lambda: self.act(rollout))
        return Response(self.get_serializer(self.get_queryset().get(pk=changed.pk)).data)


ACTION_RESPONSES = {
    200: RolloutSerializer,
    409: OpenApiResponse(description="The rollout is not in a state that allows this, or overlaps another."),
}


class RolloutSubmit(RolloutAction):
    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Draft -> pending approval; refused when the version is not ready, cannot run on a targeted "
        "device type (named), or another active rollout of the model reaches the same devices (named). Approvers "
        "are told by email.",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def act(self, rollout):
        return services.submit_rollout(rollout=rollout, user=self.request.user)


class RolloutStart(RolloutAction):
    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Approved -> running at its first stage; refused when the approval is void.",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def act(self, rollout):
        return services.start_rollout(rollout=rollout, user=self.request.user)


class RolloutPause(RolloutAction):
    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Running -> paused: devices not yet updated stop being offered the version.",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def act(self, rollout):
        return services.pause_rollout(rollout=rollout, user=self.request.user)


class RolloutResume(RolloutAction):
    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Paused or halted -> running in the same stage; a completed rollout cannot resume.",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def act(self, rollout):
        return services.resume_rollout(rollout=rollout, user=self.request.user)


class RolloutRollback(RolloutAction):
    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Devices return to the version they ran before, through check-in; refused when there was none.",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def act(self, rollout):
        return services.rollback_rollout(rollout=rollout, user=self.request.user)


class RolloutRetry(RolloutAction):
    @extend_schema(
        request=None,
        responses={
            **ACTION_RESPONSES,
            400: OpenApiResponse(description="No device reported a failed download or install of the version."),
        },
        description="Paused or halted: the devices that reported a failed download or install of the version try "
        "again at their next check-in (the answer carries a new `retry` generation, so the agent drops its "
        "back-off); no other device is offered it.",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def act(self, rollout):
        return services.retry_failed_devices(rollout=rollout, user=self.request.user)


class RolloutDecision(RolloutAction):
    required_role = {"POST": roles.APPROVE}

    def decide(self, rollout: Rollout, comment: str, fingerprint: str | None) -> Rollout:
        raise NotImplementedError

    def act(self, rollout: Rollout) -> Rollout:
        body = DecisionSerializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        return self.decide(rollout, body.validated_data["comment"], body.validated_data.get("fingerprint"))


DECISION_RESPONSES = {
    200: RolloutSerializer,
    409: OpenApiResponse(description="The rollout is not pending approval, or its plan changed since you saw it."),
}


class RolloutApprove(RolloutDecision):
    @extend_schema(
        request=DecisionSerializer,
        responses=DECISION_RESPONSES,
        description="Pending -> approved. Only a member with the approver (or owner) role who neither proposed "
        "nor last changed the plan (403 otherwise).",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def decide(self, rollout, comment, fingerprint):
        return services.approve_rollout(
            rollout=rollout, user=self.request.user, comment=comment, fingerprint=fingerprint
        )


class RolloutReject(RolloutDecision):
    @extend_schema(
        request=DecisionSerializer,
        responses=DECISION_RESPONSES,
        description="Pending -> rejected, with a comment saying why (required). Same four-eyes rule as approve.",
    )
    def post(self, request, project, model, rollout_id):
        return self.answer()

    def decide(self, rollout, comment, fingerprint):
        return services.reject_rollout(
            rollout=rollout, user=self.request.user, comment=comment, fingerprint=fingerprint
        )


# The URL of each action: /rollouts/<id>/<action>/ (devices/urls.py).
ACTIONS: dict[str, type[RolloutAction]] = {
    "submit": RolloutSubmit,
    "approve": RolloutApprove,
    "reject": RolloutReject,
    "start": RolloutStart,
    "pause": RolloutPause,
    "resume": RolloutResume,
    "retry": RolloutRetry,
    "rollback": RolloutRollback,
}
