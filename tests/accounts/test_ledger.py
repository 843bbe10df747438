from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from accounts.models import LedgerEntry, Wallet
from accounts.selectors import ledger_find_mismatches
from accounts.services import (
    InsufficientFunds,
    InvalidAmount,
    balance_adjust,
    balance_credit,
    balance_debit,
)

pytestmark = pytest.mark.django_db


def test_customer_create_credits_opening_balance_through_the_ledger(alice):
    alice.refresh_from_db()
    assert alice.balance == Decimal("50.00000")
    (entry,) = LedgerEntry.objects.filter(user=alice)
    assert entry.kind == LedgerEntry.Kind.DEPOSIT
    assert entry.amount == Decimal("50.00000")
    assert entry.balance_after == Decimal("50.00000")


def test_balance_debit_writes_a_signed_entry_and_updates_the_balance(alice):
    entry = balance_debit(user=alice, amount=Decimal("12.345678"), order_ref=7, memo="order 7")
    assert entry.amount == Decimal("-12.34568")  # quantized half up to 5 places
    assert entry.balance_after == Decimal("37.65432")
    assert Wallet.objects.get(user=alice).balance == Decimal("37.65432")
    assert ledger_find_mismatches() == []


def test_balance_debit_rejects_insufficient_balance_and_leaves_no_entry(alice):
    with pytest.raises(InsufficientFunds) as excinfo:
        balance_debit(user=alice, amount=Decimal("50.00001"))
    assert excinfo.value.balance == Decimal("50.00000")
    assert LedgerEntry.objects.filter(user=alice).count() == 1
    assert Wallet.objects.get(user=alice).balance == Decimal("50.00000")


def test_a_refused_debit_leaves_the_callers_transaction_usable(alice):
    # One statement, no savepoint: the refusal wrote nothing and is raised after it.
    with transaction.atomic():
        with pytest.raises(InsufficientFunds):
            balance_debit(user=alice, amount=Decimal("60"), order_ref=8)
        balance_debit(user=alice, amount=Decimal("20"), order_ref=8)
    assert Wallet.objects.get(user=alice).balance == Decimal("30.00000")
    assert ledger_find_mismatches() == []


def test_a_replayed_charge_returns_the_first_entry_even_when_the_balance_no_longer_covers_it(
    alice,
):
    first = balance_debit(user=alice, amount=Decimal("40"), order_ref=9)
    assert balance_debit(user=alice, amount=Decimal("40"), order_ref=9).pk == first.pk
    assert Wallet.objects.get(user=alice).balance == Decimal("10.00000")


def test_alongside_writes_happen_only_with_the_debit(alice):
    from accounts.services import Alongside

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE alongside_probe (user_id bigint)")
    probe = Alongside("INSERT INTO alongside_probe SELECT user_id FROM debited")
    with pytest.raises(InsufficientFunds):
        balance_debit(user=alice, amount=Decimal("51"), order_ref=10, alongside=[probe])
    balance_debit(user=alice, amount=Decimal("1"), order_ref=11, alongside=[probe])
    with pytest.raises(IntegrityError):  # a replay: the rows meant for a new entry are not made
        balance_debit(user=alice, amount=Decimal("1"), order_ref=11, alongside=[probe])
    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id FROM alongside_probe")
        assert cursor.fetchall() == [(alice.pk,)]
    assert Wallet.objects.get(user=alice).balance == Decimal("49.00000")


@pytest.mark.parametrize(
    "amount", ["0", "-1", "0.000001", "100000000000000", "1e23", "-1e30", "Infinity"]
)
def test_balance_credit_rejects_zero_negative_and_huge_amounts(alice, amount):
    with pytest.raises(InvalidAmount):
        balance_credit(user=alice, amount=Decimal(amount))
    assert LedgerEntry.objects.filter(user=alice).count() == 1


def test_refund_of_an_order_is_paid_once_however_often_it_is_asked(alice):
    balance_debit(user=alice, amount=Decimal("10"), order_ref=42)
    first = balance_credit(
        user=alice, amount=Decimal("4"), kind=LedgerEntry.Kind.REFUND, order_ref=42
    )
    again = balance_credit(
        user=alice, amount=Decimal("4"), kind=LedgerEntry.Kind.REFUND, order_ref=42
    )
    assert again.pk == first.pk
    assert Wallet.objects.get(user=alice).balance == Decimal("44.00000")
    assert ledger_find_mismatches() == []


def test_idempotency_key_replays_the_first_entry(alice):
    first = balance_credit(user=alice, amount=Decimal("5"), idempotency_key="pay-1")
    again = balance_credit(user=alice, amount=Decimal("5"), idempotency_key="pay-1")
    assert first.pk == again.pk
    assert Wallet.objects.get(user=alice).balance == Decimal("55.00000")


def test_idempotency_key_of_another_customer_is_refused(alice, bob):
    balance_credit(user=alice, amount=Decimal("5"), idempotency_key="pay-2")
    with pytest.raises(IntegrityError):
        balance_credit(user=bob, amount=Decimal("5"), idempotency_key="pay-2")
    assert bob.balance == Decimal("0")


def test_database_refuses_a_second_refund_row_for_one_order(alice):
    balance_credit(user=alice, amount=Decimal("1"), kind=LedgerEntry.Kind.REFUND, order_ref=9)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            user=alice, kind="refund", amount=Decimal("1"), balance_after=Decimal("52"), order_ref=9
        )


