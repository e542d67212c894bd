"""bench/pages.py's quick path, run as a user runs it: a console set up with ``migrate`` alone (no separate
``createcachetable``) and DEBUG off serves every demo page to Chromium with 200 (the bench raises on any other
answer), and the documented figures come out for each page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"page", "ttfb_ms", "dom_ready_ms", "load_ms", "charts_ms", "warm_load_ms", "kb"}

pytestmark = [pytest.mark.browser]


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="the bench makes its own PostgreSQL database (DATABASE_URL names the server)",
)
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_pages_bench__quick__opens_every_demo_page_and_prints_its_figures():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pages.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.splitlines()[-1])
    pages = [row["page"] for row in result["rows"]]
    assert {"/p/demo/overview/", "/p/demo/downloads/", "/p/demo/m/digit-classifier/dashboard/"} <= set(pages)
    for row in result["rows"]:
        assert set(row) == KEYS
        assert 0 < row["ttfb_ms"] <= row["dom_ready_ms"] <= row["load_ms"], row
    # The seeded fleet reported, so its dashboards draw charts, after the page's own load.
    overview = next(row for row in result["rows"] if row["page"] == "/p/demo/overview/")
    assert overview["charts_ms"] is not None and overview["charts_ms"] > overview["load_ms"]
    assert result["slowest_load_ms"] == max(row["load_ms"] for row in result["rows"])
