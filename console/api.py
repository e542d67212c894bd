"""Developer REST API. Every view scopes its objects through console.access."""

from __future__ import annotations

from django.db.models import Count, Max, OuterRef, ProtectedError, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, parsers, permissions, status
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from devices.models import DeviceType
from jobs.models import Job
from jobs.services import cancel_job
from jobs.tooling.modelfile import ModelFileError
from jobs.tooling.transforms import TRANSFORMS

from . import access, roles, services
from .datasets import DatasetRefused, attach_dataset
from .models import Membership, ModelVersion, Project
from .serializers import (
    DatasetSerializer,
    DatasetUploadSerializer,
    DeviceTypeSerializer,
    JobSerializer,
    MemberInputSerializer,
    MembershipSerializer,
    ModelSerializer,
    OptimizeForDeviceSerializer,
    OptimizeSerializer,
    ProjectSerializer,
    TransformSerializer,
    VersionDetailSerializer,
    VersionSerializer,
    VersionUploadSerializer,
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class HealthView(APIView):
    """A trivial JSON endpoint (load balancers, and the baseline of the check-in benchmark)."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response({"status": "ok"})


class ProjectList(generics.ListCreateAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        role = Membership.objects.filter(project=OuterRef("pk"), user=self.request.user).values("role")[:1]
        return Project.objects.filter(memberships__user=self.request.user).annotate(my_role=Subquery(role))

    def perform_create(self, serializer):
        data = serializer.validated_data
        project = services.create_project(
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
        membership = services.set_member(project=project, user=data.validated_data["username"],
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
            services.remove_member(membership=instance)
        except ValueError as exc:
            raise ValidationError({"detail": str(exc)}) from exc


class ModelList(generics.ListCreateAPIView):
    serializer_class = ModelSerializer

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        return project.models.annotate(version_count=Count("versions"), latest_version=Max("versions__number"))

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if "project" in self.kwargs and self.request.method == "POST":
            context["project"], _ = access.project_for(self.request.user, self.kwargs["project"], roles.CHANGE)
        return context

    def perform_create(self, serializer):
        project = serializer.context["project"]
        data = serializer.validated_data
        serializer.instance = services.create_model(
            project=project, name=data["name"], description=data.get("description", ""), user=self.request.user
        )


class ModelDetail(generics.RetrieveAPIView):
    serializer_class = ModelSerializer

    def get_object(self):
        model, _ = access.model_for(self.request.user, self.kwargs["project"], self.kwargs["model"])
        return model


def upload_error_response(request):
    """413 when the upload handler stopped at the size limit; None otherwise."""
    message = getattr(request, "upload_error", None) or getattr(getattr(request, "_request", None), "upload_error", None)
    if message:
        return Response({"detail": message}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    return None


class VersionList(generics.ListCreateAPIView):
    serializer_class = VersionSerializer
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    def get_queryset(self):
        model, _ = access.model_for(self.request.user, self.kwargs["project"], self.kwargs["model"])
        return model.versions.select_related("model", "parent")

    @extend_schema(request=VersionUploadSerializer, responses={201: VersionSerializer})
    def post(self, request, *args, **kwargs):
        model, _ = access.model_for(request.user, kwargs["project"], kwargs["model"], roles.CHANGE)
        files = request.FILES  # parses the body, running the size-limited upload handler
        too_large = upload_error_response(request)
        if too_large is not None:
            return too_large
        upload = files.get("file")
        if upload is None:
            raise ValidationError({"file": "Attach the model as multipart/form-data field 'file'."})
        try:
            version = services.upload_version(model=model, uploaded=upload, user=request.user, filename=upload.name)
        except ModelFileError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except services.DuplicateVersion as exc:
            existing = exc.existing
            return Response(
                {
                    "detail": str(exc),
                    "existing_version": existing.number,
                    "url": f"/api/projects/{model.project.slug}/models/{model.name}/versions/{existing.number}/",
                },
                status=status.HTTP_409_CONFLICT,
            )
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetail(generics.RetrieveAPIView):
    serializer_class = VersionDetailSerializer

    def get_object(self):
        version, _ = access.version_for(
            self.request.user, self.kwargs["project"], self.kwargs["model"], self.kwargs["number"]
        )
        return ModelVersion.objects.prefetch_related("compatibility__device_type").select_related(
            "model", "parent").get(pk=version.pk)


class JobList(generics.ListAPIView):
    serializer_class = JobSerializer

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        jobs = project.jobs.select_related("input_version__model", "output_version__model")
        state = self.request.query_params.get("state")
        if state:
            if state not in Job.State.values:
                raise ValidationError({"state": f"Choose one of {', '.join(Job.State.values)}."})
            jobs = jobs.filter(state=state)
        return jobs


class JobDetail(generics.RetrieveAPIView):
    serializer_class = JobSerializer

    def get_object(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        return get_object_or_404(
            Job.objects.select_related("input_version__model", "output_version__model"),
            project=project, pk=self.kwargs["job_id"],
        )


class JobCancel(APIView):
    @extend_schema(request=None, responses={200: JobSerializer})
    def post(self, request, project, job_id):
        project_obj, _ = access.project_for(request.user, project, roles.CHANGE)
        job = get_object_or_404(Job, project=project_obj, pk=job_id)
        if not cancel_job(job):
            return Response({"detail": f"The job already ended ({job.state})."}, status=status.HTTP_409_CONFLICT)
        job.refresh_from_db()
        return Response(JobSerializer(job).data)


class DeviceTypeList(generics.ListCreateAPIView):
    """Built-in device types plus the project's own; developers may add the project's own."""

    serializer_class = DeviceTypeSerializer

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        return DeviceType.objects.visible_to(project)

    def perform_create(self, serializer):
        project, _ = access.project_for(self.request.user, self.kwargs["project"], roles.CHANGE)
        slug = serializer.validated_data["slug"]
        if DeviceType.objects.visible_to(project).filter(slug=slug).exists():
            raise ValidationError({"slug": f"A device type {slug!r} already exists here."})
        serializer.save(project=project)


class DeviceTypeDetail(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = DeviceTypeSerializer
    lookup_field = "slug"

    def get_queryset(self):
        project, _ = access.project_for(self.request.user, self.kwargs["project"])
        return DeviceType.objects.visible_to(project)

    def _check_change(self, device_type):
        access.project_for(self.request.user, self.kwargs["project"], roles.CHANGE)
        if device_type.project_id is None and not self.request.user.is_staff:
            raise PermissionDenied("Built-in device types are shared by all projects; only staff may change them.")

    def perform_update(self, serializer):
        self._check_change(serializer.instance)
        serializer.save()

    def perform_destroy(self, instance):
        self._check_change(instance)
        try:
            instance.delete()
        except ProtectedError as exc:
            raise Conflict(f"Device type {instance.slug!r} is still used by enrolled devices; move or revoke them "
                           "first.") from exc


class DatasetList(generics.ListCreateAPIView):
    serializer_class = DatasetSerializer
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    def get_queryset(self):
        model, _ = access.model_for(self.request.user, self.kwargs["project"], self.kwargs["model"])
        return model.datasets.all()

    @extend_schema(request=DatasetUploadSerializer, responses={201: DatasetSerializer})
    def post(self, request, *args, **kwargs):
        model, _ = access.model_for(request.user, kwargs["project"], kwargs["model"], roles.CHANGE)
        request.FILES  # noqa: B018  (parse the body through the size-limited upload handler)
        too_large = upload_error_response(request)
        if too_large is not None:
            return too_large
        data = DatasetUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        try:
            dataset = attach_dataset(
                model=model, uploaded=upload, name=data.validated_data.get("name", ""), user=request.user,
                label_column=data.validated_data["label_column"], version_number=data.validated_data.get("version"),
            )
        except DatasetRefused as exc:
            return Response({"detail": "The dataset does not fit the model.", "problems": exc.problems},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class TransformList(APIView):
    """The transforms a version can be put through, with their default parameters."""

    @extend_schema(responses={200: TransformSerializer(many=True)})
    def get(self, request):
        rows = [{"name": t.name, "description": t.description, "needs_dataset": t.needs_dataset,
                 "defaults": {k: v for k, v in t.defaults.items() if k != "dataset"}} for t in TRANSFORMS.values()]
        return Response(TransformSerializer(rows, many=True).data)


class _QueueOnVersion(APIView):
    kind = ""
    input_serializer: type = OptimizeSerializer

    def post(self, request, project, model, number):
        version, _ = access.version_for(request.user, project, model, number, roles.CHANGE)
        data = self.input_serializer(data=request.data, context={"model": version.model})
        data.is_valid(raise_exception=True)
        params = {k: v for k, v in data.validated_data.items() if k != "dataset"}
        try:
            job = services.queue_optimization(version=version, kind=self.kind, params=params,
                                              dataset=data.validated_data.get("dataset"), user=request.user)
        except services.NotDeployable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(post=extend_schema(request=OptimizeSerializer, responses={202: JobSerializer}))
class OptimizeVersion(_QueueOnVersion):
    """Queue one transform of this version; the variant becomes a child version."""

    kind = "optimize"
    input_serializer = OptimizeSerializer


@extend_schema_view(post=extend_schema(request=OptimizeForDeviceSerializer, responses={202: JobSerializer}))
class OptimizeForDevice(_QueueOnVersion):
    """Try the candidate transforms for a device type and keep the best variant within an accuracy budget."""

    kind = "optimize_for_device"
    input_serializer = OptimizeForDeviceSerializer
