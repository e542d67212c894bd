"""The device-facing API: the server half of devices/agent/PROTOCOL.md.

HTTP only: parsing, authentication, throttles and rendering. What a check-in is answered is decided by
``devices.delivery.checkin.answer_checkin``.
"""

from __future__ import annotations

import json
import time

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from console.errors import Refused
from console.parsers import BoundedJSONParser, loads_bounded
from devices.constants import MAX_EVENTS_REQUEST_BYTES, MAX_REQUEST_BYTES
from devices.core.signing import check_download_token
from devices.delivery.auth import (
    DeviceRateThrottle,
    DeviceRecord,
    DeviceTokenAuthentication,
    EnrollRateThrottle,
    IsEnrolledDevice,
    TicketHolder,
)
from devices.delivery.checkin import CheckinRequest, CheckinResult, answer_checkin
from devices.delivery.downloads import package_response
from devices.delivery.serializers import CheckinSerializer, EnrollSerializer, common_checkin
from devices.fleet import keys
from devices.fleet import services as fleet_services
from devices.models import Device, DeviceModelState
from devices.telemetry import events as telemetry_events
from devices.telemetry.serializers import EventBatchSerializer, common_events


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def _flatten(errors, path: str = "") -> list[str]:
    if isinstance(errors, dict):
        return [line for key, value in errors.items() for line in _flatten(value, key if not path else f"{path}.{key}")]
    if isinstance(errors, list):
        if all(isinstance(item, str) for item in errors):
            return [f"{path}: {item}" if path else str(item) for item in errors]
        return [
            line
            for index, item in enumerate(errors)
            for line in _flatten(item, f"{path}[{index}]" if path else f"[{index}]")
        ]
    return [f"{path}: {errors}" if path else str(errors)]


def device_exception_handler(exc, context):
    """The protocol's error shape: ``{"detail": "<human text>"}`` (field errors kept under ``errors``)."""
    if isinstance(exc, Refused):  # a service's refusal (say, feedback for a version never served) is a 400
        exc = exceptions.ValidationError({"detail": str(exc)})
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "; ".join(_flatten(response.data)), "errors": response.data}
    return response


def known_device_type(project_id: int, slug: str):
    """The device type a configuration names, or a 400: built-in types and the project's own only."""
    device_type = fleet_services.device_type_for(project_id, slug)
    if device_type is None:
        raise exceptions.ValidationError(
            {
                "config": {
                    "device_type": [f"unknown device type {slug!r}: use a built-in type or one of this project's."]
                }
            }
        )
    return device_type


class DeviceEndpoint(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsEnrolledDevice]
    throttle_classes = [DeviceRateThrottle]
    parser_classes = [BoundedJSONParser]  # a body nested too deep is a 400, as on every JSON endpoint
    renderer_classes = [JSONRenderer]
    max_body_bytes = MAX_REQUEST_BYTES

    def get_exception_handler(self):
        return device_exception_handler

    def initial(self, request, *args, **kwargs):
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise RequestTooLarge(
                f"The request body is {length} bytes; this endpoint takes at most {self.max_body_bytes}."
            )
        super().initial(request, *args, **kwargs)

    def valid_body(self, serializer_class):
        if not isinstance(self.request.data, dict):
            raise exceptions.ValidationError({"detail": "The body must be a JSON object."})
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class EnrollView(DeviceEndpoint):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [EnrollRateThrottle]

    @extend_schema(request=EnrollSerializer, responses={201: dict, 400: dict, 403: dict}, tags=["device"])
    def post(self, request):
        data = self.valid_body(EnrollSerializer)
        fleet = fleet_services.fleet_for_enrollment_key(data["enrollment_key"])
        if fleet is None:
            raise exceptions.PermissionDenied("Unknown enrollment key: ask the project owner for the current one.")
        config = data["config"]
        device_type = known_device_type(fleet.project_id, config["device_type"])
        try:
            device, token = fleet_services.enroll_device(
                fleet=fleet, device_id=data["device_id"], config=config, device_type=device_type
            )
        except fleet_services.DeviceRevoked:
            raise exceptions.PermissionDenied(
                f"Device {data['device_id']} was revoked by the project; it cannot enroll again under that id."
            ) from None
        return Response(
            {
                "device_token": token,
                "device_id": device.device_id,
                "project": fleet.project.slug,
                "public_key": fleet.public_key,
                "checkin_interval_s": device.checkin_interval_s or fleet.checkin_interval_s,
            },
            status=status.HTTP_201_CREATED,
        )


class CheckinView(DeviceEndpoint):
    """The whole check-in through DRF: what ``checkin`` hands over for anything but the usual body."""

    @extend_schema(
        request=CheckinSerializer, responses={200: dict, 304: None, 400: dict, 401: dict, 409: dict}, tags=["device"]
    )
    def post(self, request):
        device: DeviceRecord = request.auth
        data = self.valid_body(CheckinSerializer)
        now = timezone.now()
        config = data.get("config")
        if config is not None:
            device_type = known_device_type(device.project_id, config["device_type"])
            fleet_services.apply_config(
                device=Device.objects.get(pk=device.pk), config=config, device_type=device_type, now=now
            )
        result = answer_checkin(
            CheckinRequest.of(data, request.META.get("HTTP_IF_NONE_MATCH", "")),
            token=DeviceTokenAuthentication.raw_token(request) or "",
            now=now,
            device=None if config is not None else device,
        )  # a config: read the row again
        return Response(result.body, status=result.status, headers=result.headers)


