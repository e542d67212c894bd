"""Published onnxruntime limits and the ORT Mobile reduced operator set.

Both come from data files next to this module (``data/``); their provenance is in the JSON's ``source``
field and in the config's header comment.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import onnx

DATA_DIR = Path(__file__).with_name("data")
DEFAULT_DOMAIN = "ai.onnx"


def _major_minor(version: str) -> tuple[int, int]:
    """``"1.17"``, ``"1.17.3"`` or ``"v1.17.0rc1"`` -> ``(1, 17)``; raises ValueError for anything else."""
    parts = version.strip().removeprefix("v").split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


@cache
def published_runtimes() -> dict[str, dict]:
    """``{"1.16": {"ai.onnx": 19, "ai.onnx.ml": 3, "ir_version": 9}, ...}``. Cached: do not mutate."""
    return json.loads((DATA_DIR / "ort_runtimes.json").read_text(encoding="utf-8"))["runtimes"]


def runtime_limits(version: str) -> dict | None:
    """Limits of the onnxruntime release ``version`` (only major.minor counts).

    A version missing from the table (newer than its newest row, or between rows) gets the nearest lower row,
    which is conservative, with ``"exact": False``; ``"runtime"`` names the row used. None if older than the table.
    """
    wanted = _major_minor(version)
    table = published_runtimes()
    lower = [row for row in table if _major_minor(row) <= wanted]
    if not lower:
        return None
    row = max(lower, key=_major_minor)
    return {**table[row], "runtime": row, "exact": _major_minor(row) == wanted}


def parse_operator_config(text: str) -> dict[str, dict[int, frozenset[str]]]:
    """Parse onnxruntime's reduced operator config (``domain;opset,opset;Op1,Op2``) into {domain: {opset: ops}}.

    ``#`` comments, blank lines and ``!`` directives (e.g. ``!globally_allowed_types``) are skipped; an empty domain
    means ``ai.onnx``. Lines repeating a domain and opset add to it. Per-op type annotations (``Op{...}``) are not
    supported and raise ValueError.
    """
    merged: dict[str, dict[int, set[str]]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("!"):
            continue
        if "{" in line:
            raise ValueError(f"type-reduction annotations are not supported: {raw!r}")
        domain, opsets, ops = (part.strip() for part in line.split(";"))
        names = {op.strip() for op in ops.split(",") if op.strip()}
        for opset in opsets.split(","):
            merged.setdefault(domain or DEFAULT_DOMAIN, {}).setdefault(int(opset), set()).update(names)
    return {domain: {opset: frozenset(ops) for opset, ops in by_opset.items()} for domain, by_opset in merged.items()}


@cache
def mobile_operator_set(name: str = "ort_mobile_1.17") -> dict[str, dict[int, frozenset[str]]]:
    """The operator set of ``data/<name>.config``, parsed by :func:`parse_operator_config`. Cached: do not mutate."""
    return parse_operator_config((DATA_DIR / f"{name}.config").read_text(encoding="utf-8"))


def _since_version(domain: str, op: str, opset: int) -> int | None:
    """The since_version of the ONNX schema a model at ``opset`` resolves ``op`` to (None if unknown)."""
    try:
        return int(onnx.defs.get_schema(op, opset, "" if domain == DEFAULT_DOMAIN else domain).since_version)
    except onnx.defs.SchemaError:
        return None


def mobile_supports(ops_by_domain: dict[str, dict[int, frozenset[str]]], domain: str, op: str, opset: int) -> bool:
    """Whether a model importing ``domain`` at ``opset`` can run ``op`` on the reduced package.

    The package holds the kernel versions that the listed opsets resolve to. A model at any opset
    resolves ``op`` to one schema version (its since_version); the op is supported when that same
    schema version is the one some listed opset resolves it to. So Conv (unchanged from 11 to 21)
    works at opset 17 on a package listing 12..15, while Where (changed at 16) does not.
    Ops of domains onnx does not define (com.microsoft) fall back to "listed at an opset <= the model's".
    """
    domain = domain or DEFAULT_DOMAIN
    listed = {config_opset: ops for config_opset, ops in ops_by_domain.get(domain, {}).items() if op in ops}
    if not listed:
        return False
    wanted = _since_version(domain, op, opset)
    if wanted is None:
        return any(config_opset <= opset for config_opset in listed)
    return any(_since_version(domain, op, config_opset) == wanted for config_opset in listed)
