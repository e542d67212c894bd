from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from console.models import DeliveryInputQuerySet, slug_validator
from devices.core import resolution, rollout_plan

PRECISIONS = ["fp32", "fp16", "int8"]


class DeviceTypeQuerySet(DeliveryInputQuerySet):
    # Checks and the prefilter of rules read a type whole. A built-in type has no project: its changes concern
    # every project (project id None).

    def visible_to(self, project) -> DeviceTypeQuerySet:
        """The built-in catalog plus ``project``'s own types (a Project or its id); never another project's."""
        return self.filter(models.Q(project=None) | models.Q(project=project))


class DeviceType(models.Model):
    """A hardware/runtime profile that versions are checked against.

    Built-in profiles have no project and are shared by all projects; a project
    may add its own.
    """

    class Build(models.TextChoices):
        FULL = "full", "Full build (all operators)"
        MOBILE = "mobile", "Mobile pre-built package (reduced operator set)"

    project = models.ForeignKey(
        "console.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="device_types"
    )
    slug = models.SlugField(max_length=63, validators=[slug_validator])
    name = models.CharField(max_length=200)
    cpu_arch = models.CharField(max_length=32, default="arm64")
    accelerator = models.CharField(max_length=64, blank=True, help_text="e.g. CUDA, NNAPI, none")
    execution_provider = models.CharField(max_length=64, default="CPUExecutionProvider")
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    storage_mb = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    max_model_mb = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Largest model file this device may download and hold."
    )
    runtime = models.CharField(max_length=32, default="onnxruntime")
    runtime_version = models.CharField(max_length=16, help_text="major.minor, e.g. 1.17")
    runtime_build = models.CharField(max_length=16, choices=Build.choices, default=Build.FULL)
    precisions = models.JSONField(default=list, help_text="Precisions it runs well: fp32, fp16, int8")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DeviceTypeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="unique_device_type_slug_per_project"),
            models.UniqueConstraint(
                fields=["slug"], condition=models.Q(project__isnull=True), name="unique_builtin_device_type_slug"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def profile(self) -> dict:
        """The plain dict the compatibility checker reads (no ORM in tooling)."""
        return {
            "slug": self.slug,
            "name": self.name,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "runtime_build": self.runtime_build,
            "cpu_arch": self.cpu_arch,
            "execution_provider": self.execution_provider,
            "precisions": list(self.precisions),
            "max_model_bytes": self.max_model_mb * 1024 * 1024,
            "memory_bytes": self.memory_mb * 1024 * 1024,
        }


# -- fleet and delivery --------------------------------------------------------------------------

DEFAULT_CHECKIN_INTERVAL_S = 300


class FleetSettingsQuerySet(DeliveryInputQuerySet):
    # Every answer states the interval and every manifest is signed with the key; ``plan_generation`` is the
    # invalidation itself, and the enrollment key concerns enrollment only.
    delivery_fields = frozenset({"checkin_interval_s", "signing_key_encrypted"})


class FleetSettings(models.Model):
    """A project's delivery secrets and defaults: enrollment key (hashed), signing key pair, check-in interval.

    Created on first use (see ``devices.fleet.services.fleet_settings_for``). ``plan_generation`` changes
    whenever anything that resolution reads changes (``devices.delivery.cache.invalidate``), so every web
    process can tell at once that its cached delivery plan is stale.
    """

    project = models.OneToOneField("console.Project", on_delete=models.CASCADE, related_name="fleet")
    enrollment_key_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    enrollment_key_prefix = models.CharField(max_length=12, blank=True)
    enrollment_key_rotated_at = models.DateTimeField(null=True, blank=True)
    # Ed25519 private key, PKCS#8 PEM encrypted with Fernet (see devices.keys); never leaves the server.
    signing_key_encrypted = models.BinaryField()
    public_key = models.CharField(max_length=64, help_text="base64 of the 32 raw bytes of the Ed25519 public key")
    checkin_interval_s = models.PositiveIntegerField(
        default=DEFAULT_CHECKIN_INTERVAL_S, validators=[MinValueValidator(1), MaxValueValidator(86400)]
    )
    plan_generation = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FleetSettingsQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "fleet settings"

    def __str__(self) -> str:
        return f"fleet settings of {self.project}"


class Device(models.Model):
    """One enrolled device: its configuration as last reported, its token (hashed) and its delivery digest.

    Its default manager is a plain one, not a DeliveryInputQuerySet: its own columns reach its answers
    through the inputs key of its delivery digest and its tickets' request key (devices.delivery.checkin), and
    every check-in writes the row; only its interval and its token need ``invalidate`` (devices.fleet.services).
    """

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="devices")
    device_id = models.CharField(max_length=128)
    token_hash = models.CharField(max_length=64, unique=True)
    device_type = models.ForeignKey(DeviceType, on_delete=models.PROTECT, related_name="devices")
    runtime = models.CharField(max_length=64, blank=True)
    runtime_version = models.CharField(max_length=64, blank=True)
    os = models.CharField(max_length=64, blank=True)
    cpu_arch = models.CharField(max_length=64, blank=True)
    accelerator = models.CharField(max_length=64, blank=True)
    memory_mb = models.PositiveIntegerField(null=True, blank=True)
    region = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2, upper case; blank if unknown")
    app_version = models.CharField(max_length=64)
    attributes = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, help_text="the configuration exactly as the device sent it")
    fingerprint = models.CharField(max_length=64)
    checkin_interval_s = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(86400)],
        help_text="overrides the project's interval for this device",
    )
    # sha256 of what the last check-in resolved and the device reported; unchanged -> nothing to write.
    delivery_digest = models.CharField(max_length=64, blank=True)
    enrolled_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["device_id"]
        constraints = [models.UniqueConstraint(fields=["project", "device_id"], name="unique_device_id_per_project")]
        indexes = [
            models.Index(fields=["project", "device_type"], name="device_project_type"),
            models.Index(fields=["project", "region"], name="device_project_region"),
            models.Index(fields=["project", "app_version"], name="device_project_app_version"),
            # No index on last_seen_at: it is written for every checking-in device (devices.delivery.presence), and
            # without an index PostgreSQL updates it in place (HOT), about 3x cheaper than with one; the
            # fleet page's last-seen filter scans the project's devices instead.
            # Revoked devices only (few, and written once): the dashboards leave them out without a fleet scan.
            models.Index(fields=["project"], condition=models.Q(revoked_at__isnull=False), name="device_revoked"),
        ]

    def __str__(self) -> str:
        return self.device_id

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class VoidedToken(models.Model):
    """A device token that stopped working (revoked, or replaced by enrolling again) less than a check-in
    ticket's lifetime ago. A check-in answered from its ticket (devices.core.tickets) does not read the device
    row, so it refuses the tokens listed here for the project instead; older rows are pruned."""

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64)
    voided_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["project", "voided_at"], name="voided_token_project_at")]

    def __str__(self) -> str:
        return f"token {self.token_hash[:8]}… voided {self.voided_at:%Y-%m-%d %H:%M}"


