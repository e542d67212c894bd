"""The built-in device type catalog: the one place its slugs and profiles are written.

Pure constants (standard library and onnxruntime, no Django), so that three
readers can share them: the data migration ``0002_builtin_device_types``
imports this module (migrations import no app code; this is data, not app
code), the demo fleet (``devices.fleet.demo``) and the Django-free simulator
(``devices.agent.simulate``).

The migration runs once per database: a change to a profile here reaches
databases that already ran it only through a new data migration that calls
its ``seed`` again. Treat the dicts as read-only; the migration copies them.
"""

from __future__ import annotations

from typing import Any

import onnxruntime

# The server's own onnxruntime release, major.minor (what the x86-64 gateway is defined to run).
SERVER_RUNTIME = ".".join(onnxruntime.__version__.split(".")[:2])

# DeviceType rows shared by all projects (project=None); keys are DeviceType fields. Runtime releases map to
# opset limits through onnxruntime's published compatibility table at check time.
BUILTIN_DEVICE_TYPES: tuple[dict[str, Any], ...] = (
    {
        "slug": "android-arm64-phone",
        "name": "Android phone (arm64, ORT 1.17 mobile)",
        "cpu_arch": "arm64",
        "accelerator": "NNAPI",
        "execution_provider": "NnapiExecutionProvider",
        "memory_mb": 4096,
        "storage_mb": 2048,
        "max_model_mb": 100,
        "runtime_version": "1.17",
        "runtime_build": "mobile",
        "precisions": ["fp32", "int8"],
        "notes": "onnxruntime-mobile pre-built package: reduced operator set, float/int8/uint8 kernels only.",
    },
    {
        "slug": "raspberry-pi-4",
        "name": "Raspberry Pi 4 (Cortex-A72, ORT 1.16)",
        "cpu_arch": "arm64",
        "accelerator": "",
        "execution_provider": "CPUExecutionProvider",
        "memory_mb": 2048,
        "storage_mb": 8192,
        "max_model_mb": 500,
        "runtime_version": "1.16",
        "runtime_build": "full",
        "precisions": ["fp32", "int8"],
        "notes": "4 cores, no fp16 arithmetic worth using on the CPU.",
    },
    {
        "slug": "jetson-orin",
        "name": "NVIDIA Jetson Orin (CUDA, ORT 1.18)",
        "cpu_arch": "arm64",
        "accelerator": "CUDA",
        "execution_provider": "CUDAExecutionProvider",
        "memory_mb": 8192,
        "storage_mb": 32768,
        "max_model_mb": 2048,
        "runtime_version": "1.18",
        "runtime_build": "full",
        "precisions": ["fp32", "fp16", "int8"],
        "notes": "Ampere GPU with tensor cores; fp16 is the sweet spot.",
    },
    {
        "slug": "x86-gateway",
        "name": "x86-64 edge gateway (current ORT)",
        "cpu_arch": "x86_64",
        "accelerator": "",
        "execution_provider": "CPUExecutionProvider",
        "memory_mb": 16384,
        "storage_mb": 65536,
        "max_model_mb": 4096,
        "runtime_version": SERVER_RUNTIME,
        "runtime_build": "full",
        "precisions": ["fp32", "int8", "fp16"],
        "notes": "Runs the same onnxruntime release as this server.",
    },
)

BUILTIN_DEVICE_TYPE_SLUGS: tuple[str, ...] = tuple(profile["slug"] for profile in BUILTIN_DEVICE_TYPES)


def builtin_profile(slug: str) -> dict[str, Any]:
    """A built-in type as the compatibility checker reads it: what ``DeviceType.profile()`` returns for its row,
    without a database (tests, the benches)."""
    row = next(row for row in BUILTIN_DEVICE_TYPES if row["slug"] == slug)
    return {
        "slug": row["slug"],
        "name": row["name"],
        "runtime": "onnxruntime",
        "runtime_version": row["runtime_version"],
        "runtime_build": row["runtime_build"],
        "cpu_arch": row["cpu_arch"],
        "execution_provider": row["execution_provider"],
        "precisions": list(row["precisions"]),
        "max_model_bytes": row["max_model_mb"] * 1024 * 1024,
        "memory_bytes": row["memory_mb"] * 1024 * 1024,
    }


# What a device of each built-in type reports about itself when it checks in (the protocol's config fields that
# the type does not fix: its OS, its exact runtime release, the accelerator name the agent detects). The demo
# fleet's devices report these.
DEVICE_REPORTS: dict[str, dict[str, str]] = {
    "android-arm64-phone": {"os": "android", "cpu_arch": "arm64", "accelerator": "none", "runtime_version": "1.17.3"},
    "raspberry-pi-4": {"os": "linux", "cpu_arch": "arm64", "accelerator": "none", "runtime_version": "1.16.3"},
    "jetson-orin": {"os": "linux", "cpu_arch": "arm64", "accelerator": "cuda", "runtime_version": "1.18.1"},
    "x86-gateway": {
        "os": "linux",
        "cpu_arch": "x86_64",
        "accelerator": "none",
        "runtime_version": onnxruntime.__version__,
    },
}
