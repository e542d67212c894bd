"""bench/experiments.py's quick path, run as a user runs it (about 30 s): it prints its documented keys, from
results pages and APIs that answered (the bench asserts each request's 200 itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "events",
    "devices",
    "days",
    "ms_results_page",
    "ms_results_api",
    "ms_results_page_empty",
    "ms_results_api_empty",
    "page_ratio",
    "api_ratio",
}


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="the bench makes its own PostgreSQL database (DATABASE_URL names the server)",
)
def test_experiments_bench__quick__prints_every_figure_for_each_size():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "experiments.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert [row["events"] for row in rows] == [10_000]
    for row in rows:
        assert set(row) == KEYS
        assert all(row[key] > 0 for key in KEYS)
