"""Pages: the project list and a project's page."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from console.catalog import services as catalog_services
from console.catalog.views import ModelForm
from console.errors import AlreadyExists
from console.models import Membership, slug_validator
from console.projects import roles
from console.projects import services as project_services
from console.projects.permissions import PROJECT, scoped_page


class ProjectForm(forms.Form):
    slug = forms.CharField(max_length=63, validators=[slug_validator], help_text="lowercase, e.g. kiosk-app")
    name = forms.CharField(max_length=200)


@login_required
@require_http_methods(["GET", "POST"])
def home(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_services.create_project(owner=request.user, **form.cleaned_data)
        except AlreadyExists as exc:  # the service is the one place that knows a slug is taken (races included)
            form.add_error("slug", str(exc))
        else:
            return redirect("project", project=project.slug)
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("project")
        .annotate(model_count=Count("project__models", distinct=True))
        .order_by("project__name")
    )
    return render(request, "console/home.html", {"memberships": memberships, "form": form})


@require_http_methods(["GET", "POST"])
@scoped_page(PROJECT)
def project_page(request, access, project):
    project_obj = access.project
    form = ModelForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                model = catalog_services.create_model(project=project_obj, user=request.user, **form.cleaned_data)
            except AlreadyExists as exc:
                form.add_error("name", str(exc))
            else:
                return redirect("model", project=project, model=model.name)
    models = project_obj.models.annotate(version_count=Count("versions"), latest=Max("versions__number"))
    jobs = project_obj.jobs.select_related("input_version__model")[:10]
    return render(
        request,
        "console/project.html",
        {
            "project": project_obj,
            "membership": access.membership,
            "models": models,
            "jobs": jobs,
            "form": form,
            "can_change": access.may(roles.CHANGE),
            "members": project_obj.memberships.select_related("user").order_by("user__username"),
        },
    )


class SettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    require_approval = forms.BooleanField(
        required=False,
        label="Require approval for any change that moves devices",
        help_text="Rules and default versions then change only through a rollout that an approver signed off; "
        "editing them directly is refused.",
    )


@require_http_methods(["GET", "POST"])
@scoped_page(PROJECT, required_role={"POST": roles.MANAGE})
def settings_page(request, access, project):
    project_obj = access.project
    initial = {"name": project_obj.name, "description": project_obj.description}
    form = SettingsForm(request.POST or None, initial={**initial, "require_approval": project_obj.require_approval})
    if request.method == "POST" and form.is_valid():
        project_services.update_project_settings(project=project_obj, **form.cleaned_data)
        messages.info(request, "Project settings saved.")
        return redirect("project-settings", project=project)
    return render(
        request,
        "console/project_settings.html",
        {
            "project": project_obj,
            "membership": access.membership,
            "form": form,
            "can_manage": access.may(roles.MANAGE),
        },
        status=400 if request.method == "POST" else 200,
    )
