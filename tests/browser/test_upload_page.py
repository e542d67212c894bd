"""Sign in, upload the demo model through the page, watch the check finish, read the matrix."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_upload_page__demo_model__progress_then_check_then_matrix(
    browser_page, live_server, celery_worker_process, project, model, teammate, digits_demo
):
    page = browser_page
    model_path, _, _ = digits_demo
    page.goto(f"{live_server.url}/login/?next=/p/{project.slug}/m/{model.name}/")
    page.fill("#id_username", teammate.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#upload-form")

    page.set_input_files("#upload-file", str(model_path))
    # A small file on loopback uploads at once and the page moves on: waiting for the progress bar itself
    # raced that navigation, so its showing is recorded where the next page can still read it.
    page.evaluate("""() => {
        const bar = document.getElementById("upload-progress");
        new MutationObserver(() => { if (!bar.hidden) sessionStorage.setItem("progressShown", "yes"); })
            .observe(bar, {attributes: true});
    }""")
    page.click("#upload-button")
    # The page moves to the new version and follows the check job live until it ends.
    page.wait_for_url(f"**/p/{project.slug}/m/{model.name}/v/1/", timeout=30_000)
    assert page.evaluate("sessionStorage.getItem('progressShown')") == "yes"
    page.wait_for_selector("#compat-matrix tbody tr.pass", timeout=90_000)

    assert page.inner_text("#version-state") == "ready"
    matrix = page.inner_text("#compat-matrix")
    assert "Raspberry Pi 4" in matrix and "ArrayFeatureExtractor" in matrix
    assert page.locator("#op-chart .main-svg").count() >= 1  # plotly drew the operator chart
    page.screenshot(path=str(ARTIFACTS / "version-page.png"), full_page=True)


def test_upload_page__not_a_model__shows_the_reason(browser_page, live_server, project, model, teammate, tmp_path):
    page = browser_page
    junk = tmp_path / "notes.onnx"
    junk.write_text("definitely not a model")
    page.goto(f"{live_server.url}/login/?next=/p/{project.slug}/m/{model.name}/")
    page.fill("#id_username", teammate.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.set_input_files("#upload-file", str(junk))
    page.click("#upload-button")
    page.wait_for_selector("#upload-message.error")
    assert "not a readable ONNX model" in page.inner_text("#upload-message")
