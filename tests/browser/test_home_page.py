"""The visitor's home page on a phone (390 px): the catalog's categories with their lowest
prices, the steps, the API, sign-up and login, nothing wider than the screen and nothing from
outside (new_page fails any outside request and any CSP refusal); and the header of a customer
who reads the balance in a display currency stays on one row."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import DisplayCurrency
from accounts.services import user_set_display_currency
from catalog.models import Category, Service
from tests.browser.conftest import PHONE, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _catalog() -> None:
    for order, (name, rate) in enumerate(
        [("Instagram Followers", "0.45"), ("TikTok Views", "0.012"), ("YouTube Likes", "3.2")]
    ):
        category = Category.objects.create(name=name, sort_order=order)
        Service.objects.create(
            name=f"{name} HQ", category=category, type="Default", min=10, max=1000, rate=rate
        )


def test_home_page_sells_on_a_phone(new_page, screenshot_dir):
    _catalog()
    page = new_page(viewport=PHONE)
    page.goto("/")
    expect(page.get_by_role("heading", name="What you can order")).to_be_visible()
    showcase = page.get_by_test_id("showcase")
    expect(showcase.get_by_role("heading")).to_have_text(
        ["Instagram Followers", "TikTok Views", "YouTube Likes"]
    )
    expect(showcase.get_by_test_id("lowest-rate")).to_have_text(
        ["from $0.45 per 1000", "from $0.012 per 1000", "from $3.20 per 1000"]
    )
    expect(page.get_by_role("heading", name="How ordering works")).to_be_visible()
    expect(page.get_by_role("heading", name="For resellers: the API")).to_be_visible()
    expect(page.get_by_role("link", name="FAQ", exact=True).first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(screenshot_dir / "home-visitor-390.png"), full_page=True)
    page.get_by_role("link", name="Create an account").first.click()
    page.wait_for_url("**/accounts/signup/")


def test_header_with_a_display_currency_stays_on_one_row(new_page, alice):
    DisplayCurrency.objects.create(code="EUR", rate=Decimal("0.92"))
    user_set_display_currency(user=alice, code="EUR")
    page = new_page(viewport=PHONE)
    login(page, "alice", "pw-alice-123")
    page.goto("/")
    balance = page.locator("header").get_by_title("Your balance")
    expect(balance).to_contain_text("€46.00")
    log_out = page.locator("header").get_by_role("button", name="Log out")
    rows = {
        round(b["y"] + b["height"] / 2) for b in (balance.bounding_box(), log_out.bounding_box())
    }
    assert max(rows) - min(rows) <= 2, rows
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.get_by_text("€46.00 ($50.00)").first).to_be_visible()  # the balance card
