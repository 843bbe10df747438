"""status, refill and cancel read only what their answers need: one query, no join with the
service and category, and no field loaded later one order at a time."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.order_types import OrderType
from orders.api import _order_status
from orders.models import Order
from orders.selectors import order_request_many_for_user, order_status_many_for_user
from tests.api.conftest import API_URL, decode
from tests.api.factories import OrderFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def test_status_read_is_one_query_without_joins_and_answers_without_more(
    alice, bob, django_assert_num_queries
):
    mine = OrderFactory.create_batch(5, user=alice)
    theirs = OrderFactory(user=bob)
    with CaptureQueriesContext(connection) as ctx:
        found = order_status_many_for_user(
            user=alice, order_ids=[o.pk for o in mine] + [theirs.pk, "x"]
        )
    assert len(ctx.captured_queries) == 1
    sql = ctx.captured_queries[0]["sql"]
    assert "JOIN" not in sql and '"link"' not in sql and '"params"' not in sql
    assert set(found) == {o.pk for o in mine}
    with django_assert_num_queries(0):
        answers = [_order_status(o) for o in found.values()]
    full = Order.objects.get(pk=mine[0].pk)
    assert answers[0] == _order_status(full)


def test_cancel_types_come_from_the_narrow_read(client, alice, alice_key):
    subscription = OrderFactory(user=alice, service=ServiceFactory(type=OrderType.SUBSCRIPTIONS))
    drip = OrderFactory(user=alice, params={"runs": "5", "interval": "30"})
    plain = OrderFactory(user=alice)
    with CaptureQueriesContext(connection) as ctx:
        found = order_request_many_for_user(
            user=alice, order_ids=[subscription.pk, drip.pk, plain.pk]
        )
    assert len(ctx.captured_queries) == 1
    assert found[subscription.pk].service_type == OrderType.SUBSCRIPTIONS
    ids = f"{subscription.pk},{drip.pk},{plain.pk}"
    answer = decode(client.post(API_URL, {"key": alice_key, "action": "cancel", "orders": ids}))
    assert [a["type"] for a in answer] == ["subscription", "dripfeed", "order"]
