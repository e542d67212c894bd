"""Manifest signatures (Ed25519) and short-lived download tokens (HMAC-SHA256).

Shared by the server and the device agent; no Django here.

What a manifest signature covers: ``canonical_json`` of the manifest without
the keys in ``UNSIGNED_MANIFEST_KEYS``. The delivery fields (``download_url``,
``expires_at``) are left out on purpose: they change at every check-in, while
the bytes they point at are pinned by the signed ``sha256`` and ``size``. So a
package is signed once, when it is built, and the signature stays valid for as
long as the package exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

UNSIGNED_MANIFEST_KEYS = frozenset({"signature", "download_url", "expires_at"})


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, no NaN: the one byte form that is hashed and signed.

    Numbers keep Python's JSON form, so 1 and 1.0 differ; send integers as integers.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def generate_keypair() -> tuple[bytes, str]:
    """A new project signing key: (private key as PKCS#8 PEM, public key as base64 of its 32 raw bytes)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem, _public_b64(private_key.public_key())


def public_key_from_private(private_pem: bytes) -> str:
    """The base64 public key matching ``private_pem`` (what enrollment hands to devices)."""
    return _public_b64(_load_private_key(private_pem).public_key())


def signed_bytes(manifest: dict) -> bytes:
    """The exact bytes a manifest signature is made over."""
    return canonical_json({key: value for key, value in manifest.items() if key not in UNSIGNED_MANIFEST_KEYS})


def sign_manifest(private_pem: bytes, manifest: dict) -> str:
    """Base64 Ed25519 signature over ``signed_bytes(manifest)``."""
    signature = _load_private_key(private_pem).sign(signed_bytes(manifest))
    return base64.b64encode(signature).decode("ascii")


def verify_manifest(public_b64: str, manifest: dict) -> bool:
    """Whether ``manifest["signature"]`` is a valid signature by ``public_b64``; False on any malformed input."""
    signature_b64 = manifest.get("signature")
    if not isinstance(signature_b64, str):
        return False
    try:
        public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, signed_bytes(manifest))
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False
    return True


def make_download_token(secret: bytes, *, version_id: int | str, device_id: str, expires_at: int) -> str:
    """``<payload>.<mac>``, both base64url without padding; the payload names the version, device and expiry.

    The token rides in the download URL, so a leaked URL is good for one
    version, one device and a few minutes only.
    """
    payload = canonical_json(
        {"device_id": str(device_id), "expires_at": int(expires_at), "version_id": str(version_id)}
    )
    payload_b64 = _b64url(payload)
    return f"{payload_b64}.{_b64url(_mac(secret, payload_b64))}"


def check_download_token(secret: bytes, token: str, *, version_id: int | str, device_id: str, now: int) -> str | None:
    """``None`` when the token is good for this version and device at ``now``, else the reason.

    Reasons: "tampered" (bad format or MAC), "wrong version", "wrong device", "expired".
    The MAC is checked first, in constant time, so nothing is read from a forged payload.
    """
    if not isinstance(token, str) or token.count(".") != 1:
        return "tampered"
    payload_b64, mac_b64 = token.split(".")
    # Compare the encoded text, not decoded bytes: lenient base64 decoding would accept junk characters.
    expected_mac_b64 = _b64url(_mac(secret, payload_b64))
    if not hmac.compare_digest(mac_b64.encode("utf-8", "replace"), expected_mac_b64.encode("ascii")):
        return "tampered"
    try:
        claims = json.loads(_b64url_decode(payload_b64))
        token_version, token_device, expires_at = claims["version_id"], claims["device_id"], int(claims["expires_at"])
    except (ValueError, KeyError, TypeError):
        return "tampered"
    if token_version != str(version_id):
        return "wrong version"
    if token_device != str(device_id):
        return "wrong device"
    if now >= expires_at:
        return "expired"
    return None


def _mac(secret: bytes, payload_b64: str) -> bytes:
    # Domain-separated so this secret's MACs cannot be replayed as some other token kind.
    return hmac.new(secret, b"download-token:v1:" + payload_b64.encode("utf-8", "replace"), hashlib.sha256).digest()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not base64url") from exc


def _load_private_key(private_pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the project signing key is not an Ed25519 key")
    return key


def _public_b64(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")
