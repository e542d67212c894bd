from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from console import health
from console.audit import api as audit_api
from console.audit import views as audit_views
from console.catalog import api as catalog_api
from console.catalog import views as catalog_views
from console.jobkinds import api as jobkinds_api
from console.jobkinds import views as jobkinds_views
from console.projects import api as projects_api
from console.projects import views as project_views
from devices.catalog import api as device_types_api
from devices.catalog import views as device_type_views

api_patterns = [
    path("health/", health.HealthView.as_view(), name="api-health"),
    path("health/live/", health.LiveView.as_view(), name="api-health-live"),
    path("projects/", projects_api.ProjectList.as_view(), name="api-projects"),
    path("projects/<slug:project>/", projects_api.ProjectDetail.as_view(), name="api-project"),
    path("projects/<slug:project>/members/", projects_api.MemberList.as_view(), name="api-members"),
    path("projects/<slug:project>/members/<str:username>/", projects_api.MemberDetail.as_view(), name="api-member"),
    path("projects/<slug:project>/audit/", audit_api.AuditList.as_view(), name="api-audit"),
    path("projects/<slug:project>/models/", catalog_api.ModelList.as_view(), name="api-models"),
    path("projects/<slug:project>/models/<slug:model>/", catalog_api.ModelDetail.as_view(), name="api-model"),
    path(
        "projects/<slug:project>/models/<slug:model>/versions/", catalog_api.VersionList.as_view(), name="api-versions"
    ),
    path(
        "projects/<slug:project>/models/<slug:model>/versions/<int:number>/",
        catalog_api.VersionDetail.as_view(),
        name="api-version",
    ),
    path(
        "projects/<slug:project>/models/<slug:model>/versions/<int:number>/recheck/",
        catalog_api.VersionRecheck.as_view(),
        name="api-version-recheck",
    ),
    path(
        "projects/<slug:project>/models/<slug:model>/versions/<int:number>/optimize/",
        jobkinds_api.OptimizeVersion.as_view(),
        name="api-optimize",
    ),
    path(
        "projects/<slug:project>/models/<slug:model>/versions/<int:number>/optimize-for-device/",
        jobkinds_api.OptimizeForDevice.as_view(),
        name="api-optimize-for-device",
    ),
    path(
        "projects/<slug:project>/models/<slug:model>/datasets/", catalog_api.DatasetList.as_view(), name="api-datasets"
    ),
    path("transforms/", jobkinds_api.TransformList.as_view(), name="api-transforms"),
    path("projects/<slug:project>/jobs/", jobkinds_api.JobList.as_view(), name="api-jobs"),
    path("projects/<slug:project>/jobs/<int:job_id>/", jobkinds_api.JobDetail.as_view(), name="api-job"),
    path("projects/<slug:project>/jobs/<int:job_id>/cancel/", jobkinds_api.JobCancel.as_view(), name="api-job-cancel"),
    path("projects/<slug:project>/jobs/<int:job_id>/retry/", jobkinds_api.JobRetry.as_view(), name="api-job-retry"),
    path("projects/<slug:project>/device-types/", device_types_api.DeviceTypeList.as_view(), name="api-device-types"),
    path(
        "projects/<slug:project>/device-types/<slug:slug>/",
        device_types_api.DeviceTypeDetail.as_view(),
        name="api-device-type",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Redoc's bundle fetches Redocly's logo from their CDN, with no setting to stop it, and asks Google Fonts: the
    # console asks no other host, so its one docs page is Swagger UI, served from here (old links still work).
    path("redoc/", RedirectView.as_view(pattern_name="api-docs", permanent=True), name="api-redoc"),
]

urlpatterns = [
    # Device traffic (check-ins by the thousand) first, so it is resolved before the developer patterns.
    path("", include("devices.urls")),
    path("", project_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("p/<slug:project>/", project_views.project_page, name="project"),
    path("p/<slug:project>/settings/", project_views.settings_page, name="project-settings"),
    path("p/<slug:project>/audit/", audit_views.audit_page, name="audit"),
    path("p/<slug:project>/audit.csv", audit_views.audit_csv, name="audit-csv"),
    path("p/<slug:project>/jobs/", jobkinds_views.jobs_page, name="jobs"),
    path("p/<slug:project>/device-types/", device_type_views.device_types_page, name="device-types"),
    path("p/<slug:project>/m/<slug:model>/", catalog_views.model_page, name="model"),
    path("p/<slug:project>/m/<slug:model>/v/<int:number>/", catalog_views.version_page, name="version"),
]

handler404 = "console.errors.not_found"
