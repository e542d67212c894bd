"""The dashboards' rollups: counted as events arrive (offers at check-in, reports from devices), by failure reason
and offer -> install delay, and rebuilt from the stored events to the very same rows."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from devices.core.failure_reasons import failure_reason, median_from_buckets
from devices.models import DeliveryCounts, DeliveryRollup, DeliveryTypeRollup, Device, DeviceEvent
from devices.rules import services as rules_services
from devices.telemetry.events import record_events
from tests.devices.fleet_helpers import checkin, device_client, enroll

pytestmark = pytest.mark.django_db


def report(device, now, *events):
    batch = [
        {"id": uuid.uuid4().hex, "model": "digit-classifier", "reason": "", "stats": {}, **event} for event in events
    ]
    return record_events(device=device, events=batch, now=now)


def rows() -> list[dict]:
    return sorted(
        ({k: v for k, v in model_to_dict(r).items() if k != "id"} for r in DeliveryRollup.objects.all()),
        key=lambda row: (row["day"], row["version"], row["device_type"], row["region"], row["app_version"]),
    )


def type_rows() -> list[dict]:
    return sorted(
        ({k: v for k, v in model_to_dict(r).items() if k != "id"} for r in DeliveryTypeRollup.objects.all()),
        key=lambda row: (row["day"], row["version"], row["device_type"]),
    )


def fine_rows_summed() -> list[dict]:
    """DeliveryRollup rows summed over regions and app versions: what DeliveryTypeRollup must hold."""
    sums: dict[tuple, dict] = {}
    for row in rows():
        key = (row["day"], row["version"], row["device_type"])
        total = sums.setdefault(key, {k: row[k] for k in ("project", "model", "day", "version", "device_type")})
        for field in DeliveryCounts._meta.fields:
            total[field.name] = total.get(field.name, 0) + row[field.name]
    return [sums[key] for key in sorted(sums)]


@pytest.fixture
def offered(enrollment_key, model, ready_v1):
    """Two devices offered v1 by their check-in (a rule serves it to everyone)."""
    rules_services.create_rule(model=model, version=ready_v1)
    devices = []
    for name, app in (("kiosk-1", "2.3.1"), ("kiosk-2", "3.0.0")):
        response, config = enroll(enrollment_key, device_id=name, app_version=app)
        assert checkin(device_client(response.json()["device_token"]), config).status_code == 200
        devices.append(Device.objects.get(device_id=name))
    return devices


def test_checkin_offer_and_reports__are_counted_by_app_version_reason_and_delay(offered, ready_v1):
    first, second = offered
    offer_at = DeviceEvent.objects.get(device=first, type="assignment_changed").at
    install_at = offer_at + timedelta(minutes=30)
    report(
        first,
        install_at + timedelta(minutes=1),
        {"type": "download_failed", "version_id": ready_v1.pk, "at": offer_at, "reason": "sha256 mismatch: got a"},
        {"type": "download_completed", "version_id": ready_v1.pk, "at": install_at},
        {"type": "install_succeeded", "version_id": ready_v1.pk, "at": install_at},
    )
    report(
        second,
        install_at,
        {"type": "download_failed", "version_id": ready_v1.pk, "at": offer_at, "reason": "download incomplete"},
    )

    mine = DeliveryRollup.objects.get(app_version="2.3.1")
    theirs = DeliveryRollup.objects.get(app_version="3.0.0")
    assert (mine.offered, mine.download_failed, mine.failed_checksum, mine.install_succeeded) == (1, 1, 1, 1)
    assert mine.installed_within_1h == 1 and mine.installed_within_15m == 0
    assert (theirs.offered, theirs.failed_network, theirs.install_succeeded) == (1, 1, 0)
    # Both devices are of one type: the unfiltered dashboards' table holds their sum.
    (both,) = DeliveryTypeRollup.objects.all()
    assert (both.offered, both.download_failed, both.failed_checksum, both.failed_network) == (2, 2, 1, 1)
    assert type_rows() == fine_rows_summed()


def test_rebuild_rollups__gives_the_rows_ingestion_kept(offered, ready_v1):
    first, second = offered
    offer_at = DeviceEvent.objects.get(device=first, type="assignment_changed").at
    for minutes, device in ((5, first), (300, second)):
        at = offer_at + timedelta(minutes=minutes)
        report(
            device,
            at,
            {"type": "download_started", "version_id": ready_v1.pk, "at": at},
            {"type": "install_failed", "version_id": ready_v1.pk, "at": at, "reason": "No space left on device"},
            {"type": "install_succeeded", "version_id": ready_v1.pk, "at": at},
            {
                "type": "inference_stats",
                "version_id": ready_v1.pk,
                "at": at,
                "stats": {"count": 10, "latency_ms_p50": 3},
            },
        )
    kept, kept_per_type = rows(), type_rows()
    assert sum(row["failed_disk_space"] for row in kept) == 2

    call_command("rebuild_rollups")

    assert rows() == kept
    assert type_rows() == kept_per_type == fine_rows_summed()


def test_rebuild_rollups__unknown_project__changes_nothing_and_says_so(offered):
    kept = rows()
    with pytest.raises(Exception, match="No project with slug nope"):
        call_command("rebuild_rollups", project=["nope"])
    assert rows() == kept


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("sha256 mismatch: got 1, manifest says 2", "checksum"),
        ("signature does not verify", "signature"),
        ("download incomplete after 3 attempts: timed out", "network"),
        ("OSError: [Errno 28] No space left on device", "disk_space"),
        ("cancelled by the user", "cancelled"),
        ("onnxruntime cannot load the package", "other"),
    ],
)
def test_failure_reason__reads_the_agents_sentences(reason, kind):
    assert failure_reason(reason) == kind


def test_median_from_buckets__interpolates_inside_the_middle_bucket():
    assert median_from_buckets([0, 0, 0, 0]) is None
    assert median_from_buckets([2, 2]) == 60  # half of 4 reached at the end of the first bucket (up to 60 s)
    assert median_from_buckets([0, 4]) == 180  # the middle of 60..300 s


def test_bulk_rows__equal_what_ingestion_keeps(offered, ready_v1):
    """The bench's fast fill (bulk_rows over stored events) leaves the rows that batch-by-batch counting left."""
    from devices.telemetry.delivery_counts import bulk_rows, sum_per_type

    first, second = offered
    offer_at = DeviceEvent.objects.get(device=first, type="assignment_changed").at
    for minutes, device in ((3, first), (90, second), (2000, first)):
        at = offer_at + timedelta(minutes=minutes)
        report(
            device,
            at,
            {"type": "download_failed", "version_id": ready_v1.pk, "at": at, "reason": "signature does not verify"},
            {"type": "install_succeeded", "version_id": ready_v1.pk, "at": at},
            {"type": "inference_stats", "version_id": ready_v1.pk, "at": at, "stats": {"count": 7, "accuracy": 0.5}},
        )
    kept, kept_per_type = rows(), type_rows()
    events = {device: list(device.events.filter(version__isnull=False)) for device in (first, second)}

    DeliveryRollup.objects.all().delete()
    DeliveryTypeRollup.objects.all().delete()
    DeliveryRollup.objects.bulk_create(bulk_rows(first.project_id, events))
    sum_per_type(first.project_id)

    assert rows() == kept
    assert type_rows() == kept_per_type
