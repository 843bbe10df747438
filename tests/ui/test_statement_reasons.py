"""Issue 17: each statement row says why it is there (Partial refund of order 12, Cancel refund,
Deposit by card (payment #3), Coupon bonus CODE, ...), with a link to the order or payment, in
two lookups per page whatever its length, and the same reason in the CSV."""

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import LedgerEntry, Payment
from accounts.services import balance_adjust, balance_credit
from orders.models import Order, OrderStatusChange
from orders.services.status import order_set_status

pytestmark = pytest.mark.django_db


def _paid(user, gateway_id: str, amount: str = "20.00", method: str = "stripe") -> Payment:
    payment = Payment.objects.create(
        user=user,
        method=method,
        status=Payment.Status.PAID,
        amount=Decimal(amount),
        currency="USD",
        gateway_id=gateway_id,
    )
    balance_credit(
        user=user,
        amount=Decimal(amount),
        kind=LedgerEntry.Kind.DEPOSIT,
        payment_ref=f"{method}:{gateway_id}",
        idempotency_key=f"deposit:{method}:{gateway_id}",
        memo=f"Deposit by card (payment #{payment.pk})",
    )
    return payment


def _settle(order: Order, status: str, remains: int | None = None) -> None:
    order_set_status(order=order, new=status, source=OrderStatusChange.Source.POLL, remains=remains)


def _reasons(client) -> list[str]:
    page = client.get(reverse("funds")).content.decode()
    return [part.split("</span>", 1)[0] for part in page.split('data-testid="reason">')[1:]]


def test_every_kind_of_entry_says_why(alice_client, alice, bob, staff, default_service, place):
    payment = _paid(alice, "pi_1")
    balance_credit(
        user=alice,
        amount=Decimal("2"),
        kind=LedgerEntry.Kind.BONUS,
        payment_ref="stripe:pi_1",
        idempotency_key="coupon:stripe:pi_1",
        memo=f"Code SPRING on deposit #{payment.pk}",
    )
    balance_credit(
        user=alice,
        amount=Decimal("1"),
        kind=LedgerEntry.Kind.BONUS,
        payment_ref="stripe:pi_1",
        idempotency_key="bonus:stripe:pi_1",
        memo=f"Bonus +5 % on deposit #{payment.pk} (Spring)",
    )
    balance_credit(
        user=alice,
        amount=Decimal("10"),
        kind=LedgerEntry.Kind.BONUS,
        idempotency_key="coupon:9:1:1",
        memo="Balance code GIFT-10",
    )
    balance_credit(user=alice, amount=Decimal("3"), kind=LedgerEntry.Kind.COMMISSION, memo="x")
    balance_adjust(user=alice, amount=Decimal("-1"), created_by=staff, reason="Correction")
    balance_adjust(user=alice, amount=Decimal("4"), created_by=staff, reason="Goodwill")
    partial = place(default_service, status="in_progress")
    _settle(partial, "partial", remains=40)
    canceled = place(default_service, status="in_progress")
    _settle(canceled, "canceled")
    # Bob's payment with the same gateway id is not Alice's: no link to it.
    Payment.objects.create(
        user=bob, method="stripe", amount=1, currency="USD", gateway_id="pi_2", status="paid"
    )

    page = alice_client.get(reverse("funds")).content.decode()
    reasons = _reasons(alice_client)
    pay_url = reverse("payment_detail", args=[payment.public_id])
    assert reasons == [
        f'<a href="{reverse("order_detail", args=[canceled.pk])}">Cancel refund of order {canceled.pk}</a>',
        f'<a href="{reverse("order_detail", args=[canceled.pk])}">Order {canceled.pk}</a>',
        f'<a href="{reverse("order_detail", args=[partial.pk])}">Partial refund of order {partial.pk}</a>',
        f'<a href="{reverse("order_detail", args=[partial.pk])}">Order {partial.pk}</a>',
        "Deposit by staff",
        "Adjustment by staff",
        f'<a href="{reverse("referrals")}">Referral commission</a>',
        "Gift card GIFT-10",
        f'<a href="{pay_url}">Deposit bonus</a>',
        f'<a href="{pay_url}">Coupon bonus SPRING</a>',
        f'<a href="{pay_url}">Deposit by card (payment #{payment.pk})</a>',
        "Deposit",  # the fixture's opening balance: no payment, no member of staff
    ]
    assert "Opening balance" in page
    # The memo still follows when it says more than the reason.
    assert "Goodwill" in page and "Correction" in page and "40 of 100 not delivered" in page
    assert f"Bonus +5 % on deposit #{payment.pk} (Spring)" in page

    body = b"".join(alice_client.get(reverse("funds_csv")).streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["reason"] for r in rows][-2:] == [
        f"Order {canceled.pk}",
        f"Cancel refund of order {canceled.pk}",
    ]
    assert rows[1]["reason"] == f"Deposit by card (payment #{payment.pk})"


def test_a_subscription_refund_at_completion_says_so(alice_client, alice, default_service, place):
    order = place(default_service, status="in_progress")
    LedgerEntry.objects.filter(order_ref=order.pk)  # charged
    Order.objects.filter(pk=order.pk).update(status="completed")
    balance_credit(
        user=alice, amount=Decimal("0.1"), kind="refund", order_ref=order.pk, memo="Refund: x"
    )
    assert _reasons(alice_client)[0].endswith(f">Refund of the unused part of order {order.pk}</a>")


def test_the_page_costs_the_same_queries_for_3_or_40_rows(
    alice_client, alice, default_service, place
):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get(reverse("funds")).status_code == 200
        return len(queries)

    _paid(alice, "pi_first", amount="1")
    order = place(default_service, status="in_progress")
    _settle(order, "partial", remains=10)
    few = count()
    for n in range(6):
        _paid(alice, f"pi_{n}", amount="1")
        done = place(default_service, status="in_progress")
        _settle(done, "canceled" if n % 2 else "partial", remains=5)
        balance_credit(user=alice, amount=Decimal("1"), kind="commission")
    assert LedgerEntry.objects.filter(user=alice).count() > 20
    assert count() == few
