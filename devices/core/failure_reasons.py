"""Why a download or install failed, in the five words the dashboards use, read from the reason a device sent.

Pure (shared with the agent): the agent's messages say what happened in a sentence ("sha256 mismatch: ...",
"download incomplete after 3 attempts: ..."); dashboards count them by kind.
"""

from __future__ import annotations

NETWORK = "network"
CHECKSUM = "checksum"
SIGNATURE = "signature"
DISK_SPACE = "disk_space"
CANCELLED = "cancelled"
OTHER = "other"
REASONS = (NETWORK, CHECKSUM, SIGNATURE, DISK_SPACE, CANCELLED, OTHER)
LABELS = {
    NETWORK: "network",
    CHECKSUM: "checksum",
    SIGNATURE: "signature",
    DISK_SPACE: "disk space",
    CANCELLED: "cancelled",
    OTHER: "other",
}

# Tried in this order: the first kind with a word in the reason wins (a signature check that read a bad sha256
# says "signature").
_WORDS = (
    (SIGNATURE, ("signature",)),
    (CHECKSUM, ("sha256", "checksum", "etag", "manifest says", "digest")),
    (DISK_SPACE, ("no space", "disk", "enospc", "storage full", "not enough space", "quota")),
    (CANCELLED, ("cancel", "aborted by user")),
    (NETWORK, ("incomplete", "timeout", "timed out", "connection", "network", "unreachable", "reset", "dns", "http")),
)


def failure_reason(text: str) -> str:
    """One of ``REASONS`` for a failure's reason as the device wrote it."""
    lowered = (text or "").lower()
    for kind, words in _WORDS:
        if any(word in lowered for word in words):
            return kind
    return OTHER


# Offer -> install delays are counted in these buckets (upper bounds in seconds; the last one is open).
DELAY_BOUNDS_S = (60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)


def delay_bucket(seconds: float) -> int:
    """Index of the bucket holding ``seconds`` (``len(DELAY_BOUNDS_S)`` for longer than the last bound)."""
    for index, bound in enumerate(DELAY_BOUNDS_S):
        if seconds <= bound:
            return index
    return len(DELAY_BOUNDS_S)


def median_from_buckets(counts: list[int]) -> float | None:
    """The median delay in seconds, interpolated inside its bucket; None without any count. A median in the
    open last bucket is given as its lower bound (at least that long)."""
    total = sum(counts)
    if not total:
        return None
    half, seen = total / 2, 0
    for index, count in enumerate(counts):
        if count and seen + count >= half:
            low = 0 if index == 0 else DELAY_BOUNDS_S[index - 1]
            if index == len(DELAY_BOUNDS_S):
                return float(low)
            return low + (DELAY_BOUNDS_S[index] - low) * (half - seen) / count
        seen += count
    return None
