"""`make run`'s embedded broker and supervised worker, end to end: a short run of bench/soak_jobs.py.

No PostgreSQL nor Redis: the soak makes its own var/ folder with the console's default SQLite database and
SQLite broker, starts run_console's worker under its supervisor, queues 200 jobs and SIGKILLs the worker
half-way. The full soak (2,000 jobs) is `python bench/soak_jobs.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_200_jobs_with_the_worker_killed_half_way__none_lost_stuck_or_out_of_order():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CACHE_URL")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak_jobs.py"), "--jobs", "200", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.stdout.strip(), run.stderr[-3000:]
    report = json.loads(run.stdout)

    assert report["succeeded"] == 200, report
    assert (report["lost"], report["stuck"], report["failed"], report["out_of_order"]) == (0, 0, 0, 0), report
    assert report["restarts"] == 1 and report["worker_exit_codes"] == [-9]
    assert report["held_then_finished"] == report["held_by_killed_worker"]
    assert report["health_while_running"] == "ok"
    assert report["health_after_stop"] == {"status": "degraded", "http": 200}  # no worker, nothing waiting
    assert report["health_after_stop_with_a_queued_job"] == {
        "status": "down",
        "http": 503,
        "note": "waiting for a worker",
    }
    assert report["ok"] is True and run.returncode == 0
