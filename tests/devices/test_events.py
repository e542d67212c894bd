"""POST /api/device/v1/events: batches, replayed ids, daily rollups and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from devices.models import DailyRollup, DeviceEvent
from tests.devices.fleet_helpers import API, device_client, ready_version

pytestmark = pytest.mark.django_db


def iso(at: datetime) -> str:
    """As the agent writes times: UTC with milliseconds and Z."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


AT_TIME = timezone.now() - timedelta(minutes=5)  # events are bounded to a window around the server's clock
AT = iso(AT_TIME)


def event(event_type: str, version_id: int | None, **extra) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "model": "digit-classifier",
        "version_id": version_id,
        "at": AT,
        **extra,
    }


def test_events__batch__is_stored_and_rolled_up_per_day_version_type_and_region(enrolled, device_api, ready_v1):
    batch = [
        event("download_started", ready_v1.pk),
        event("download_completed", ready_v1.pk),
        event("install_succeeded", ready_v1.pk),
        event("download_failed", ready_v1.pk, reason="sha256 mismatch"),
        event(
            "inference_stats",
            ready_v1.pk,
            stats={"count": 100, "latency_ms_p50": 2.0, "latency_ms_p90": 4.0, "accuracy": 0.9},
        ),
        event("inference_stats", ready_v1.pk, stats={"count": 300, "latency_ms_p50": 1.0, "latency_ms_p90": 2.0}),
    ]

    response = device_api.post(f"{API}/events", {"events": batch}, format="json")

    assert response.status_code == 200
    assert response.json() == {"accepted": 6, "duplicates": 0, "out_of_window": 0}
    rollup = DailyRollup.objects.get()
    assert (rollup.day, rollup.version, rollup.device_type.slug, rollup.region) == (
        AT_TIME.astimezone(UTC).date(),
        ready_v1,
        "x86-gateway",
        "DE",
    )
    assert (rollup.download_started, rollup.download_completed, rollup.download_failed, rollup.install_succeeded) == (
        1,
        1,
        1,
        1,
    )
    assert rollup.inference_count == 400
    assert rollup.latency_p50_ms == pytest.approx(1.25)
    assert rollup.latency_p90_ms == pytest.approx(2.5)
    assert rollup.accuracy == pytest.approx(0.9)
    failed = DeviceEvent.objects.get(type="download_failed")
    assert failed.reason == "sha256 mismatch" and failed.version == ready_v1


def test_events__replayed_batch__counts_as_duplicates_and_not_twice(enrolled, device_api, ready_v1):
    batch = [event("download_started", ready_v1.pk), event("install_succeeded", ready_v1.pk)]
    device_api.post(f"{API}/events", {"events": batch}, format="json")

    response = device_api.post(
        f"{API}/events", {"events": [*batch, event("rollback", ready_v1.pk, reason="x")]}, format="json"
    )

    assert response.json() == {"accepted": 1, "duplicates": 2, "out_of_window": 0}
    rollup = DailyRollup.objects.get()
    assert (rollup.download_started, rollup.install_succeeded, rollup.rollback) == (1, 1, 1)
    assert DeviceEvent.objects.filter(type__in=["download_started", "install_succeeded", "rollback"]).count() == 3


def test_events__same_id_twice_in_one_batch__counts_once(enrolled, device_api, ready_v1):
    first = event("download_started", ready_v1.pk)

    response = device_api.post(f"{API}/events", {"events": [first, first]}, format="json")

    assert response.json() == {"accepted": 1, "duplicates": 1, "out_of_window": 0}


def test_events__version_of_another_project__is_kept_in_history_but_counted_nowhere(
    enrolled, device_api, other_project, outsider
):
    from console.catalog import services as catalog_services

    theirs = ready_version(catalog_services.create_model(project=other_project, name="digit-classifier", user=outsider))

    response = device_api.post(
        f"{API}/events", {"events": [event("install_failed", theirs.pk, reason="no")]}, format="json"
    )

    assert response.json() == {"accepted": 1, "duplicates": 0, "out_of_window": 0}
    stored = DeviceEvent.objects.get(type="install_failed")
    assert (stored.version, stored.reported_version_id) == (None, theirs.pk)
    assert not DailyRollup.objects.exists()


