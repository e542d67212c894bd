"""Rebuild the dashboards' rollups (DeliveryRollup) from the stored device events."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from console.models import Project
from devices.telemetry.delivery_counts import rebuild


class Command(BaseCommand):
    help = "Count every stored device event again into the dashboards' rollups (all projects, or --project SLUG)."

    def add_arguments(self, parser):
        parser.add_argument("--project", action="append", default=[], help="a project's slug; repeat for several")

    def handle(self, *args, **options):
        ids = None
        if options["project"]:
            found = dict(Project.objects.filter(slug__in=options["project"]).values_list("slug", "pk"))
            missing = sorted(set(options["project"]) - set(found))
            if missing:
                raise CommandError(f"No project with slug {', '.join(missing)}; nothing was rebuilt.")
            ids = list(found.values())
        devices = rebuild(ids)
        self.stdout.write(f"Rebuilt the dashboards' rollups from the events of {devices} devices.")
