"""Benchmark of every page's first load in a real browser, on loopback: the goal is under 500 ms each.

    python bench/pages.py [--quick] [--json]

It makes a dedicated PostgreSQL database (dropped at the end; DATABASE_URL names the server), migrates it, collects
the static files (hashed, compressed: what whitenoise serves in production) and seeds the demo project as ``make
run`` does (``seed_demo``: the demo model checked, its Android variant, a rule and 24 devices reporting). The
console runs under gunicorn with DEBUG off, each worker warmed by one request per page. Debian's Chromium
(Playwright) signs in once, then opens each page in a fresh browser context: an empty cache, so every page is a
first load for the browser, with its CSS and scripts fetched too.

Per page, medians over the rounds (the browser's own Navigation Timing, from the start of the navigation):

- ``ttfb_ms``: the first byte of the page (server time plus loopback);
- ``dom_ready_ms``: DOMContentLoaded, when the page is readable and its forms work;
- ``load_ms``: the load event, every script, stylesheet and chart drawn (the first-load figure of the goal);
- ``charts_ms``: the charts drawn (static/js/charts.js fetches plotly.js after the load event and marks
  "charts-drawn"); null on a page that draws none;
- ``warm_load_ms``: the same page opened again in the same context (scripts from the browser's cache);
- ``kb``: bytes over the wire on the first load (compressed), page and everything it asked for.

``--json`` prints ``{"rows": [{"page", "ttfb_ms", "dom_ready_ms", "load_ms", "charts_ms", "warm_load_ms", "kb"}], "goal_ms",
"slowest_load_ms", "pages_over_goal"}``. ``--quick``: one round (used by tests/bench/test_pages_bench.py).
Needs /usr/bin/chromium, PostgreSQL and nothing else running on the chosen port.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import checkin as machinery  # noqa: E402 - the database and process helpers the benches share

CHROMIUM = "/usr/bin/chromium"
GOAL_MS = 500.0
TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const bytes = nav.transferSize + resources.reduce((sum, r) => sum + (r.transferSize || 0), 0);
  const drawn = performance.getEntriesByName('charts-drawn')[0];
  return {ttfb: nav.responseStart, dom: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
          charts: drawn ? drawn.startTime : null, bytes: bytes};
}"""


def demo_pages() -> list[str]:
    """Every page a member opens on the seeded demo project (in this process, after django.setup())."""
    from console.models import Model, Project
    from devices.models import Device

    project = Project.objects.get(slug="demo")
    model = Model.objects.get(project=project, name="digit-classifier")
    versions = list(model.versions.order_by("number").values_list("number", flat=True))
    device = Device.objects.filter(project=project).order_by("device_id").first()
    p, m = f"/p/{project.slug}", f"/p/{project.slug}/m/{model.name}"
    pages = [
        "/",
        f"{p}/",
        f"{p}/overview/",
        f"{p}/downloads/",
        f"{p}/jobs/",
        f"{p}/fleet/",
        f"{p}/device-types/",
        f"{p}/audit/",
        f"{p}/settings/",
        f"{m}/",
        *[f"{m}/v/{number}/" for number in versions],
        f"{m}/dashboard/",
        f"{m}/delivery/",
        f"{m}/rollouts/",
        f"{m}/rollouts/new/",
        f"{m}/experiments/",
        "/api/docs/",
    ]
    if device is not None:
        pages.insert(6, f"{p}/fleet/{device.device_id}/")
    return pages


