from __future__ import annotations

from django.urls import path

from devices.dashboards import views as dashboard_views
from devices.delivery import api as delivery_api
from devices.experiments import api as experiments_api
from devices.experiments import views as experiments_views
from devices.fleet import api as fleet_api
from devices.fleet import views as fleet_views
from devices.rollouts import api as rollouts_api
from devices.rollouts import views as rollouts_views
from devices.rules import api as rules_api
from devices.rules import views as rules_views
from devices.telemetry import api as telemetry_api

DEVICE_API = "api/device/v1/"
PROJECT_API = "api/projects/<slug:project>/"
MODEL_API = PROJECT_API + "models/<slug:model>/"
MODEL_PAGE = "p/<slug:project>/m/<slug:model>/"

urlpatterns = [
    # Device-facing: devices/agent/PROTOCOL.md (no trailing slashes, as the protocol writes them).
    path(DEVICE_API + "enroll", delivery_api.EnrollView.as_view(), name="device-enroll"),
    path(DEVICE_API + "checkin", delivery_api.checkin, name="device-checkin"),
    path(DEVICE_API + "events", delivery_api.EventsView.as_view(), name="device-events"),
    path(DEVICE_API + "download/<int:version_id>", delivery_api.DownloadView.as_view(), name="device-download"),
    # Developer-facing.
    path(PROJECT_API + "fleet/", fleet_api.FleetSettingsView.as_view(), name="api-fleet"),
    path(PROJECT_API + "fleet/enrollment-key/", fleet_api.EnrollmentKeyView.as_view(), name="api-enrollment-key"),
    path(PROJECT_API + "devices/", fleet_api.DeviceList.as_view(), name="api-devices"),
    path(PROJECT_API + "devices/<str:device_id>/", fleet_api.DeviceDetail.as_view(), name="api-device"),
    path(PROJECT_API + "devices/<str:device_id>/revoke/", fleet_api.DeviceRevoke.as_view(), name="api-device-revoke"),
    path(PROJECT_API + "devices/<str:device_id>/events/", fleet_api.DeviceEvents.as_view(), name="api-device-events"),
    path(MODEL_API + "rules/", rules_api.RuleList.as_view(), name="api-rules"),
    path(MODEL_API + "rules/preview/", rules_api.RulePreview.as_view(), name="api-rules-preview"),
    path(MODEL_API + "rules/<int:rule_id>/", rules_api.RuleDetail.as_view(), name="api-rule"),
    path(MODEL_API + "default-version/", rules_api.DefaultVersionView.as_view(), name="api-default-version"),
    path(MODEL_API + "rollouts/", rollouts_api.RolloutList.as_view(), name="api-rollouts"),
    path(MODEL_API + "rollouts/<int:rollout_id>/", rollouts_api.RolloutDetail.as_view(), name="api-rollout"),
    *(
        path(MODEL_API + f"rollouts/<int:rollout_id>/{action}/", view.as_view(), name=f"api-rollout-{action}")
        for action, view in rollouts_api.ACTIONS.items()
    ),
    path(MODEL_API + "experiments/", experiments_api.ExperimentList.as_view(), name="api-experiments"),
    path(
        MODEL_API + "experiments/<int:experiment_id>/",
        experiments_api.ExperimentDetail.as_view(),
        name="api-experiment",
    ),
    path(
        MODEL_API + "experiments/<int:experiment_id>/results/",
        experiments_api.ExperimentResults.as_view(),
        name="api-experiment-results",
    ),
    *(
        path(MODEL_API + f"experiments/<int:experiment_id>/{action}/", view.as_view(), name=f"api-experiment-{action}")
        for action, view in experiments_api.ACTIONS.items()
    ),
    path(MODEL_API + "rollups/", telemetry_api.RollupList.as_view(), name="api-rollups"),
    # Pages.
    path("p/<slug:project>/overview/", dashboard_views.overview_page, name="overview"),
    path("p/<slug:project>/downloads/", dashboard_views.downloads_page, name="downloads"),
    path("p/<slug:project>/m/<slug:model>/dashboard/", dashboard_views.model_dashboard_page, name="model-dashboard"),
    path("p/<slug:project>/fleet/", fleet_views.fleet_page, name="fleet"),
    path("p/<slug:project>/fleet/<str:device_id>/", fleet_views.device_page, name="device"),
    path("p/<slug:project>/m/<slug:model>/delivery/", rules_views.rules_page, name="delivery-rules"),
    path("p/<slug:project>/m/<slug:model>/delivery/rules/<int:rule_id>/", rules_views.rule_page, name="delivery-rule"),
    path(MODEL_PAGE + "rollouts/", rollouts_views.rollouts_page, name="rollouts"),
    path(MODEL_PAGE + "rollouts/new/", rollouts_views.propose_page, name="rollout-propose"),
    path(MODEL_PAGE + "rollouts/<int:rollout_id>/", rollouts_views.rollout_page, name="rollout"),
    path(MODEL_PAGE + "rollouts/<int:rollout_id>/stages.csv", rollouts_views.rollout_timeline_csv, name="rollout-csv"),
    path(MODEL_PAGE + "rollouts/<int:rollout_id>/approval/", rollouts_views.approval_page, name="rollout-approval"),
    path("p/<slug:project>/m/<slug:model>/experiments/", experiments_views.experiments_page, name="experiments"),
    path(
        "p/<slug:project>/m/<slug:model>/experiments/<int:experiment_id>/",
        experiments_views.experiment_page,
        name="experiment",
    ),
    path(
        "p/<slug:project>/m/<slug:model>/experiments/<int:experiment_id>/data.csv",
        experiments_views.experiment_csv,
        name="experiment-csv",
    ),
]
