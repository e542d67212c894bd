"""Published onnxruntime limits and the ORT Mobile reduced operator set.

Both come from data files next to this module (``data/``); their provenance is in the JSON's ``source``
field and in the config's header comment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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


# The C++ type names a reduced-build config writes, in onnxruntime's short spelling.
_CONFIG_TYPES = {
    "int8_t": "int8", "uint8_t": "uint8", "int16_t": "int16", "uint16_t": "uint16", "int32_t": "int32",
    "uint32_t": "uint32", "int64_t": "int64", "uint64_t": "uint64", "MLFloat16": "float16",
    "BFloat16": "bfloat16", "std::string": "string", "string": "string", "float": "float", "double": "double",
    "bool": "bool",
}  # fmt: skip


def _config_type(name: str) -> str:
    return _CONFIG_TYPES.get(name.strip(), name.strip())


@dataclass(frozen=True)
class OperatorConfig:
    """A reduced build's operator config: its operators by domain and opset, and its type reduction.

    ``global_types`` is the ``!globally_allowed_types`` line (None when absent: every type the kernels have);
    ``op_types`` holds per-operator annotations, ``{(domain, op): {"inputs": {0: {"float"}}, "outputs": ...}}``.
    """

    ops: dict[str, dict[int, frozenset[str]]]
    global_types: frozenset[str] | None = None
    op_types: dict[tuple[str, str], dict[str, dict[int, frozenset[str]]]] = field(default_factory=dict)


def _split_ops(text: str) -> list[str]:
    """Split "Add{...},Relu" at the commas outside braces."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += char == "{"
        depth -= char == "}"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_operator_config(text: str) -> OperatorConfig:
    """Parse onnxruntime's reduced operator config (``domain;opset,opset;Op1,Op2``), type reduction included.

    ``#`` comments and blank lines are skipped; an empty domain means ``ai.onnx``; lines repeating a domain and
    opset add to it. ``!globally_allowed_types;float,int8_t`` limits the types of the build's kernels, and an
    operator may carry its own limits as ``Op{"inputs": {"0": ["float"]}}`` (both written with C++ type names).
    """
    merged: dict[str, dict[int, set[str]]] = {}
    global_types: frozenset[str] | None = None
    op_types: dict[tuple[str, str], dict[str, dict[int, frozenset[str]]]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("!globally_allowed_types"):
            global_types = frozenset(_config_type(t) for t in line.split(";", 1)[1].split(",") if t.strip())
            continue
        if line.startswith("!"):
            continue
        domain, opsets, ops = (part.strip() for part in line.split(";", 2))
        domain = domain or DEFAULT_DOMAIN
        names = set()
        for entry in _split_ops(ops):
            name, brace, annotation = entry.partition("{")
            names.add(name.strip())
            if brace:
                try:
                    limits = json.loads("{" + annotation)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"unreadable type annotation for {name.strip()}: {raw!r}") from exc
                op_types[(domain, name.strip())] = {
                    side: {
                        int(i): frozenset(_config_type(t) for t in types) for i, types in limits.get(side, {}).items()
                    }
                    for side in ("inputs", "outputs")
                }
        for opset in opsets.split(","):
            merged.setdefault(domain, {}).setdefault(int(opset), set()).update(names)
    ops_by_domain = {d: {opset: frozenset(ops) for opset, ops in by.items()} for d, by in merged.items()}
    return OperatorConfig(ops_by_domain, global_types, op_types)


@cache
def mobile_package(name: str = "ort_mobile_1.17") -> OperatorConfig:
    """The reduced build of ``data/<name>.config``, parsed by :func:`parse_operator_config`. Cached: do not mutate."""
    return parse_operator_config((DATA_DIR / f"{name}.config").read_text(encoding="utf-8"))


def mobile_operator_set(name: str = "ort_mobile_1.17") -> dict[str, dict[int, frozenset[str]]]:
    """The operators of the reduced build ``name``, by domain and opset."""
    return mobile_package(name).ops


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