class TargetingRuleQuerySet(DeliveryInputQuerySet):
    project_path = "model__project_id"
    delivery_fields = frozenset({"model", "priority", "version", "conditions"})


class TargetingRule(models.Model):
    """One targeting rule of a model: conditions (``devices.core.targeting`` shape) and the version it serves."""

    model = models.ForeignKey("console.Model", on_delete=models.CASCADE, related_name="targeting_rules")
    priority = models.IntegerField(default=100, help_text="lower is tried first; ties go by id")
    version = models.ForeignKey("console.ModelVersion", on_delete=models.PROTECT, related_name="targeting_rules")
    conditions = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TargetingRuleQuerySet.as_manager()

    class Meta:
        ordering = ["model", "priority", "id"]

    def __str__(self) -> str:
        return f"rule {self.pk} of {self.model}"


class Resolution(models.TextChoices):
    """How a check-in picked (or did not pick) a version for one model (values from devices.core.resolution)."""

    ROLLOUT = resolution.ROLLOUT, "Rollout"
    RULE = resolution.RULE, "Targeting rule"
    EXPERIMENT = resolution.EXPERIMENT, "Experiment arm"
    DEFAULT = resolution.DEFAULT, "Model default version"
    COMPATIBLE_VARIANT = resolution.COMPATIBLE_VARIANT, "Fell back to a compatible variant"
    KEPT_INSTALLED = resolution.KEPT_INSTALLED, "Nothing compatible: kept the installed version"
    NOTHING = resolution.NOTHING, "Nothing to serve"


