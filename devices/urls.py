from __future__ import annotations

from django.urls import path

from . import api, developer_api, views

DEVICE_API = "api/device/v1/"
PROJECT_API = "api/projects/<slug:project>/"
MODEL_API = PROJECT_API + "models/<slug:model>/"

urlpatterns = [
    # Device-facing: devices/agent/PROTOCOL.md (no trailing slashes, as the protocol writes them).
    path(DEVICE_API + "enroll", api.EnrollView.as_view(), name="device-enroll"),
    path(DEVICE_API + "checkin", api.checkin, name="device-checkin"),
    path(DEVICE_API + "events", api.EventsView.as_view(), name="device-events"),
    path(DEVICE_API + "download/<int:version_id>", api.DownloadView.as_view(), name="device-download"),
    # Developer-facing.
    path(PROJECT_API + "fleet/", developer_api.FleetSettingsView.as_view(), name="api-fleet"),
    path(PROJECT_API + "fleet/enrollment-key/", developer_api.EnrollmentKeyView.as_view(),
         name="api-enrollment-key"),
    path(PROJECT_API + "devices/", developer_api.DeviceList.as_view(), name="api-devices"),
    path(PROJECT_API + "devices/<str:device_id>/", developer_api.DeviceDetail.as_view(), name="api-device"),
    path(PROJECT_API + "devices/<str:device_id>/revoke/", developer_api.DeviceRevoke.as_view(),
         name="api-device-revoke"),
    path(PROJECT_API + "devices/<str:device_id>/events/", developer_api.DeviceEvents.as_view(),
         name="api-device-events"),
    path(MODEL_API + "rules/", developer_api.RuleList.as_view(), name="api-rules"),
    path(MODEL_API + "rules/preview/", developer_api.RulePreview.as_view(), name="api-rules-preview"),
    path(MODEL_API + "rules/<int:rule_id>/", developer_api.RuleDetail.as_view(), name="api-rule"),
    path(MODEL_API + "default-version/", developer_api.DefaultVersionView.as_view(), name="api-default-version"),
    path(MODEL_API + "rollups/", developer_api.RollupList.as_view(), name="api-rollups"),
    # Pages.
    path("p/<slug:project>/fleet/", views.fleet_page, name="fleet"),
    path("p/<slug:project>/fleet/<str:device_id>/", views.device_page, name="device"),
    path("p/<slug:project>/m/<slug:model>/delivery/", views.rules_page, name="delivery-rules"),
    path("p/<slug:project>/m/<slug:model>/delivery/rules/<int:rule_id>/", views.rule_page, name="delivery-rule"),
]
