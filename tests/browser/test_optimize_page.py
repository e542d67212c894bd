"""Queue "best variant for a device type" from the version page and read the trade-offs."""

from __future__ import annotations

import pytest

from console.catalog.datasets import attach_dataset
from console.catalog.uploads import temporary_upload
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD
from tests.jobs.helpers import ready_version

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_version_page__optimize_for_device__shows_candidates_chart_and_choice(
    browser_page, live_server, celery_worker_process, project, model, teammate, digits_demo
):
    model_path, data_path, _ = digits_demo
    version = ready_version(model, model_path.read_bytes())
    with temporary_upload("digits.npz", data_path.read_bytes()) as upload:
        dataset = attach_dataset(model=model, uploaded=upload, name="digits held-out")

    page = browser_page
    page.goto(f"{live_server.url}/login/?next=/p/{project.slug}/m/{model.name}/v/{version.number}/")
    page.fill("#id_username", teammate.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.select_option("#device-form select[name=device_type]", "raspberry-pi-4")
    page.select_option("#device-form select[name=dataset]", str(dataset.pk))
    page.click("#device-form button[type=submit]")

    # The page reloads onto the queued job, follows it live, and reloads again when it ends.
    page.wait_for_selector("#candidates", timeout=120_000)
    table = page.inner_text("#candidates")
    assert "quantize_dynamic" in table
    assert "chosen" in table or "slower than its parent" in table  # a pick, or why none was made
    assert page.locator("#variants-chart .main-svg").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "optimize-for-device.png"), full_page=True)
