"""Start the web server and a Celery worker (with beat) together; Ctrl-C stops both."""

from __future__ import annotations

import signal
import subprocess
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand

from jobs.registry import ALL_QUEUES


class Command(BaseCommand):
    help = "Run the console: web server on ADDR (default 127.0.0.1:8000) plus one Celery worker with beat."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, **options):
        # Ctrl-C and a supervisor's SIGTERM both stop the web server and the worker, even when this process
        # was started with SIGINT ignored (as a shell does for background jobs).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        worker = subprocess.Popen([
            sys.executable, "-m", "celery", "-A", "console", "worker", "--beat", "--loglevel", "INFO",
            "--concurrency", str(options["concurrency"]), "-Q", ",".join(ALL_QUEUES),
            "--schedule", "var/celerybeat-schedule",
        ])
        self.stdout.write(f"Celery worker started (pid {worker.pid}); console on http://{options['addrport']}/")
        try:
            call_command("runserver", options["addrport"], use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