_full_checkin = CheckinView.as_view()


def _common_body(request: HttpRequest) -> dict | None:
    """The usual check-in body, parsed and checked without DRF; None when CheckinView must take the request."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if (
        request.method != "POST"
        or request.content_type != "application/json"
        or not length.isdigit()
        or int(length) > MAX_REQUEST_BYTES
    ):
        return None
    try:
        return common_checkin(loads_bounded(request.body))
    except ValueError:  # malformed, NaN, or nested too deep: CheckinView's parser says what is wrong
        return None


def _json(data, code: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(
        json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        status=code,
        headers=headers,
        content_type="application/json",
    )


def _problem(exc: exceptions.APIException) -> HttpResponse:
    """What DRF answers for a 401 or 429 (``{"detail": ...}``, WWW-Authenticate, Retry-After), without DRF."""
    headers = {}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        headers["WWW-Authenticate"] = DeviceTokenAuthentication.keyword
    wait = getattr(exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    return _json({"detail": exc.detail}, exc.status_code, headers)


@csrf_exempt
def checkin(request: HttpRequest) -> HttpResponse:
    """``POST /api/device/v1/checkin`` as a plain Django view, for the body every device sends every interval.

    DRF's dispatch, negotiation, parsing and serializer cost more than the check-in itself, so the usual body
    (no config) is checked by ``serializers.common_checkin`` and answered here with the same authentication,
    throttle (DeviceRateThrottle's own ``allow_request``) and answers as CheckinView. Anything else (a config,
    an invalid, oversized or too deeply nested body, another method or content type) goes to CheckinView
    unchanged, so every 4xx message about a body still comes from CheckinSerializer or BoundedJSONParser.
    """
    data = _common_body(request)
    if data is None:
        return _full_checkin(request)

    def admit(device: DeviceRecord | TicketHolder) -> None:
        # The plain request stands in for DRF's: DeviceRateThrottle reads only request.auth (set here, as DRF's
        # authentication would) and the client address, and no view; the stubs want a Request and an APIView.
        request.auth = device  # type: ignore[attr-defined]
        throttle = DeviceRateThrottle()
        if not throttle.allow_request(request, None):  # type: ignore[arg-type]
            raise exceptions.Throttled(throttle.wait())

    try:
        raw = DeviceTokenAuthentication.raw_token(request)
        if raw is None:
            raise exceptions.NotAuthenticated()
        result = answer_checkin(
            CheckinRequest.of(data, request.META.get("HTTP_IF_NONE_MATCH", "")), token=raw, admit=admit
        )
    except exceptions.APIException as exc:
        return _problem(exc)
    return _render(result)


def _render(result: CheckinResult) -> HttpResponse:
    if result.body is None:
        return HttpResponse(status=result.status, headers=result.headers)
    return _json(result.body, result.status, result.headers)


# drf-spectacular documents URL callbacks whose ``cls`` is an APIView: describe this one as CheckinView.
checkin.cls = CheckinView  # type: ignore[attr-defined]


checkin.initkwargs = {}  # type: ignore[attr-defined]


class EventsView(DeviceEndpoint):
    max_body_bytes = MAX_EVENTS_REQUEST_BYTES

    @extend_schema(request=EventBatchSerializer, responses={200: dict, 400: dict, 401: dict}, tags=["device"])
    def post(self, request):
        events = common_events(request.data)
        if events is None:  # anything unusual: EventBatchSerializer says what is wrong, or takes it
            events = self.valid_body(EventBatchSerializer)["events"]
        outcome = telemetry_events.record_events(device=request.auth, events=events)
        return Response(outcome._asdict())


class DownloadView(DeviceEndpoint):
    @extend_schema(
        responses={200: OpenApiResponse(description="the package bytes"), 206: None, 403: dict, 416: None},
        tags=["device"],
    )
    def get(self, request, version_id: int):
        device: DeviceRecord = request.auth
        problem = check_download_token(
            keys.download_secret(),
            request.query_params.get("token", ""),
            version_id=version_id,
            device_id=device.device_id,
            now=int(time.time()),
        )
        if problem:
            raise exceptions.PermissionDenied(f"download token {problem}: check in again for a fresh download URL.")
        state = (
            DeviceModelState.objects.select_related("desired_version__model")
            .filter(device_id=device.pk, desired_version_id=version_id)
            .first()
        )
        if state is None:
            raise exceptions.PermissionDenied(
                f"Version {version_id} is not assigned to this device: check in again for a fresh download URL."
            )
        assert state.desired_version is not None  # the row was found by its desired_version_id
        return package_response(
            state.desired_version,
            range_header=request.META.get("HTTP_RANGE"),
            if_range=request.META.get("HTTP_IF_RANGE"),
        )
