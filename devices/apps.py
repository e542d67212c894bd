from __future__ import annotations

from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the plan-invalidation receivers
        from .experiments import tasks  # noqa: F401 - registers the guardrail task (autodiscovery sees devices.tasks only)

        self.track_changes()

    @staticmethod
    def track_changes() -> None:
        """The audit log (console.audit) records every change to device types, rules, fleet settings, rollouts and
        their approvals, experiments and their arms."""
        from console import audit

        from .models import (
            DeviceType,
            Experiment,
            ExperimentArm,
            FleetSettings,
            Rollout,
            RolloutApproval,
            TargetingRule,
        )

        audit.track(DeviceType, kind="device-type", exclude_fields=["created_at"])
        audit.track(
            TargetingRule, kind="rule", project_path="model__project_id", exclude_fields=["created_at", "updated_at"]
        )
        # Key material is never written to the log: an entry says that it changed, not what it is.
        audit.track(
            FleetSettings,
            kind="fleet",
            exclude_fields=["created_at", "plan_generation"],
            mask_fields=["enrollment_key_hash", "signing_key_encrypted"],
            mask_callable="console.audit.recording.hide_secret",
        )
        # The beat's figures and the rate cap's share change every minute; state, stage and retries are logged.
        audit.track(
            Rollout,
            kind="rollout",
            exclude_fields=["created_at", "updated_at", "stage_history", "offered_percent", "retry_devices"],
        )
        audit.track(RolloutApproval, kind="approval", project_path="rollout__project_id")
        audit.track(Experiment, kind="experiment", exclude_fields=["created_at", "salt"])
        audit.track(ExperimentArm, kind="experiment-arm", project_path="experiment__project_id")
