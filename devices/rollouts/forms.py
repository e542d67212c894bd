"""Browser forms of rollouts. They turn text fields into the API's shapes; the validation is ``RolloutSerializer``'s
(and the plan rules ``devices.core.rollout_plan``'s), so the page and the API accept and refuse the same plans."""

from __future__ import annotations

from typing import Any

from django import forms

from devices.core import rollout_plan
from devices.rollouts.serializers import RolloutSerializer
from devices.rules.forms import ATTRIBUTE_HELP, parse_attribute_lines

STAGES_HELP = "one stage a line: percent and dwell minutes, e.g. 1 60 then 10 60 then 100 60; the last must be 100"
DEFAULT_STAGES = "1 60\n10 120\n50 240\n100 60"


def parse_stage_lines(text: str) -> list[dict[str, Any]]:
    stages = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.replace("%", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise forms.ValidationError(f"line {number}: write percent and dwell minutes, e.g. 10 60.")
        try:
            percent = float(parts[0])
            dwell = int(parts[1])
        except ValueError as exc:
            raise forms.ValidationError(
                f"line {number}: {line.strip()!r} is not a percent and a whole number of minutes."
            ) from exc
        stages.append({"percent": int(percent) if percent.is_integer() else percent, "dwell_minutes": dwell})
    return stages


class ProposeForm(forms.Form):
    version = forms.TypedChoiceField(coerce=int, help_text="ready versions only")
    device_types = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="none ticked: every enrolled device type"
    )
    regions = forms.CharField(required=False, help_text="ISO 3166 codes, comma separated, e.g. DE, FR; empty: any")
    app_version = forms.CharField(required=False, help_text="a range, e.g. >=2.3,<3 or ^2.3; empty: any")
    attributes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=ATTRIBUTE_HELP)
    stages = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), initial=DEFAULT_STAGES, help_text=STAGES_HELP)
    max_download_failure_rate = forms.FloatField(
        initial=rollout_plan.THRESHOLD_DEFAULTS["max_download_failure_rate"],
        help_text="fraction 0..1 of a stage's downloads that may fail before it halts",
    )
    max_install_failure_rate = forms.FloatField(
        initial=rollout_plan.THRESHOLD_DEFAULTS["max_install_failure_rate"],
        help_text="fraction 0..1 of a stage's installs that may fail",
    )
    max_latency_regression = forms.FloatField(
        initial=rollout_plan.THRESHOLD_DEFAULTS["max_latency_regression"],
        help_text="0.2 = at most 20% slower on devices than the version it replaces",
    )
    min_devices_per_stage = forms.IntegerField(
        initial=rollout_plan.THRESHOLD_DEFAULTS["min_devices_per_stage"],
        help_text="devices that must report before a stage's health is judged",
    )
    max_devices_per_minute = forms.IntegerField(required=False, help_text="rate cap; empty: none")
    rate_growth_factor = forms.FloatField(
        initial=rollout_plan.THRESHOLD_DEFAULTS["rate_growth_factor"],
        help_text="the cap grows by this factor each stage",
    )
    confirm = forms.BooleanField(
        required=False, label="Propose anyway", help_text="the devices named above do not get this version"
    )

    def __init__(self, *args: Any, model, device_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        version_field, device_types_field = self.fields["version"], self.fields["device_types"]
        assert isinstance(version_field, forms.ChoiceField) and isinstance(device_types_field, forms.ChoiceField)
        version_field.choices = [
            (v.number, f"v{v.number}{' (' + v.transform + ')' if v.transform else ''}")
            for v in model.versions.servable().order_by("-number")
        ]
        device_types_field.choices = [(slug, slug) for slug in device_types]
        self.validated: dict[str, Any] = {}
        self.blocked: list[Any] = []  # devices.rules.impact.Blocked, shown before saving

    def clean_attributes(self) -> list[dict[str, Any]]:
        return parse_attribute_lines(self.cleaned_data["attributes"])

    def clean_stages(self) -> list[dict[str, Any]]:
        return parse_stage_lines(self.cleaned_data["stages"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        target: dict[str, Any] = {}
        if data["device_types"]:
            target["device_types"] = data["device_types"]
        regions = [r.strip() for r in data["regions"].split(",") if r.strip()]
        if regions:
            target["regions"] = regions
        if data["app_version"].strip():
            target["app_version"] = data["app_version"].strip()
        if data["attributes"]:
            target["attributes"] = data["attributes"]
        serializer = RolloutSerializer(
            data={
                "version": data["version"],
                "target": target,
                "stages": data["stages"],
                **{name: data[name] for name in rollout_plan.THRESHOLD_DEFAULTS},
            },
            context={"model": self.model},
        )
        if not serializer.is_valid():
            for field, messages in serializer.errors.items():
                where = field if field in self.fields and field not in ("target",) else None
                for message in messages if isinstance(messages, list) else [messages]:
                    self.add_error(where, message)
        else:
            self.validated = dict(serializer.validated_data)
        return data


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    fingerprint = forms.CharField(max_length=64, widget=forms.HiddenInput)
