"""Four eyes in the browser: a developer proposes a rollout on the page and submits it, an approver signs in and
approves it with a comment, and the developer starts it."""

from __future__ import annotations

import pytest

from devices.models import Rollout, RolloutApproval
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD
from tests.devices.fleet_helpers import ready_version

pytestmark = [pytest.mark.browser]


def _sign_in(page, base: str, user, next_path: str) -> None:
    page.goto(f"{base}/login/?next={next_path}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_rollout__developer_proposes_approver_approves_with_comment_developer_starts(
    browser_page, live_server, project, model, teammate, approver
):
    model.default_version = ready_version(model)
    ready_version(model, seed=2)
    model.save(update_fields=["default_version"])
    rollouts = f"/p/{project.slug}/m/{model.name}/rollouts/"
    page = browser_page

    _sign_in(page, live_server.url, teammate, rollouts)
    page.click("#propose-link")
    page.select_option("#id_version", "2")
    page.check("input[name=device_types][value=x86-gateway]")
    page.fill("#id_stages", "5 30\n50 60\n100 60")
    page.click("#propose-button")
    page.wait_for_selector("#action-submit")
    assert page.inner_text("#rollout-state") == "Draft"
    page.click("#action-submit")
    page.wait_for_selector("#approval-link")
    assert page.inner_text("#rollout-state") == "Pending approval"
    rollout = Rollout.objects.get()
    # The proposer sees why she may not approve.
    page.goto(f"{live_server.url}{rollouts}{rollout.pk}/approval/")
    assert "(four eyes)" in page.inner_text("#decision-refusal")
    page.click("form.inline button.link")  # sign out

    _sign_in(page, live_server.url, approver, f"{rollouts}{rollout.pk}/")
    page.click("#approval-link a")
    assert "x86-gateway" in page.inner_text("#compat-matrix")
    assert "file size" in page.inner_text("#benchmarks")
    assert page.locator("#plan-reach tbody tr").count() == 3
    page.fill("#id_comment", "Benchmarks hold; 5% first is fine.")
    page.screenshot(path=str(ARTIFACTS / "rollout-approval.png"), full_page=True)
    page.click("#approve-button")
    page.wait_for_selector("#approvals")
    assert page.inner_text("#rollout-state") == "Approved"
    assert "Benchmarks hold; 5% first is fine." in page.inner_text("#approvals")
    assert page.locator("#action-start").count() == 0  # an approver does not start rollouts
    page.click("form.inline button.link")

    _sign_in(page, live_server.url, teammate, f"{rollouts}{rollout.pk}/")
    page.click("#action-start")
    page.wait_for_selector("#action-pause")
    assert page.inner_text("#rollout-state") == "Running"
    page.wait_for_selector("#timeline-chart .main-svg")  # drawn once plotly.js has loaded
    page.screenshot(path=str(ARTIFACTS / "rollout-running.png"), full_page=True)

    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.RUNNING
    decision = RolloutApproval.objects.get()
    assert (decision.approver, decision.comment) == (approver, "Benchmarks hold; 5% first is fine.")
