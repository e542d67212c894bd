"""Developer REST API for jobs: list, detail, cancel, and queueing optimization on a version."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from console.catalog import services as catalog_services
from console.jobkinds import services as jobkind_services
from console.jobkinds.serializers import (
    JobSerializer,
    OptimizeForDeviceSerializer,
    OptimizeSerializer,
    TransformSerializer,
)
from console.projects.permissions import VERSION, ScopedMixin
from jobs.models import Job
from jobs.services import cancel_job
from jobs.tooling.transforms import USER_TRANSFORMS


class JobList(ScopedMixin, generics.ListAPIView):
    serializer_class = JobSerializer
    queryset = Job.objects.select_related("input_version__model", "output_version__model")

    def get_queryset(self):
        jobs = super().get_queryset()
        state = self.request.query_params.get("state")
        if state:
            if state not in Job.State.values:
                raise ValidationError({"state": f"Choose one of {', '.join(Job.State.values)}."})
            jobs = jobs.filter(state=state)
        return jobs


class JobDetail(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = JobSerializer
    queryset = Job.objects.select_related("input_version__model", "output_version__model")
    lookup_url_kwarg = "job_id"


class JobCancel(ScopedMixin, generics.GenericAPIView):
    serializer_class = JobSerializer  # what it answers; it reads no body
    queryset = Job.objects.all()
    lookup_url_kwarg = "job_id"

    @extend_schema(
        request=None,
        responses={200: JobSerializer, 409: OpenApiResponse(description="The job already ended; nothing was changed.")},
    )
    def post(self, request, project, job_id):
        job = self.get_object()
        if not cancel_job(job):
            return Response({"detail": f"The job already ended ({job.state})."}, status=status.HTTP_409_CONFLICT)
        job.refresh_from_db()
        return Response(JobSerializer(job).data)


class JobRetry(ScopedMixin, generics.GenericAPIView):
    serializer_class = JobSerializer  # what it answers; it reads no body
    queryset = Job.objects.all()
    lookup_url_kwarg = "job_id"

    @extend_schema(
        request=None,
        responses={
            202: JobSerializer,
            400: OpenApiResponse(description="The job did not fail nor was cancelled, or was already retried."),
        },
    )
    def post(self, request, project, job_id):
        """Queue a failed or cancelled job again as a new job with the same version and parameters."""
        job = jobkind_services.retry_job(job=self.get_object(), user=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class TransformList(APIView):
    """The transforms a version can be put through, with their default parameters."""

    @extend_schema(responses={200: TransformSerializer(many=True)})
    def get(self, request):
        rows = [
            {
                "name": t.name,
                "description": t.description,
                "needs_dataset": t.needs_dataset,
                "defaults": {k: v for k, v in t.defaults.items() if k != "dataset"},
            }
            for t in USER_TRANSFORMS.values()
        ]
        return Response(TransformSerializer(rows, many=True).data)


class _QueueOnVersion(ScopedMixin, APIView):
    scope = VERSION
    kind = ""
    input_serializer: type = OptimizeSerializer

    def post(self, request, project, model, number):
        version = self.access.version
        data = self.input_serializer(data=request.data, context={"model": version.model})
        data.is_valid(raise_exception=True)
        params = {k: v for k, v in data.validated_data.items() if k != "dataset"}
        try:
            job = jobkind_services.queue_optimization(
                version=version,
                kind=self.kind,
                params=params,
                dataset=data.validated_data.get("dataset"),
                user=request.user,
            )
        except catalog_services.NotDeployable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


NOT_DEPLOYABLE = OpenApiResponse(description="The version may not be optimized (it is not ready); the detail says why.")


@extend_schema_view(post=extend_schema(request=OptimizeSerializer, responses={202: JobSerializer, 409: NOT_DEPLOYABLE}))
class OptimizeVersion(_QueueOnVersion):
    """Queue one transform of this version; the variant becomes a child version."""

    kind = "optimize"
    input_serializer = OptimizeSerializer


@extend_schema_view(
    post=extend_schema(request=OptimizeForDeviceSerializer, responses={202: JobSerializer, 409: NOT_DEPLOYABLE})
)
class OptimizeForDevice(_QueueOnVersion):
    """Try the candidate transforms for a device type and keep the best variant within an accuracy budget."""

    kind = "optimize_for_device"
    input_serializer = OptimizeForDeviceSerializer
