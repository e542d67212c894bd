"""Soak of the embedded job machinery that `make run` starts: no server, a killed worker on the way.

    python bench/soak_jobs.py [--jobs 2000] [--json]

What it runs is `make run`'s defaults: the console's SQLite database and SQLite broker (kombu's SQLAlchemy
transport) in a fresh var/ folder, REDIS_URL and DATABASE_URL unset, and the worker command of run_console
(prefork, concurrency 2, beat embedded) under run_console's WorkerSupervisor. Two things differ, both named in
the report: JOB_STALE_SECONDS is --stale-seconds (20, not 600), so the reaper recovers what the killed worker
held within the run; and the jobs are of a trivial kind registered for the soak (a few milliseconds of work,
spread round-robin over the three queues), so the run measures the machinery, not onnxruntime.

This process plays the web server: it queues the jobs with jobs.services.start_job at a steady rate. The job
queued at the kill point (half-way by default) works for --hold-ms instead of a few milliseconds, so that a job
is surely running then however fast the machine; while it runs, this process SIGKILLs the worker's main process (no warm
shutdown, no ack, as when a machine dies; run_console's supervisor then stops the orphaned pool processes). The supervisor must start a new worker, and every job must still finish exactly as asked.

Figures:
- lost: jobs still queued and never started at the end; stuck: started and not finished at the end;
  failed: jobs that ended failed or cancelled. All three must be 0.
- out_of_order: jobs (of those the killed worker did not hold) that started after a job queued more than
  ``window`` places later on the same queue had started; the window is what one worker may hold at once
  (concurrency x (prefetch + 1)), inside which parallel workers may legitimately swap starts.
- held_by_killed_worker: jobs not finished when the worker was killed whose message it had taken from the
  broker (running, or reserved by prefetch): nothing will deliver those messages again, so the reaper must
  notice (after JOB_STALE_SECONDS) and send them again. restarts: workers the supervisor started after the first.
- health: /api/health/'s verdict once jobs run, after the worker is stopped, and with one more job queued then
  (503, and the job's "waiting for a worker" note).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a checkout without an editable install

from jobs.registry import ALL_QUEUES, JobKind, register  # noqa: E402

SOAK_KINDS = {queue: f"soak-{queue}" for queue in ALL_QUEUES}


def _soak_work(job, progress):
    time.sleep(job.params.get("work_ms", 5) / 1000)
    return {"seq": job.params["seq"], "pid": os.getpid()}, None


# Registered at import, so the worker (started with --include soak_jobs) knows the kinds too.
for _queue, _kind in SOAK_KINDS.items():
    register(JobKind(name=_kind, queue=_queue, run=_soak_work, label="soak"))


def _environment(var_dir: Path, stale_seconds: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL", "CACHE_URL")}
    env.update(
        {
            "CONSOLE_VAR_DIR": str(var_dir),
            "JOB_STALE_SECONDS": str(stale_seconds),
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "bench")]),
            "LOG_LEVEL": "WARNING",
            "DEBUG": "",
            "ALLOWED_HOSTS": "",
        }
    )
    return env


def taken_from_broker(broker_db: Path) -> set[int]:
    """Job ids of the run_job messages a consumer has taken (kombu marks them invisible when it does)."""
    with closing(sqlite3.connect(broker_db, timeout=30)) as db:
        payloads = [row[0] for row in db.execute("SELECT payload FROM kombu_message WHERE visible = 0")]
    taken = set()
    for payload in payloads:
        message = json.loads(payload)
        if message["headers"].get("task") == "jobs.tasks.run_job":
            _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            taken.add(kwargs["job_id"])
    return taken


def out_of_order(starts: list[tuple[int, float]], window: int) -> int:
    """Jobs that started after a job sent more than ``window`` places later had started.

    ``starts`` holds (send order, start time) for one queue's jobs. Each job is compared with the earliest
    start among the jobs more than ``window`` places after it (a suffix minimum, so linear after the sort)."""
    late = 0
    ordered = sorted(starts)
    suffix_min = [float("inf")] * (len(ordered) + 1)
    for index in range(len(ordered) - 1, -1, -1):
        suffix_min[index] = min(ordered[index][1], suffix_min[index + 1])
    for index, (_, started) in enumerate(ordered):
        later = index + window + 1
        if later < len(ordered) and suffix_min[later] < started:
            late += 1
    return late


def run_soak(
    *,
    jobs: int,
    rate: float,
    kill_at: float,
    stale_seconds: int,
    timeout: float,
    work_ms: int,
    concurrency: int,
    hold_ms: int = 3000,
    keep: bool = False,
) -> dict:
    var_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    env = _environment(var_dir, stale_seconds)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from console.health import WorkerStatus, check_health
    from console.management.commands.run_console import WorkerSupervisor, worker_command
    from console.models import Project
    from jobs import services
    from jobs.models import Job

    call_command("migrate", verbosity=0, interactive=False)
    project = Project.objects.create(slug="soak", name="Soak")
    log_path = var_dir / "worker.log"
    supervisor = WorkerSupervisor(
        worker_command(concurrency=concurrency) + ["--include", "soak_jobs"], env=env, stdout=open(log_path, "ab")
    )
    supervisor.start()
    started = time.monotonic()
    kill = {"done": False, "at": None, "pid": None, "unfinished": set()}
    seen: dict = {"health_while_running": None}

    def finished() -> int:
        return Job.objects.filter(state__in=Job.FINISHED).count()

    hold_seq = min(jobs - 1, int(kill_at * jobs))
    hold = {"pk": None}

    def maybe_kill() -> None:
        if seen["health_while_running"] is None and finished() > 0:
            seen["health_while_running"] = check_health().status
        # Kill mid-job: while the long job queued at the kill point runs (short jobs may all be done between
        # two looks on a fast machine, so waiting for "some job running" could wait for ever).
        if not kill["done"] and hold["pk"] and Job.objects.filter(pk=hold["pk"], state=Job.State.RUNNING).exists():
            kill["pid"] = supervisor.kill_worker(signal.SIGKILL)
            kill["at"], kill["done"] = time.monotonic() - started, True
            unfinished = set(Job.objects.exclude(state__in=Job.FINISHED).values_list("pk", flat=True))
            kill["unfinished"] = taken_from_broker(var_dir / "celery.sqlite3") & unfinished

    try:
        for seq in range(jobs):
            kind = SOAK_KINDS[ALL_QUEUES[seq % len(ALL_QUEUES)]]
            ms = hold_ms if seq == hold_seq else work_ms
            with transaction.atomic():
                job = services.start_job(project=project, kind=kind, params={"seq": seq, "work_ms": ms})
            if seq == hold_seq:
                hold["pk"] = job.pk
            maybe_kill()
            pause = (seq + 1) / rate - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause)
        queued_in = time.monotonic() - started
        deadline = started + timeout
        while time.monotonic() < deadline:
            maybe_kill()
            if finished() >= jobs:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        supervisor.stop()

    rows = list(
        Job.objects.values(
            "pk", "kind", "state", "params", "attempts", "created_at", "started_at", "finished_at", "result"
        )
    )
    # With the worker stopped cleanly, health must say so; and a job queued now cannot run (503).
    idle = check_health()
    with transaction.atomic():
        probe = services.start_job(project=project, kind=SOAK_KINDS["checks"], params={"seq": -1})
    waiting = check_health()
    seen["health_after_stop"] = {"status": idle.status, "http": idle.http_status}
    seen["health_after_stop_with_a_queued_job"] = {
        "status": waiting.status,
        "http": waiting.http_status,
        "note": WorkerStatus().waiting_note(probe),
    }
    now = timezone.now()
    lost = sum(1 for r in rows if r["state"] == Job.State.QUEUED and r["started_at"] is None)
    stuck = sum(1 for r in rows if r["state"] in (Job.State.RUNNING, Job.State.QUEUED) and r["started_at"])
    failed = sum(1 for r in rows if r["state"] in (Job.State.FAILED, Job.State.CANCELLED))
    window = concurrency * 2  # prefetch multiplier 1: each pool process runs one and may hold one more
    held = kill["unfinished"]
    disorder = 0
    for kind in SOAK_KINDS.values():
        starts = [
            (r["params"]["seq"], r["started_at"].timestamp())
            for r in rows
            if r["kind"] == kind and r["started_at"] and r["pk"] not in held
        ]
        disorder += out_of_order(starts, window)
    waits = sorted((r["started_at"] - r["created_at"]).total_seconds() for r in rows if r["started_at"])
    recovered = [r for r in rows if r["pk"] in held and r["state"] == Job.State.SUCCEEDED]
    report = {
        "jobs": jobs,
        "succeeded": sum(1 for r in rows if r["state"] == Job.State.SUCCEEDED),
        "lost": lost + (jobs - len(rows)),
        "stuck": stuck,
        "failed": failed,
        "out_of_order": disorder,
        "out_of_order_window": window,
        "ran_more_than_once": sum(1 for r in rows if r["attempts"] > 1),
        "held_by_killed_worker": len(held),
        "held_then_finished": len(recovered),
        "killed_worker_pid": kill["pid"],
        "killed_at_s": round(kill["at"], 1) if kill["at"] else None,
        "restarts": supervisor.starts - 1,
        "worker_exit_codes": supervisor.exits,
        "queued_in_s": round(queued_in, 1),
        "elapsed_s": round(elapsed, 1),
        "jobs_per_s": round(jobs / elapsed, 1),
        "wait_p50_s": round(waits[len(waits) // 2], 2) if waits else None,
        "wait_max_s": round(waits[-1], 2) if waits else None,
        "still_unfinished_at_end": [r["pk"] for r in rows if r["state"] not in Job.FINISHED][:20],
        **seen,
        "settings": {
            "database": "sqlite (var/console.sqlite3)",
            "broker": "sqla+sqlite (var/celery.sqlite3)",
            "concurrency": concurrency,
            "beat": "embedded",
            "JOB_STALE_SECONDS": stale_seconds,
            "work_ms": work_ms,
            "hold_ms": hold_ms,
            "rate_per_s": rate,
        },
        "var_dir": str(var_dir),
        "worker_log": str(log_path),
        "checked_at": now.isoformat(),
    }
    report["ok"] = (
        report["lost"] == report["stuck"] == report["failed"] == report["out_of_order"] == 0
        and report["restarts"] >= 1
        and report["succeeded"] == jobs
        and report["health_while_running"] == "ok"
        and report["health_after_stop_with_a_queued_job"]["http"] == 503
    )
    if not keep and report["ok"]:
        subprocess.run(["rm", "-rf", str(var_dir)], check=False)
        report["var_dir"] = report["worker_log"] = None
    return report


def _table(report: dict) -> str:
    rows = [
        ("jobs queued", report["jobs"]),
        ("succeeded", report["succeeded"]),
        ("lost", report["lost"]),
        ("stuck", report["stuck"]),
        ("failed", report["failed"]),
        ("out of order", f"{report['out_of_order']} (window {report['out_of_order_window']})"),
        ("worker killed (SIGKILL)", f"pid {report['killed_worker_pid']} at {report['killed_at_s']}s"),
        ("worker restarts", f"{report['restarts']} (exit codes {report['worker_exit_codes']})"),
        (
            "held by the killed worker",
            f"{report['held_by_killed_worker']}, of which finished {report['held_then_finished']}",
        ),
        ("ran more than once", report["ran_more_than_once"]),
        (
            "queued in / all done in",
            f"{report['queued_in_s']}s / {report['elapsed_s']}s ({report['jobs_per_s']} jobs/s)",
        ),
        ("wait to start p50 / max", f"{report['wait_p50_s']}s / {report['wait_max_s']}s"),
        ("health while running", report["health_while_running"]),
        (
            "health, worker stopped",
            f"{report['health_after_stop']['status']} "
            f"({report['health_after_stop']['http']}); with a job queued: "
            f"{report['health_after_stop_with_a_queued_job']['status']} "
            f"({report['health_after_stop_with_a_queued_job']['http']}), the job says "
            f"'{report['health_after_stop_with_a_queued_job']['note']}'",
        ),
        ("verdict", "OK" if report["ok"] else "FAILED"),
    ]
    width = max(len(label) for label, _ in rows)
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
    return "\n".join(
        [f"soak of the embedded broker ({settings})"] + [f"  {label.ljust(width)}  {value}" for label, value in rows]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=40.0, help="jobs queued per second")
    parser.add_argument("--kill-at", type=float, default=0.5, help="kill the worker once this share finished")
    parser.add_argument("--stale-seconds", type=int, default=20)
    parser.add_argument("--work-ms", type=int, default=5)
    parser.add_argument("--hold-ms", type=int, default=3000, help="work of the job running when the worker is killed")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the var/ folder and worker log even when OK")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    report = run_soak(
        jobs=args.jobs,
        rate=args.rate,
        kill_at=args.kill_at,
        stale_seconds=args.stale_seconds,
        timeout=args.timeout,
        work_ms=args.work_ms,
        concurrency=args.concurrency,
        hold_ms=args.hold_ms,
        keep=args.keep,
    )
    print(json.dumps(report, indent=2) if args.json else _table(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
