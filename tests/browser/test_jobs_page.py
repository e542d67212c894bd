"""Queue a job from the version page, read what was queued, then follow and cancel it on the jobs page."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.browser.conftest import ARTIFACTS, PageWatch, sign_in
from tests.devices.fleet_helpers import ready_version

pytestmark = [pytest.mark.browser]


def test_queue_from_version_page__says_what_was_queued_keeps_choices_and_the_jobs_page_cancels_it(
    browser_page, live_server, project, model, teammate
):
    version = ready_version(model)
    page = browser_page
    watch = PageWatch(page, live_server.url)
    sign_in(page, live_server.url, teammate, f"/p/{project.slug}/m/{model.name}/v/{version.number}/")

    page.select_option("#optimize-transform", "fp16")
    page.click("#optimize-form button[type=submit]")
    page.wait_for_selector("#optimize-form .message.queued")

    job = Job.objects.get(kind="optimize")
    assert page.inner_text("#optimize-form .message") == f"Queued optimize job #{job.pk} (fp16). All jobs"
    assert page.input_value("#optimize-transform") == "fp16"

    page.click("#optimize-form .message a")
    page.wait_for_selector(f"#job-{job.pk}")
    assert "queued" in page.inner_text(f"#job-{job.pk}")
    page.screenshot(path=str(ARTIFACTS / "jobs-page.png"), full_page=True)
    page.click(f"#job-{job.pk} button[value=cancel]")
    page.wait_for_selector("text=Cancelled job")

    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    assert "cancelled" in page.inner_text(f"#job-{job.pk}")
    assert page.locator(f"#job-{job.pk} button[value=retry]").count() == 1
    assert watch.errors == [] and watch.foreign == []
