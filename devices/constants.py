"""Limits of the device-facing API, in one place (the 4xx messages quote them)."""

from __future__ import annotations

API_PREFIX = "/api/device/v1"

MAX_REQUEST_BYTES = 64 * 1024  # enroll and check-in bodies
MAX_EVENTS_REQUEST_BYTES = 512 * 1024  # an event batch
MAX_CONFIG_BYTES = 8 * 1024  # canonical JSON of one device configuration

MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY_CHARS = 64
MAX_ATTRIBUTE_VALUE_CHARS = 256
MAX_MODELS_PER_CHECKIN = 50
MAX_EVENTS_PER_BATCH = 100
MAX_EVENT_REASON_CHARS = 2000
