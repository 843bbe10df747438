"""Every customer page at phone and desktop width, in light and dark mode, saved under
test-artifacts/screenshots/ (`<page>-<phone|desktop>-<light|dark>.png`) for a person to look at.
The test also checks that nothing is wider than the screen on a phone, and runs axe-core
(tests/browser/axe.py) on every page: a serious or critical accessibility violation fails it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.models import User
from accounts.services import api_key_issue, balance_adjust, customer_create
from catalog.models import Category, Service
from content.models import Announcement
from orders.models import Order, Refill
from orders.services import order_create
from support.services import TicketSubject, ticket_create, ticket_reply
from tests.browser import axe
from tests.browser.conftest import DESKTOP, PHONE, htmx_idle, login
from tests.support.helpers import image_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def make_data():
    staff = customer_create(username="staffer", password="pw-staff-12345")
    user = customer_create(
        username="shots",
        email="shots@example.com",
        password="pw-shots-12345",
        opening_balance=Decimal("25"),
    )
    Announcement.objects.create(
        title="New TikTok services and lower prices",
        pinned=True,
        body="From today:\n\n| service | old | new |\n|---|---|---|\n"
        "| TikTok Views [Instant, no drop, refill 365 days] | 0.90 | 0.45 |\n\n"
        "Details: https://example.com/a/very/long/link/that/must/wrap/on/a/phone/screen/123456",
    )
    Announcement.objects.create(title="Maintenance on Sunday", body="Orders *queue* for an hour.")
    user.timezone = "Europe/Berlin"
    user.save(update_fields=["timezone"])
    balance_adjust(user=user, amount=Decimal("100"), created_by=staff, reason="Bank transfer #4411")
    followers = Category.objects.create(name="Instagram Followers", sort_order=1)
    comments = Category.objects.create(name="Instagram Comments", sort_order=2)
    default = Service.objects.create(
        name="Instagram Followers [Refill 30D] — real-looking profiles, fast start",
        category=followers,
        type="Default",
        min=50,
        max=10000,
        rate=Decimal("1.35"),
        refill=True,
        cancel=True,
        description="Start: 0-1 hour\nSpeed: 5K/day\nRefill: 30 days",
    )
    cheap = Service.objects.create(
        name="Instagram Followers [No Refill] [Cheap]",
        category=followers,
        type="Default",
        min=100,
        max=50000,
        rate=Decimal("0.525"),
        dripfeed=True,
    )
    Service.objects.create(
        name="Instagram Custom Comments",
        category=comments,
        type="Custom Comments",
        min=10,
        max=1500,
        rate=Decimal("12"),
    )
    now = timezone.now()
    links = [
        "https://instagram.com/p/CxYz123",
        "https://instagram.com/shots.official",
        "https://instagram.com/p/Partial999",
        "https://instagram.com/p/new-one",
    ]
    states = [("completed", 0), ("in_progress", 640), ("partial", 300), (None, None)]
    for link, (status, remains) in zip(links, states, strict=True):
        order = order_create(user=user, service=default, data={"link": link, "quantity": "1000"})
        if status:
            Order.objects.filter(pk=order.pk).update(
                status=status,
                remains=remains,
                start_count=1520,
                upstream_order_id=f"u{order.pk}",
                finished_at=now if status in ("completed", "partial") else None,
                created_at=now - timedelta(hours=3),
            )
        if status == "completed":
            Refill.objects.create(order=order, status="completed")
    _drip_feed_and_subscription(user, cheap, comments)
    return user, default


def _drip_feed_and_subscription(user, dripfeed_service, category):
    """A drip-feed order two runs in and a subscription three posts in (the pages of issue 17)."""
    now = timezone.now()
    drip = order_create(
        user=user,
        service=dripfeed_service,
        data={
            "link": "https://instagram.com/shots.official",
            "quantity": "200",
            "runs": "5",
            "interval": "60",
        },
    )
    subscriptions = Service.objects.create(
        name="Instagram Auto Likes [Subscription]",
        category=category,
        type="Subscriptions",
        min=50,
        max=5000,
        rate=Decimal("0.15"),
        cancel=True,
    )
    data = {"username": "shots.official", "min": "100", "max": "150", "delay": "30", "posts": "10"}
    sub = order_create(user=user, service=subscriptions, data=data)
    for order, remains in ((drip, 600), (sub, 1500 - 450)):
        Order.objects.filter(pk=order.pk).update(
            status="in_progress",
            remains=remains,
            upstream_order_id=f"u{order.pk}",
            submitted_at=now - timedelta(minutes=90),
        )


def _ticket(user, order):
    """A ticket about the order, answered by staff, with a screenshot."""
    staff = User.objects.create_user("helper", password="pw-helper-12345", is_staff=True)
    ticket = ticket_create(
        customer=user,
        about=TicketSubject(kind="order", order_ids=(order.pk,), request="speed_up"),
        subject="Order stuck at 36% since yesterday",
        body="Hello,\nthe order has not moved for a day. Can you speed it up?",
        attachment=SimpleUploadedFile("progress.png", image_bytes("PNG"), "image/png"),
    )
    ticket_reply(ticket=ticket, author=staff, body="Hi! We asked the provider to speed it up.")
    return ticket


PAGES = [
    ("login", "/login/", False),
    ("signup", "/signup/", False),
    ("password-reset", "/password-reset/", False),
    ("home", "/", True),
    ("new-order", "/order/?service={default}", True),
    ("mass-order", "/mass-order/", True),
    ("orders", "/orders/", True),
    ("order-detail", "/orders/{order}/", True),
    ("cancel-confirm", "/orders/{order}/cancel/", True),
    ("drip-feed", "/orders/drip-feed/", True),
    ("subscriptions", "/orders/subscriptions/", True),
    ("colour-mode", "/account/theme/", False),
    ("services", "/services/", True),
    ("funds", "/funds/", True),
    ("add-funds", "/funds/add/", True),
    ("api", "/api/", True),
    ("account", "/account/", True),
    ("security", "/account/security/", True),
    ("news", "/news/", True),
    ("terms", "/terms/", False),
    ("tickets", "/tickets/", True),
    ("new-ticket", "/tickets/new/", True),
    ("ticket", "/tickets/{ticket}/", True),
    ("referrals", "/referrals/", True),
    ("notifications", "/notifications/", True),
    ("notification-settings", "/account/notifications/", True),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("width_name", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_screenshots(new_page, screenshot_dir, width_name, viewport, scheme, settings):
    settings.SUPPORT_TICKETS_PER_HOUR = 1000  # the cache outlives the test database
    user, default = make_data()
    api_key_issue(user=user)
    order = Order.objects.filter(user=user, status="in_progress", service=default).get()
    ticket = _ticket(user, order)
    anonymous = new_page(viewport, color_scheme=scheme)
    page = new_page(viewport, color_scheme=scheme)
    axe.install(anonymous)
    axe.install(page)
    login(page, "shots", "pw-shots-12345")
    inaccessible = []
    for name, path, signed_in in PAGES:
        browser_page = page if signed_in else anonymous
        browser_page.goto(path.format(default=default.pk, order=order.pk, ticket=ticket.pk))
        if name == "new-order":
            page.get_by_label("Link").fill("https://instagram.com/p/CxYz123")
            page.get_by_label("Quantity").fill("2500")
            page.get_by_test_id("charge").wait_for()
        if name == "mass-order":
            page.get_by_label("Orders").fill(
                f"{default.pk} | https://instagram.com/p/a | 100\n"
                f"{default.pk} | https://instagram.com/p/b | 5"
            )
            page.get_by_role("button", name="Place orders").click()
            page.locator("#mass-results").wait_for()
            page.wait_for_load_state()  # the stylesheets too, not only the results
        htmx_idle(browser_page)
        browser_page.screenshot(
            path=screenshot_dir / f"{name}-{width_name}-{scheme}.png", full_page=True
        )
        # Nothing sticks out sideways on a phone (tables scroll inside their own box).
        overflow = browser_page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = browser_page.evaluate("""[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                         && !e.closest('.overflow-x-auto, pre'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + e.id)""")
        assert overflow <= 0, f"{name} is {overflow}px wider than the {width_name} screen: {wide}"
        found = axe.blocking(axe.violations(browser_page))
        if found:
            inaccessible.append(f"{name} ({path}):\n{axe.describe(found)}")
    assert not inaccessible, (
        f"axe-core found serious or critical violations ({width_name}, {scheme}):\n"
        + "\n".join(inaccessible)
    )
