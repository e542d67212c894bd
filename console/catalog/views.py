"""Pages: a model with its versions and datasets, and a version with its checks and variants."""

from __future__ import annotations

import json

from django import forms
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import render

from console.catalog.samples import inputs_note, latest_checked_version, recorded_input_specs
from console.models import slug_validator
from console.projects import roles
from console.projects.permissions import MODEL, VERSION, scoped_page
from devices.models import DeviceType
from jobs.tooling.inputs import dynamic_axes, typical_dim_keys
from jobs.tooling.transforms import USER_TRANSFORMS

PAGE_SIZE = 25  # versions, and datasets, on one page of a model
SAMPLE_CHOICES = 200  # datasets offered as sample inputs (the newest; the API takes any of the model's)


class ModelForm(forms.Form):
    name = forms.CharField(max_length=63, validators=[slug_validator], help_text="e.g. digit-classifier")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


@scoped_page(MODEL)
def model_page(request, access, project, model):
    model_obj = access.model
    versions = (
        model_obj.versions.select_related("parent")
        .annotate(
            compatible_count=Count("compatibility", filter=Q(compatibility__compatible=True)),
            checked_count=Count("compatibility"),
        )
        .order_by("-number")
    )
    # Two lists, each with its own page in the query string, so paging one keeps the other where it was.
    return render(
        request,
        "console/model.html",
        {
            "project": model_obj.project,
            "model": model_obj,
            "membership": access.membership,
            "versions": Paginator(versions, PAGE_SIZE).get_page(request.GET.get("versions_page")),
            "datasets": Paginator(model_obj.datasets.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(
                request.GET.get("datasets_page")
            ),
            "can_change": access.may(roles.CHANGE),
            **representative_inputs_context(model_obj),
        },
    )


def representative_inputs_context(model) -> dict:
    """The model page's sample-inputs form: datasets to choose from, and one row per dynamic dimension of the
    newest ready version's inputs (where it appears, and its typical size if set)."""
    version = latest_checked_version(model)
    specs = recorded_input_specs(version)
    where: dict[str, list[str]] = {}
    for name, axis, dim in dynamic_axes(specs):
        where.setdefault(dim if dim is not None else f"{name}:{axis}", []).append(f"{name} axis {axis}")
    typical = model.typical_dims or {}
    rows = [{"key": key, "where": ", ".join(where[key]), "size": typical.get(key)} for key in typical_dim_keys(specs)]
    return {
        "inputs_version": version,
        "typical_rows": rows,
        "sample_choices": model.datasets.order_by("-created_at", "-pk")[:SAMPLE_CHOICES],
        "inputs_note": inputs_note(model, specs or None, where="of this model's versions"),
    }


@scoped_page(VERSION)
def version_page(request, access, project, model, number):
    version, membership = access.version, access.membership
    compatibility = version.compatibility.select_related("device_type")
    jobs = version.jobs.order_by("-created_at")[:10]
    histogram = version.metadata.get("operator_histogram", {})
    children = version.children.order_by("number")
    device_run = version.jobs.filter(kind="optimize_for_device", state="succeeded").order_by("-finished_at").first()
    return render(
        request,
        "console/version.html",
        {
            "project": version.model.project,
            "model": version.model,
            "version": version,
            "membership": membership,
            "compatibility": compatibility,
            "jobs": jobs,
            "facts": version.metadata,
            "histogram_json": json.dumps(histogram),
            "children": children,
            "active_job": next((j for j in jobs if not j.is_finished), None),
            "can_change": access.may(roles.CHANGE),
            "transforms": USER_TRANSFORMS.values(),
            "datasets": version.model.datasets.all(),
            "device_types": DeviceType.objects.visible_to(version.model.project_id),
            "device_run": device_run,
            "variants_json": json.dumps(variant_points(version, children, device_run)),
            "inputs_note": inputs_note(version.model, recorded_input_specs(version) or None),
            "sample_dataset": version.model.sample_dataset,
        },
    )


def variant_points(version, children, device_run) -> dict:
    """Points for the size-versus-latency chart: the parent, its child versions, and the last device run's candidates."""
    points = []
    parent_bench = version.metrics.get("benchmark")
    if parent_bench:
        points.append(
            {
                "label": f"v{version.number} (this version)",
                "size": parent_bench["size_bytes"],
                "latency": parent_bench["latency_1_thread"]["median_ms"],
                "accuracy": (parent_bench.get("evaluation") or {}).get("accuracy"),
                "kind": "parent",
            }
        )
    for child in children:
        bench = child.metrics.get("benchmark")
        if bench:
            points.append(
                {
                    "label": f"v{child.number} {child.transform}",
                    "size": bench["size_bytes"],
                    "latency": bench["latency_1_thread"]["median_ms"],
                    "accuracy": (bench.get("evaluation") or {}).get("accuracy"),
                    "kind": "version",
                }
            )
    chosen = None
    if device_run:
        chosen = device_run.result.get("choice")
        for row in device_run.result.get("candidates", []):
            if "size_bytes" in row:
                points.append(
                    {
                        "label": row["name"],
                        "size": row["size_bytes"],
                        "latency": row["latency_ms"],
                        "accuracy": row.get("accuracy"),
                        "kind": "chosen"
                        if row["name"] == chosen
                        else ("candidate" if row.get("runnable_on_device") else "not runnable"),
                    }
                )
    return {"points": points, "chosen": chosen}
