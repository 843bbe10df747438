"""Tiers and coupons in a real browser on a phone (390 px): a mistyped gift card code is refused
at the field with what was typed kept, the right one raises the balance once; the account page
shows the tier and the progress to the next; the bonus code field of Add funds keeps its value
and error. No page scrolls sideways or breaks the Content-Security-Policy."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import Coupon, LedgerEntry, Tier
from accounts.services import balance_debit, customer_create
from tests.browser.conftest import PHONE, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone"


def test_gift_card_tier_and_bonus_code_on_a_phone(new_page, settings):
    settings.PAYMENT_METHODS = ["manual"]
    pia = customer_create(username="pia", email="pia@example.com", password="pia-Secret-2026")
    Coupon.objects.create(code="GIFT-25", kind="balance", bonus_type="fixed", value=Decimal("25"))
    Coupon.objects.create(code="BIG", value=Decimal("10"), min_deposit=Decimal("100"))
    Tier.objects.create(name="Silver", min_spent=Decimal("0"), discount_percent=Decimal("3"))
    Tier.objects.create(name="Gold", min_spent=Decimal("40"), discount_percent=Decimal("8"))

    page = new_page(viewport=PHONE)
    login(page, "pia", "pia-Secret-2026")
    page.goto("/funds/")
    page.get_by_label("Balance code").fill("gift-2S")
    page.get_by_role("button", name="Redeem").click()
    expect(page.locator("#id_code_error")).to_have_text("This code is not valid.")
    expect(page.get_by_label("Balance code")).to_have_value("gift-2S")
    _no_sideways_scroll(page)
    page.get_by_label("Balance code").fill("gift-25")
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_text("25.00 added to your balance")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_contain_text("25.00")
    assert LedgerEntry.objects.filter(user=pia, kind="bonus").count() == 1

    balance_debit(user=pia, amount=Decimal("10"), kind=LedgerEntry.Kind.CHARGE)
    page.goto("/account/")
    tier = page.get_by_test_id("tier")
    expect(tier).to_contain_text("Silver")
    expect(tier).to_contain_text("$30.00 more to reach Gold")
    expect(tier.locator("progress")).to_have_attribute("value", "25")
    _no_sideways_scroll(page)

    page.goto("/funds/add/")
    page.get_by_label("Amount (USD)").fill("20")
    page.get_by_label("Transfer reference").fill("SEPA-1")
    page.get_by_label("Bonus code").fill("big")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.locator("#coupon-error")).to_contain_text("deposits of $100.00 or more")
    expect(page.get_by_label("Bonus code")).to_have_value("big")
    expect(page.get_by_label("Amount (USD)")).to_have_value("20")
    _no_sideways_scroll(page)
