"""status, refill and cancel read only what their answers need: one query, no join with the
service and category, and no field loaded later one order at a time."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.order_types import OrderType
from catalog.pricing import format_money
from orders.api import _order_status
from orders.models import Order
from orders.selectors import (
    OrderStatusRow,
    order_request_many_for_user,
    order_status_rows_many_for_user,
)
from tests.api.conftest import API_URL, decode
from tests.api.factories import OrderFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def test_status_read_is_one_query_without_joins_and_answers_without_more(
    alice, bob, django_assert_num_queries
):
    mine = OrderFactory.create_batch(5, user=alice, start_count=None, remains=None)
    mine[1].start_count, mine[1].remains, mine[1].status = 17, 4, Order.Status.PARTIAL
    mine[1].save()
    theirs = OrderFactory(user=bob)
    with CaptureQueriesContext(connection) as ctx:
        found = order_status_rows_many_for_user(
            user=alice, order_ids=[o.pk for o in mine] + [theirs.pk, "x"]
        )
    assert len(ctx.captured_queries) == 1
    sql = ctx.captured_queries[0]["sql"]
    assert "JOIN" not in sql and '"link"' not in sql and '"params"' not in sql
    assert set(found) == {o.pk for o in mine}
    with django_assert_num_queries(0):
        answers = {pk: _order_status(row, "USD") for pk, row in found.items()}
    for order in mine:  # the answer as the full Order reads it
        full = Order.objects.get(pk=order.pk)
        assert answers[order.pk] == {
            "charge": format_money(full.charge),
            "start_count": str(full.start_count or 0),
            "status": full.public_status,
            "remains": str(full.remains if full.remains is not None else full.quantity),
            "currency": "USD",
        }
    assert answers[mine[1].pk]["start_count"] == "17" and answers[mine[1].pk]["remains"] == "4"
    assert answers[mine[0].pk]["remains"] == str(mine[0].quantity)


def test_status_rows_send_the_ids_as_one_array_and_read_what_the_orm_reads(alice, bob):
    mine = OrderFactory.create_batch(100, user=alice)
    Order.objects.filter(pk=mine[3].pk).update(start_count=9, remains=1, status="partial")
    theirs = OrderFactory(user=bob)
    ids = [o.pk for o in mine] + [theirs.pk, 10**18]
    with CaptureQueriesContext(connection) as ctx:
        found = order_status_rows_many_for_user(user=alice, order_ids=ids)
    rows = Order.objects.filter(user=alice, pk__in=ids)
    assert found == {
        o.pk: OrderStatusRow(o.status, format_money(o.charge), o.start_count, o.remains, o.quantity)
        for o in rows
    }
    assert len(found) == 100 and found[mine[3].pk].remains == 1
    if connection.vendor == "postgresql":  # 102 ids, one parameter: no IN list of placeholders
        assert (
            "= ANY(" in ctx.captured_queries[0]["sql"]
            and " IN (" not in ctx.captured_queries[0]["sql"]
        )


@pytest.mark.parametrize(
    "charge",
    ["0", "0.00001", "0.9", "12.34567", "1234567.5", "99999999.99999"],
)
def test_status_rows_write_the_charge_as_format_money_does(alice, charge):
    """The charge comes as the database's text of the column (PostgreSQL) or is formatted here
    (SQLite): the same string format_money writes, for every amount the column holds."""
    order = OrderFactory(user=alice)
    Order.objects.filter(pk=order.pk).update(charge=Decimal(charge))
    found = order_status_rows_many_for_user(user=alice, order_ids=[order.pk])
    assert found[order.pk].charge == format_money(Decimal(charge))


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
