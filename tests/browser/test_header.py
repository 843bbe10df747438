"""The header on a phone: the panel's name, the bell, the balance and Log out stay on one row
whatever the balance's digits (a balance like 1,234.5625 after orders at sub-cent rates), the
name giving way (an ellipsis) rather than pushing Log out to a second row, and nothing wider
than the screen."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.services import balance_credit
from tests.browser.conftest import PHONE, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NARROW = {"width": 320, "height": 640}


@pytest.mark.parametrize("viewport", [PHONE, NARROW])
def test_the_header_stays_on_one_row_on_a_phone(new_page, alice, settings, viewport):
    settings.PANEL_NAME = "Followers Factory SMM Panel"
    balance_credit(user=alice, amount=Decimal("1184.06250"), memo="top-up")
    page = new_page(viewport=viewport)
    login(page, "alice", "pw-alice-123")
    page.goto("/funds/")
    header = page.locator("header")
    balance = header.get_by_title("Your balance")
    expect(balance).to_contain_text("1,234.0625")
    brand = header.get_by_role("link", name="Followers Factory SMM Panel")
    log_out = header.get_by_role("button", name="Log out")
    bell = header.get_by_role("button", name="Notifications")
    rows = {
        round(box["y"] + box["height"] / 2)
        for box in (
            brand.bounding_box(),
            bell.bounding_box(),
            balance.bounding_box(),
            log_out.bounding_box(),
        )
    }
    assert max(rows) - min(rows) <= 2, rows  # one row: their middles line up
    assert log_out.bounding_box()["x"] + log_out.bounding_box()["width"] <= viewport["width"]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"]
