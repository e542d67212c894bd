"""devices.presence: last-seen times written behind, in batches, never backwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.delivery import presence
from devices.models import Device

pytestmark = pytest.mark.django_db


def test_flush__writes_every_noted_device_in_batches(enrolled, monkeypatch, settings):
    device, _, _ = enrolled
    monkeypatch.setattr(presence, "_BATCH", 1)
    settings.DEVICE_LAST_SEEN_FLUSH_S = 60  # only the explicit flush below writes
    seen = timezone.now().replace(microsecond=0)

    presence.note_seen(device.pk, seen)
    presence.note_seen(10**12, seen)  # a device deleted meanwhile: nothing to update, nothing fails

    assert presence.flush() == 2
    assert Device.objects.get(pk=device.pk).last_seen_at == seen


def test_flush__never_moves_last_seen_backwards(enrolled):
    device, _, _ = enrolled
    later = timezone.now().replace(microsecond=0)
    presence.note_seen(device.pk, later)  # flushed at once (DEVICE_LAST_SEEN_FLUSH_S = 0 in these tests)

    presence.forget()  # as another web process would, which noted an earlier check-in
    presence.note_seen(device.pk, later - timedelta(minutes=5))

    assert Device.objects.get(pk=device.pk).last_seen_at == later


@pytest.mark.parametrize(("resolution_s", "written"), [(60, False), (0, True)])
def test_note_seen__writes_a_device_at_most_once_per_resolution(enrolled, settings, resolution_s, written):
    device, _, _ = enrolled
    settings.DEVICE_LAST_SEEN_RESOLUTION_S = resolution_s
    first = timezone.now().replace(microsecond=0)
    presence.note_seen(device.pk, first)

    presence.note_seen(device.pk, first + timedelta(seconds=10))

    assert (Device.objects.get(pk=device.pk).last_seen_at > first) is written
