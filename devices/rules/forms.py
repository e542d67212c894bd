"""Browser forms of the rules editor. They only turn text fields into the API's shapes; the validation itself is
``RuleSerializer``'s, so the page and the API accept and refuse the same rules."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from console.parsers import loads_bounded
from devices.models import TargetingRule
from devices.rules.serializers import RuleSerializer

ATTRIBUTE_HELP = 'One condition a line: key op value, e.g. tier eq "pro", ram_gb gte 4, site in ["a", "b"]'


def parse_attribute_lines(text: str) -> list[dict[str, Any]]:
    conditions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=2)
        if len(parts) != 3:
            raise forms.ValidationError(f'line {number}: write key op value, e.g. tier eq "pro".')
        key, op, raw = parts
        try:
            value = loads_bounded(raw)
        except ValueError:
            value = raw  # a bare word is a string
        conditions.append({"key": key, "op": op, "value": value})
    return conditions


def attribute_lines(conditions: list[dict[str, Any]]) -> str:
    return "\n".join(f"{c['key']} {c['op']} {json.dumps(c['value'])}" for c in conditions)


class RuleForm(forms.Form):
    priority = forms.IntegerField(initial=100, help_text="lower is tried first")
    version = forms.TypedChoiceField(coerce=int, help_text="ready versions only")
    device_types = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="none ticked: any device type"
    )
    regions = forms.CharField(required=False, help_text="ISO 3166 codes, comma separated, e.g. DE, FR; empty: any")
    app_version = forms.CharField(required=False, help_text="a range, e.g. >=2.3,<3 or ^2.3; empty: any")
    attributes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text=ATTRIBUTE_HELP)
    percentage = forms.FloatField(required=False, min_value=0, max_value=100, help_text="empty: every device")
    bucket_by = forms.CharField(required=False, initial="device_id", help_text="device_id or attr:<name>")
    salt = forms.CharField(required=False, help_text="empty: rule:<id>, so rules pick different devices")
    description = forms.CharField(required=False, max_length=200)
    confirm = forms.BooleanField(
        required=False, label="Save anyway", help_text="the devices named above do not get this version"
    )

    def __init__(self, *args: Any, model, device_types: list[str], rule: TargetingRule | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.model, self.rule = model, rule
        self.blocked: list[Any] = []  # devices.rules.impact.Blocked: shown before saving, with "Save anyway"
        # Copies of the choice fields declared above; ``self.fields`` types them as plain Field.
        version_field, device_types_field = self.fields["version"], self.fields["device_types"]
        assert isinstance(version_field, forms.ChoiceField) and isinstance(device_types_field, forms.ChoiceField)
        version_field.choices = [
            (v.number, f"v{v.number}{' (' + v.transform + ')' if v.transform else ''}")
            for v in model.versions.servable()
        ]
        device_types_field.choices = [(slug, slug) for slug in device_types]
        self.validated: dict[str, Any] = {}

    @classmethod
    def initial_for(cls, rule: TargetingRule) -> dict[str, Any]:
        c = rule.conditions
        return {
            "priority": rule.priority,
            "version": rule.version.number,
            "description": rule.description,
            "device_types": c.get("device_types") or [],
            "regions": ", ".join(c.get("regions") or []),
            "app_version": c.get("app_version") or "",
            "attributes": attribute_lines(c.get("attributes") or []),
            "percentage": c.get("percentage"),
            "bucket_by": c.get("bucket_by") or "device_id",
            "salt": c.get("salt") or "",
        }

    def clean_attributes(self) -> list[dict[str, Any]]:
        return parse_attribute_lines(self.cleaned_data["attributes"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean returns; its stub allows None for subclasses that return nothing
        if self.errors:
            return data
        conditions: dict[str, Any] = {
            "device_types": data["device_types"],
            "regions": [r.strip() for r in data["regions"].split(",") if r.strip()],
            "app_version": data["app_version"].strip(),
            "attributes": data["attributes"],
            "bucket_by": data["bucket_by"].strip() or "device_id",
            "salt": data["salt"].strip(),
        }
        if data["percentage"] is not None:
            conditions["percentage"] = data["percentage"]
        serializer = RuleSerializer(
            data={
                "priority": data["priority"],
                "version": data["version"],
                "description": data["description"],
                "conditions": conditions,
                "confirm": data["confirm"],
            },
            context={"model": self.model},
            instance=self.rule,
        )
        if not serializer.is_valid():
            self.blocked = getattr(serializer, "blocked", [])
            for field, messages in serializer.errors.items():
                if field == "warnings":
                    continue  # the page lists self.blocked itself
                target = field if field in self.fields and field not in ("conditions", "confirm") else None
                for message in messages:
                    self.add_error(target, message)
        else:
            self.validated = serializer.validated_data
            self.blocked = getattr(serializer, "blocked", [])  # confirmed: the page repeats them once saved
        return data


class PreviewForm(forms.Form):
    device_type = forms.ChoiceField()
    region = forms.CharField(required=False, max_length=2)
    app_version = forms.CharField(required=False, initial="1.0.0")
    device_id = forms.CharField(required=False, initial="preview-device")
    attributes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='JSON object, e.g. {"tier": "pro", "ram_gb": 4}',
    )

    def __init__(self, *args: Any, device_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        device_type_field = self.fields["device_type"]
        assert isinstance(device_type_field, forms.ChoiceField)
        device_type_field.choices = [(slug, slug) for slug in device_types]

    def clean_attributes(self) -> Any:
        text = self.cleaned_data["attributes"].strip()
        if not text:
            return {}
        try:
            return loads_bounded(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from exc
