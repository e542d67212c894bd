"""One ``Registry`` per onnxruntime release: what the compatibility checker asks about operators and kernels.

A release's registry is the data file ``record.py`` wrote from its wheel (``data/registries/``), plus any other
provider's kernels recorded or taken from a published table for that release; the server's own release is read
live through ``record.dump``, the same code that wrote the files. A release with no data file has no registry:
the checker then says that operators were not checked, rather than guessing.
"""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime

from ..live_runtime import major_minor
from . import record

DATA_DIR = record.DATA_DIR
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Schema:
    since: int
    deprecated: bool
    inputs: list  # [[name, type_str, option], ...]; option 0 single, 1 optional, 2 variadic
    outputs: list
    constraints: dict[str, list[str]]


@dataclass(frozen=True)
class Registry:
    release: str  # as recorded, e.g. "1.16.3"
    source: str
    schemas: dict[str, list]
    kernels: dict[str, dict[str, list]]  # provider -> "domain:op" -> [[start, end, {constraint: types}], ...]
    # provider -> why its kernels are not the release's own listing (a published table), shown with verdicts
    inexact: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"onnxruntime {major_minor(self.release)}"

    def schema(self, domain: str, op: str, opset: int) -> Schema | None:
        """The schema a model importing ``domain`` at ``opset`` resolves ``op`` to in this release, if any."""
        known = [entry for entry in self.schemas.get(f"{domain}:{op}", ()) if entry[0] <= opset]
        if not known:
            return None
        since, deprecated, inputs, outputs, constraints = max(known, key=lambda entry: entry[0])
        return Schema(since, bool(deprecated), inputs, outputs, constraints)

    def kernels_for(self, provider: str, domain: str, op: str, since: int) -> list[dict[str, list[str]]]:
        """The type constraints of each kernel of ``provider`` registered for the schema version ``since``.

        onnxruntime's own rule (``KernelRegistry::VerifyKernelDef``): a kernel registered from the very version
        takes the node; an earlier one only if its range is closed and reaches it. An open range (``14+``) does
        not stretch to a later schema version: QuantizeLinear-25's kernels do not take QuantizeLinear-28.
        """
        ranges = self.kernels.get(provider, {}).get(f"{domain}:{op}", ())
        return [
            types for start, end, types in ranges if start == since or (start < since <= end and end != record.OPEN_END)
        ]

    def has_provider(self, provider: str) -> bool:
        return provider in self.kernels


def _read(path: Path) -> dict:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)


def _build(main: dict, extra: list[dict]) -> Registry:
    kernels = dict(main["kernels"])
    inexact = {}
    for other in extra:
        provider = other["provider"]
        if provider in kernels and not other.get("exact", True):
            continue  # a recorded listing beats a published table
        kernels[provider] = other["kernels"]
        if not other.get("exact", True):
            inexact[provider] = other["source"]
    return Registry(main["release"], main.get("source", ""), main["schemas"], kernels, inexact)


def _extra_providers(version: str) -> list[dict]:
    """Non-CPU kernel files for a release: ``onnxruntime-<mm>-<provider>[-published].json[.gz]``."""
    files = sorted(DATA_DIR.glob(f"onnxruntime-{version}-*.json*"))
    extra = []
    for path in files:
        if path.name.startswith(f"onnxruntime-{version}-cpu."):
            continue
        data = _read(path)
        if "provider" not in data:  # a full recording of another provider: take its kernels
            for provider, by_op in data["kernels"].items():
                if provider != CPU:
                    extra.append({"provider": provider, "kernels": by_op, "exact": True, "source": path.name})
            continue
        extra.append(data)
    # Exact recordings first, so they win over a published table of the same provider.
    return sorted(extra, key=lambda data: not data.get("exact", True))


@functools.cache
def live_registry() -> Registry:
    """The server's own onnxruntime, asked directly (all the providers this build has)."""
    version = major_minor(onnxruntime.__version__)
    return _build({**record.dump(), "source": "the server's onnxruntime, read live"}, _extra_providers(version))


@functools.cache
def registry_for(runtime_version: str) -> Registry | None:
    """The registry of the release a device type names (major.minor counts); None when none is recorded."""
    version = major_minor(runtime_version)
    if version == major_minor(onnxruntime.__version__):
        return live_registry()
    path = DATA_DIR / f"onnxruntime-{version}-cpu.json.gz"
    if not path.exists():
        return None
    return _build(_read(path), _extra_providers(version))


def recorded_releases() -> list[str]:
    return sorted(p.name.split("-")[1] for p in DATA_DIR.glob("onnxruntime-*-cpu.json.gz"))
