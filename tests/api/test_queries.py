"""The number of SQL queries of a call does not grow with the number of ids or services."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import API_URL, decode
from tests.api.factories import OrderFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def queries(client, params) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as ctx:
        answer = decode(client.post(API_URL, params))
    return len(ctx.captured_queries), answer


def test_status_of_100_orders_costs_what_one_costs(
    client, alice, alice_key, django_assert_max_num_queries
):
    service = ServiceFactory()
    orders = [OrderFactory(user=alice, service=service) for _ in range(100)]
    one, _ = queries(client, {"key": alice_key, "action": "status", "orders": str(orders[0].pk)})
    ids = ",".join(str(o.pk) for o in orders)
    with django_assert_max_num_queries(one):
        answer = decode(client.post(API_URL, {"key": alice_key, "action": "status", "orders": ids}))
    assert len(answer) == 100 and all("status" in v for v in answer.values())
    assert one <= 4  # key lookup, key touch, the orders


def test_services_cost_the_same_for_3_or_300(
    client, alice, alice_key, django_assert_max_num_queries
):
    for _ in range(3):
        ServiceFactory()
    few, answer = queries(client, {"key": alice_key, "action": "services"})
    assert len(answer) == 3
    ServiceFactory.create_batch(297)
    with django_assert_max_num_queries(few):
        answer = decode(client.post(API_URL, {"key": alice_key, "action": "services"}))
    assert len(answer) == 300
    assert few <= 5  # key lookup, key touch, services, custom rates, discount


def test_multi_refill_status_and_cancel_status_read_once(
    client, alice, alice_key, django_assert_max_num_queries
):
    from tests.api.factories import CancelRequestFactory, RefillFactory

    order = OrderFactory(user=alice)
    refills = ",".join(str(RefillFactory(order=order).pk) for _ in range(50))
    cancels = ",".join(str(CancelRequestFactory(order=order).pk) for _ in range(50))
    with django_assert_max_num_queries(3):
        decode(
            client.post(API_URL, {"key": alice_key, "action": "refill_status", "refills": refills})
        )
    with django_assert_max_num_queries(3):
        decode(client.post(API_URL, {"key": alice_key, "action": "cancel", "cancels": cancels}))
