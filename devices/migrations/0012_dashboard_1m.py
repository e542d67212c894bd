import django.db.models.deletion
from django.db import migrations, models

# The index Django made for DeviceEvent.device (its name is derived from the table and column, on every
# backend). Dropped by name: letting AlterField do it would also drop and re-validate the foreign key, a scan of
# every stored event under a lock that holds up ingestion.
EVENT_DEVICE_INDEX = "devices_deviceevent_device_id_5294ea65"


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0011_experiment_arm_day_rollup"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="deviceevent",
                    name="device",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="devices.device",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{EVENT_DEVICE_INDEX}"',
                    f'CREATE INDEX "{EVENT_DEVICE_INDEX}" ON "devices_deviceevent" ("device_id")',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(
                condition=models.Q(("revoked_at__isnull", False)), fields=["project"], name="device_revoked"
            ),
        ),
    ]
