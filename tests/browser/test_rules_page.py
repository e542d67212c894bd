"""Creating a targeting rule in the browser: a developer fills the form on the delivery page, the rule is listed
with its conditions and serves its version; a range that is not a range is refused on the page, nothing stored."""

from __future__ import annotations

import pytest

from devices.models import TargetingRule
from tests.browser.conftest import ARTIFACTS, PageWatch, sign_in
from tests.devices.fleet_helpers import ready_version

pytestmark = [pytest.mark.browser]


def test_rule__developer_creates_one_on_the_page_and_sees_it_listed(
    browser_page, live_server, project, model, teammate
):
    model.default_version = ready_version(model)
    model.save(update_fields=["default_version"])
    ready_version(model, seed=2)
    delivery = f"/p/{project.slug}/m/{model.name}/delivery/"
    page = browser_page
    watch = PageWatch(page, live_server.url)
    sign_in(page, live_server.url, teammate, delivery)
    page.goto(live_server.url + delivery)

    # A bad app-version range first: the page says why, keeps what was typed, and stores nothing.
    form = page.locator("#new-rule form")
    form.locator("#id_priority").fill("5")
    form.locator("#id_version").select_option("2")
    form.locator("input[name=device_types][value=x86-gateway]").check()
    form.locator("#id_regions").fill("de, fr")
    form.locator("#id_app_version").fill("two point three")
    form.locator("#id_percentage").fill("50")
    form.locator("#id_description").fill("EU gateways, half")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("load")
    assert page.locator("#new-rule #id_app_version").input_value() == "two point three"
    assert "version" in page.locator("#new-rule .errorlist").first.inner_text().lower()
    assert not TargetingRule.objects.filter(model=model).exists()

    page.locator("#new-rule #id_app_version").fill(">=2.3,<3")
    page.locator("#new-rule button[type=submit]").click()
    page.wait_for_load_state("load")
    page.screenshot(path=str(ARTIFACTS / "rule-created.png"), full_page=True)

    row = page.locator("#rules tbody tr").first.inner_text()
    assert "type in x86-gateway" in row and "region in DE, FR" in row and "app >=2.3,<3" in row
    assert "50.0% by device_id" in row and "v2" in row and "EU gateways, half" in row
    rule = TargetingRule.objects.get(model=model)
    assert (rule.priority, rule.version.number) == (5, 2)
    assert rule.conditions["regions"] == ["DE", "FR"] and rule.conditions["percentage"] == 50
    assert watch.foreign == [] and watch.errors == []
