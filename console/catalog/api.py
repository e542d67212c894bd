"""Developer REST API for models, versions and datasets."""

from __future__ import annotations

from django.db.models import Count, Max
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, parsers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from console.catalog import services as catalog_services
from console.catalog.datasets import DatasetRefused, attach_dataset
from console.catalog.serializers import (
    DatasetSerializer,
    DatasetUploadSerializer,
    ModelInputsSerializer,
    ModelSerializer,
    VersionDetailSerializer,
    VersionSerializer,
    VersionUploadSerializer,
)
from console.catalog.uploads import set_upload_limit
from console.jobkinds.serializers import JobSerializer
from console.models import Dataset, Model, ModelVersion
from console.projects.permissions import MODEL, VERSION, ScopedMixin
from jobs.tooling.modelfile import ModelFileError


class ModelList(ScopedMixin, generics.ListCreateAPIView):
    serializer_class = ModelSerializer
    queryset = Model.objects.annotate(version_count=Count("versions"), latest_version=Max("versions__number"))

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not self.schema_only:
            context["project"] = self.access.project
        return context

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = catalog_services.create_model(
            project=self.access.project,
            name=data["name"],
            description=data.get("description", ""),
            user=self.request.user,
        )


class ModelDetail(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = ModelSerializer
    scope = MODEL

    def get_object(self):
        return self.access.model

    @extend_schema(request=ModelInputsSerializer, responses={200: ModelSerializer})
    def patch(self, request, *args, **kwargs):
        """Set the model's representative inputs: its sample dataset and the typical size of dynamic dimensions."""
        model = self.access.model
        data = ModelInputsSerializer(data=request.data, context={"model": model}, partial=True)
        data.is_valid(raise_exception=True)
        catalog_services.set_representative_inputs(model=model, **data.validated_data)
        return Response(ModelSerializer(model).data)


def upload_error_response(request):
    """413 when the upload handler stopped at the size limit; None otherwise."""
    message = getattr(request, "upload_error", None) or getattr(
        getattr(request, "_request", None), "upload_error", None
    )
    if message:
        return Response({"detail": message}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    return None


class VersionList(ScopedMixin, generics.ListCreateAPIView):
    serializer_class = VersionSerializer
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]
    scope = MODEL
    queryset = ModelVersion.objects.select_related("model", "parent")

    @extend_schema(
        request=VersionUploadSerializer,
        responses={
            201: VersionSerializer,
            409: OpenApiResponse(
                description="The model already has a version with this file; existing_version and url name it."
            ),
        },
    )
    def post(self, request, *args, **kwargs):
        model = self.access.model
        files = request.FILES  # parses the body, running the size-limited upload handler
        too_large = upload_error_response(request)
        if too_large is not None:
            return too_large
        upload = files.get("file")
        if upload is None:
            raise ValidationError({"file": "Attach the model as multipart/form-data field 'file'."})
        try:
            version = catalog_services.upload_version(
                model=model, uploaded=upload, user=request.user, filename=upload.name
            )
        except ModelFileError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except catalog_services.DuplicateVersion as exc:
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


class VersionDetail(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = VersionDetailSerializer
    scope = MODEL
    queryset = ModelVersion.objects.prefetch_related("compatibility__device_type").select_related("model", "parent")
    lookup_field = "number"


class VersionRecheck(ScopedMixin, generics.GenericAPIView):
    """Check a failed version again, on the model's representative inputs as they are now."""

    serializer_class = JobSerializer  # what it answers; it reads no body
    scope = VERSION

    @extend_schema(
        request=None,
        responses={
            202: JobSerializer,
            409: OpenApiResponse(description="The version did not fail (it is ready or being checked)."),
        },
    )
    def post(self, request, project, model, number):
        try:
            job = catalog_services.recheck_version(version=self.access.version, user=request.user)
        except catalog_services.NotRecheckable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class DatasetList(ScopedMixin, generics.ListCreateAPIView):
    serializer_class = DatasetSerializer
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]
    scope = MODEL
    queryset = Dataset.objects.all()

    @extend_schema(request=DatasetUploadSerializer, responses={201: DatasetSerializer})
    def post(self, request, *args, **kwargs):
        model = self.access.model
        set_upload_limit(request, "MAX_DATASET_BYTES")
        request.FILES  # noqa: B018  (parse the body through the size-limited upload handler)
        too_large = upload_error_response(request)
        if too_large is not None:
            return too_large
        data = DatasetUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        try:
            dataset = attach_dataset(
                model=model,
                uploaded=upload,
                name=data.validated_data.get("name", ""),
                user=request.user,
                label_column=data.validated_data["label_column"],
                version_number=data.validated_data.get("version"),
            )
        except DatasetRefused as exc:
            return Response(
                {"detail": "The dataset does not fit the model.", "problems": exc.problems},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)
