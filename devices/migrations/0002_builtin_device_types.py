"""Seed the built-in device type catalog (shared by all projects).

The profiles live in ``devices.catalog.builtin``, a module of pure constants
(no Django, no app code), so this migration, the demo fleet and the simulator
read one list. Runtime releases map to opset limits through onnxruntime's
published compatibility table at check time.
"""

from django.db import migrations

from devices.catalog.builtin import BUILTIN_DEVICE_TYPE_SLUGS, BUILTIN_DEVICE_TYPES


def seed(apps, schema_editor):
    DeviceType = apps.get_model("devices", "DeviceType")
    for profile in BUILTIN_DEVICE_TYPES:
        DeviceType.objects.update_or_create(project=None, slug=profile["slug"], defaults=dict(profile))


def unseed(apps, schema_editor):
    DeviceType = apps.get_model("devices", "DeviceType")
    DeviceType.objects.filter(project=None, slug__in=BUILTIN_DEVICE_TYPE_SLUGS).delete()


class Migration(migrations.Migration):
    dependencies = [("devices", "0001_device_type")]
    operations = [migrations.RunPython(seed, unseed)]
