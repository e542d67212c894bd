"""bench/dashboards.py's quick path, run as a user runs it (about a minute): every page timed, full and empty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    "overview",
    "overview funnel CSV",
    "overview filtered",
    "download status",
    "download status CSV",
    "versions compared",
}


def test_dashboards_bench__quick__prints_every_page_and_the_ingestion_rate():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "dashboards.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
        timeout=280,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])

    assert {row["page"] for row in result["rows"]} == PAGES
    for row in result["rows"]:
        assert set(row) == {"page", "ms_full", "ms_empty", "ratio"}
        assert row["ms_full"] > 0 and row["ms_empty"] > 0
        assert row["ratio"] == round(row["ms_full"] / row["ms_empty"], 2)
    assert result["events_per_s"] > 0
    assert result["events"] == (20_000 // 300) * 300 + 2_000  # the bulk fill plus what went through the endpoint
