"""Server-rendered pages. Lookups go through console.access like the API."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from devices.models import DeviceType
from jobs.tooling.transforms import TRANSFORMS

from . import access, roles, services
from .models import Membership, Model, Project, slug_validator


class ProjectForm(forms.Form):
    slug = forms.CharField(max_length=63, validators=[slug_validator], help_text="lowercase, e.g. kiosk-app")
    name = forms.CharField(max_length=200)


class ModelForm(forms.Form):
    name = forms.CharField(max_length=63, validators=[slug_validator], help_text="e.g. digit-classifier")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


@login_required
@require_http_methods(["GET", "POST"])
def home(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if Project.objects.filter(slug=form.cleaned_data["slug"]).exists():
            form.add_error("slug", "That slug is taken.")
        else:
            project = services.create_project(owner=request.user, **form.cleaned_data)
            return redirect("project", project=project.slug)
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("project")
        .annotate(model_count=Count("project__models", distinct=True))
        .order_by("project__name")
    )
    return render(request, "console/home.html", {"memberships": memberships, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def project_page(request, project):
    project_obj, membership = access.project_for(request.user, project)
    form = ModelForm(request.POST or None)
    if request.method == "POST":
        access.project_for(request.user, project, roles.CHANGE)
        if form.is_valid():
            if Model.objects.filter(project=project_obj, name=form.cleaned_data["name"]).exists():
                form.add_error("name", "A model with that name exists in this project.")
            else:
                model = services.create_model(project=project_obj, user=request.user, **form.cleaned_data)
                return redirect("model", project=project, model=model.name)
    models = project_obj.models.annotate(version_count=Count("versions"), latest=Max("versions__number"))
    jobs = project_obj.jobs.select_related("input_version__model")[:10]
    return render(request, "console/project.html", {
        "project": project_obj, "membership": membership, "models": models, "jobs": jobs, "form": form,
        "can_change": access.can(membership, roles.CHANGE),
        "members": project_obj.memberships.select_related("user").order_by("user__username"),
    })


@login_required
def model_page(request, project, model):
    model_obj, membership = access.model_for(request.user, project, model)
    datasets = model_obj.datasets.all()
    versions = model_obj.versions.select_related("parent").annotate(
        compatible_count=Count("compatibility", filter=Q(compatibility__compatible=True)),
        checked_count=Count("compatibility"),
    ).order_by("-number")
    return render(request, "console/model.html", {
        "project": model_obj.project, "model": model_obj, "versions": versions, "membership": membership,
        "datasets": datasets,
        "can_change": access.can(membership, roles.CHANGE),
    })


@login_required
def version_page(request, project, model, number):
    version, membership = access.version_for(request.user, project, model, number)
    compatibility = version.compatibility.select_related("device_type")
    jobs = version.jobs.order_by("-created_at")[:10]
    histogram = version.metadata.get("operator_histogram", {})
    children = version.children.order_by("number")
    device_run = version.jobs.filter(kind="optimize_for_device", state="succeeded").order_by("-finished_at").first()
    return render(request, "console/version.html", {
        "project": version.model.project, "model": version.model, "version": version, "membership": membership,
        "compatibility": compatibility, "jobs": jobs, "facts": version.metadata,
        "histogram_json": json.dumps(histogram), "children": children,
        "active_job": next((j for j in jobs if not j.is_finished), None),
        "can_change": access.can(membership, roles.CHANGE),
        "transforms": TRANSFORMS.values(), "datasets": version.model.datasets.all(),
        "device_types": DeviceType.objects.visible_to(version.model.project_id),
        "device_run": device_run,
        "variants_json": json.dumps(variant_points(version, children, device_run)),
    })


def variant_points(version, children, device_run) -> dict:
    """Points for the size-versus-latency chart: the parent, its child versions, and the last device run's candidates."""
    points = []
    parent_bench = version.metrics.get("benchmark")
    if parent_bench:
        points.append({"label": f"v{version.number} (this version)", "size": parent_bench["size_bytes"],
                       "latency": parent_bench["latency_1_thread"]["median_ms"],
                       "accuracy": (parent_bench.get("evaluation") or {}).get("accuracy"), "kind": "parent"})
    for child in children:
        bench = child.metrics.get("benchmark")
        if bench:
            points.append({"label": f"v{child.number} {child.transform}", "size": bench["size_bytes"],
                           "latency": bench["latency_1_thread"]["median_ms"],
                           "accuracy": (bench.get("evaluation") or {}).get("accuracy"), "kind": "version"})
    chosen = None
    if device_run:
        chosen = device_run.result.get("choice")
        for row in device_run.result.get("candidates", []):
            if "size_bytes" in row:
                points.append({"label": row["name"], "size": row["size_bytes"], "latency": row["latency_ms"],
                               "accuracy": row.get("accuracy"), "kind": "chosen" if row["name"] == chosen
                               else ("candidate" if row.get("runnable_on_device") else "not runnable")})
    return {"points": points, "chosen": chosen}


@login_required
def device_types_page(request, project):
    project_obj, membership = access.project_for(request.user, project)
    device_types = DeviceType.objects.visible_to(project_obj)
    if request.method == "POST":
        messages.info(request, "Add device types through the API or the admin.")
    return render(request, "console/device_types.html", {
        "project": project_obj, "membership": membership, "device_types": device_types,
    })
