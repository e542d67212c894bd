"""Demo data: users with each role, a demo project, the digits model uploaded as v1, and a small demo fleet
that has it installed.

Idempotent: running it again changes nothing that exists. Passwords come from
DEMO_PASSWORD (default ``demo-pass-2026``) so the README's login is true, which is why it refuses to run
unless demo users were asked for (CONSOLE_DEMO=1, or --demo-users).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console.catalog import services as catalog_services
from console.catalog.datasets import attach_dataset
from console.catalog.uploads import temporary_upload
from console.jobkinds import services as jobkind_services
from console.models import Model, Project
from console.projects import roles
from console.projects import services as project_services
from devices.fleet.demo import seed_demo_fleet
from devices.rules import services as rules_services
from jobs.models import Job
from jobs.tasks import execute_job
from jobs.tooling.demo_models import write_digits_demo

DEMO_USERS = [("demo", roles.OWNER), ("dev", roles.DEVELOPER), ("approver", roles.APPROVER), ("viewer", roles.VIEWER)]


class Command(BaseCommand):
    help = (
        "Create demo users, the demo project and the digit-classifier model (trained now, offline). "
        "Only where demo users were asked for: CONSOLE_DEMO=1 (make run sets it) or --demo-users."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-users", action="store_true", help="create the demo users even though CONSOLE_DEMO is not set"
        )

    def handle(self, *args, **options):
        # The demo superuser's password is in the README: it must never appear in a deployment by accident.
        if not (settings.CONSOLE_DEMO or options["demo_users"]):
            raise CommandError(
                "seed_demo creates users whose password is printed in the README (a superuser "
                "among them), so it runs only where they were asked for: set CONSOLE_DEMO=1 "
                "(make run does) or pass --demo-users. Not on a console others can reach."
            )
        password = os.environ.get("DEMO_PASSWORD", settings.DEFAULT_DEMO_PASSWORD)
        users = {}
        for username, _ in DEMO_USERS:
            user, created = get_user_model().objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.is_staff = username == "demo"
                user.is_superuser = username == "demo"
                user.save()
            users[username] = user
        project = Project.objects.filter(slug="demo").first()
        if project is None:
            project = project_services.create_project(
                slug="demo",
                name="Demo app",
                owner=users["demo"],
                description="Handwritten digit recognition shipped to phones, Pis and gateways.",
            )
        for username, role in DEMO_USERS:
            project_services.set_member(project=project, user=users[username], role=role)
        model = Model.objects.filter(project=project, name="digit-classifier").first()
        if model is None:
            model = catalog_services.create_model(
                project=project,
                name="digit-classifier",
                user=users["demo"],
                description="8x8 handwritten digits, MLP trained on scikit-learn's bundled data.",
            )
        if not model.versions.exists():
            with tempfile.TemporaryDirectory() as tmp:
                model_path, data_path, accuracy = write_digits_demo(Path(tmp))
                with temporary_upload("digit-classifier.onnx", model_path.read_bytes()) as upload:
                    version = catalog_services.upload_version(model=model, uploaded=upload, user=users["demo"])
                # Check it now, in this process, so the demo opens on a checked version with its dataset.
                execute_job(Job.objects.get(input_version=version, kind="check").pk)
                with temporary_upload("digits-eval.npz", data_path.read_bytes()) as upload:
                    held_out = attach_dataset(
                        model=model, uploaded=upload, name="digits held-out set", user=users["demo"]
                    )
            self.stdout.write(
                f"demo model trained (held-out accuracy {accuracy:.3f}), uploaded and checked as "
                f"v{version.number}, with its held-out set attached as a dataset"
            )
            self._android_variant(version, held_out, users["demo"])
        version = model.versions.servable().order_by("number").first()
        if version is not None:
            self._demo_delivery(project, model, version, users["demo"])
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data ready: sign in as demo / {password} (owner); also dev, approver, viewer with the same password"
            )
        )

    def _android_variant(self, version, dataset, user) -> None:
        """The demo model does not run on the phones' mobile package (ArrayFeatureExtractor, Identity): optimize it
        for them as a developer would, so delivery serves the phones the variant it makes."""
        version.refresh_from_db()  # its check ran in this process: ready now
        job = jobkind_services.queue_optimization(
            version=version,
            kind="optimize_for_device",
            params={"device_type": "android-arm64-phone", "objective": "size", "accuracy_budget": 1.0},
            dataset=dataset,
            user=user,
        )
        execute_job(job.pk)
        job.refresh_from_db()
        child = job.output_version
        if child is None:
            self.stdout.write(f"no Android variant: {job.error or job.result.get('candidates')}")
            return
        execute_job(Job.objects.get(input_version=child, kind="check").pk)
        self.stdout.write(f"Android variant v{child.number} made by {job.result['choice']}")

    def _demo_delivery(self, project, model, version, owner) -> None:
        """A default version, one staged rule and a small fleet that installed it (once)."""
        if model.default_version_id is None:
            rules_services.set_default_version(model=model, version=version)
        if not model.targeting_rules.exists():
            rules_services.create_rule(
                model=model,
                version=version,
                priority=10,
                user=owner,
                description="EU pro users first",
                conditions={
                    "regions": ["DE", "FR"],
                    "attributes": [{"key": "tier", "op": "eq", "value": "pro"}],
                    "percentage": 50,
                    "salt": "demo-eu-pro",
                },
            )
        enrolled = seed_demo_fleet(project=project, model=model)
        if enrolled:
            self.stdout.write(f"demo fleet: {enrolled} devices enrolled, checked in and reporting")
