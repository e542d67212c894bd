"""Throttles count in the shared cache: a second web process (another gunicorn worker, or this one restarted)
sees the budget the first one spent, so an enrollment-key guesser does not get a fresh budget per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

ROOT = Path(__file__).resolve().parents[2]
ENROLL = "/api/device/v1/enroll"
GUESS = {"enrollment_key": "enr_a-guess", "device_id": "guesser-1", "config": {}}
THROTTLE_KEYS = ["throttle_enroll_127.0.0.1"]  # DRF's key for the enroll scope and the test clients' address

# A second Django process: the same settings and database, its own memory. It guesses once more and prints
# the status it got.
SECOND_PROCESS = """
import django
django.setup()
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle
SimpleRateThrottle.THROTTLE_RATES = {**SimpleRateThrottle.THROTTLE_RATES, "enroll": "3/min"}
print(APIClient().post("%s", %r, format="json").status_code)
""" % (ENROLL, GUESS)


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the second process shares the test database: run on PostgreSQL (make test sets DATABASE_URL)")
    return (
        f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/"
        f"{db['NAME']}"
    )


def guess_in_a_second_process() -> int:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "PYTHONPATH": str(ROOT),
        "DB_CONN_MAX_AGE": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def enroll_budget_of_three(transactional_db, monkeypatch):
    """Three enrollment tries a minute, counted from zero; the counts are committed, so another process sees them."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "enroll": "3/min"})
    cache.delete_many(THROTTLE_KEYS)
    yield
    cache.delete_many(THROTTLE_KEYS)


def test_enroll_throttle__budget_spent_here__is_spent_in_a_second_process_too(enroll_budget_of_three):
    statuses = [APIClient().post(ENROLL, GUESS, format="json").status_code for _ in range(3)]

    assert 429 not in statuses
    assert guess_in_a_second_process() == 429
