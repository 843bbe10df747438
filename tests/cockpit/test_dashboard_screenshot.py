"""The cockpit in headless Chromium: log in through the admin's login page, open the admin
home and save a screenshot to test-artifacts/screenshots/admin-dashboard.png, then preview a
bulk markup (admin-bulk-pricing.png)."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from orders.models import Order
from tests.totp import log_in_with_code, secret_of

SCREENSHOT = (
    Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots" / "admin-dashboard.png"
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dashboard_screenshot(live_server, staff, browser):
    call_command(
        "seed_orders",
        orders=4000,
        days=35,
        providers=3,
        customers=40,
        not_production=True,
        stdout=StringIO(),
    )
    Order.objects.filter(pk__in=Order.objects.order_by("id").values("pk")[:3]).update(
        status=Order.Status.IN_PROGRESS
    )  # old and still running: stuck
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        page.set_default_timeout(15_000)
        # The admin's login is allauth's: the password, then the authenticator app's code.
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        log_in_with_code(page, login="staff", password="pw-staff-123", secret=secret_of(staff))
        page.wait_for_selector("#cockpit")
        assert page.locator(".cockpit-chart rect").count() >= 30
        assert page.locator("#cockpit-providers tbody tr").count() == 3
        assert page.locator("#cockpit-attention [data-kind=stuck] .profit").inner_text() != "0"
        assert page.locator("#by-service tbody tr").count() == 10
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        page.click("text=Bulk pricing")
        page.check("input[value=markup]")
        page.fill("#id_value", "45")
        page.select_option("#id_provider", label="Seed provider 3")
        page.click("input[name=preview]")
        page.wait_for_selector("#pricing-preview")
        assert page.locator("#pricing-preview tbody tr").count() == 40
        page.screenshot(path=str(SCREENSHOT.with_name("admin-bulk-pricing.png")), full_page=False)
    finally:
        page.close()
    assert SCREENSHOT.stat().st_size > 20_000
