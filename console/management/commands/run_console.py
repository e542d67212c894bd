"""Start the web server and a Celery worker (with beat) together; Ctrl-C stops both.

The worker is supervised: when it exits for any reason (an unrecoverable broker error, a crash, a kill) it
is started again after a back-off that doubles up to a minute and resets once a worker has stayed up for a
minute, and every exit and restart is logged. The reaper runs in the worker's beat, so a dead worker would
otherwise also mean that nothing notices jobs left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from jobs.registry import ALL_QUEUES

logger = logging.getLogger("console.run_console")


def worker_command(*, concurrency: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "console",
        "worker",
        "--beat",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency),
        "-Q",
        ",".join(ALL_QUEUES),
        "--schedule",
        str(settings.VAR_DIR / "celerybeat-schedule"),
    ]


class WorkerSupervisor(threading.Thread):
    """Keeps one worker process running: restarts it with back-off whenever it exits, until ``stop()``.

    Each worker runs in its own process group, so what it leaves behind when it dies (pool children, the
    embedded beat) is stopped with it before the next one starts, and a terminal's Ctrl-C reaches the
    supervisor only, which then stops the worker cleanly.
    """

    def __init__(
        self,
        command: list[str],
        *,
        env: dict | None = None,
        first_delay: float = 1.0,
        max_delay: float = 60.0,
        stable_after: float = 60.0,
        stop_timeout: float = 15.0,
        stdout=None,
    ):
        super().__init__(name="worker-supervisor", daemon=True)
        self.command, self.env, self.stdout = command, env, stdout
        self.first_delay, self.max_delay, self.stable_after = first_delay, max_delay, stable_after
        self.stop_timeout = stop_timeout
        self.stopping = threading.Event()
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.exits: list[int] = []  # exit codes of workers that ended on their own, for logs and tests
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = self.first_delay
        while not self.stopping.is_set():
            with self._lock:
                if self.stopping.is_set():
                    return
                self.process = subprocess.Popen(
                    self.command,
                    env=self.env,
                    stdout=self.stdout,
                    stderr=subprocess.STDOUT if self.stdout else None,
                    start_new_session=True,
                )
                self.starts += 1
            started = time.monotonic()
            logger.info("Celery worker started (pid %s, start %s)", self.process.pid, self.starts)
            code = self.process.wait()
            if self.stopping.is_set():
                return
            self._stop_leftovers(self.process)
            self.exits.append(code)
            uptime = time.monotonic() - started
            if uptime >= self.stable_after:
                delay = self.first_delay
            logger.error(
                "Celery worker (pid %s) exited with code %s after %.0fs; restarting in %gs",
                self.process.pid,
                code,
                uptime,
                delay,
            )
            if self.stopping.wait(delay):
                return
            delay = min(delay * 2, self.max_delay)

    def kill_worker(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the current worker's main process only (fault injection for the soak); its pid."""
        process = self.process
        assert process is not None
        os.kill(process.pid, sig)
        return process.pid

    def stop(self) -> None:
        with self._lock:
            self.stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish, unacked messages go back
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("Celery worker (pid %s) did not stop in %ss; killing it", process.pid, self.stop_timeout)
        if process is not None:
            self._stop_leftovers(process)
        self.join(timeout=5)

    def _stop_leftovers(self, process: subprocess.Popen) -> None:
        """Stop whatever is left of a worker's process group (orphaned pool children, the embedded beat)."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(process.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    os.killpg(process.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)
        if process.poll() is None:
            process.wait()


class Command(BaseCommand):
    help = (
        "Run the console: web server on ADDR (default 127.0.0.1:8000) plus one Celery worker with beat, "
        "restarted whenever it exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, **options):
        # Ctrl-C and a supervisor's SIGTERM both stop the web server and the worker, even when this process
        # was started with SIGINT ignored (as a shell does for background jobs).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        supervisor = WorkerSupervisor(worker_command(concurrency=options["concurrency"]))
        supervisor.start()
        self.stdout.write(f"Celery worker supervised (restarted if it exits); console on http://{options['addrport']}/")
        try:
            call_command("runserver", options["addrport"], use_reloader=False)
        finally:
            supervisor.stop()
