"""Record an onnxruntime release's schema and kernel registry as a data file the checker loads.

    python -m jobs.tooling.registry.record --release 1.16.3          # CPU kernels of the onnxruntime wheel
    python -m jobs.tooling.registry.record --release 1.18.1 --package onnxruntime-gpu --provider CUDAExecutionProvider

The release is installed from PyPI into a venv under var/registry-venvs/ (kept for the next run), and this very
file is run there with ``--dump``: that half imports nothing but the standard library and the onnxruntime it
finds, so it runs on any release. The server's own release is read in-process through the same ``dump``
(``jobs.tooling.registry.live``), so recorded and live registries have one shape and one reader.

Listing the CUDA kernels of onnxruntime-gpu needs a GPU driver (without one it crashes): run that on a machine
with a GPU. Where that is not possible the data comes from the release's published kernel table instead
(``published_table.py``) and says so in its ``exact`` field.

Format 1 (JSON, gzip-compressed):
    {"format": 1, "runtime": "onnxruntime", "release": "1.16.3", "source": ..., "exact": true,
     "max_ir_version": null,
     "schemas": {"ai.onnx:Add": [[since, deprecated, [[name, type_str, option], ...inputs], [...outputs],
                                 {"T": ["float", ...]}], ...]},
     "kernels": {"CPUExecutionProvider": {"ai.onnx:Add": [[start, end, {"T": ["float", ...]}], ...]}}}
Types are written short: "tensor(float)" -> "float", "seq(tensor(float))" -> "seq(float)". An open kernel range
ends at 2147483647 (INT_MAX, as onnxruntime writes it). Options: 0 single, 1 optional, 2 variadic.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

OPEN_END = 2147483647
ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "registries"


def short_type(name: str) -> str:
    """ "tensor(float)" -> "float"; "seq(tensor(int64))" -> "seq(int64)"; anything else as written."""
    if name.startswith("tensor(") and name.endswith(")"):
        return name[len("tensor(") : -1]
    if name.startswith("seq(tensor(") and name.endswith("))"):
        return f"seq({name[len('seq(tensor(') : -2]})"
    return name


def _domain(domain: str) -> str:
    return domain or "ai.onnx"


def dump(providers: list[str] | None = None) -> dict:
    """The schema and kernel registry of the onnxruntime importable here (stdlib + onnxruntime only)."""
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    schemas: dict[str, list] = {}
    for schema in state.get_all_operator_schema():
        params = []
        for formal in (schema.inputs, schema.outputs):
            params.append([[p.name, p.typeStr, int(p.option.value)] for p in formal])
        constraints = {
            c.type_param_str: sorted({short_type(t) for t in c.allowed_type_strs}) for c in schema.type_constraints
        }
        entry = [int(schema.since_version), int(bool(schema.deprecated)), params[0], params[1], constraints]
        schemas.setdefault(f"{_domain(schema.domain)}:{schema.name}", []).append(entry)
    kernels: dict[str, dict[str, list]] = {}
    for kernel in state.get_all_opkernel_def():
        if providers and kernel.provider not in providers:
            continue
        start, end = kernel.version_range
        types = {name: sorted({short_type(t) for t in allowed}) for name, allowed in kernel.type_constraints.items()}
        by_op = kernels.setdefault(kernel.provider, {})
        by_op.setdefault(f"{_domain(kernel.domain)}:{kernel.op_name}", []).append([int(start), int(end), types])
    for by_op in kernels.values():
        for ranges in by_op.values():
            ranges.sort(key=lambda r: (r[0], r[1], json.dumps(r[2], sort_keys=True)))
    for entries in schemas.values():
        entries.sort(key=lambda e: e[0])
    return {
        "format": 1,
        "runtime": "onnxruntime",
        "release": onnxruntime.__version__,
        "exact": True,
        "schemas": dict(sorted(schemas.items())),
        "kernels": {provider: dict(sorted(by_op.items())) for provider, by_op in sorted(kernels.items())},
    }


def data_file(release: str, provider: str) -> Path:
    major_minor = ".".join(release.split(".")[:2])
    suffix = "cpu" if provider == "CPUExecutionProvider" else provider.removesuffix("ExecutionProvider").lower()
    return DATA_DIR / f"onnxruntime-{major_minor}-{suffix}.json.gz"


def write(registry: dict, path: Path) -> None:
    """Gzip with a fixed mtime, so recording the same release twice gives the same bytes."""
    text = json.dumps(registry, sort_keys=True, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(text)


def record(release: str, package: str, provider: str, *, python: str = "python3.11") -> Path:
    venv = ROOT / "var" / "registry-venvs" / f"{package}-{release}"
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    # numpy<2: releases before 1.19 were built against numpy 1 and fail to import with numpy 2.
    subprocess.run([str(bin_python), "-m", "pip", "install", "--quiet", f"{package}=={release}", "numpy<2"], check=True)
    env = {**os.environ, "PYTHONPATH": ""}  # the release's own onnxruntime, never the server's
    out = subprocess.run(
        [str(bin_python), __file__, "--dump", "--provider", provider],
        check=True,
        capture_output=True,
        env=env,
        cwd=venv,
    )
    registry = json.loads(out.stdout)
    registry["source"] = f"recorded from the {package}=={release} wheel (linux x86_64) by {Path(__file__).name}"
    path = data_file(release, provider)
    write(registry, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", help="onnxruntime release to install and record, e.g. 1.16.3")
    parser.add_argument("--package", default="onnxruntime")
    parser.add_argument("--provider", default="CPUExecutionProvider")
    parser.add_argument("--dump", action="store_true", help="print this interpreter's registry as JSON (internal)")
    args = parser.parse_args(argv)
    if args.dump:
        json.dump(dump([args.provider]), sys.stdout)
        return 0
    if not args.release:
        parser.error("--release is required")
    path = record(args.release, args.package, args.provider)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
