"""Seed the built-in device type catalog (shared by all projects).

Profiles reflect common targets; runtime releases map to opset limits through
onnxruntime's published compatibility table at check time.
"""

import onnxruntime
from django.db import migrations

BUILTIN = [
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
        "runtime_version": ".".join(onnxruntime.__version__.split(".")[:2]),
        "runtime_build": "full",
        "precisions": ["fp32", "int8", "fp16"],
        "notes": "Runs the same onnxruntime release as this server.",
    },
]


def seed(apps, schema_editor):
    DeviceType = apps.get_model("devices", "DeviceType")
    for profile in BUILTIN:
        DeviceType.objects.update_or_create(project=None, slug=profile["slug"], defaults=profile)


def unseed(apps, schema_editor):
    DeviceType = apps.get_model("devices", "DeviceType")
    DeviceType.objects.filter(project=None, slug__in=[p["slug"] for p in BUILTIN]).delete()


class Migration(migrations.Migration):
    dependencies = [("devices", "0001_device_type")]
    operations = [migrations.RunPython(seed, unseed)]
