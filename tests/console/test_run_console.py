"""run_console keeps a worker running: one that exits is started again, with back-off, until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

from console.management.commands.run_console import WorkerSupervisor


def _wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_worker_that_exits__is_started_again_with_doubling_back_off_and_each_exit_logged(caplog):
    caplog.set_level(logging.ERROR, logger="console.run_console")
    supervisor = WorkerSupervisor([sys.executable, "-c", "raise SystemExit(3)"], first_delay=0.05, max_delay=0.2)
    supervisor.start()
    try:
        _wait_for(lambda: supervisor.starts >= 4)
    finally:
        supervisor.stop()
    assert supervisor.exits[:3] == [3, 3, 3]
    messages = [r.getMessage() for r in caplog.records]
    assert "exited with code 3" in messages[0]
    delays = [float(m.rsplit("restarting in ", 1)[1].rstrip("s")) for m in messages]
    assert delays[:3] == [0.05, 0.1, 0.2] and max(delays) == 0.2  # doubling, capped at max_delay


def test_worker_killed__a_new_one_starts_and_stop_ends_it_and_what_it_left(tmp_path):
    # The "worker" forks a child into its own process group, as a prefork pool does, and writes both pids.
    script = (
        "import os, sys, time\n"
        "child = os.fork()\n"
        "if child == 0:\n    time.sleep(120); os._exit(0)\n"
        f"open(r'{tmp_path}/pids-' + str(os.getpid()), 'w').write(f'{{os.getpid()}} {{child}}')\n"
        "time.sleep(120)\n"
    )
    supervisor = WorkerSupervisor([sys.executable, "-c", script], first_delay=0.05)
    supervisor.start()
    try:
        _wait_for(lambda: len(list(tmp_path.glob("pids-*"))) == 1)
        first, first_child = map(int, next(tmp_path.glob("pids-*")).read_text().split())
        assert supervisor.kill_worker(signal.SIGKILL) == first
        _wait_for(lambda: len(list(tmp_path.glob("pids-*"))) == 2)
        assert supervisor.starts == 2 and supervisor.exits == [-signal.SIGKILL]
        assert not _alive(first_child)  # the orphan of the killed worker went with it
        second = supervisor.process
    finally:
        supervisor.stop()
    assert second.poll() is not None
    assert supervisor.starts == 2  # stopping is not an exit to recover from


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
