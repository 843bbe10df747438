"""The cockpit's daily summary (OrderDaySummary, orders.services.summary): kept in the
transactions that create, settle, refund and move orders, equal to a fresh scan of the orders
afterwards; `order_summary --check` finds a difference and `--rebuild` repairs it."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from accounts.models import Wallet
from orders.models import Order, OrderDaySummary, OrderStatusChange
from orders.services import OrderConflict, order_create, order_set_status
from orders.services.summary import daily_summary_mismatches, daily_summary_rebuild
from tests.orders.factories import make_provider, make_service
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db
S = Order.Status
SRC = OrderStatusChange.Source


def _order(user, service, quantity="300") -> Order:
    return order_create(
        user=user,
        service=service,
        data={"link": "https://instagram.com/p/sum", "quantity": quantity},
    )


def _settle(order: Order, new: str, **fields) -> Order:
    if order.status == S.QUEUED and new != S.CANCELED:
        order_set_status(order=order, new=S.PENDING, source=SRC.ADMIN)
    return order_set_status(order=order, new=new, source=SRC.ADMIN, **fields)


def _row(**key) -> OrderDaySummary:
    return OrderDaySummary.objects.get(day=timezone.localdate(), **key)


def test_summary_follows_create_settle_partial_refund_cancel_and_provider_move(alice):
    provider = make_provider(name="summary-a")
    other = make_provider(name="summary-b")
    service = make_service(provider=provider, sandbox_id=1, rate="2")  # charge 0.6 per 300
    manual = make_service(order_type="Default", rate="2")  # no provider: cost unknown
    completed, partial, canceled, moved, still_open = (_order(alice, service) for _ in range(5))
    _order(alice, manual)
    cost = completed.cost
    assert cost and completed.charge == Decimal("0.60000")

    _settle(completed, S.COMPLETED)
    _settle(partial, S.PARTIAL, remains=100)  # a third undelivered: a third refunded
    _settle(canceled, S.CANCELED)
    order_set_status(order=moved, new=S.PENDING, source=SRC.ADMIN, provider=other)

    assert daily_summary_mismatches() == []
    row = _row(service_id=service.pk, provider_id=provider.pk)
    assert (row.orders, row.completed, row.partial, row.canceled) == (4, 1, 1, 1)
    assert row.charged == Decimal("2.40000")
    assert row.refunded == Decimal("0.80000")  # 0.20 of the partial + the whole 0.60
    share = (cost * Decimal("0.40") / Decimal("0.60")).quantize(Decimal("0.00001"))
    assert row.cost == cost + share + 0 + cost  # completed, partial, canceled, open
    moved_row = _row(service_id=service.pk, provider_id=other.pk)
    assert (moved_row.orders, moved_row.charged, moved_row.cost) == (1, Decimal("0.6"), cost)
    manual_row = _row(service_id=manual.pk, provider_id=0)  # 0: not placed at a provider
    assert (manual_row.orders, manual_row.cost) == (1, Decimal(0))
    assert still_open.status == S.QUEUED
    assert Wallet.objects.get(user=alice).order_count == 6


def test_a_move_that_loses_its_race_leaves_the_summary_as_it_was(alice):
    service = make_service(provider=make_provider(name="race"), sandbox_id=1, rate="2")
    order = _order(alice, service)
    stale = Order.objects.get(pk=order.pk)
    order_set_status(order=order, new=S.CANCELED, source=SRC.ADMIN)
    before = list(OrderDaySummary.objects.values())
    with pytest.raises(OrderConflict):
        order_set_status(order=stale, new=S.CANCELED, source=SRC.ADMIN)  # already canceled
    assert list(OrderDaySummary.objects.values()) == before
    assert daily_summary_mismatches() == []


def test_days_are_the_panels_time_zone(alice, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # UTC+9
    service = make_service(provider=make_provider(name="tz"), sandbox_id=1, rate="2")
    order = _order(alice, service)
    late = datetime.datetime(2026, 5, 14, 20, 0, tzinfo=datetime.UTC)  # 05:00 on the 15th
    Order.objects.filter(pk=order.pk).update(created_at=late)
    daily_summary_rebuild()
    assert list(OrderDaySummary.objects.values_list("day", flat=True)) == [
        datetime.date(2026, 5, 15)
    ]


def test_check_finds_a_difference_and_rebuild_repairs_it(alice):
    service = make_service(provider=make_provider(name="check"), sandbox_id=1, rate="2")
    _settle(_order(alice, service), S.PARTIAL, remains=30)
    _order(alice, service)
    call_command("order_summary", check=True, stdout=StringIO())
    OrderDaySummary.objects.update(refunded=F("refunded") + 1, orders=F("orders") - 1)
    Wallet.objects.filter(user=alice).update(order_count=7)
    out = StringIO()
    with pytest.raises(CommandError, match=r"1 summary row\(s\) and 1 order counter"):
        call_command("order_summary", check=True, stdout=out)
    assert "orders 1 (scan 2)" in out.getvalue()
    assert f"user id {alice.pk}: order_count 7, orders 2" in out.getvalue()
    OrderDaySummary.objects.create(day=datetime.date(2020, 1, 1), service_id=service.pk, orders=3)
    call_command("order_summary", rebuild=True, stdout=StringIO())
    call_command("order_summary", check=True, stdout=StringIO())
    assert OrderDaySummary.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_and_settles_of_one_row_lose_no_update(alice, bob):
    """Eight threads create and settle orders of the same service on the same day (the same
    summary row) at once: the increments in SQL add up, none overwrites another."""
    service = make_service(provider=make_provider(name="busy"), sandbox_id=1, rate="2")
    Wallet.objects.filter(user=bob).update(balance=Decimal(50))

    def work(index: int) -> None:
        order = _order(alice if index % 2 else bob, service)
        _settle(order, [S.COMPLETED, S.PARTIAL, S.CANCELED][index % 3], remains=150)

    results = run_in_threads(8, work)
    assert all(result is None for result in results), results
    row = OrderDaySummary.objects.get(service_id=service.pk)
    assert (row.orders, row.completed + row.partial + row.canceled) == (8, 8)
    assert daily_summary_mismatches() == []
    call_command("order_summary", check=True, stdout=StringIO())
