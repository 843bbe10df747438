"""A status poll batch written in a constant number of statements, money exactly once.

The upstream answers come from a patched provider_fetch_statuses (the one HTTP seam): these
tests are about the writes, and a batch of 100 varied answers from the sandbox would need 100
placements first. test_polling.py covers the same path against the sandbox over HTTP."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import LedgerEntry, Notification
from accounts.notifications import notify_many
from accounts.services import customer_create
from orders.models import CancelRequest, Order, OrderStatusChange, WebhookEndpoint, WebhookEvent
from orders.selectors import order_list_due_for_poll
from orders.services import order_create, provider_poll_orders
from orders.services.polling import PollResult, apply_status_batch
from providers.client import OrderStatus
from providers.crypto import encrypt
from providers.schemas import UpstreamStatus
from tests.orders.factories import make_provider, make_service
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db
S = Order.Status
U = UpstreamStatus
QUANTITY = 1000
CHARGE = Decimal("1.00000")  # rate 1 per 1000


def _answer(index: int) -> OrderStatus:
    """The plan of a batch, by the order's position: one in ten each Partial (400 left),
    Canceled and Completed; six In progress with progress; one unchanged Pending."""
    kind = index % 10
    if kind == 0:
        return OrderStatus(U.PARTIAL, "Partial", None, 10, 400, "USD")
    if kind == 1:
        return OrderStatus(U.CANCELED, "Canceled", None, 10, QUANTITY, "USD")
    if kind == 2:
        return OrderStatus(U.COMPLETED, "Completed", None, 10, 0, "USD")
    if kind == 9:
        return OrderStatus(U.PENDING, "Pending", None, None, None, "USD")
    return OrderStatus(U.IN_PROGRESS, "In progress", None, 10, 500 + kind, "USD")


@pytest.fixture
def upstream(monkeypatch):
    """Answers for upstream ids "u<index>" by the plan above; counts the calls."""
    calls = []

    def fetch(*, provider, order_ids, **_):
        calls.append(list(order_ids))
        return {uid: _answer(int(uid[1:])) for uid in order_ids}

    monkeypatch.setattr("orders.services.polling.provider_fetch_statuses", fetch)
    return calls


def _customers(count: int) -> list:
    return [
        customer_create(
            username=f"reseller{i}", email=f"r{i}@example.com", opening_balance=Decimal("500")
        )
        for i in range(count)
    ]


def _placed(customers: list, count: int, provider=None) -> list[Order]:
    """`count` orders charged through the ledger, then placed upstream as "u<i>", due now;
    spread over the customers in turn (so one batch refunds several customers)."""
    provider = provider or make_provider(status_batch_size=100)
    service = make_service(provider=provider, sandbox_id=1, rate="1")
    ids = []
    for i in range(count):
        order = order_create(
            user=customers[i % len(customers)],
            service=service,
            data={"link": f"https://instagram.com/p/b{i}", "quantity": str(QUANTITY)},
        )
        ids.append(order.pk)
    past = timezone.now() - timedelta(minutes=1)
    for i, pk in enumerate(ids):
        Order.objects.filter(pk=pk).update(
            status=S.PENDING,
            provider=provider,
            upstream_order_id=f"u{i}",
            next_poll_at=past,
            created_at=past,
        )
    return list(order_list_due_for_poll(provider=provider, now=timezone.now(), limit=count))


SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def _batch(orders: list[Order], savepoints: list[str] | None = None) -> tuple[PollResult, int]:
    """One batch written; the SQL statements it took (not counting the savepoint the test's
    own transaction adds around the batch's: in production the batch's is the transaction).
    `savepoints` receives the savepoint statements, that one included."""
    result = PollResult(provider="test")
    provider = orders[0].provider
    with CaptureQueriesContext(connection) as queries:
        apply_status_batch(provider=provider, orders=orders, now=timezone.now(), result=result)
    if savepoints is not None:
        savepoints += [q["sql"].split()[0] for q in queries if q["sql"].startswith(SAVEPOINTS)]
    return result, sum(not q["sql"].startswith(SAVEPOINTS) for q in queries)


def _books_clean() -> None:
    """The ledger adds up and the cockpit's daily summary matches a fresh scan of the orders."""
    call_command("check_ledger", verbosity=0)
    call_command("order_summary", "--check", verbosity=0)


