"""The bell in Chromium: the unread count in the navbar, the drop-down fetched with htmx,
"Mark all read" (htmx, the badge updated out of band), opening a notice; and the notification
settings page saved with a threshold. The page's Content-Security-Policy is checked throughout."""

import pytest
from playwright.sync_api import expect

from accounts.models import Notification, NotificationPreference
from accounts.notifications import notify
from tests.browser.conftest import PHONE, htmx_idle, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
E = Notification.Event


def _refill(user, order_id):
    notify(
        user=user,
        event=E.REFILL_DONE,
        context={"order_id": order_id, "refill_id": order_id, "target": ""},
    )


@pytest.mark.parametrize("viewport", [None, PHONE])
def test_the_bell_lists_and_marks_read(new_page, alice, bob, screenshot_dir, viewport):
    _refill(alice, 11), _refill(alice, 12), _refill(bob, 13)
    page = new_page(viewport=viewport) if viewport else new_page()
    login(page, "alice", "pw-alice-123")
    page.goto("/funds/")
    count = page.locator("#notification-count")
    expect(count).to_have_text("2 unread")
    page.get_by_role("button", name="Notifications").click()
    htmx_idle(page)
    menu = page.locator("#notification-menu")
    expect(menu.get_by_text("Refill of order 12 done")).to_be_visible()
    expect(menu.get_by_text("Refill of order 13 done")).to_have_count(0)
    page.screenshot(
        path=str(screenshot_dir / f"notifications-bell{'-phone' if viewport else ''}.png")
    )
    box, width = menu.bounding_box(), page.viewport_size["width"]
    # On screen: Popper keeps the menu inside the viewport, to a fraction of a pixel (the
    # header's widths are fractional: -0.19 px with a "$50.00" balance).
    assert box is not None and box["x"] > -1 and box["x"] + box["width"] <= width + 1
    menu.get_by_role("button", name="Mark all read").click()
    htmx_idle(page)
    expect(count).to_be_hidden()
    expect(menu.get_by_role("button", name="Mark all read")).to_have_count(0)
    assert not Notification.objects.filter(user=alice, read_at__isnull=True).exists()
    _refill(alice, 14)
    page.reload()
    expect(count).to_have_text("1 unread")
    page.get_by_role("button", name="Notifications").click()
    htmx_idle(page)
    menu.get_by_text("Refill of order 14 done").click()
    page.wait_for_url("**/orders/14/")
    assert Notification.objects.get(user=alice, context__order_id=14).is_read


def test_the_notification_settings_are_saved(new_page, alice):
    page = new_page()
    login(page, "alice", "pw-alice-123")
    page.goto("/account/")
    page.get_by_role("link", name="Which mails you get, low balance alert").click()
    expect(page.get_by_role("heading", name="Notification settings")).to_be_visible()
    page.get_by_label("Refill done").uncheck()
    page.get_by_label("Low balance threshold").fill("-3")
    page.get_by_role("button", name="Save notification settings").click()
    expect(page.get_by_text("Ensure this value is greater than or equal to 0.01.")).to_be_visible()
    expect(page.get_by_label("Refill done")).not_to_be_checked()  # nothing typed is lost
    page.get_by_label("Low balance threshold").fill("15")
    page.get_by_role("button", name="Save notification settings").click()
    expect(page.get_by_text("Your notification settings are saved.")).to_be_visible()
    pref = NotificationPreference.objects.get(user=alice)
    assert pref.email["refill_done"] is False and pref.email["payment_received"] is True
    assert str(pref.low_balance_threshold) == "15.00000"
