"""The number of SQL queries of a call does not grow with the number of ids or services."""

from unittest import mock

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from accounts.models import LedgerEntry, Wallet
from orders.models import Order, OrderDaySummary, OrderStatusChange
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


# --- Every action: the exact count, the same for 1 or many ids, services and orders ----------
# Counted after one warm-up call (the key's last use is then written: API_KEY_TOUCH_SECONDS).
# Inside the test's transaction each atomic block adds a SAVEPOINT and its RELEASE.


def count(client, params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        answer = decode(client.post(API_URL, params))
    assert not (isinstance(answer, dict) and "error" in answer), answer
    return len(ctx.captured_queries)


@pytest.fixture
def warm(client, alice_key):
    decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))


def test_balance_is_the_key_lookup_alone(client, alice, alice_key, warm):
    OrderFactory.create_batch(20, user=alice)
    assert count(client, {"key": alice_key, "action": "balance"}) == 1


def test_status_single_and_multi_cost_one_query_for_1_or_100_ids(client, alice, alice_key, warm):
    """On PostgreSQL the key lookup reads the orders too (orders.selectors'
    order_status_rows_key_extra); elsewhere they are a query of their own."""
    orders = OrderFactory.create_batch(100, user=alice, service=ServiceFactory())
    key = alice_key
    expected = 1 if connection.vendor == "postgresql" else 2
    assert count(client, {"key": key, "action": "status", "order": orders[0].pk}) == expected
    assert count(client, {"key": key, "action": "status", "orders": str(orders[0].pk)}) == expected
    ids = ",".join(str(o.pk) for o in orders)
    assert count(client, {"key": key, "action": "status", "orders": ids}) == expected
    # Ids that do not parse are reported after the key lookup, which reads no order for them.
    answer = decode(client.post(API_URL, {"key": key, "action": "status", "orders": " , "}))
    assert answer == {"error": 'The parameter "orders" lists no ids.'}
    assert count(client, {"key": key, "action": "status", "orders": "x,y"}) == 1


def test_services_cost_two_queries_built_and_one_cached_for_10_or_200(client, alice_key, warm):
    ServiceFactory.create_batch(10)
    params = {"key": alice_key, "action": "services"}
    # The key with the price terms and custom rates (PostgreSQL; elsewhere the terms and the
    # custom rates are a query each), then the services.
    terms = 0 if connection.vendor == "postgresql" else 2
    assert count(client, params) == 2 + terms
    assert count(client, params) == 1 + terms  # cached: no service row read
    ServiceFactory.create_batch(190)
    assert count(client, params) == 2 + terms
    assert count(client, params) == 1 + terms
    assert len(decode(client.post(API_URL, params))) == 200


def _add(key: str, service) -> dict:
    link = "https://example.com/a"
    return {"key": key, "action": "add", "service": service.pk, "link": link, "quantity": "100"}


def test_add_costs_the_same_whatever_the_orders_and_services(client, rich, rich_key):
    decode(client.post(API_URL, {"key": rich_key, "action": "balance"}))
    service = ServiceFactory()
    params = _add(rich_key, service)
    first = count(client, params)
    factory_made = OrderFactory.create_batch(50, user=rich, service=service)
    ServiceFactory.create_batch(50)
    assert count(client, params) == first
    # The key; the service with the price terms; then one statement
    # (accounts.services.balance_debit) that locks the wallet, writes the ledger entry,
    # updates the wallet (balance, total spent, order count) and, alongside, writes the order
    # (its id drawn there), its status change and the daily summary's upsert, reading the
    # low-balance threshold. Inside the test's transaction a SAVEPOINT and its RELEASE wrap
    # that statement; in production (autocommit) it is its own transaction: 3 queries.
    assert first == 5
    placed = Order.objects.filter(user=rich).exclude(pk__in=[o.pk for o in factory_made])
    assert placed.count() == 2
    assert OrderStatusChange.objects.filter(order__in=placed, source="create").count() == 2
    assert LedgerEntry.objects.filter(order_ref__in=placed.values("pk"), kind="charge").count() == 2
    assert Wallet.objects.get(user=rich).order_count == 2  # the 50 factory orders count nothing
    row = OrderDaySummary.objects.get(service_id=service.pk)  # the factory orders add nothing
    assert (row.orders, row.charged) == (2, sum(o.charge for o in placed))