def _refunds() -> int:
    return LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND).count()


def test_a_batch_takes_the_same_statements_for_10_orders_as_for_100(upstream):
    customers = _customers(3)
    WebhookEndpoint.objects.create(
        user=customers[0], url="https://hooks.example/", secret_encrypted=encrypt("whsec_x")
    )
    small, small_count = _batch(_placed(customers, 10))
    savepoints: list[str] = []
    big, big_count = _batch(_placed(customers, 100), savepoints)
    assert (small.changed, big.changed) == (9, 90)  # the unchanged Pending ones aside
    assert big.statuses == {S.PARTIAL: 10, S.CANCELED: 10, S.COMPLETED: 10, S.IN_PROGRESS: 60}
    # One UPDATE of all rows, history, webhook events; wallets locked, replays looked up,
    # ledger entries, wallets updated; preferences, notices told before, notices. (The
    # upstream call's ProviderCall row is one more, patched away here.) The settled orders'
    # share of the cockpit's daily summary: locked and read before, read after, one upsert.
    assert small_count == big_count == 13
    # The summary's tracking adds no savepoint inside the batch's transaction: only the one
    # the test's transaction puts around it.
    assert savepoints == ["SAVEPOINT", "RELEASE"]
    assert _refunds() == 22 and Notification.objects.count() == 22
    assert WebhookEvent.objects.filter(user=customers[0]).count() == 3 + 30
    _books_clean()


def test_a_batch_refunds_exactly_and_tells_each_customer(upstream):
    customers = _customers(2)
    orders = _placed(customers, 10)
    result, _ = _batch(orders)
    assert result.changed == 9 and result.polled == 10
    by_index = {int(o.upstream_order_id[1:]): Order.objects.get(pk=o.pk) for o in orders}
    partial, canceled, completed = by_index[0], by_index[1], by_index[2]
    assert partial.status == S.PARTIAL and partial.refunded == Decimal("0.40000")
    assert canceled.status == S.CANCELED and canceled.refunded == CHARGE
    assert completed.status == S.COMPLETED and completed.refunded == 0
    for order in (partial, canceled, completed):
        assert order.next_poll_at is None and order.finished_at is not None
        change = order.status_changes.get(new_status=order.status)
        assert (change.old_status, change.source, change.remains) == (
            S.PENDING,
            "poll",
            order.remains,
        )
    entry = LedgerEntry.objects.get(order_ref=partial.pk, kind="refund")
    assert entry.memo == f"Refund: 400 of {QUANTITY} not delivered"
    assert by_index[3].status == S.IN_PROGRESS and by_index[3].remains == 503
    assert by_index[9].status == S.PENDING and by_index[9].next_poll_at > timezone.now()
    notice = Notification.objects.get(dedupe_key=f"order:{partial.pk}:partial")
    assert notice.user_id == partial.user_id and notice.mail == Notification.Mail.QUEUED
    for customer in customers:
        customer.wallet.refresh_from_db()
    # 5 orders each (1.00 charged), then 0.40 back to the first and 1.00 to the second.
    assert customers[0].wallet.balance == Decimal("495.40000")
    assert customers[1].wallet.balance == Decimal("496.00000")
    _books_clean()


def test_a_repeated_batch_refunds_nothing_twice(upstream):
    customers = _customers(2)
    orders = _placed(customers, 20)
    stale = [Order.objects.get(pk=o.pk) for o in orders]  # a second worker's copies
    # The same copies once more (their next poll in memory as read).
    _batch(orders)
    again, _ = _batch(stale)
    assert again.changed == 0  # every move found its row moved first: nothing written
    assert _refunds() == 4
    assert Notification.objects.count() == 4
    assert OrderStatusChange.objects.filter(source="poll").count() == 18
    _books_clean()