# A device "fell back" when compatibility replaced what rules chose; "running" is what an installed report says.
FELL_BACK_RESOLUTIONS = (Resolution.COMPATIBLE_VARIANT, Resolution.KEPT_INSTALLED)
RUNNING = "running"


class DeviceModelState(models.Model):
    """Desired vs actual for one device and one model: what the last check-in resolved and what is installed."""

    class Status(models.TextChoices):  # the protocol's words
        ASSIGNED = resolution.ASSIGNED, "Assigned"
        FALLBACK = resolution.FALLBACK, "Fallback"
        NONE = resolution.NONE, "None"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="model_states")
    model = models.ForeignKey("console.Model", on_delete=models.CASCADE, related_name="device_states")
    desired_version = models.ForeignKey(
        "console.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    resolution = models.CharField(max_length=32, choices=Resolution.choices)
    reason = models.CharField(max_length=500, blank=True)
    installed_version = models.ForeignKey(
        "console.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    installed_sha256 = models.CharField(max_length=64, blank=True)
    installed_state = models.CharField(max_length=16, blank=True, help_text="running or failed, as reported")
    resolved_at = models.DateTimeField()

    class Meta:
        ordering = ["model__name"]
        constraints = [models.UniqueConstraint(fields=["device", "model"], name="one_state_per_device_and_model")]
        indexes = [
            models.Index(fields=["model", "installed_version"], name="state_model_installed"),
            models.Index(fields=["model", "desired_version"], name="state_model_desired"),
            # the dashboards' stuck list reads the oldest resolutions first and stops at a page
            models.Index(fields=["resolved_at"], name="state_resolved_at"),
        ]

    def __str__(self) -> str:
        return f"{self.device} / {self.model}"

    @property
    def fell_back(self) -> bool:
        return self.resolution in FELL_BACK_RESOLUTIONS

    @property
    def up_to_date(self) -> bool:
        return (
            self.desired_version_id is not None
            and self.desired_version_id == self.installed_version_id
            and self.installed_state == RUNNING
        )


class DeviceEvent(models.Model):
    """One entry of a device's history: an event the device reported, or one the server recorded."""

    class Type(models.TextChoices):
        DOWNLOAD_STARTED = "download_started", "Download started"
        DOWNLOAD_COMPLETED = "download_completed", "Download completed"
        DOWNLOAD_FAILED = "download_failed", "Download failed"
        INSTALL_SUCCEEDED = "install_succeeded", "Install succeeded"
        INSTALL_FAILED = "install_failed", "Install failed"
        ROLLBACK = "rollback", "Rollback"
        INFERENCE_STATS = "inference_stats", "Inference stats"
        FEEDBACK = "feedback", "Labeled feedback"
        # Recorded by the server, never sent by a device.
        ENROLLED = "enrolled", "Enrolled"
        CONFIG_CHANGED = "config_changed", "Configuration changed"
        ASSIGNMENT_CHANGED = "assignment_changed", "Assignment changed"
        REVOKED = "revoked", "Revoked"

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="device_events")
    # No index of its own: device_event_history and the event id constraint both start with it, and each index
    # is one more insert per event stored.
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="events", db_index=False)
    event_id = models.CharField(max_length=64, help_text="the device's id for it (server events: 'server:<uuid>')")
    type = models.CharField(max_length=32, choices=Type.choices)
    model = models.ForeignKey("console.Model", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    version = models.ForeignKey(
        "console.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="device_events"
    )
    reported_version_id = models.BigIntegerField(null=True, blank=True, help_text="version id as the device sent it")
    at = models.DateTimeField()
    received_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [models.UniqueConstraint(fields=["device", "event_id"], name="event_id_unique_per_device")]
        indexes = [models.Index(fields=["device", "-at"], name="device_event_history")]

    def __str__(self) -> str:
        return f"{self.type} of {self.device}"


class DailyRollup(models.Model):
    """Device events counted per day, version, device type and region; updated as events arrive."""

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="daily_rollups")
    day = models.DateField()
    model = models.ForeignKey("console.Model", on_delete=models.CASCADE, related_name="daily_rollups")
    version = models.ForeignKey("console.ModelVersion", on_delete=models.CASCADE, related_name="daily_rollups")
    device_type = models.ForeignKey(DeviceType, on_delete=models.CASCADE, related_name="daily_rollups")
    region = models.CharField(max_length=2, blank=True)
    download_started = models.PositiveIntegerField(default=0)
    download_completed = models.PositiveIntegerField(default=0)
    download_failed = models.PositiveIntegerField(default=0)
    install_succeeded = models.PositiveIntegerField(default=0)
    install_failed = models.PositiveIntegerField(default=0)
    rollback = models.PositiveIntegerField(default=0)
    inference_count = models.BigIntegerField(default=0)
    # Sums weighted by inference count; divide by latency_count (accuracy: by accuracy_count) to read them.
    latency_count = models.BigIntegerField(default=0)
    latency_p50_weighted = models.FloatField(default=0)
    latency_p90_weighted = models.FloatField(default=0)
    accuracy_weighted = models.FloatField(default=0)
    accuracy_count = models.BigIntegerField(default=0)
    # Sufficient statistics for experiments and dashboards (devices.telemetry.rollups.METRIC_FIELDS).
    inference_errors = models.BigIntegerField(default=0)
    latency_n = models.BigIntegerField(default=0, help_text="inference_stats reports with a latency")
    latency_sum = models.FloatField(default=0)
    latency_sum_sq = models.FloatField(default=0)
    latency_sketch = models.BinaryField(default=b"", help_text="a DDSketch (protobuf) of the reports' latencies")
    feedback_count = models.BigIntegerField(default=0)
    feedback_correct = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["day", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "version", "device_type", "region"], name="one_rollup_per_day_version_type_region"
            )
        ]
        indexes = [models.Index(fields=["project", "model", "day"], name="rollup_project_model_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.version} {self.device_type} {self.region}"

    @property
    def latency_p50_ms(self) -> float | None:
        return self.latency_p50_weighted / self.latency_count if self.latency_count else None

    @property
    def latency_p90_ms(self) -> float | None:
        return self.latency_p90_weighted / self.latency_count if self.latency_count else None

    @property
    def accuracy(self) -> float | None:
        return self.accuracy_weighted / self.accuracy_count if self.accuracy_count else None


# -- rollouts ----------------------------------------------------------------------------------------------


class RolloutQuerySet(DeliveryInputQuerySet):
    # What check-in resolution reads of a rollout (devices.delivery.cache): a start, a stage advance, a halt, a
    # retry or a rollback of a saved rollout starts a new plan generation; the beat's figures
    # (stage_history) and the saves of rollouts that never started do not.
    delivery_fields = frozenset(
        {
            "project",
            "model",
            "state",
            "version",
            "previous_version",
            "target",
            "salt",
            "current_stage",
            "offered_percent",
            "retry_generation",
            "retry_devices",
            "ended_at",
        }
    )

    def projects_of(self, rows):
        # A draft, a proposal or an approval moves no device: saving one must not make the fleet resolve again.
        return super().projects_of([row for row in rows if row.state in rollout_plan.STARTED])


class Rollout(models.Model):
    """Moving a version of a model to a targeted set of devices in stages, after a second member approved it.

    The plan (version, target, stages, thresholds) is what an approval signs: ``fingerprint`` hashes it, and
    an approval whose fingerprint is not the current one is void. Which devices a stage reaches is computed
    at check-in from ``salt`` (devices.core.rollout_plan.in_stage): no per-device rows.

    ``stage_history`` is what the beat task (devices.rollouts.engine) records for the rollout page, a list with
    one entry per stage opened (a resume opens the stage again, with a new entry)::

        {"stage": 0,                      # index into stages
         "percent": 1.0,                  # the stage's percent
         "started_at": "2026-12-03T04:00:00+00:00",
         "eligible_devices": 950,         # enrolled devices the target reached then (null without a rate cap)
         "baseline": {...},               # cumulative Figures when the stage opened (internal)
         "figures": {...} | null,         # rollout_plan.Figures of this stage: download_completed,
                                          # download_failed, install_succeeded, install_failed, latency_count,
                                          # latency_p50_weighted, previous_latency_p50_ms
         "health": [{name, value, limit, count, total, judged, crossed, sentence}, ...],  # rollout_plan.Measure
         "checked_at": "..." | null,      # the beat's last look at this stage
         "ended_at": "..." | null,
         "outcome": null | "advanced" | "completed" | "halted" | "paused" | "rolled_back",
         "reason": ""}                    # for "halted": the threshold crossed, with its figures
    """

    class State(models.TextChoices):
        DRAFT = rollout_plan.DRAFT, "Draft"
        PENDING_APPROVAL = rollout_plan.PENDING_APPROVAL, "Pending approval"
        APPROVED = rollout_plan.APPROVED, "Approved"
        REJECTED = rollout_plan.REJECTED, "Rejected"
        RUNNING = rollout_plan.RUNNING, "Running"
        PAUSED = rollout_plan.PAUSED, "Paused"
        HALTED = rollout_plan.HALTED, "Halted"
        COMPLETED = rollout_plan.COMPLETED, "Completed"
        ROLLED_BACK = rollout_plan.ROLLED_BACK, "Rolled back"

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="rollouts")
    model = models.ForeignKey("console.Model", on_delete=models.CASCADE, related_name="rollouts")
    version = models.ForeignKey("console.ModelVersion", on_delete=models.PROTECT, related_name="rollouts")
    # What the target ran before (the model's default version when proposed): what a rollback returns to.
    previous_version = models.ForeignKey(
        "console.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    target = models.JSONField(default=dict, blank=True, help_text="device_types, regions, app_version, attributes")
    stages = models.JSONField(default=list, help_text="[{percent, dwell_minutes}, ...], increasing, ending at 100")
    max_download_failure_rate = models.FloatField(default=rollout_plan.THRESHOLD_DEFAULTS["max_download_failure_rate"])
    max_install_failure_rate = models.FloatField(default=rollout_plan.THRESHOLD_DEFAULTS["max_install_failure_rate"])
    max_latency_regression = models.FloatField(default=rollout_plan.THRESHOLD_DEFAULTS["max_latency_regression"])
    min_devices_per_stage = models.PositiveIntegerField(
        default=rollout_plan.THRESHOLD_DEFAULTS["min_devices_per_stage"]
    )
    max_devices_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="empty: no rate cap")
    rate_growth_factor = models.FloatField(default=rollout_plan.THRESHOLD_DEFAULTS["rate_growth_factor"])
    salt = models.CharField(max_length=64, editable=False)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    proposer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Whoever changed the plan last may not approve it either (four eyes on every change).
    last_edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    current_stage = models.PositiveSmallIntegerField(default=0, help_text="index into stages while running")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="completed or rolled back")
    halt_reason = models.TextField(blank=True)
    # The share of the target offered now: the stage's percent, or less while a rate cap opens it.
    offered_percent = models.FloatField(default=0)
    stage_history = models.JSONField(default=list, blank=True, help_text="see the class docstring")
    # A retry of the devices that failed: the check-in answer carries the generation, so agents drop their back-off.
    retry_generation = models.PositiveIntegerField(default=0)
    retry_devices = models.JSONField(default=list, blank=True, help_text="device ids that may retry while halted")
    # On completion the rollout becomes a targeting rule (its target, its version, tried first).
    promoted_rule = models.ForeignKey(
        TargetingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "state"], name="rollout_model_state")]

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.model} v{self.version.number}"

    @property
    def thresholds(self) -> dict:
        return {name: getattr(self, name) for name in rollout_plan.THRESHOLD_DEFAULTS}

    @property
    def fingerprint(self) -> str:
        return rollout_plan.plan_fingerprint(
            version_id=self.version_id, target=self.target, stages=self.stages, thresholds=self.thresholds
        )


