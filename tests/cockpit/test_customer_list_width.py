"""The customer list fits a 1366 px wide screen (a common laptop): no column cut off, nothing
to scroll sideways to read a customer's orders or API key."""

from decimal import Decimal
from pathlib import Path

import pytest

from accounts.services import api_key_issue, customer_create
from tests.totp import log_in_with_code, secret_of

from .conftest import make_order

SCREENSHOT = (
    Path(__file__).resolve().parents[2]
    / "test-artifacts"
    / "screenshots"
    / "admin-customers-1366.png"
)
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_list_fits_1366_pixels(live_server, staff, world, browser):
    from django.utils import timezone

    for i in range(3):
        customer = customer_create(
            username=f"reseller_with_a_long_name_{i:03}",
            email=f"reseller.with.a.long.address.{i}@example-reseller-company.com",
            password="pw-width-123",
            opening_balance=Decimal("123456.78912"),
        )
        api_key_issue(user=customer)
        make_order(
            customer, world["s_likes"], charge="90.9807", cost="50", created_at=timezone.now()
        )
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/accounts/user/")
        log_in_with_code(page, login="staff", password="pw-staff-123", secret=secret_of(staff))
        page.wait_for_selector("#result_list")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        widths = page.evaluate(
            """() => {
                const results = document.querySelector('#changelist .results');
                const table = document.querySelector('#result_list');
                return {
                    page: document.documentElement.scrollWidth,
                    view: window.innerWidth,
                    results: results.clientWidth,
                    table: table.scrollWidth,
                    right: table.getBoundingClientRect().right,
                };
            }"""
        )
        page.screenshot(path=str(SCREENSHOT))
        assert widths["page"] <= widths["view"], widths
        assert widths["table"] <= widths["results"], widths  # nothing hidden to the right
        assert widths["right"] <= widths["view"], widths
        assert page.locator("td.field-order_count").first.is_visible()
    finally:
        page.close()
