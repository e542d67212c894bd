"""/api/health/ tells an operator whether queued jobs can run; pages say when no worker is alive."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone
from rest_framework.test import APIClient

from console.celery import app as celery_app
from console.health import WorkerStatus, assess
from jobs import services as job_services
from jobs.workers.heartbeat import ALIVE_SECONDS, beat, forget

HEALTH = "/api/health/"
QUEUES = ["checks", "default", "heavy"]


def _alive(*, seconds_ago: float = 0, queues=QUEUES, worker: str = "celery@box"):
    seen = timezone.now() - timedelta(seconds=seconds_ago)
    beat(worker=worker, queues=queues, pid=1, started_at=seen, now=seen)


def _queued_check(version_or_none=None, *, project, age_s: float = 0):
    job = job_services.start_job(project=project, kind="check", input_version=version_or_none)
    job.__class__.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=age_s))
    return job


# --- the verdict, from plain facts -----------------------------------------------------------------


def _facts(**overrides):
    facts = {
        "database_ok": True,
        "broker_ok": True,
        "workers": {q: ["w@h"] for q in QUEUES},
        "queued": {},
        "broker_messages": {},
    }
    return {**facts, **overrides}


def test_verdict__everything_up__is_ok_200():
    health = assess(**_facts())
    assert (health.status, health.http_status, health.problems) == ("ok", 200, [])


def test_verdict__no_worker_but_nothing_queued__is_degraded_200_with_a_warning():
    health = assess(**_facts(workers={}))
    assert (health.status, health.http_status) == ("degraded", 200)
    assert health.as_json()["problems"][0] == f"no worker seen on queue 'checks' in the last {ALIVE_SECONDS}s"


def test_verdict__queued_jobs_and_no_worker_on_their_queue__is_down_503_naming_queue_count_and_age():
    health = assess(
        **_facts(
            workers={"heavy": ["w@h"], "default": ["w@h"]},
            queued={"checks": {"queued_jobs": 32, "oldest_queued_age_s": 720.4}},
        )
    )
    assert (health.status, health.http_status) == ("down", 503)
    assert health.problems == [
        f"no worker seen on queue 'checks' in the last {ALIVE_SECONDS}s, and 32 job(s) wait there (the oldest for 720s)"
    ]


@pytest.mark.parametrize(
    "part, message", [("database_ok", "the database cannot be reached"), ("broker_ok", "the broker cannot be reached")]
)
def test_verdict__database_or_broker_down__is_503(part, message):
    health = assess(**_facts(**{part: False}))
    assert health.http_status == 503 and health.problems[0].startswith(message)


def test_verdict__eager_mode_needs_no_worker_nor_broker():
    health = assess(
        **_facts(workers={}, broker_ok=False, queued={"checks": {"queued_jobs": 1, "oldest_queued_age_s": 5.0}}),
        eager=True,
    )
    assert health.http_status == 200


# --- the endpoint, on the real database and broker -------------------------------------------------


@pytest.mark.django_db
def test_health__worker_seen_on_every_queue__answers_200_with_each_part():
    _alive(seconds_ago=10)
    response = APIClient().get(HEALTH)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["problems"] == []
    assert body["database"] == {"ok": True} and body["broker"]["ok"] is True
    assert body["broker"]["transport"] in ("sqlalchemy", "redis")
    assert {q: body["queues"][q]["workers"] for q in QUEUES} == {"checks": 1, "default": 1, "heavy": 1}


@pytest.mark.django_db
def test_health__jobs_queued_and_last_worker_heard_two_minutes_ago__answers_503_with_the_oldest_age(project):
    _alive(seconds_ago=120)
    _queued_check(project=project, age_s=600)
    _queued_check(project=project, age_s=30)

    response = APIClient().get(HEALTH)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["queues"]["checks"]["queued_jobs"] == 2 and body["queues"]["checks"]["workers"] == 0
    assert 599 <= body["queues"]["checks"]["oldest_queued_age_s"] <= 660
    assert body["problems"][0].startswith("no worker seen on queue 'checks'")


@pytest.mark.django_db
def test_health__worker_shut_down_cleanly__is_no_longer_counted():
    _alive()
    forget("celery@box")
    assert APIClient().get(HEALTH).json()["queues"]["checks"]["workers"] == 0


@pytest.mark.django_db
def test_health__broker_unreachable__answers_503_without_naming_the_host(monkeypatch):
    _alive()
    monkeypatch.setitem(celery_app.conf, "broker_url", "redis://127.0.0.1:9/0")  # a closed port
    monkeypatch.setitem(celery_app.conf, "broker_transport", None)

    response = APIClient().get(HEALTH)

    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
    assert "127.0.0.1" not in response.content.decode()


# --- what pages say --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_header__no_worker_alive__shows_the_banner(client, viewer):
    client.force_login(viewer)
    page = client.get("/").content.decode()
    assert 'id="no-worker-banner"' in page and "No worker is running" in page


@pytest.mark.django_db
def test_page_header__a_worker_alive__shows_no_banner(client, viewer):
    _alive()
    client.force_login(viewer)
    assert "no-worker-banner" not in client.get("/").content.decode()


@pytest.mark.django_db
def test_queued_job__says_waiting_for_a_worker_only_while_none_serves_its_queue(project):
    job = _queued_check(project=project)
    note = Template("{% load workers %}[{% job_waiting_note job %}]")

    assert note.render(Context({"job": job, "worker_status": WorkerStatus()})) == "[waiting for a worker]"
    _alive(queues=["heavy"])
    assert note.render(Context({"job": job, "worker_status": WorkerStatus()})) == "[waiting for a worker]"
    _alive(queues=["checks"], worker="celery@other")
    assert note.render(Context({"job": job, "worker_status": WorkerStatus()})) == "[]"
