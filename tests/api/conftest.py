import json
from decimal import Decimal

import pytest
from django.core.cache import cache

from accounts.services import api_key_issue, customer_create

API_URL = "/api/v2"


@pytest.fixture(autouse=True)
def _api_settings(settings):
    # Generous limits so that every test still runs the limiter; test_rate_limits sets its own.
    settings.API_RATE_LIMIT_PER_KEY = "100000/10s"
    settings.API_RATE_LIMIT_PER_IP = "100000/10s"
    settings.PANEL_CURRENCY = "USD"
    cache.clear()


@pytest.fixture
def alice_key(alice) -> str:
    return api_key_issue(user=alice).raw


@pytest.fixture
def bob_key(bob) -> str:
    return api_key_issue(user=bob).raw


@pytest.fixture
def rich(db):
    return customer_create(username="rich", opening_balance=Decimal("1000000.00000"))


@pytest.fixture
def rich_key(rich) -> str:
    return api_key_issue(user=rich).raw


def decode(response) -> object:
    """The answer's JSON, after checking what every answer must be: 200, JSON, never HTML."""
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return json.loads(response.content)


@pytest.fixture
def api(client):
    """Call the API like a reseller's form POST; returns the decoded JSON answer."""

    def call(key: str | None = None, *, method: str = "post", headers=None, **params) -> object:
        data = {k: str(v) for k, v in params.items()}
        if key is not None:
            data["key"] = key
        send = client.post if method == "post" else client.get
        return decode(send(API_URL, data, headers=headers or {}))

    return call


@pytest.fixture
def world(alice, bob):
    """One service of every order type and alice's orders, refills and cancels in the states the
    documents' examples show. Returns {name: id} for the golden requests' placeholders."""
    from django.utils import timezone

    from catalog.order_types import OrderType
    from orders.models import CancelRequest, Order, Refill
    from tests.api.factories import (
        CancelRequestFactory,
        CategoryFactory,
        OrderFactory,
        RefillFactory,
        ServiceFactory,
    )

    first = CategoryFactory(name="First Category")
    second = CategoryFactory(name="Second Category", sort_order=1)
    T = OrderType
    svc = {
        "svc_default": ServiceFactory(name="Followers", category=first, type=T.DEFAULT),
        "svc_package": ServiceFactory(type=T.PACKAGE, category=first, min=1, max=1, dripfeed=False),
        "svc_comments": ServiceFactory(
            name="Comments",
            category=second,
            type=T.CUSTOM_COMMENTS,
            min=1,
            max=1500,
            rate=Decimal("8"),
            refill=False,
            dripfeed=False,
        ),
        "svc_comments_package": ServiceFactory(
            type=T.CUSTOM_COMMENTS_PACKAGE, category=second, min=1, max=1, dripfeed=False
        ),
        "svc_comment_likes": ServiceFactory(type=T.COMMENT_LIKES, category=second, dripfeed=False),
        "svc_comment_replies": ServiceFactory(
            type=T.COMMENT_REPLIES, category=second, min=1, max=100, dripfeed=False
        ),
        "svc_poll": ServiceFactory(type=T.POLL, category=first, dripfeed=False),
        "svc_invites": ServiceFactory(type=T.INVITES_FROM_GROUPS, category=first, dripfeed=False),
        "svc_subscriptions": ServiceFactory(
            type=T.SUBSCRIPTIONS, category=first, min=100, max=1000, dripfeed=False
        ),
    }
    default, subs = svc["svc_default"], svc["svc_subscriptions"]
    now = timezone.now()
    S = Order.Status

    def order(**kw):
        kw.setdefault("service", default)
        return OrderFactory(user=alice, **kw)

    done = {"status": S.COMPLETED, "finished_at": now, "remains": 0}
    rows = {
        "partial": order(status=S.PARTIAL, charge=Decimal("0.27819"), finished_at=now),
        "in_progress": order(charge=Decimal("1.44219"), start_count=234, remains=10),
        "refillable_1": order(**done),
        "refillable_2": order(**done),
        "refillable_3": order(**done),
        "cancellable_1": order(),
        "cancellable_drip": order(params={"runs": "2", "interval": "30"}, quantity=200),
        "cancellable_sub": order(service=subs, link="", params={"username": "x"}),
        "cancel_requested_sub": order(service=subs, link="", params={"username": "x"}),
    }
    CancelRequestFactory(order=rows["cancel_requested_sub"], status=CancelRequest.Status.QUEUED)
    rows["refill_completed"] = RefillFactory(order=rows["partial"], status=Refill.Status.COMPLETED)
    rows["refill_rejected"] = RefillFactory(order=rows["partial"], status=Refill.Status.REJECTED)
    rows["cancel_completed"] = CancelRequestFactory(
        order=rows["partial"], status=CancelRequest.Status.COMPLETED
    )
    rows["cancel_rejected"] = CancelRequestFactory(
        order=rows["in_progress"], status=CancelRequest.Status.REJECTED
    )
    # A row of bob's for each kind: its id must answer like a missing one.
    bob_order = OrderFactory(user=bob, service=default)
    ids = {name: row.pk for name, row in {**svc, **rows}.items()}
    ids["bob_order"] = bob_order.pk
    ids["bob_refill"] = RefillFactory(order=bob_order).pk
    ids["bob_cancel"] = CancelRequestFactory(order=bob_order).pk
    ids["missing"] = 10**9
    return ids
