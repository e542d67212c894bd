"""Sticky bucketing shared by the server and the device agent.

A device (or any key) lands in one of 10 000 buckets for a given salt:

    bucket = int.from_bytes(sha256(f"{salt}:{key}".encode("utf-8")).digest()[:8], "big") % 10000

The formula is part of the device protocol: the agent and the server must
agree on it forever, so it is pinned by ``tests/devices/bucketing_vectors.json``.
Changing it re-shuffles every percentage rollout and experiment in the field.

Weights and percentages are expressed against the same 0..9999 scale: a weight
is in basis points (1 bp = 0.01 %), so 10000 bp cover every device.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

BUCKETS = 10_000


def bucket(salt: str, key: str) -> int:
    """The bucket (0..9999) of ``key`` under ``salt``; pure and stable across processes."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    # 64 bits mod 10 000: the modulo bias is below 1e-15, far under sampling noise.
    return int.from_bytes(digest[:8], "big") % BUCKETS


def pick_allocation(bucket: int, allocations: Sequence[tuple[str, int]]) -> str | None:
    """The label whose cumulative range holds ``bucket``, walking ``allocations`` in the given order.

    ``allocations`` are (label, weight in basis points). Weights may sum to less
    than 10000; buckets past the last range get ``None`` (the device is not in
    any arm). The caller must pass the arms in a stable order (e.g. by arm id):
    reordering moves devices between arms.
    """
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"bucket {bucket} is outside 0..{BUCKETS - 1}")
    # Check every weight first, so a bad allocation fails for every device, not only for some buckets.
    for label, weight in allocations:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= BUCKETS:
            raise ValueError(f"weight {weight!r} of {label!r} must be an integer 0..{BUCKETS} basis points")
    if sum(weight for _, weight in allocations) > BUCKETS:
        raise ValueError(f"weights add up to more than {BUCKETS} basis points")
    upper = 0
    for label, weight in allocations:
        upper += weight
        if bucket < upper:
            return label
    return None


def percent_to_basis_points(percent: float) -> int:
    """0..100 % as 0..10000 basis points, half up on the number as written: 12.345 % is 1235 bp."""
    if isinstance(percent, bool) or not isinstance(percent, int | float) or math.isnan(percent):
        raise ValueError(f"percentage {percent!r} is not a number")
    if not 0 <= percent <= 100:
        raise ValueError(f"percentage {percent} is outside 0..100")
    # Decimal of the shortest repr, not the binary float: 12.345 * 100 is 1234.4999... in floats.
    return int((Decimal(str(float(percent))) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def in_percentage(salt: str, key: str, percent: float) -> bool:
    """Whether ``key`` is inside the first ``percent`` % of buckets.

    Sticky by construction: the threshold only grows with ``percent``, so a
    device inside at 10 % stays inside at 20 % (same salt).
    """
    return bucket(salt, key) < percent_to_basis_points(percent)
