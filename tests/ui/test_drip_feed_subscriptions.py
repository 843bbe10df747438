"""Issue 17: the Drip-feed and Subscriptions pages, like the market's panels: runs done of
total and the next run; posts delivered, quantity per post, delay and expiry. Worked out from
what the provider delivered (its status answer has no run or post counts); each customer sees
only their own."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from orders.models import Order
from orders.views import drip_feed_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def drip_service(default_service):
    Service.objects.filter(pk=default_service.pk).update(dripfeed=True)
    default_service.refresh_from_db()
    return default_service


@pytest.fixture
def subscription_service(category):
    return Service.objects.create(
        name="Instagram Auto Likes",
        category=category,
        type="Subscriptions",
        min=10,
        max=1000,
        rate=Decimal("1.00"),
        cancel=True,
    )


def _drip(place, service, user=None, **fields):
    order = place(service, user=user, status="in_progress", quantity="100", runs="5", interval="30")
    Order.objects.filter(pk=order.pk).update(**fields)
    order.refresh_from_db()
    return order


def test_drip_feed_page_shows_runs_done_and_the_next_run(
    alice_client, drip_service, place, settings
):
    settings.TIME_ZONE = "UTC"
    now = timezone.now()
    running = _drip(place, drip_service, remains=260, submitted_at=now - timedelta(minutes=45))
    plain = place(drip_service, status="in_progress")  # no runs: not a drip-feed
    response = alice_client.get(reverse("drip_feed_orders"))
    body = response.content.decode()
    assert [i.row.order.pk for i in response.context["items"]] == [running.pk]
    assert f'id="drip-{plain.pk}"' not in body
    (item,) = response.context["items"]
    assert (item.per_run, item.runs, item.runs_done, item.interval) == (100, 5, 2, 30)
    # Placed 45 minutes ago, a run every 30: runs at 0 and 30 are due, the next is at 60.
    assert item.next_run == running.submitted_at + timedelta(minutes=60)
    row = body.split(f'id="drip-{running.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "2 / 5" in row and "30 min" in row
    assert timezone.localtime(item.next_run).strftime("%Y-%m-%d %H:%M") in row
    assert reverse("order_cancel", args=[running.pk]) in row  # the same rule as the list


def test_runs_and_next_run_at_the_edges(drip_service, place):
    now = timezone.now()
    late = _drip(place, drip_service, remains=500, submitted_at=now - timedelta(minutes=95))
    item = drip_feed_row(late, now)
    # The provider delivered nothing yet, but the schedule is past 3 runs: the next is the 4th.
    assert item.runs_done == 0 and item.next_run == late.submitted_at + timedelta(minutes=120)
    over = _drip(place, drip_service, remains=0, submitted_at=now - timedelta(hours=5))
    assert drip_feed_row(over, now).runs_done == 5 and drip_feed_row(over, now).next_run is None
    done = _drip(place, drip_service, status="completed", remains=None)
    assert drip_feed_row(done, now).runs_done == 5 and drip_feed_row(done, now).next_run is None
    unsent = place(drip_service, quantity="100", runs="5", interval="30")
    item = drip_feed_row(unsent, now)
    assert (item.runs_done, item.next_run) == (0, None)  # not placed: no schedule yet


def test_subscriptions_page(alice_client, subscription_service, place):
    data = {"username": "@someone", "min": "50", "max": "100", "delay": "30", "posts": "10"}
    expiry = (timezone.now() + timedelta(days=40)).strftime("%d/%m/%Y")
    sub = place(
        subscription_service, link="", status="in_progress", expiry=expiry, old_posts="2", **data
    )
    assert sub.quantity == 1200  # max x (posts + old posts)
    Order.objects.filter(pk=sub.pk).update(remains=1200 - 350)
    response = alice_client.get(reverse("subscription_orders"))
    (item,) = response.context["items"]
    assert (item.username, item.low, item.high, item.delay) == ("@someone", 50, 100, 30)
    assert (item.posts, item.old_posts, item.posts_done) == (
        10,
        2,
        3,
    )  # 350 units, at most 100 a post
    assert item.expiry.strftime("%d/%m/%Y") == expiry
    row = response.content.decode().split(f'id="subscription-{sub.pk}"', 1)[1].split("</tr>")[0]
    assert "3 / 12" in row and "50\u2013100 per post" in row and "30 min" in row
    assert item.expiry.strftime("%Y-%m-%d") in row
    Order.objects.filter(pk=sub.pk).update(status="completed", remains=0)
    (item,) = alice_client.get(reverse("subscription_orders")).context["items"]
    assert item.posts_done == 12


def test_each_customer_sees_only_their_own(
    client, alice, bob, drip_service, subscription_service, place
):
    _drip(place, drip_service)
    data = {"username": "someone", "min": "50", "max": "100", "delay": "0", "posts": "1"}
    place(subscription_service, link="", status="in_progress", **data)
    client.force_login(bob)
    for name in ("drip_feed_orders", "subscription_orders"):
        response = client.get(reverse(name))
        assert response.status_code == 200 and response.context["items"] == []
    client.logout()
    assert client.get(reverse("drip_feed_orders")).status_code == 302  # login first


def test_the_order_pages_link_to_each_other(alice_client):
    body = alice_client.get(reverse("orders")).content.decode()
    assert reverse("drip_feed_orders") in body and reverse("subscription_orders") in body
    page = alice_client.get(reverse("subscription_orders")).content.decode()
    assert 'aria-current="page" href="/orders/subscriptions/"' in page