class RolloutApproval(models.Model):
    """One approver's decision on a rollout's plan as it stood (``fingerprint``); void once the plan changes."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.decision} of {self.rollout} by {self.approver}"

    @property
    def is_current(self) -> bool:
        return self.fingerprint == self.rollout.fingerprint


# -- experiments -------------------------------------------------------------------------------------------


class ExperimentQuerySet(DeliveryInputQuerySet):
    # A running experiment decides what its devices are served (devices.core.experiment_assign).
    delivery_fields = frozenset({"model", "target", "salt", "state"})

    def running(self) -> ExperimentQuerySet:
        return self.filter(state=Experiment.State.RUNNING)


class Experiment(models.Model):
    """An A/B(/n) split of a model's targeted devices between versions, sticky per device under its own salt.

    Arms are ``ExperimentArm`` rows (the first by position is control); their weights are basis points of the
    targeted devices and add up to ``traffic_bp``. Results come from rollup rows only (``ExperimentRollup``,
    ``ExperimentArmDayRollup``) and enrollments.
    """

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    class Metric(models.TextChoices):
        LATENCY = "latency", "Inference latency (ms)"
        ACCURACY = "accuracy", "Accuracy (labeled feedback)"
        DOWNLOAD_FAILURE_RATE = "download_failure_rate", "Download failure rate"
        INSTALL_FAILURE_RATE = "install_failure_rate", "Install failure rate"
        INFERENCE_ERROR_RATE = "inference_error_rate", "Inference error rate"

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="experiments")
    model = models.ForeignKey("console.Model", on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    target = models.JSONField(default=dict, blank=True, help_text="device_types, regions, app_version, attributes")
    traffic_bp = models.PositiveIntegerField(help_text="share of the targeted devices in the experiment, basis points")
    primary_metric = models.CharField(max_length=32, choices=Metric.choices)
    guardrail_metrics = models.JSONField(default=list, blank=True)
    planned_sample_size = models.PositiveIntegerField(null=True, blank=True, help_text="devices per arm")
    sequential = models.BooleanField(default=True, help_text="always-valid intervals: safe to look every day")
    salt = models.CharField(max_length=64, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.TextField(blank=True)
    promoted_rollout = models.ForeignKey(
        "devices.Rollout", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "state"], name="experiment_model_state")]

    def __str__(self) -> str:
        return f"experiment {self.name} of {self.model}"

    @property
    def traffic_percent(self) -> float:
        return self.traffic_bp / 100


class ExperimentArmQuerySet(DeliveryInputQuerySet):
    project_path = "experiment__project_id"
    delivery_fields = frozenset({"experiment", "name", "version", "weight_bp", "position", "stopped_at"})


class ExperimentArm(models.Model):
    """One arm: a version and its weight; a guardrail (or a person) may stop serving it, saying why."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=40)
    version = models.ForeignKey("console.ModelVersion", on_delete=models.PROTECT, related_name="experiment_arms")
    weight_bp = models.PositiveIntegerField()
    position = models.PositiveSmallIntegerField(help_text="0 is control")
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.TextField(blank=True)

    objects = ExperimentArmQuerySet.as_manager()

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "position"], name="one_arm_per_position"),
            models.UniqueConstraint(fields=["experiment", "version"], name="one_arm_per_version"),
        ]

    def __str__(self) -> str:
        return f"arm {self.name} of {self.experiment}"

    @property
    def is_control(self) -> bool:
        return self.position == 0


