"""The order list at scale: every search term goes through an index, and the paginator never
counts every order (estimate when unfiltered, a capped count when filtered)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from accounts.services import balance_credit
from orders import admin as orders_admin
from orders.models import Order
from orders.services import order_create
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
URL = "/admin/orders/order/"


@pytest.fixture
def orders(client, staff, alice, bob):
    client.force_login(staff)
    balance_credit(user=bob, amount=Decimal("10"))
    service = make_service(order_type="Default", rate="1")
    made = []
    for user, link in [
        (alice, "https://instagram.com/p/alpha1"),
        (alice, "https://instagram.com/p/alpha2"),
        (alice, "https://tiktok.com/@alpha"),
        (bob, "https://instagram.com/p/beta"),
        (bob, "https://youtube.com/watch?v=42"),
    ]:
        made.append(
            order_create(user=user, service=service, data={"link": link, "quantity": "100"})
        )
    Order.objects.filter(pk=made[4].pk).update(upstream_order_id="UP-9")
    return made


def _found(client, term: str) -> set[int]:
    response = client.get(URL, {"q": term})
    assert response.status_code == 200
    return {order.pk for order in response.context["cl"].result_list}


def test_search_by_id_upstream_id_customer_and_link_prefix(client, orders):
    assert reverse("admin:orders_order_changelist") == URL
    first, second, third, fourth, fifth = (o.pk for o in orders)
    assert _found(client, str(first)) == {first}
    assert _found(client, "UP-9") == {fifth}
    assert _found(client, "ALICE") == {first, second, third}  # username, any case
    assert _found(client, "bob@example.com") == {fourth, fifth}
    assert _found(client, "https://instagram.com/p/alpha") == {first, second}
    assert _found(client, "https://instagram.com/") == {first, second, fourth}
    # No substring matches: those need a scan of every order.
    assert _found(client, "alpha") == set()
    assert _found(client, "instagram.com") == set()
    assert _found(client, "ali") == set()
    assert _found(client, "99999999999999999999999") == set()  # beyond bigint: not an id


def test_filtered_count_is_capped(client, orders, monkeypatch):
    monkeypatch.setattr(orders_admin, "COUNT_CAP", 2)
    response = client.get(URL, {"q": "alice"})
    changelist = response.context["cl"]
    assert changelist.paginator.capped and changelist.result_count == 2
    assert "more than 2 orders" in response.content.decode()
    response = client.get(URL, {"q": "bob"})  # two orders: the cap is not passed
    assert not response.context["cl"].paginator.capped
    assert "2 orders" in response.content.decode()


def test_unfiltered_count_is_the_planner_estimate(client, orders, monkeypatch):
    monkeypatch.setattr(orders_admin, "COUNT_CAP", 2)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")
    response = client.get(URL)
    paginator = response.context["cl"].paginator
    assert paginator.estimated and paginator.count == 5
    assert "about 5 orders" in response.content.decode()
    # A filter (even one matching everything) counts, capped.
    response = client.get(URL, {"source__exact": "web"})
    assert response.context["cl"].paginator.capped
