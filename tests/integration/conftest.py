"""A real Celery worker process on the real broker, sharing the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from jobs.registry import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip(
            "the worker tests share the test database with a second process: run them on PostgreSQL "
            "(make test sets DATABASE_URL)"
        )
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def _purge_queues() -> None:
    from console.celery import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in ALL_QUEUES:
            try:
                channel.queue_purge(queue)
            except Exception:  # a queue that was never declared has nothing to purge
                pass


def start_worker(log_path: Path, *, name: str, pool: str = "prefork") -> subprocess.Popen:
    """A Celery worker on every queue, sharing this test's database and storage; returns once it is ready."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": _database_url(),
            "STORAGE_ROOT": str(django_settings.MEDIA_ROOT),
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "PYTHONPATH": str(ROOT),
        }
    )
    log = open(log_path, "w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "console",
            "worker",
            "-Q",
            ",".join(ALL_QUEUES),
            "--concurrency",
            "1",
            "--pool",
            pool,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
            "-n",
            f"{name}-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "ready" not in log_path.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_worker(worker)
            raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.fixture
def worker_environment(transactional_db, settings):
    """The real broker, emptied, and a database a second process can share."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("the worker tests run on Redis: set REDIS_URL (make test does)")
    _database_url()
    _purge_queues()


@pytest.fixture
def celery_worker_process(worker_environment, tmp_path):
    worker = start_worker(tmp_path / "worker.log", name="test")
    try:
        yield worker
    finally:
        stop_worker(worker)


def wait_for(predicate, timeout: float = 90.0, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
