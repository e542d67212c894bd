"""Errors shared by the console's rooms: what services refuse, and how the developer API answers it.

Services raise ``Refused`` or ``AlreadyExists`` (plain exceptions, so pages, commands and tests can catch them
too); ``api_exception_handler`` turns them into a 400 or 409 whose ``detail`` is the service's message.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler


class Refused(ValueError):
    """A change the project's rules do not allow (400); the message says what to do instead.

    A ValueError, like the services' other refusals (NotDeployable, DatasetRefused), so callers that catch
    ValueError keep working.
    """


class AlreadyExists(Exception):
    """A slug or name is taken, often by a request that got there first (409)."""


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class RefusedRequest(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "refused"


def api_exception_handler(exc, context):
    """DRF's handler, plus the services' refusals as ``{"detail": message}`` (set in REST_FRAMEWORK)."""
    if isinstance(exc, AlreadyExists):
        exc = Conflict(str(exc))
    elif isinstance(exc, Refused):
        exc = RefusedRequest(str(exc))
    return exception_handler(exc, context)


def not_found(request, exception=None):
    """Django's 404 for a URL no route matches (a negative id, a typo): JSON under /api/, the usual page elsewhere,
    so API clients always get the ``{"detail": ...}`` shape they parse."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found: no API route matches this URL."}, status=404)
    return page_not_found(request, exception)
