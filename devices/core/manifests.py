"""Package manifests (signed once per version and cached in its plan), download URLs and answer ETags."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from devices.constants import API_PREFIX
from devices.core.resolution import ModelPlan, VersionFacts
from devices.core.signing import canonical_json, make_download_token, sign_manifest
from devices.core.tickets import answer_part


def signed_manifest(plan: ModelPlan, version: VersionFacts, private_pem: Callable[[], bytes]) -> dict[str, Any]:
    """The manifest of ``version`` with its signature; ``private_pem`` is called only when it must be signed."""
    manifest = plan.signed_manifests.get(version.id)
    if manifest is None:
        manifest = {
            "model": plan.name,
            "version_id": version.id,
            "version": str(version.number),
            "sha256": version.sha256,
            "size": version.size,
            "format": version.format,
            "runtime": dict(version.runtime),
        }
        manifest["signature"] = sign_manifest(private_pem(), manifest)
        plan.signed_manifests[version.id] = manifest
    return manifest


def with_download_url(manifest: dict[str, Any], *, secret: bytes, device_id: str, expires_at: int) -> dict[str, Any]:
    token = make_download_token(secret, version_id=manifest["version_id"], device_id=device_id, expires_at=expires_at)
    return {
        **manifest,
        "download_url": f"{API_PREFIX}/download/{manifest['version_id']}?token={token}",
        "expires_at": expires_at,
    }


def answer_etag(stable_answer: dict[str, Any]) -> str:
    """ETag of a check-in answer built *without* download URLs, so an unchanged assignment keeps its ETag.
    24 hex digits: the device row stores it in ``delivery_digest`` (see ``devices.delivery.checkin``)."""
    return '"' + hashlib.sha256(canonical_json(stable_answer)).hexdigest()[:24] + '"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether If-None-Match names this answer; a check-in ticket (devices.core.tickets) names the answer it was
    issued for, whoever issued it and whenever."""
    wanted = answer_part(etag)
    return any(candidate in (wanted, "*") for candidate in map(answer_part, if_none_match.split(",")))
