"""Reads: another customer's ids are invisible, batches are one query."""

from decimal import Decimal

import pytest

from accounts.services import balance_credit
from orders.models import CancelRequest, Order, Refill
from orders.selectors import (
    cancel_get_many_for_user,
    order_get_for_user,
    order_list_for_user,
    order_list_needing_attention,
    order_status_many_for_user,
    refill_get_many_for_user,
)
from orders.services import order_create
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orders(alice, bob):
    balance_credit(user=bob, amount=Decimal("10"))
    service = make_service(order_type="Default", rate="1")
    data = {"link": "https://instagram.com/p/sel", "quantity": "100"}
    return (
        order_create(user=alice, service=service, data=data),
        order_create(user=bob, service=service, data=data),
    )


def test_other_customers_orders_are_none(alice, two_orders):
    mine, theirs = two_orders
    assert order_get_for_user(user=alice, order_id=mine.pk) == mine
    assert order_get_for_user(user=alice, order_id=theirs.pk) is None
    assert order_get_for_user(user=alice, order_id=987654) is None
    assert order_get_for_user(user=alice, order_id="abc") is None
    assert list(order_list_for_user(user=alice)) == [mine]


def test_many_in_one_query(alice, two_orders, django_assert_num_queries):
    mine, theirs = two_orders
    with django_assert_num_queries(1):
        listed = list(order_list_for_user(user=alice))
        assert listed[0].service.category.name == "Tests"
    with django_assert_num_queries(1):
        found = order_status_many_for_user(user=alice, order_ids=[mine.pk, theirs.pk, "x", 5])
    assert list(found) == [mine.pk]
    refill = Refill.objects.create(order=mine)
    cancel = CancelRequest.objects.create(order=theirs)
    assert list(refill_get_many_for_user(user=alice, refill_ids=[refill.pk])) == [refill.pk]
    assert cancel_get_many_for_user(user=alice, cancel_ids=[cancel.pk]) == {}


def test_needing_attention(two_orders):
    mine, theirs = two_orders  # manual services: both wait for the admin
    Order.objects.filter(pk=theirs.pk).update(status=Order.Status.COMPLETED)
    assert list(order_list_needing_attention()) == [mine]