class ExperimentEnrollment(models.Model):
    """A device's place in an experiment, written when it first reports while the experiment runs.

    ``arm`` is empty for an ineligible device (its type cannot run every arm): counted, never compared.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="enrollments")
    arm = models.ForeignKey(ExperimentArm, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    device_type = models.ForeignKey(DeviceType, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=2, blank=True)
    enrolled_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "device"], name="one_enrollment_per_device")]
        indexes = [models.Index(fields=["experiment", "arm"], name="enrollment_experiment_arm")]

    def __str__(self) -> str:
        return f"{self.device} in {self.experiment}"


class ArmCounts(models.Model):
    """The sufficient statistics both experiment rollups keep (``ExperimentRollup``, ``ExperimentArmDayRollup``),
    those of ``DailyRollup``, with a latency sketch (``devices.telemetry.sketches``)."""

    download_started = models.PositiveIntegerField(default=0)
    download_completed = models.PositiveIntegerField(default=0)
    download_failed = models.PositiveIntegerField(default=0)
    install_succeeded = models.PositiveIntegerField(default=0)
    install_failed = models.PositiveIntegerField(default=0)
    rollback = models.PositiveIntegerField(default=0)
    inference_count = models.BigIntegerField(default=0)
    inference_errors = models.BigIntegerField(default=0)
    latency_n = models.BigIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    latency_sum_sq = models.FloatField(default=0)
    latency_sketch = models.BinaryField(default=b"")
    feedback_count = models.BigIntegerField(default=0)
    feedback_correct = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class ExperimentRollup(ArmCounts):
    """An arm's events per day, device type and region: the same sufficient statistics as DailyRollup, counted
    only for an enrolled device reporting about its arm's version while the experiment runs. What results read
    when filtered by device type or region."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="rollups")
    arm = models.ForeignKey(ExperimentArm, on_delete=models.CASCADE, related_name="rollups")
    day = models.DateField()
    device_type = models.ForeignKey(DeviceType, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=2, blank=True)

    class Meta:
        ordering = ["day", "arm"]
        constraints = [
            models.UniqueConstraint(
                fields=["arm", "day", "device_type", "region"], name="one_experiment_rollup_per_key"
            )
        ]
        indexes = [models.Index(fields=["experiment", "day"], name="experiment_rollup_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} {self.device_type} {self.region}"


class ExperimentArmDayRollup(ArmCounts):
    """``ExperimentRollup`` summed over device types and regions, with one merged sketch: per arm and day, what
    unfiltered results (the dashboard, the API, guardrails) read. Fine rows are one per arm, day, device type
    and region (thousands per experiment): sending and merging all their sketches was most of a results page.
    Written in the same transaction as ``ExperimentRollup`` (``devices.telemetry.experiment_rollups``)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    arm = models.ForeignKey(ExperimentArm, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["arm", "day"], name="one_experiment_arm_day_rollup")]
        indexes = [models.Index(fields=["experiment", "day"], name="experiment_arm_day_rollup_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm}"


# -- dashboards ----------------------------------------------------------------------------------------------


class DeliveryCounts(models.Model):
    """The columns both delivery rollups add up (``DeliveryRollup``, ``DeliveryTypeRollup``)."""

    offered = models.PositiveIntegerField(default=0)
    download_started = models.PositiveIntegerField(default=0)
    download_completed = models.PositiveIntegerField(default=0)
    download_failed = models.PositiveIntegerField(default=0)
    install_succeeded = models.PositiveIntegerField(default=0)
    install_failed = models.PositiveIntegerField(default=0)
    rollback = models.PositiveIntegerField(default=0)
    # download and install failures together, by reason
    failed_network = models.PositiveIntegerField(default=0)
    failed_checksum = models.PositiveIntegerField(default=0)
    failed_signature = models.PositiveIntegerField(default=0)
    failed_disk_space = models.PositiveIntegerField(default=0)
    failed_cancelled = models.PositiveIntegerField(default=0)
    failed_other = models.PositiveIntegerField(default=0)
    # Installs by time since the version was offered to the device, one column per bucket of DELAY_BOUNDS_S (summed
    # in SQL); ``DELAY_COLUMNS`` lists them in order.
    installed_within_1m = models.PositiveIntegerField(default=0)
    installed_within_5m = models.PositiveIntegerField(default=0)
    installed_within_15m = models.PositiveIntegerField(default=0)
    installed_within_1h = models.PositiveIntegerField(default=0)
    installed_within_4h = models.PositiveIntegerField(default=0)
    installed_within_12h = models.PositiveIntegerField(default=0)
    installed_within_1d = models.PositiveIntegerField(default=0)
    installed_within_3d = models.PositiveIntegerField(default=0)
    installed_within_7d = models.PositiveIntegerField(default=0)
    installed_later = models.PositiveIntegerField(default=0)
    inference_count = models.BigIntegerField(default=0)
    latency_count = models.BigIntegerField(default=0)
    latency_p50_weighted = models.FloatField(default=0)
    accuracy_count = models.BigIntegerField(default=0)
    accuracy_weighted = models.FloatField(default=0)

    class Meta:
        abstract = True


class DeliveryRollup(DeliveryCounts):
    """What dashboards read: device events counted per day, version, device type, region and app version, with
    failures by reason and offer -> install delays by bucket (``devices.core.failure_reasons``). Updated as events
    arrive (``devices.telemetry.delivery_counts``); rebuilt from events by ``manage.py rebuild_rollups``.

    Beside ``DailyRollup`` because dashboards filter by app version and break failures down by reason, which
    that table's key and columns do not hold. ``offered`` counts assignments of the version at check-in."""

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="delivery_rollups")
    day = models.DateField()
    model = models.ForeignKey("console.Model", on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("console.ModelVersion", on_delete=models.CASCADE, related_name="delivery_rollups")
    device_type = models.ForeignKey(DeviceType, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=2, blank=True)
    app_version = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "version", "device_type", "region", "app_version"],
                name="one_delivery_rollup_per_key",
            )
        ]
        indexes = [
            models.Index(fields=["project", "day"], name="delivery_rollup_project_day"),
            # the dashboards' region and app version filters read this table (the other filters, the coarser one)
            models.Index(fields=["project", "region", "day"], name="delivery_rollup_region_day"),
            models.Index(fields=["project", "app_version", "day"], name="delivery_rollup_app_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.version_id} {self.device_type_id} {self.region} {self.app_version}"


class DeliveryTypeRollup(DeliveryCounts):
    """``DeliveryRollup`` summed over regions and app versions: per day, version and device type (at most a few
    thousand rows for 90 days), what a dashboard reads when it filters by neither region nor app version. Fine
    rows at fleet scale (hundreds of thousands) made those pages scan them all. Kept up to date in the same
    statement batch as ``DeliveryRollup`` (``devices.telemetry.delivery_counts.add``)."""

    project = models.ForeignKey("console.Project", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    model = models.ForeignKey("console.Model", on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("console.ModelVersion", on_delete=models.CASCADE, related_name="+")
    device_type = models.ForeignKey(DeviceType, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "version", "device_type"], name="one_delivery_type_rollup_per_key")
        ]
        indexes = [
            models.Index(fields=["project", "day"], name="delivery_type_rollup_day"),
            models.Index(fields=["model", "day"], name="delivery_type_rollup_model_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.version_id} {self.device_type_id}"


DELAY_COLUMNS = (
    "installed_within_1m",
    "installed_within_5m",
    "installed_within_15m",
    "installed_within_1h",
    "installed_within_4h",
    "installed_within_12h",
    "installed_within_1d",
    "installed_within_3d",
    "installed_within_7d",
    "installed_later",
)