def test_database_refuses_a_negative_balance(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(user=alice).update(balance=Decimal("-0.00001"))


def test_ledger_entries_are_append_only(alice):
    entry = LedgerEntry.objects.get(user=alice)
    entry.memo = "changed"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()


def test_balance_adjust_needs_a_reason_and_records_who(alice, staff):
    with pytest.raises(InvalidAmount):
        balance_adjust(user=alice, amount=Decimal("-5"), created_by=staff, reason="  ")
    entry = balance_adjust(user=alice, amount=Decimal("-5"), created_by=staff, reason="chargeback")
    assert (entry.kind, entry.amount, entry.created_by, entry.memo) == (
        "adjustment",
        Decimal("-5.00000"),
        staff,
        "chargeback",
    )


def test_check_ledger_finds_a_tampered_balance_and_a_broken_chain(alice, bob):
    balance_credit(user=bob, amount=Decimal("3"))
    call_command("check_ledger")  # clean
    Wallet.objects.filter(user=alice).update(balance=Decimal("49"))
    with (
        connection.cursor() as cursor
    ):  # bypass the model's append-only guard, as an attacker would
        cursor.execute(
            "UPDATE accounts_ledgerentry SET balance_after = 4 WHERE user_id = %s", [bob.pk]
        )
    problems = {p.username: p.problem for p in ledger_find_mismatches()}
    assert "sums to 50.00000 but the balance is 49.00000" in problems["alice"]
    assert "chain gives 3.00000" in problems["bob"]
    with pytest.raises(CommandError, match="2 ledger mismatch"):
        call_command("check_ledger")


# --- A debit that pays for a new row (the new order: orders.services.create) ---------------------


def _new_order(user, **fields):
    from tests.api.factories import OrderFactory, ProviderFactory, ServiceFactory

    fields.setdefault("service", ServiceFactory())
    fields.setdefault("provider", ProviderFactory())
    return OrderFactory.build(user=user, params={"comments": ["a", "b"]}, **fields)


def _columns(order) -> dict:
    return {
        f.attname: getattr(order, f.attname)
        for f in type(order)._meta.concrete_fields
        if f.attname not in ("id", "updated_at")
    }


def test_a_debit_that_pays_for_a_new_row_writes_it_with_the_id_it_drew(alice):
    from accounts.services import DRAWN_ID, Alongside
    from orders.models import Order

    order = _new_order(alice)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE drawn_probe (order_id bigint)")
    entry = balance_debit(
        user=alice,
        amount=order.charge,
        memo=f"Order {DRAWN_ID}: keeps a later {DRAWN_ID}",
        pays_for=order,
        alongside=[Alongside("INSERT INTO drawn_probe SELECT drawn.id FROM debited, drawn")],
    )
    assert order.pk is not None and not order._state.adding and order._state.db == "default"
    assert entry.order_ref == order.pk
    assert entry.memo == f"Order {order.pk}: keeps a later {{id}}"
    stored = Order.objects.get(pk=order.pk)
    assert _columns(stored) == _columns(order)  # every column as the instance holds it
    assert stored.updated_at == order.updated_at is not None  # auto_now, set on the instance too
    assert LedgerEntry.objects.get(pk=entry.pk).memo == entry.memo
    with connection.cursor() as cursor:
        cursor.execute("SELECT order_id FROM drawn_probe")
        assert cursor.fetchall() == [(order.pk,)]
    assert ledger_find_mismatches() == []


def test_the_row_a_debit_pays_for_is_what_save_writes(alice):
    from orders.models import Order

    paid = _new_order(alice)
    same = {f: getattr(paid, f) for f in ("service", "provider", "upstream_order_id", "created_at")}
    saved = _new_order(alice, **same)
    balance_debit(user=alice, amount=paid.charge, pays_for=paid)
    saved.save()
    rows = Order.objects.filter(pk__in=[paid.pk, saved.pk]).order_by("pk")
    assert [_columns(row) for row in rows] == [_columns(paid), _columns(paid)]


def test_a_refused_debit_writes_nothing_of_the_row_it_would_pay_for(alice):
    from orders.models import Order

    order = _new_order(alice, charge=Decimal("50.00001"))
    with pytest.raises(InsufficientFunds):
        balance_debit(user=alice, amount=order.charge, pays_for=order)
    assert order.pk is None and order._state.adding
    assert not Order.objects.exists() and LedgerEntry.objects.filter(user=alice).count() == 1


def test_a_debit_pays_only_for_a_new_row(alice):
    order = _new_order(alice)
    with pytest.raises(ValueError):
        balance_debit(user=alice, amount=Decimal("1"), order_ref=5, pays_for=order)
    order.save()
    with pytest.raises(ValueError):
        balance_debit(user=alice, amount=Decimal("1"), pays_for=order)
    assert LedgerEntry.objects.filter(user=alice).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_debit_that_committed_on_its_own_stands_when_its_low_balance_notice_fails(alice, caplog):
    from unittest import mock

    from accounts.models import NotificationPreference

    NotificationPreference.objects.update_or_create(
        user=alice, defaults={"low_balance_threshold": Decimal("40")}
    )
    failing = mock.patch("accounts.services.notify_if_balance_low", side_effect=RuntimeError)
    with failing as notify:
        entry = balance_debit(user=alice, amount=Decimal("20"), order_ref=70)
    notify.assert_called_once()
    assert LedgerEntry.objects.get(pk=entry.pk).balance_after == Decimal("30.00000")
    assert "low-balance notice of ledger entry" in caplog.text
    # Inside a caller's transaction the caller decides: the error goes up, nothing is kept.
    NotificationPreference.objects.filter(user=alice).update(low_balance_threshold=Decimal("15"))
    with failing, pytest.raises(RuntimeError), transaction.atomic():
        balance_debit(user=alice, amount=Decimal("20"), order_ref=71, memo="crosses again")
    assert not LedgerEntry.objects.filter(order_ref=71).exists()