def measure(base: str, pages: list[str], rounds: int, password: str) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[dict[str, float]]] = {page: [] for page in pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            signing = browser.new_context()
            page = signing.new_page()
            page.goto(f"{base}/login/")
            page.fill("#id_username", "demo")
            page.fill("#id_password", password)
            page.click("button[type=submit]")
            page.wait_for_load_state("load")
            session = signing.storage_state()  # the session cookie only: every context below starts uncached
            # A server that has been up a while: each gunicorn worker has answered each page once (a worker's very
            # first request imports and compiles what it needs). The browser's cache stays empty.
            for path in pages:
                for _ in range(machinery.WORKERS):
                    signing.request.get(base + path)
            signing.close()
            for _ in range(rounds):
                for path in pages:
                    context = browser.new_context(storage_state=session, viewport={"width": 1280, "height": 900})
                    tab = context.new_page()
                    response = tab.goto(base + path, wait_until="load")
                    if response is None or response.status != 200:
                        raise RuntimeError(f"{path} answered {response and response.status}")
                    if tab.query_selector('script[src*="/vendor/plotly/"]'):  # the loader asked for it
                        tab.wait_for_function("performance.getEntriesByName('charts-drawn').length > 0")
                    first = tab.evaluate(TIMING)
                    tab.goto(base + path, wait_until="load")
                    warm = tab.evaluate(TIMING)
                    context.close()
                    samples[path].append({**first, "warm": warm["load"]})
        finally:
            browser.close()

    def median(path: str, key: str) -> float | None:
        values = [sample[key] for sample in samples[path] if sample[key] is not None]
        return round(statistics.median(values), 1) if values else None

    return [
        {
            "page": path,
            "ttfb_ms": median(path, "ttfb"),
            "dom_ready_ms": median(path, "dom"),
            "load_ms": median(path, "load"),
            "charts_ms": median(path, "charts"),
            "warm_load_ms": median(path, "warm"),
            "kb": round((median(path, "bytes") or 0) / 1024, 1),
        }
        for path in pages
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round instead of five")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        parser.error("Debian's chromium is not installed: apt-get install -y chromium")
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not database_url.startswith("postgres"):
        parser.error("DATABASE_URL must point at a PostgreSQL server")
    name = f"bench_pages_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    password = "bench-" + os.urandom(8).hex()
    env = {
        **os.environ,
        "DATABASE_URL": machinery.bench_url(database_url, name),
        "DEBUG": "false",
        "CONSOLE_DEMO": "true",
        "DEMO_PASSWORD": password,
        "SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "CONSOLE_VAR_DIR": str(tmp / "var"),
        "STORAGE_ROOT": str(tmp / "media"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    env.pop("REDIS_URL", None)  # seed_demo runs its jobs in this process; nothing is queued to a broker
    machinery.run_sql(machinery.admin_url(database_url), f'CREATE DATABASE "{name}"')
    processes = machinery.Processes()
    try:
        manage = [sys.executable, "manage.py"]
        quiet = {"env": env, "cwd": REPO, "check": True, "stdout": subprocess.DEVNULL}
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], **quiet)  # type: ignore[call-overload]
        subprocess.run([*manage, "collectstatic", "--noinput", "-v", "0"], **quiet)  # type: ignore[call-overload]
        subprocess.run([*manage, "seed_demo"], **quiet)  # type: ignore[call-overload]
        for key in ("DATABASE_URL", "SECRET_KEY", "CONSOLE_VAR_DIR", "STORAGE_ROOT", "DEBUG"):
            os.environ[key] = env[key]
        os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
        import django

        django.setup()
        pages = demo_pages()
        from django.db import connections

        connections.close_all()
        base = machinery.gunicorn(processes, env, machinery.free_port(), tmp / "gunicorn.log")
        try:
            rows = measure(base, pages, 1 if args.quick else 5, password)
        except Exception:
            print((tmp / "gunicorn.log").read_text()[-4000:], file=sys.stderr)  # the server's side of a failed page
            raise
    finally:
        processes.stop_all()
        machinery.run_sql(machinery.admin_url(database_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    slowest = max(row["load_ms"] for row in rows)
    result = {
        "rows": rows,
        "goal_ms": GOAL_MS,
        "slowest_load_ms": slowest,
        "pages_over_goal": [row["page"] for row in rows if row["load_ms"] >= GOAL_MS],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


def print_table(result: dict[str, Any]) -> None:
    print(f"\nfirst load of every page in Chromium, on loopback (medians; goal: load under {GOAL_MS:g} ms)")
    print(f"{'page':<44}{'ttfb':>8}{'dom ready':>11}{'load':>8}{'charts':>8}{'warm load':>11}{'KB':>8}")
    for row in result["rows"]:
        charts = "-" if row["charts_ms"] is None else row["charts_ms"]
        print(
            f"{row['page']:<44}{row['ttfb_ms']:>8}{row['dom_ready_ms']:>11}{row['load_ms']:>8}{charts:>8}"
            f"{row['warm_load_ms']:>11}{row['kb']:>8}"
        )
    over = result["pages_over_goal"]
    print(f"\nslowest first load: {result['slowest_load_ms']} ms; over the goal: {', '.join(over) if over else 'none'}")


if __name__ == "__main__":
    sys.exit(main())
