"""The database cache's table, made by ``migrate`` itself.

Without REDIS_URL or CACHE_URL the shared cache (throttles, sign-in lock-out, rule previews) is the table
``console_cache``, which Django makes only with ``manage.py createcachetable``. A console deployed with ``migrate``
alone answered 500 on the first page that used the cache; this runs the same command (idempotent, and a no-op when
the cache is Redis) as part of every migrate.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0007_require_approval"),
    ]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
