"""A provider's kernels from onnxruntime's published kernel table (docs/OperatorKernels.md), in the recorded shape.

    python -m jobs.tooling.registry.published_table --markdown OperatorKernels.md \\
        --provider CUDAExecutionProvider --release 1.18 \\
        --max-opsets ai.onnx=21,ai.onnx.ml=4,com.microsoft=1 \\
        --source "published kernel table ... at commit <id>" \\
        --out jobs/tooling/data/registries/onnxruntime-1.18-cuda-published.json

Used where a release's registry cannot be listed here (the CUDA kernels of onnxruntime-gpu need a GPU driver).
The table is generated from the registered kernels, one row per kernel version range:

    |**Operator Domain:** *ai.onnx*||||
    |Add|*in* A:**T**<br> *in* B:**T**<br> *out* C:**T**|14+|**T** = tensor(double), tensor(float)|
    |||13|**T** = tensor(double), tensor(float)|
    |||[7, 12]|**T** = tensor(double)|

and becomes ``{"ai.onnx:Add": [[7, 12, {"T": ["double"]}], [13, 13, ...], [14, 2147483647, ...]]}``. The table
merges a kernel's typed registrations into one row, so each constraint lists the union of its types: where a
kernel pairs constraints (T1=float with T2=int8 only), the table cannot say so. The data file written from it
is marked ``"exact": false`` and the checker shows its source with each verdict it gives.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .record import OPEN_END, short_type

_DOMAIN_ROW = re.compile(r"^\|\*\*Operator Domain:\*\*\s*\*(?P<domain>[^*]+)\*")
_CONSTRAINT = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*=\s*(?P<types>.*)$")
_CLOSED_RANGE = re.compile(r"^\[(?P<start>\d+),\s*(?P<end>\d+)\]$")


def _section(markdown: str, provider: str) -> list[str]:
    """The lines of the table under ``## Operators implemented by <provider>``, up to the next section."""
    lines = markdown.splitlines()
    heading = f"## Operators implemented by {provider}"
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise ValueError(f"no section {heading!r} in the kernel table") from None
    section = []
    for line in lines[start + 1 :]:
        if line.startswith("## ") or line.startswith("<a name="):
            break
        section.append(line.strip())
    return section


def _version_range(cell: str) -> tuple[int, int]:
    """ "14+" -> (14, OPEN_END); "13" -> (13, 13); "[7, 12]" -> (7, 12)."""
    cell = cell.strip()
    if cell.endswith("+"):
        return int(cell[:-1]), OPEN_END
    closed = _CLOSED_RANGE.match(cell)
    if closed:
        return int(closed["start"]), int(closed["end"])
    if cell.isdigit():
        return int(cell), int(cell)
    raise ValueError(f"unreadable opset version {cell!r} in the kernel table")


def _split_types(text: str) -> list[str]:
    """Split "tensor(float), seq(tensor(int64))" at the commas outside parentheses."""
    names: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "," and depth == 0:
            names.append("".join(current).strip())
            current = []
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current.append(char)
    names.append("".join(current).strip())
    return [name for name in names if name]


def _constraints(cell: str) -> dict[str, list[str]]:
    """ "**T** = tensor(float)<br/> **T1** = tensor(bool)" -> {"T": ["float"], "T1": ["bool"]}."""
    types: dict[str, list[str]] = {}
    for part in cell.split("<br/>"):
        part = part.strip()
        if not part:
            continue
        match = _CONSTRAINT.match(part)
        if not match:
            raise ValueError(f"unreadable type constraint {part!r} in the kernel table")
        types[match["name"].strip()] = sorted({short_type(name) for name in _split_types(match["types"])})
    return types


