from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console.models import ApiToken


class Command(BaseCommand):
    help = "Issue a personal API token for a user; the raw token is printed once and stored only as a hash."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        _, raw = ApiToken.issue(user, options["name"])
        self.stdout.write(raw)
