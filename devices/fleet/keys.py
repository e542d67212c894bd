"""Delivery secrets: enrollment keys and device tokens (only their sha256 is stored), the project signing
key (stored encrypted) and the secret that signs download tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from console.models import hash_token
from devices import conf

ENROLLMENT_KEY_PREFIX = "enr_"
DEVICE_TOKEN_PREFIX = "dev_"

__all__ = [
    "hash_token",
    "new_enrollment_key",
    "new_device_token",
    "encrypt_private_key",
    "decrypt_private_key",
    "download_secret",
    "checkin_ticket_secret",
]


def new_enrollment_key() -> str:
    return ENROLLMENT_KEY_PREFIX + secrets.token_urlsafe(32)


def new_device_token() -> str:
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    # Domain-separated from every other use of the secret.
    digest = hashlib.sha256(b"devices.signing-key-encryption:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_private_key(private_pem: bytes) -> bytes:
    return _fernet(conf.key_encryption_secret()).encrypt(private_pem)


def decrypt_private_key(blob: bytes | memoryview) -> bytes:
    try:
        return _fernet(conf.key_encryption_secret()).decrypt(bytes(blob))
    except InvalidToken as exc:
        raise RuntimeError(
            "The project signing key cannot be decrypted: SECRET_KEY (or DEVICE_KEY_ENCRYPTION_KEY) changed "
            "since it was created."
        ) from exc


@lru_cache(maxsize=8)
def _derived_secret(secret_key: str, purpose: bytes) -> bytes:
    """A key for one purpose, derived from SECRET_KEY (domain-separated from every other use of it)."""
    return hmac.new(secret_key.encode(), purpose, hashlib.sha256).digest()


def download_secret() -> bytes:
    return _derived_secret(settings.SECRET_KEY, b"devices.download-token")


def checkin_ticket_secret() -> bytes:
    """What check-in tickets (devices.tickets) are MACed with."""
    return _derived_secret(settings.SECRET_KEY, b"devices.checkin-ticket")