def parse_kernel_table(markdown: str, provider: str) -> dict[str, list]:
    """The kernels ``provider``'s section of OperatorKernels.md lists: {"domain:op": [[start, end, types], ...]}.

    Ranges are sorted as ``record.dump`` sorts them; types are written short, as the recorded registries write them.
    """
    kernels: dict[str, list] = {}
    domain = None
    op = None
    for line in _section(markdown, provider):
        domain_row = _DOMAIN_ROW.match(line)
        if domain_row:
            domain, op = domain_row["domain"].strip(), None
            continue
        cells = line.split("|")
        # A kernel row has four cells between its five bars; headers, rules and the "| |" spacers do not count.
        if len(cells) != 6 or cells[1].strip() in ("Op Name",) or set(cells[1].strip()) == {"-"}:
            continue
        name, version, types = cells[1].strip(), cells[3], cells[4]
        if name:
            op = name
        if op is None or domain is None:
            raise ValueError(f"kernel row before any operator or domain in the kernel table: {line!r}")
        start, end = _version_range(version)
        kernels.setdefault(f"{domain}:{op}", []).append([start, end, _constraints(types)])
    for ranges in kernels.values():
        ranges.sort(key=lambda r: (r[0], r[1], json.dumps(r[2], sort_keys=True)))
    return kernels


def clamp_to_release(kernels: dict[str, list], max_opsets: dict[str, int]) -> dict[str, list]:
    """Only the ranges a release can have had: those starting at or below its newest opset of their domain.

    A table from a later release lists kernels for opsets that did not exist yet; those are dropped, and so is an
    operator left with no range. Domains ``max_opsets`` does not name (onnxruntime's internal layout domains, which
    no model imports) are dropped too: with no newest opset, nothing in them can be checked against the release.
    """
    clamped = {}
    for key, ranges in kernels.items():
        domain = key.rsplit(":", 1)[0]
        if domain not in max_opsets:
            continue
        kept = [list(r) for r in ranges if r[0] <= max_opsets[domain]]
        if kept:
            clamped[key] = kept
    return clamped


def render(data: dict) -> str:
    """JSON with sorted keys and compact separators, one operator per line so that a diff shows what changed."""
    lines = ["{"]
    items = sorted(data.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key != "kernels":
            lines.append(f"{json.dumps(key)}:{json.dumps(value, sort_keys=True, separators=(',', ':'))}{comma}")
            continue
        lines.append('"kernels":{')
        ops = sorted(value.items())
        for j, (op, ranges) in enumerate(ops):
            lines.append(
                f"{json.dumps(op)}:{json.dumps(ranges, sort_keys=True, separators=(',', ':'))}{',' if j < len(ops) - 1 else ''}"
            )
        lines.append("}" + comma)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _max_opsets(text: str) -> dict[str, int]:
    """ "ai.onnx=21,com.microsoft=1" -> {"ai.onnx": 21, "com.microsoft": 1}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    return {domain.strip(): int(version) for domain, version in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", type=Path, required=True, help="OperatorKernels.md, or the provider's section")
    parser.add_argument("--provider", required=True, help="e.g. CUDAExecutionProvider")
    parser.add_argument("--release", required=True, help="the release the data is for, e.g. 1.18")
    parser.add_argument("--max-opsets", required=True, help="the release's newest opset per domain: ai.onnx=21,...")
    parser.add_argument("--source", required=True, help="where the table came from (repository, commit)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    listed = parse_kernel_table(args.markdown.read_text(encoding="utf-8"), args.provider)
    kernels = clamp_to_release(listed, _max_opsets(args.max_opsets))
    data = {
        "format": 1,
        "runtime": "onnxruntime",
        "release": args.release,
        "provider": args.provider,
        "exact": False,
        "source": args.source,
        "kernels": kernels,
    }
    args.out.write_text(render(data), encoding="utf-8")
    listed_ranges = sum(len(r) for r in listed.values())
    kept_ranges = sum(len(r) for r in kernels.values())
    print(
        f"{args.provider} {args.release}: {len(kernels)} ops, {kept_ranges} ranges kept "
        f"(table listed {len(listed)} ops, {listed_ranges} ranges) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
