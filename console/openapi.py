"""The error answers every operation can give, added to the OpenAPI schema in one place.

drf-spectacular documents the success answers each view declares; the 4xx answers come from cross-cutting
machinery (authentication, the permission mixin, DRF's parsers and validation, throttles, upload limits) and
would otherwise be missing, so a client generated from the schema, or schemathesis, meets undocumented codes.
Every error body has the same shape: ``{"detail": "<what to do>"}``, with field errors under their names.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "What went wrong, as a sentence a person can act on; validation errors name each field.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
PUBLIC_PATHS = ("/api/health/", "/api/health/live/", "/api/schema/", "/api/docs/", "/api/redoc/", "/api/transforms/")
BODY_METHODS = ("post", "put", "patch")


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _errors_for(path: str, method: str, operation: dict) -> dict[str, str]:
    codes: dict[str, str] = {}
    has_query = any(parameter.get("in") == "query" for parameter in operation.get("parameters", []))
    if method in BODY_METHODS or has_query or "requestBody" in operation:
        codes["400"] = "The request is invalid; the body says which part and why."
    if path not in PUBLIC_PATHS:
        codes["401"] = "No valid credentials were sent."
        codes["403"] = "The credentials do not allow this action here (the role needed is named)."
    if "{" in path:
        codes["404"] = "Nothing of that name in a project you belong to."
    if method in BODY_METHODS:
        codes["413"] = "The body is larger than this endpoint takes."
        codes["415"] = "The body's content type is not one this endpoint reads."
    codes["405"] = "This method is not allowed here."
    codes["406"] = "The Accept header asks for a format this endpoint does not produce."
    codes["429"] = "Too many requests; retry after the number of seconds in Retry-After."
    return codes


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS['POSTPROCESSING_HOOKS'])."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in _errors_for(path, method, operation).items():
                operation["responses"].setdefault(code, _error(description))
    return result
