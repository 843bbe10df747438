"""Add funds by manual transfer on a phone (390 px): a wrong amount is refused at the field with
what was typed kept, the page never scrolls sideways, and the payment waits for staff; staff
approve it in the admin and the customer's balance rises once."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import LedgerEntry, PaymentMethodSetting
from accounts.services import customer_create
from tests.browser.conftest import PHONE, login, staff_login
from tests.totp import give_second_factor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone"


def test_manual_transfer_on_a_phone_then_approved_in_admin(new_page, settings, django_user_model):
    settings.PAYMENT_METHODS = ["manual"]
    PaymentMethodSetting.objects.create(
        method="manual", min_amount=Decimal("10"), instructions="IBAN DE00 1234 5678 9012 3456 78"
    )
    customer_create(username="pia", email="pia@example.com", password="pia-Secret-2026")
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    secret = give_second_factor(boss)  # staff open the admin with a second factor only

    page = new_page(viewport=PHONE)
    login(page, "pia", "pia-Secret-2026")
    page.goto("/funds/add/")
    expect(page.get_by_text("IBAN DE00")).to_be_visible()
    page.get_by_label("Amount (USD)").fill("5")
    page.get_by_label("Transfer reference").fill("SEPA-2026-11")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.locator("#amount-error")).to_have_text(
        re.compile(r"smallest amount .* is \$10\.00")
    )
    expect(page.get_by_label("Transfer reference")).to_have_value("SEPA-2026-11")
    expect(page.get_by_label("Amount (USD)")).to_have_value("5")
    _no_sideways_scroll(page)

    page.get_by_label("Amount (USD)").fill("25")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_test_id("payment-status")).to_have_text("Waiting for payment")
    expect(page.get_by_text("SEPA-2026-11")).to_be_visible()
    _no_sideways_scroll(page)

    admin = new_page()
    staff_login(admin, "boss", "pw-boss-123", secret)
    admin.get_by_role("link", name="Show these payments").first.click()
    admin.get_by_role("link", name=re.compile(r"^\d+$")).first.click()
    admin.get_by_role("link", name=re.compile("Approve")).click()
    admin.get_by_role("button", name="Yes, approve and credit").click()
    expect(admin.get_by_text("1 payments changed.")).to_be_visible()

    # The pending page reloads itself every 5 s (its meta refresh): wait for that, rather than
    # a reload of our own that the page's may abort (net::ERR_ABORTED on a loaded machine).
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid", timeout=15_000)
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    assert LedgerEntry.objects.filter(payment_ref__startswith="manual:").count() == 1
    page.goto("/funds/add/")
    expect(page.locator("table").get_by_text("Paid")).to_be_visible()
    _no_sideways_scroll(page)


def test_the_fee_total_follows_the_typed_amount_and_cancel_asks_first(new_page, settings):
    settings.PAYMENT_METHODS = ["manual"]
    PaymentMethodSetting.objects.create(
        method="manual", fee_percent=Decimal("3"), instructions="IBAN DE00 1234"
    )
    customer_create(username="fei", email="fei@example.com", password="fei-Secret-2026")
    page = new_page(viewport=PHONE)
    login(page, "fei", "fei-Secret-2026")
    page.goto("/funds/add/")
    total = page.get_by_test_id("fee-total-manual")
    page.get_by_label("Amount (USD)").fill("100")
    expect(total).to_have_text("You pay $103.00: $100.00 + $3.00 fee")
    page.get_by_label("Amount (USD)").fill("1,5")
    expect(total).to_have_text("You pay $1.55: $1.50 + $0.05 fee")
    page.get_by_label("Amount (USD)").fill("1,000")
    expect(total).to_be_hidden()
    page.get_by_label("Amount (USD)").fill("100")
    page.get_by_label("Transfer reference").fill("T-1")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_test_id("payment-total")).to_have_text("$103.00 ($100.00 + $3.00 fee)")

    # The question comes from panel.js (deferred): wait for it, or a fast click submits first.
    page.wait_for_load_state("load")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel this payment").click()
    expect(page.get_by_test_id("payment-status")).to_have_text("Waiting for payment")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel this payment").click()
    expect(page.get_by_test_id("payment-status")).to_have_text("Canceled")
    expect(page.get_by_text("You canceled this payment.")).to_be_visible()
