"""The device configuration fingerprint, computed the same way by the agent and the server."""

from __future__ import annotations

import hashlib

from devices.core.signing import canonical_json


def config_fingerprint(config: dict) -> str:
    """sha256 hex of ``canonical_json(config)``: key order does not matter, values and types do."""
    return hashlib.sha256(canonical_json(config)).hexdigest()