@pytest.mark.parametrize("model_name", ["", "no-such-model"])
def test_events__version_of_a_model_not_named__is_kept_as_reported_and_counted_nowhere(
    enrolled, device_api, ready_v1, other_project, outsider, model_name
):
    from console.catalog import services as catalog_services

    theirs = ready_version(catalog_services.create_model(project=other_project, name="theirs", user=outsider))
    batch = [
        event("install_failed", version_id, id=f"e{version_id}", model=model_name)
        for version_id in (ready_v1.pk, theirs.pk, 10**12)
    ]

    response = device_api.post(f"{API}/events", {"events": batch}, format="json")

    assert response.json() == {"accepted": 3, "duplicates": 0, "out_of_window": 0}
    stored = DeviceEvent.objects.filter(type="install_failed").order_by("reported_version_id")
    assert [(e.version_id, e.reported_version_id) for e in stored] == [
        (None, ready_v1.pk),
        (None, theirs.pk),
        (None, 10**12),
    ]
    assert not DailyRollup.objects.exists()


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([{"id": "a", "type": "exploded", "at": AT}], "events.0.type"),
        ([{"id": "a", "type": "rollback"}], "events.0.at"),
        ([{"type": "rollback", "at": AT}], "events.0.id"),
        ([{"id": "a" * 65, "type": "rollback", "at": AT}], "events.0.id"),
        ([{"id": "a", "type": "rollback", "at": AT, "reason": "r" * 2001}], "events.0.reason"),
        ([{"id": "a", "type": "inference_stats", "at": AT, "stats": {"count": -1}}], "stats.count"),
        ([{"id": "a", "type": "inference_stats", "at": AT, "stats": {"count": 1, "accuracy": 3}}], "accuracy"),
        ([{"id": str(i), "type": "rollback", "at": AT} for i in range(101)], "no more than 100"),
        ([{"id": "a", "type": "rollback", "at": AT, "version_id": 2**63}], "events.0.version_id"),
    ],
)
def test_events__malformed_batch__is_400_and_stores_nothing(enrolled, device_api, events, message):
    response = device_api.post(f"{API}/events", {"events": events}, format="json")

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not DeviceEvent.objects.exclude(type="enrolled").exists()


def test_events__wrong_token__is_401(enrolled):
    response = device_client("dev_nope").post(f"{API}/events", {"events": []}, format="json")
    assert response.status_code == 401


def test_events__body_nested_too_deep__is_400_saying_so_and_stores_nothing(enrolled, device_api):
    deep = b"[" * 5000 + b"]" * 5000  # 10 kB nested 5,000 levels: json.loads alone raises RecursionError

    response = device_api.post(f"{API}/events", data=b'{"events": ' + deep + b"}", content_type="application/json")

    assert response.status_code == 400
    assert "levels deep" in response.json()["detail"]
    assert not DeviceEvent.objects.exclude(type="enrolled").exists()


# -- dates: a window around the server's clock --------------------------------------------------------------


def test_events__dated_1970_or_next_year__are_acknowledged_but_neither_stored_nor_counted(
    enrolled, device_api, ready_v1
):
    now = timezone.now()
    batch = [
        event("download_started", ready_v1.pk) | {"at": "1970-01-01T00:00:00.000Z"},
        event("download_started", ready_v1.pk) | {"at": iso(now + timedelta(days=365))},
        event("download_completed", ready_v1.pk),
    ]

    response = device_api.post(f"{API}/events", {"events": batch}, format="json")

    assert response.json() == {"accepted": 1, "duplicates": 0, "out_of_window": 2}
    assert list(DeviceEvent.objects.exclude(type="enrolled").values_list("type", flat=True)) == ["download_completed"]
    rollup = DailyRollup.objects.get()
    assert (rollup.download_started, rollup.download_completed) == (0, 1)


NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # the server's clock, injected


def recorded(device, *ats: datetime, version) -> tuple:
    """Record one download_started per time with the server's clock at NOW; the outcome and what was counted."""
    from devices.telemetry.events import record_events
    from devices.telemetry.serializers import EventBatchSerializer

    batch = EventBatchSerializer(
        data={"events": [event("download_started", version.pk) | {"at": iso(at)} for at in ats]}
    )
    batch.is_valid(raise_exception=True)
    outcome = record_events(device=device, events=batch.validated_data["events"], now=NOW)
    counted = {str(rollup.day): rollup.download_started for rollup in DailyRollup.objects.all()}
    return tuple(outcome), counted


def test_record_events__window__takes_a_month_back_and_an_hour_ahead_of_the_servers_clock(enrolled, ready_v1):
    device, _, _ = enrolled

    outcome, counted = recorded(
        device,
        NOW - timedelta(days=30),
        NOW - timedelta(days=30, seconds=1),
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=1, seconds=1),
        version=ready_v1,
    )

    assert outcome == (2, 0, 2)
    assert counted == {"2026-05-16": 1, "2026-06-15": 1}


def test_record_events__a_little_ahead__is_dated_now(enrolled, ready_v1):
    device, _, _ = enrolled

    recorded(device, NOW + timedelta(minutes=20), version=ready_v1)

    assert DeviceEvent.objects.get(type="download_started").at == NOW


def test_record_events__out_of_window_event_resent__is_never_counted(enrolled, ready_v1):
    from devices.telemetry.events import record_events
    from devices.telemetry.serializers import EventBatchSerializer

    device, _, _ = enrolled
    batch = EventBatchSerializer(
        data={"events": [event("download_started", ready_v1.pk) | {"at": "1970-01-01T00:00:00Z"}]}
    )
    batch.is_valid(raise_exception=True)

    outcomes = [tuple(record_events(device=device, events=batch.validated_data["events"], now=NOW)) for _ in range(2)]

    assert outcomes == [(0, 0, 1), (0, 0, 1)]
    assert not DailyRollup.objects.exists()
