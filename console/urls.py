from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import api, views

api_patterns = [
    path("health/", api.HealthView.as_view(), name="api-health"),
    path("projects/", api.ProjectList.as_view(), name="api-projects"),
    path("projects/<slug:project>/", api.ProjectDetail.as_view(), name="api-project"),
    path("projects/<slug:project>/members/", api.MemberList.as_view(), name="api-members"),
    path("projects/<slug:project>/members/<str:username>/", api.MemberDetail.as_view(), name="api-member"),
    path("projects/<slug:project>/models/", api.ModelList.as_view(), name="api-models"),
    path("projects/<slug:project>/models/<slug:model>/", api.ModelDetail.as_view(), name="api-model"),
    path("projects/<slug:project>/models/<slug:model>/versions/", api.VersionList.as_view(), name="api-versions"),
    path("projects/<slug:project>/models/<slug:model>/versions/<int:number>/", api.VersionDetail.as_view(),
         name="api-version"),
    path("projects/<slug:project>/models/<slug:model>/versions/<int:number>/optimize/", api.OptimizeVersion.as_view(),
         name="api-optimize"),
    path("projects/<slug:project>/models/<slug:model>/versions/<int:number>/optimize-for-device/",
         api.OptimizeForDevice.as_view(), name="api-optimize-for-device"),
    path("projects/<slug:project>/models/<slug:model>/datasets/", api.DatasetList.as_view(), name="api-datasets"),
    path("transforms/", api.TransformList.as_view(), name="api-transforms"),
    path("projects/<slug:project>/jobs/", api.JobList.as_view(), name="api-jobs"),
    path("projects/<slug:project>/jobs/<int:job_id>/", api.JobDetail.as_view(), name="api-job"),
    path("projects/<slug:project>/jobs/<int:job_id>/cancel/", api.JobCancel.as_view(), name="api-job-cancel"),
    path("projects/<slug:project>/device-types/", api.DeviceTypeList.as_view(), name="api-device-types"),
    path("projects/<slug:project>/device-types/<slug:slug>/", api.DeviceTypeDetail.as_view(),
         name="api-device-type"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

urlpatterns = [
    # Device traffic (check-ins by the thousand) first, so it is resolved before the developer patterns.
    path("", include("devices.urls")),
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("p/<slug:project>/", views.project_page, name="project"),
    path("p/<slug:project>/device-types/", views.device_types_page, name="device-types"),
    path("p/<slug:project>/m/<slug:model>/", views.model_page, name="model"),
    path("p/<slug:project>/m/<slug:model>/v/<int:number>/", views.version_page, name="version"),
]
