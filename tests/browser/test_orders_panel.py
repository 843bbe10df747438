"""Issue 17 in Chromium: the order's Cancel asks first (dismissed: nothing happens; accepted:
"Cancel requested" on the row), and the colour mode follows the device's dark preference
until the customer picks one, which stays across reloads."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from catalog.models import Category, Service
from orders.models import CancelRequest, Order
from orders.services import order_create
from providers.models import Provider
from tests.browser.conftest import PHONE, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

THEME = "() => document.documentElement.getAttribute('data-bs-theme')"


def _running_order(user) -> Order:
    """An order in progress at a provider that takes cancels (its address answers nothing: the
    cancel stays requested)."""
    provider = Provider(name="upstream", api_url="http://127.0.0.1:9/api/v2")
    provider.set_api_key("provider-key-123")
    provider.save()
    category = Category.objects.create(name="Instagram", sort_order=1)
    # No upstream mapping: ordering sends nothing; the order is then made "placed" by hand.
    service = Service.objects.create(
        name="Followers",
        category=category,
        type="Default",
        min=10,
        max=1000,
        rate=Decimal("2"),
        cancel=True,
    )
    order = order_create(
        user=user, service=service, data={"link": "https://x.com/a", "quantity": "100"}
    )
    Order.objects.filter(pk=order.pk).update(
        status=Order.Status.IN_PROGRESS, provider=provider, upstream_order_id="up-1", remains=100
    )
    return order


def test_cancel_asks_first(new_page, alice):
    order = _running_order(alice)
    page = new_page()
    login(page, "alice", "pw-alice-123")
    page.goto("/orders/")
    page.wait_for_load_state("load")  # panel.js (deferred) is listening
    row = page.locator(f"#order-{order.pk}")
    asked: list[str] = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    row.get_by_role("button", name=f"Cancel order {order.pk}").click()
    page.wait_for_timeout(300)
    assert asked and asked[0].startswith(f"Cancel order {order.pk}?")
    assert not CancelRequest.objects.filter(order=order).exists()
    expect(row.get_by_test_id("cancel-requested")).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Cancel order {order.pk}").click()
    expect(page.get_by_text(f"Cancellation of order {order.pk} is requested")).to_be_visible()
    expect(page.locator(f"#order-{order.pk}").get_by_test_id("cancel-requested")).to_be_visible()
    assert CancelRequest.objects.filter(order=order).count() == 1


def test_cancel_without_javascript_asks_on_a_page(new_page, alice):
    order = _running_order(alice)
    page = new_page(javascript=False)
    login(page, "alice", "pw-alice-123")
    page.goto("/orders/")
    page.get_by_role("button", name=f"Cancel order {order.pk}").click()
    expect(page.get_by_role("heading", name=f"Cancel order {order.pk}?")).to_be_visible()
    assert not CancelRequest.objects.filter(order=order).exists()
    page.get_by_role("button", name=f"Yes, cancel order {order.pk}").click()
    expect(page.get_by_test_id("cancel-requested").first).to_be_visible()
    assert CancelRequest.objects.filter(order=order).count() == 1


def test_dark_mode_follows_the_device_and_the_choice_persists(new_page, alice, screenshot_dir):
    page = new_page(viewport=PHONE, color_scheme="dark")
    page.goto("/")
    assert page.evaluate(THEME) == "dark"  # auto, resolved by panel/theme.js
    login(page, "alice", "pw-alice-123")
    page.goto("/orders/")
    assert page.evaluate(THEME) == "dark"
    page.screenshot(path=str(screenshot_dir / "orders-dark-phone.png"), full_page=True)

    page.wait_for_load_state("load")  # Bootstrap's drop-down is wired
    page.locator("#theme-toggle").click()
    page.get_by_test_id("theme-menu").get_by_role("button", name="Light").click()
    page.wait_for_url("**/orders/")
    assert page.evaluate(THEME) == "light"
    page.reload()
    assert page.evaluate(THEME) == "light"  # kept although the device prefers dark
    alice.refresh_from_db()
    assert alice.theme == "light"

    page.locator("#theme-toggle").click()
    page.get_by_test_id("theme-menu").get_by_role("button", name="Auto").click()
    page.wait_for_url("**/orders/")
    assert page.evaluate(THEME) == "dark"
    # The device switches to light while the page is open: auto follows at once.
    page.emulate_media(color_scheme="light")
    page.wait_for_function(f"() => ({THEME[6:]}) === 'light'")
