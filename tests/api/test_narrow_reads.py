"""status, refill and cancel read only what their answers need: one query, no join with the
service and category, and no field loaded later one order at a time."""

import re
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.selectors import api_key_get_user
from catalog.order_types import OrderType
from catalog.pricing import format_money
from orders.api import _order_status
from orders.models import Order
from orders.selectors import (
    OrderStatusRow,
    order_request_many_for_user,
    order_status_rows_key_extra,
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
    tables = set(re.findall(r'(?:FROM|JOIN) "?(\w+)"?', sql)) - {"unnest"}
    assert tables == {"orders_order"} and '"link"' not in sql and '"params"' not in sql
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
        sql = ctx.captured_queries[0]["sql"]
        assert "unnest(" in sql and " IN (" not in sql


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


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the key lookup reads the orders on PostgreSQL"
)


@postgresql_only
def test_the_key_lookup_reads_the_status_rows_and_the_status_read_then_asks_nothing(
    alice, alice_key, bob
):
    mine = OrderFactory.create_batch(3, user=alice)
    theirs = OrderFactory(user=bob)
    ids = [o.pk for o in mine] + [theirs.pk, 10**18]
    alone = order_status_rows_many_for_user(user=alice, order_ids=ids)
    with CaptureQueriesContext(connection) as ctx:
        user = api_key_get_user(raw_key=alice_key, extra=order_status_rows_key_extra(ids))
        found = order_status_rows_many_for_user(user=user, order_ids=ids)
    assert len(ctx.captured_queries) == 1
    assert found == alone and set(found) == {o.pk for o in mine}  # never another's order


@postgresql_only
def test_rows_read_with_the_key_for_other_ids_are_not_used(alice, alice_key):
    first, second = OrderFactory.create_batch(2, user=alice)
    user = api_key_get_user(raw_key=alice_key, extra=order_status_rows_key_extra([first.pk]))
    with CaptureQueriesContext(connection) as ctx:
        found = order_status_rows_many_for_user(user=user, order_ids=[first.pk, second.pk])
    assert len(ctx.captured_queries) == 1 and set(found) == {first.pk, second.pk}


def _generic_plan(sql: str, args: list) -> str:
    """EXPLAIN of `sql` (%s placeholders) run as a prepared statement's generic plan, the plan
    PostgreSQL may keep for it whatever its arguments. Sequential scans, hash and merge joins
    are off: on the test's few rows (or statistics an earlier test's ANALYZE left, which a
    rollback keeps) the planner would otherwise read the whole table, and the plan would not
    show which index it walks for the orders."""
    parts = sql.split("%s")
    numbered = "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))
    literals = ", ".join(f"'{a}'" for a in args)  # the test's own ints and hex text
    # A savepoint: a failed EXPLAIN rolls back to it, PREPARE included, and shows its error.
    with transaction.atomic(), connection.cursor() as cursor:
        for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE generic_probe AS {numbered}")
        cursor.execute(f"EXPLAIN EXECUTE generic_probe({literals})")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE generic_probe")
    return plan


@postgresql_only
def test_no_plan_of_the_status_read_walks_a_customers_orders(alice, alice_key):
    """Prepared, the statement may run a generic plan, made without the ids: one that walks
    the customer's orders (an index on user_id) would read all of a big reseller's orders on
    every call. The ids' join leaves the planner only the primary key to probe, once per id."""
    from accounts.models import ApiKey
    from accounts.selectors import _KeyLookup
    from orders.selectors import _status_rows_statement

    OrderFactory.create_batch(3, user=alice)
    alone = _generic_plan(_status_rows_statement(), [alice.pk, "{1,2,3}"])
    extra = order_status_rows_key_extra([1, 2, 3])
    keyed = _generic_plan(
        _KeyLookup.get("default").sql_for(extra), [*extra.args, ApiKey.hash(alice_key)]
    )
    for plan in (alone, keyed):
        orders_scans = re.findall(r"Scan.* on orders_order o.*\n\s+(.*)", plan)
        assert orders_scans == ["Index Cond: (id = i.id)"], plan
        assert "Nested Loop" in plan and "user_id" not in plan.split("Scan on unnest")[-1], plan
    # What the test tells apart: the earlier statement's generic plan could walk the
    # customer's orders (here, on few rows; which index it takes depends on the statistics).
    before = _generic_plan(
        "SELECT id FROM orders_order WHERE user_id = %s AND id = ANY(%s::bigint[])",
        [alice.pk, "{1,2,3}"],
    )
    assert "user_id" in before, before
