"""Developer REST API for experiments: create, read, start, stop, promote the winner, and the results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from console.errors import Conflict
from console.projects.permissions import MODEL, ScopedMixin
from devices.experiments import services
from devices.experiments.payload import results_payload
from devices.experiments.results import experiment_results
from devices.experiments.serializers import (
    ExperimentSerializer,
    PromoteSerializer,
    ResultsFilterSerializer,
    ResultsSerializer,
    StopSerializer,
)
from devices.models import Experiment
from devices.rollouts.serializers import RolloutSerializer


def _answer(change: Callable[[], Any]) -> Any:
    """Run a service; a wrong state or an overlap is 409, any other refusal 400 (console.errors)."""
    try:
        return change()
    except (services.WrongState, services.Overlap) as exc:
        raise Conflict(str(exc)) from exc


class ExperimentView(ScopedMixin, generics.GenericAPIView):
    scope = MODEL
    serializer_class = ExperimentSerializer
    queryset = Experiment.objects.prefetch_related("arms__version")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not self.schema_only:
            context["model"] = self.access.model
        return context


class ExperimentList(ExperimentView, generics.ListCreateAPIView):
    """A model's experiments, newest first. POST creates a draft; devices are assigned once it is started."""

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        model = serializer.context["model"]
        serializer.instance = services.create_experiment(model=model, user=self.request.user, **data)


class ExperimentDetail(ExperimentView, generics.RetrieveAPIView):
    """One experiment with its arms (a stopped arm says why)."""

    lookup_url_kwarg = "experiment_id"


ACTION_RESPONSES = {
    200: ExperimentSerializer,
    409: OpenApiResponse(description="The experiment is not in a state that allows this, or overlaps another."),
}


class ExperimentStart(ExperimentView):
    lookup_url_kwarg = "experiment_id"

    @extend_schema(
        request=None,
        responses=ACTION_RESPONSES,
        description="Draft -> running. Refused (409) when another running experiment of the model reaches the "
        "same devices; 400 when an arm's version is no longer deliverable.",
    )
    def post(self, request, project, model, experiment_id):
        experiment = self.get_object()
        changed = _answer(lambda: services.start_experiment(experiment=experiment, user=request.user))
        return Response(self.get_serializer(self.get_queryset().get(pk=changed.pk)).data)


class ExperimentStop(ExperimentView):
    lookup_url_kwarg = "experiment_id"

    @extend_schema(
        request=StopSerializer,
        responses=ACTION_RESPONSES,
        description="Running -> stopped: assignment ends; devices go back to what rollouts and rules say.",
    )
    def post(self, request, project, model, experiment_id):
        experiment = self.get_object()
        body = StopSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"]
        changed = _answer(lambda: services.stop_experiment(experiment=experiment, user=request.user, reason=reason))
        return Response(self.get_serializer(self.get_queryset().get(pk=changed.pk)).data)


class ExperimentPromote(ExperimentView):
    lookup_url_kwarg = "experiment_id"

    @extend_schema(
        request=PromoteSerializer,
        responses={201: RolloutSerializer, 409: ACTION_RESPONSES[409]},
        description="Propose a rollout of the winning arm's version to the experiment's target (a draft that goes "
        "through approval) and stop the experiment.",
    )
    def post(self, request, project, model, experiment_id):
        experiment = self.get_object()
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        arm = experiment.arms.filter(pk=body.validated_data["arm"]).select_related("version").first()
        if arm is None:
            raise ValidationError({"arm": f"experiment {experiment.name} has no arm {body.validated_data['arm']}."})
        rollout = _answer(lambda: services.promote_arm(experiment=experiment, arm=arm, user=request.user))
        context = {**self.get_serializer_context(), "model": self.access.model}
        return Response(RolloutSerializer(rollout, context=context).data, status=201)


class ExperimentResults(ExperimentView):
    """The results per arm: values, intervals, differences to control, SRM, power, verdict, daily series."""

    lookup_url_kwarg = "experiment_id"

    @extend_schema(parameters=[ResultsFilterSerializer], responses={200: ResultsSerializer})
    def get(self, request, project, model, experiment_id):
        experiment = self.get_object()
        query = ResultsFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        results = experiment_results(experiment, **query.validated_data)
        return Response(results_payload(results))


ACTIONS = {"start": ExperimentStart, "stop": ExperimentStop, "promote": ExperimentPromote}