def test_a_crash_mid_batch_leaves_nothing_and_the_retry_applies_it_once(upstream, monkeypatch):
    customers = _customers(2)
    orders = _placed(customers, 20)
    provider = orders[0].provider

    def crash(**kwargs):
        raise DatabaseError("connection lost after the ledger")

    monkeypatch.setattr("orders.services.poll_writes.notify_many", crash)
    result = provider_poll_orders(provider=provider, now=timezone.now())
    assert result.errors == 20 and result.changed == 0
    # Rolled back whole: no status, history, refund or wallet change; postponed, not lost.
    assert _refunds() == 0 and OrderStatusChange.objects.filter(source="poll").count() == 0
    rows = Order.objects.filter(pk__in=[o.pk for o in orders])
    assert set(rows.values_list("status", flat=True)) == {S.PENDING}
    assert set(rows.values_list("poll_errors", flat=True)) == {1}
    customers[0].wallet.refresh_from_db()
    assert customers[0].wallet.balance == Decimal("490")
    monkeypatch.setattr("orders.services.poll_writes.notify_many", notify_many)
    retry = provider_poll_orders(provider=provider, now=timezone.now() + timedelta(hours=1))
    assert retry.changed == 18 and _refunds() == 4 and Notification.objects.count() == 4
    _books_clean()


def test_an_open_cancel_request_is_settled_by_the_final_status(upstream):
    customers = _customers(1)
    orders = _placed(customers, 10)
    canceled = next(o for o in orders if o.upstream_order_id == "u1")
    request = CancelRequest.objects.create(order_id=canceled.pk, status=CancelRequest.Status.SENT)
    _batch(orders)
    request.refresh_from_db()
    assert request.status == CancelRequest.Status.COMPLETED and request.finished_at is not None


def test_a_big_sweep_over_many_customers_keeps_the_ledger_clean(upstream):
    customers = _customers(7)
    orders = _placed(customers, 350)
    result = provider_poll_orders(provider=orders[0].provider, now=timezone.now())
    assert len(upstream) == 4  # ⌈350 / 100⌉ upstream calls
    assert result.polled == 350 and result.changed == 315
    assert _refunds() == 70
    refunded = sum(Order.objects.values_list("refunded", flat=True), Decimal(0))
    assert refunded == 35 * Decimal("0.4") + 35 * CHARGE
    _books_clean()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_concurrent_sweeps_refund_each_order_once(upstream):
    customers = _customers(3)
    orders = _placed(customers, 60)
    provider = orders[0].provider
    now = timezone.now()
    results = run_in_threads(2, lambda i: provider_poll_orders(provider=provider, now=now))
    assert all(isinstance(r, PollResult) for r in results), results
    assert sum(r.changed for r in results) == 54  # each move written by one sweep only
    assert _refunds() == 12 and Notification.objects.count() == 12
    assert OrderStatusChange.objects.filter(source="poll").count() == 54
    _books_clean()


def test_one_run_reads_the_due_orders_chunk_by_chunk_until_none_is_left(upstream, monkeypatch):
    monkeypatch.setattr("orders.services.polling.POLL_CHUNK", 8)
    orders = _placed(_customers(2), 20)
    result = provider_poll_orders(provider=orders[0].provider, now=timezone.now())
    assert result.polled == 20 and result.changed == 18
    assert [len(ids) for ids in upstream] == [8, 8, 4]  # each chunk its own calls
    assert not Order.objects.filter(next_poll_at__lte=timezone.now()).exists()


def test_a_run_stops_at_its_limit_and_leaves_the_rest_due(upstream, monkeypatch):
    monkeypatch.setattr("orders.services.polling.POLL_CHUNK", 8)
    orders = _placed(_customers(1), 20)
    result = provider_poll_orders(provider=orders[0].provider, now=timezone.now(), limit=12)
    assert result.polled == 12 and [len(ids) for ids in upstream] == [8, 4]
    assert Order.objects.filter(next_poll_at__lte=timezone.now()).count() == 8
