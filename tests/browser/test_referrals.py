"""The referral page in a browser on a phone (390 px): the Copy button puts the link on the
clipboard (static/panel/referrals.js, no inline script), a visitor who follows it and signs up
is counted as the referrer's sign-up, and a payout asked below the minimum is refused at the
field with what was typed kept."""

import pytest
from playwright.sync_api import expect

from accounts.models import Referral, User
from accounts.services import customer_create
from tests.browser.conftest import PHONE, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_copy_the_link_and_a_signup_through_it_counts(new_page, settings, live_server):
    # Both browsers run on this machine: the same-address self-referral check is off here
    # (tests/accounts/test_referrals.py tests it).
    settings.REFERRAL_SELF_IP_LOGINS = 0
    customer_create(username="pia", email="pia@example.com", password="pia-Secret-2026")
    page = new_page(viewport=PHONE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login(page, "pia", "pia-Secret-2026")
    page.goto("/referrals/")
    link = page.get_by_test_id("referral-link").input_value()
    assert "/r/" in link
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == link
    expect(page.get_by_test_id("signups")).to_have_text("0")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone"

    visitor = new_page(viewport=PHONE)
    visitor.goto(link)
    visitor.get_by_label("Username").fill("quinn")
    visitor.get_by_label("Email").fill("quinn@example.org")
    visitor.locator("#id_password1").fill("quinn-Secret-2026")
    visitor.locator("#id_password2").fill("quinn-Secret-2026")
    visitor.get_by_label("I have read and accept the terms of service").check()
    visitor.get_by_role("button", name="Create account").click()
    expect(visitor.get_by_role("heading", name="Add funds")).to_be_visible()
    assert Referral.objects.get(referred__username="quinn").referrer == User.objects.get(
        username="pia"
    )

    page.reload()
    expect(page.get_by_test_id("visits")).to_have_text("1")
    expect(page.get_by_test_id("signups")).to_have_text("1")
    page.locator("#id_payout-amount").fill("3")
    page.get_by_label("Pay to").fill("TRC20 TXpia")
    page.get_by_role("button", name="Request payout").click()
    expect(page.locator("#id_payout-amount_error")).to_contain_text("The smallest payout is $10.00")
    expect(page.get_by_label("Pay to")).to_have_value("TRC20 TXpia")
