"""Real races on PostgreSQL: threads with their own connections debit one wallet at once."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import LedgerEntry, Wallet
from accounts.services import InsufficientFunds, balance_credit, balance_debit, customer_create
from tests.threads import run_in_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def test_fifty_concurrent_debits_against_a_balance_that_covers_twenty():
    user = customer_create(username="racer", opening_balance=Decimal("20.00000"))

    results = run_in_threads(
        50, lambda i: balance_debit(user=user, amount=Decimal("1"), order_ref=1000 + i)
    )

    successes = [r for r in results if isinstance(r, LedgerEntry)]
    refusals = [r for r in results if isinstance(r, InsufficientFunds)]
    assert len(successes) == 20
    assert len(refusals) == 30
    assert Wallet.objects.get(user=user).balance == Decimal("0")
    assert sorted(e.balance_after for e in successes) == [Decimal(n) for n in range(20)]
    call_command("check_ledger")


def test_concurrent_refunds_of_one_order_pay_once():
    user = customer_create(username="refundee", opening_balance=Decimal("10"))
    balance_debit(user=user, amount=Decimal("10"), order_ref=77)

    results = run_in_threads(
        10,
        lambda i: balance_credit(
            user=user, amount=Decimal("10"), kind=LedgerEntry.Kind.REFUND, order_ref=77
        ),
    )

    assert all(isinstance(r, LedgerEntry) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Wallet.objects.get(user=user).balance == Decimal("10.00000")
    call_command("check_ledger")


def test_one_staff_form_submitted_at_once_from_ten_threads_writes_once():
    from accounts.models import AdminAuditLog, User
    from accounts.services import StaffAdjustment, balance_adjust_by_staff

    user = customer_create(username="credited", opening_balance=Decimal("1"))
    staff = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123")

    results = run_in_threads(
        10,
        lambda i: balance_adjust_by_staff(
            user=user, amount=Decimal("5"), staff=staff, reason="bank", idempotency_key="form-1"
        ),
    )

    assert all(isinstance(r, StaffAdjustment) for r in results), results
    assert sum(not r.replayed for r in results) == 1
    assert len({r.entry.pk for r in results}) == 1
    assert Wallet.objects.get(user=user).balance == Decimal("6.00000")
    assert AdminAuditLog.objects.filter(action="balance_adjust").count() == 1
    call_command("check_ledger")


def test_one_order_charge_sent_from_ten_threads_debits_once():
    # The entry is inserted ON CONFLICT DO NOTHING and the wallet is updated only from the
    # inserted entry: the losers get the first entry back and the balance moves once.
    user = customer_create(username="replayer", opening_balance=Decimal("10"))

    results = run_in_threads(
        10, lambda i: balance_debit(user=user, amount=Decimal("3"), order_ref=4242)
    )

    assert all(isinstance(r, LedgerEntry) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert LedgerEntry.objects.filter(order_ref=4242, kind="charge").count() == 1
    assert Wallet.objects.get(user=user).balance == Decimal("7.00000")
    call_command("check_ledger")


def test_two_charges_against_a_balance_that_covers_one_one_succeeds():
    user = customer_create(username="pair", opening_balance=Decimal("5"))

    results = run_in_threads(
        2, lambda i: balance_debit(user=user, amount=Decimal("4"), order_ref=5000 + i)
    )

    assert sorted(type(r).__name__ for r in results) == ["InsufficientFunds", "LedgerEntry"]
    refused = next(r for r in results if isinstance(r, InsufficientFunds))
    assert refused.balance == Decimal("1.00000")  # it read the winner's balance after
    assert Wallet.objects.get(user=user).balance == Decimal("1.00000")
    call_command("check_ledger")
