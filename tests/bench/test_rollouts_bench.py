"""bench/rollouts.py's quick path, run as a user runs it (about two minutes): every documented key, and the
beat's writes the same whatever the fleet's size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PER_FLEET = ("advance_ms", "advance_writes", "halt_ms", "halt_writes")
RATIOS = ("checkin_ratio_no_rollouts", "checkin_ratio_rollouts")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="the check-in figures need wrk (apt-get install -y wrk)")
def test_quick_bench__prints_every_key__and_the_beat_writes_as_much_on_a_small_fleet_as_on_a_ten_times_larger_one():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rollouts.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout)

    fleets = [str(fleet) for fleet in report["fleets"]]
    assert len(fleets) == 2
    for key in PER_FLEET:
        assert set(report[key]) == set(fleets), key
        assert all(value > 0 for value in report[key].values()), key
    for key in ("advance_writes", "halt_writes"):
        assert report[key][fleets[0]] == report[key][fleets[1]], report[key]  # flat: no row per device
    for key in RATIOS:
        assert set(report[key]) == {"steady", "row", "full"}
        assert all(ratio > 0 for ratio in report[key].values())
    assert 0 < report["halt_latency_s"]
