"""The core flows with JavaScript switched off: log in, order (with the charge preview
button), see the order in the list."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.services import customer_create
from catalog.models import Category, Service
from orders.models import Order
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_in_order_and_see_orders_without_javascript(new_page):
    user = customer_create(username="nojs", password="pw-nojs-12345", opening_balance=Decimal(10))
    category = Category.objects.create(name="YouTube")
    Category.objects.create(name="Telegram")
    service = Service.objects.create(
        name="YouTube Views",
        category=category,
        type="Default",
        min=100,
        max=100000,
        rate=Decimal("0.8"),
    )
    page = new_page(javascript=False)
    login(page, "nojs", "pw-nojs-12345")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="New order").click()
    page.get_by_label("Category").select_option(label="YouTube")
    page.get_by_role("button", name="Show").click()
    page.get_by_label(re.compile("^Service")).select_option(str(service.pk))
    page.get_by_role("button", name="Show").click()
    page.get_by_label("Link").fill("https://youtube.com/watch?v=abc")
    page.get_by_label("Quantity").fill("50")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#id_quantity_error")).to_contain_text("100")  # next to its field
    page.get_by_label("Quantity").fill("5000")
    page.get_by_role("button", name="Preview charge").click()
    expect(page.get_by_test_id("charge")).to_have_text("$4.00")
    assert not Order.objects.exists()
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Order \d+$"))).to_be_visible()

    page.get_by_role("link", name="Orders", exact=True).click()
    order = Order.objects.get(user=user)
    expect(page.locator(f"#order-{order.pk}")).to_contain_text("youtube.com/watch?v=abc")
    expect(page.get_by_test_id("balance")).to_have_count(0)
    page.get_by_role("link", name="Funds").click()
    expect(page.get_by_test_id("balance")).to_have_text("$6.00")
