from __future__ import annotations

import base64

import pytest

from devices.core.fingerprint import config_fingerprint
from devices.core.signing import (
    canonical_json,
    check_download_token,
    generate_keypair,
    make_download_token,
    public_key_from_private,
    sign_manifest,
    verify_manifest,
)

MANIFEST = {
    "model": "digit-classifier",
    "version_id": 12,
    "version": "1.4.0",
    "sha256": "ab" * 32,
    "size": 123_456,
    "format": "onnx",
    "runtime": {"name": "onnxruntime", "min_version": "1.17", "opset": 17},
}


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, str]:
    return generate_keypair()


def signed(private_pem: bytes, manifest: dict | None = None) -> dict:
    manifest = dict(manifest or MANIFEST)
    return dict(manifest, signature=sign_manifest(private_pem, manifest))


def test_canonical_json__sorts_keys_drops_spaces_and_keeps_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": "ü", "c": None}]}) == '{"a":[1,{"c":null,"d":"ü"}],"b":1}'.encode()


def test_canonical_json__refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_generate_keypair__gives_pem_and_32_byte_public_key(keys: tuple[bytes, str]) -> None:
    private_pem, public_b64 = keys
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(base64.b64decode(public_b64)) == 32
    assert public_key_from_private(private_pem) == public_b64


def test_signed_manifest__verifies(keys: tuple[bytes, str]) -> None:
    private_pem, public_b64 = keys
    assert verify_manifest(public_b64, signed(private_pem))


def test_signature__does_not_depend_on_key_order(keys: tuple[bytes, str]) -> None:
    private_pem, public_b64 = keys
    reordered = dict(reversed(list(signed(private_pem).items())))
    assert verify_manifest(public_b64, reordered)


def test_signature__leaves_out_the_per_checkin_delivery_fields(keys: tuple[bytes, str]) -> None:
    private_pem, public_b64 = keys
    manifest = signed(private_pem)
    manifest.update(download_url="/api/device/v1/download/12?token=abc", expires_at=1_900_000_000)
    assert verify_manifest(public_b64, manifest)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "other-model"),
        ("version_id", 13),
        ("version", "1.4.1"),
        ("sha256", "cd" * 32),
        ("size", 123_457),
        ("format", "ort"),
        ("runtime", {"name": "onnxruntime", "min_version": "1.16", "opset": 17}),
        ("extra", "added field"),
    ],
)
def test_tampered_manifest__fails_verification(keys: tuple[bytes, str], field: str, value: object) -> None:
    private_pem, public_b64 = keys
    manifest = signed(private_pem)
    manifest[field] = value
    assert not verify_manifest(public_b64, manifest)


def test_manifest_signed_by_another_key__fails_verification(keys: tuple[bytes, str]) -> None:
    other_pem, _ = generate_keypair()
    assert not verify_manifest(keys[1], signed(other_pem))


@pytest.mark.parametrize("signature", [None, "", "not base64!", base64.b64encode(b"short").decode(), 42])
def test_malformed_signature__fails_verification_without_raising(keys: tuple[bytes, str], signature: object) -> None:
    manifest = dict(MANIFEST, signature=signature)
    assert not verify_manifest(keys[1], manifest)


def test_malformed_public_key__fails_verification_without_raising(keys: tuple[bytes, str]) -> None:
    assert not verify_manifest("AAAA", signed(keys[0]))


SECRET = b"download-secret-for-tests"
NOW = 1_800_000_000


def token(**overrides: object) -> str:
    claims = {"version_id": 12, "device_id": "device-1", "expires_at": NOW + 300} | overrides
    return make_download_token(SECRET, **claims)  # type: ignore[arg-type]


def check(value: str, **overrides: object) -> str | None:
    claims = {"version_id": 12, "device_id": "device-1", "now": NOW} | overrides
    return check_download_token(SECRET, value, **claims)  # type: ignore[arg-type]


def test_download_token__is_good_for_its_version_and_device_until_it_expires() -> None:
    assert check(token()) is None
    assert check(token(), version_id="12") is None  # ids compare as text
    assert check(token(), now=NOW + 299) is None
    assert check(token(), now=NOW + 300) == "expired"


def test_download_token__for_another_version_or_device__is_refused() -> None:
    assert check(token(), version_id=13) == "wrong version"
    assert check(token(), device_id="device-2") == "wrong device"


def test_download_token__is_url_safe() -> None:
    assert all(c.isalnum() or c in "-_." for c in token(device_id="ü/+?&"))


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize("index", [0, 5, 20, 40, -20, -1])
def test_download_token__with_any_character_changed__is_tampered(index: int) -> None:
    value = token()
    assert check(_flip(value, index % len(value))) == "tampered"


@pytest.mark.parametrize(
    "claims",
    [{"version_id": 13}, {"device_id": "device-2"}, {"expires_at": NOW + 10_000}],
)
def test_download_token__with_a_field_swapped_in_from_another_token__is_tampered(claims: dict) -> None:
    genuine_mac = token().split(".")[1]
    forged_payload = token(**claims).split(".")[0]
    assert check(f"{forged_payload}.{genuine_mac}", **{k: v for k, v in claims.items() if k != "expires_at"}) == (
        "tampered"
    )


@pytest.mark.parametrize("value", ["", "no-dot", "a.b.c", ".", "payload.", token() + "!", token() + "AA"])
def test_download_token__malformed__is_tampered(value: str) -> None:
    assert check(value) == "tampered"


def test_download_token__made_with_another_secret__is_tampered() -> None:
    other = make_download_token(b"other", version_id=12, device_id="device-1", expires_at=NOW + 300)
    assert check(other) == "tampered"


def test_config_fingerprint__ignores_key_order_but_not_values_or_types() -> None:
    config = {"device_type": "kiosk", "region": "DE", "attributes": {"tier": "pro", "ram_gb": 4}}
    reordered = {"attributes": {"ram_gb": 4, "tier": "pro"}, "region": "DE", "device_type": "kiosk"}
    assert config_fingerprint(config) == config_fingerprint(reordered)
    assert len(config_fingerprint(config)) == 64
    assert config_fingerprint(config) != config_fingerprint(dict(config, region="FR"))
    assert config_fingerprint(config) != config_fingerprint(dict(config, attributes={"tier": "pro", "ram_gb": "4"}))