@pytest.mark.django_db(transaction=True)
def test_add_in_autocommit_is_three_statements_and_no_transaction(client, rich, rich_key):
    """As production runs it (no test transaction around): the key, the service, and the one
    statement that is its own transaction: no BEGIN, no COMMIT (Django would switch autocommit
    off for a transaction)."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement order is PostgreSQL's")
    service = ServiceFactory()
    params = _add(rich_key, service)
    decode(client.post(API_URL, {"key": rich_key, "action": "balance"}))
    wrapper = connections["default"]
    with mock.patch.object(wrapper, "set_autocommit", wraps=wrapper.set_autocommit) as switched:
        assert count(client, params) == 3
    switched.assert_not_called()
    order = Order.objects.get(user=rich)
    entry = LedgerEntry.objects.get(order_ref=order.pk, kind="charge")
    assert entry.memo == f"Order {order.pk}: {service.name}"
    assert (
        -entry.amount == order.charge
        and entry.balance_after == Wallet.objects.get(user=rich).balance
    )
    assert OrderStatusChange.objects.filter(order=order, source="create").count() == 1


def test_refill_and_cancel_reads_are_constant_and_writes_a_fixed_cost_per_order(
    client, alice, alice_key, bob, warm
):
    from tests.api.factories import CancelRequestFactory, RefillFactory

    key = alice_key
    service = ServiceFactory()
    done = OrderFactory.create_batch(3, user=alice, service=service, status="completed")
    other = OrderFactory.create_batch(100, user=bob, service=service)  # refused: not hers
    # Refused ids (another customer's) read once, however many.
    one = count(client, {"key": key, "action": "refill", "orders": str(other[0].pk)})
    many = ",".join(str(o.pk) for o in other)
    assert count(client, {"key": key, "action": "refill", "orders": many}) == one == 2
    assert count(client, {"key": key, "action": "cancel", "orders": many}) == 2
    # Each refill made is its own locked transaction: the same number of queries per order.
    per_order = [
        count(client, {"key": key, "action": "refill", "orders": ids})
        for ids in (str(done[0].pk), f"{done[1].pk},{done[2].pk}")
    ]
    assert per_order[1] - 2 == 2 * (per_order[0] - 2)
    refills = [RefillFactory(order=done[0]).pk for _ in range(100)]
    cancels = [CancelRequestFactory(order=done[0]).pk for _ in range(100)]
    for action, name, ids in (("refill_status", "refill", refills), ("cancel", "cancel", cancels)):
        plural = name + "s"
        if action == "refill_status":
            assert count(client, {"key": key, "action": action, name: ids[0]}) == 2
        assert count(client, {"key": key, "action": action, plural: str(ids[0])}) == 2
        joined = ",".join(map(str, ids))
        assert count(client, {"key": key, "action": action, plural: joined}) == 2


def test_an_id_list_longer_than_any_plain_one_is_read_only_after_the_key(
    client, alice, alice_key, warm
):
    """status_key_extra runs before the key check: it leaves a value longer than 100 ids could
    be to the handler, which reads it after the key and the rate limits."""
    from panel.api_protocol import ApiParams

    long_list = ",".join(["1"] * 3000)
    with mock.patch.object(ApiParams, "_read_id_list", side_effect=AssertionError("parsed")):
        answer = decode(
            client.post(API_URL, {"key": "not-a-key", "action": "status", "orders": long_list})
        )
    assert answer == {"error": "Invalid API key."}
    with CaptureQueriesContext(connection) as ctx:
        answer = decode(
            client.post(API_URL, {"key": alice_key, "action": "status", "orders": long_list})
        )
    assert list(answer) == ["1"]  # one id, however often: read by the handler, after the key
    assert len(ctx.captured_queries) == 2  # the key alone, then the orders
