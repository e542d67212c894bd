"""Playwright driving Debian's Chromium (never a downloaded browser) against the live test server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.conftest import celery_worker_process, worker_environment  # noqa: F401  (re-exported fixtures)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it: apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls in the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            yield page
        finally:
            browser.close()
            # ORM calls made while Playwright's sync API drives the page (it switches greenlets) left a
            # connection Django's own teardown did not close, so the test database could not be dropped.
            from django.db import connections

            connections.close_all()


class PageWatch:
    """What a page asked for and complained about: every request's origin and the JavaScript console's errors."""

    def __init__(self, page, own_origin: str):
        self.own_origin = own_origin
        self.foreign: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("response", lambda r: r.status >= 400 and self.errors.append(f"{r.status} {r.url}"))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request(self, request) -> None:
        url = request.url
        if not (url.startswith(self.own_origin + "/") or url.startswith(("data:", "blob:", "about:"))):
            self.foreign.append(url)


def sign_in(page, base_url: str, user, next_path: str = "/") -> None:
    from tests.conftest import PASSWORD

    page.goto(f"{base_url}/login/?next={next_path}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
