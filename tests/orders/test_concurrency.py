"""Real races on PostgreSQL: threads with their own connections."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import LedgerEntry
from accounts.services import customer_create
from orders.models import CancelRequest, Order, Refill
from orders.services import (
    OrderError,
    order_cancel_request,
    order_create,
    order_refill_request,
    order_submit,
)
from tests.orders.factories import make_provider, make_service
from tests.orders.sandbox import KEY
from tests.threads import run_in_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def test_concurrent_creates_with_one_key_make_one_order():
    user = customer_create(username="racer", opening_balance=Decimal("50"))
    service = make_service(provider=make_provider(), sandbox_id=1, rate="1")
    data = {"link": "https://instagram.com/p/race", "quantity": "1000"}
    results = run_in_threads(
        10, lambda i: order_create(user=user, service=service, data=data, idempotency_key="once")
    )
    assert all(isinstance(r, Order) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Order.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="charge").count() == 1
    user.wallet.refresh_from_db()
    assert user.wallet.balance == Decimal("49")
    call_command("check_ledger", verbosity=0)


def test_concurrent_same_key_different_requests_one_wins():
    user = customer_create(username="racer2", opening_balance=Decimal("50"))
    service = make_service(provider=make_provider(), sandbox_id=1, rate="1")
    results = run_in_threads(
        6,
        lambda i: order_create(
            user=user,
            service=service,
            idempotency_key="k",
            data={"link": "https://instagram.com/p/race", "quantity": str(100 + i)},
        ),
    )
    orders = [r for r in results if isinstance(r, Order)]
    errors = [r for r in results if isinstance(r, OrderError)]
    assert len(orders) == 1 and len(errors) == 5
    assert all(e.field == "idempotency_key" for e in errors)
    assert LedgerEntry.objects.filter(kind="charge").count() == 1


def test_concurrent_submits_place_once(sandbox, monkeypatch):
    # Eight workers race for one order; keep the create's own (eager) placement out of it.
    monkeypatch.setattr("orders.services.create.enqueue_order_submit", lambda order_id: None)
    user = customer_create(username="racer3", opening_balance=Decimal("50"))
    provider = make_provider(api_url=sandbox.api_url, key=KEY)
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(
        user=user,
        service=service,
        data={"link": "https://instagram.com/p/submitrace", "quantity": "100"},
    )
    sandbox.fault("slow", seconds=0.5)
    results = run_in_threads(8, lambda i: order_submit(order_id=order.pk))
    placed = [r for r in results if isinstance(r, Order)]
    assert len(placed) == 1 and results.count(None) == 7
    assert len(sandbox.orders()) == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING and order.submit_attempts == 1


def test_concurrent_cancel_and_refill_requests_make_one_each(sandbox, monkeypatch):
    # Keep the requests open: an eager send that the sandbox refuses would close the first one
    # (a new request is then rightly allowed) before the others check.
    monkeypatch.setattr(
        "orders.services.requests.enqueue_provider_send_refills", lambda provider_id: None
    )
    monkeypatch.setattr(
        "orders.services.requests.enqueue_provider_send_cancels", lambda provider_id: None
    )
    user = customer_create(username="racer4", opening_balance=Decimal("50"))
    provider = make_provider(api_url=sandbox.api_url, key=KEY)
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(
        user=user,
        service=service,
        data={"link": "https://instagram.com/p/reqrace", "quantity": "100"},
    )
    order_submit(order_id=order.pk)
    results = run_in_threads(6, lambda i: order_cancel_request(user=user, order=order))
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(isinstance(r, OrderError) for r in results if isinstance(r, Exception))
    assert CancelRequest.objects.count() == 1
    Order.objects.filter(pk=order.pk).update(status=Order.Status.COMPLETED)
    order.refresh_from_db()
    results = run_in_threads(6, lambda i: order_refill_request(user=user, order=order))
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert Refill.objects.count() == 1


def test_concurrent_orders_against_a_balance_that_covers_one_place_one():
    from accounts.services import InsufficientFunds
    from orders.models import OrderDaySummary, OrderStatusChange

    user = customer_create(username="racer3", opening_balance=Decimal("1.5"))
    service = make_service(provider=make_provider(), sandbox_id=1, rate="1")
    data = {"link": "https://instagram.com/p/race", "quantity": "1000"}  # charges 1
    results = run_in_threads(4, lambda i: order_create(user=user, service=service, data=data))
    orders = [r for r in results if isinstance(r, Order)]
    assert len(orders) == 1 and sum(isinstance(r, InsufficientFunds) for r in results) == 3
    assert Order.objects.count() == 1  # the refused ones' orders rolled back
    assert OrderStatusChange.objects.filter(source="create").count() == 1
    assert OrderDaySummary.objects.get().orders == 1
    user.wallet.refresh_from_db()
    assert (user.wallet.balance, user.wallet.order_count) == (Decimal("0.5"), 1)
    call_command("check_ledger", verbosity=0)
    call_command("order_summary", "--check", verbosity=0)
