"""The staff services: a balance change and its audit row in one transaction, and the suspend
and API-key switches writing their audit rows themselves."""

from decimal import Decimal

import pytest

from accounts.models import AdminAuditLog, ApiKey, LedgerEntry
from accounts.selectors import api_key_get_user
from accounts.services import (
    InsufficientFunds,
    InvalidAmount,
    api_key_issue,
    api_key_set_active,
    balance_adjust_by_staff,
    customer_suspend,
    customer_unsuspend,
)

pytestmark = pytest.mark.django_db


def test_a_refused_debit_writes_no_ledger_entry_and_no_audit_row(alice, staff):
    with pytest.raises(InsufficientFunds):
        balance_adjust_by_staff(user=alice, amount=Decimal("-99"), staff=staff, reason="chargeback")
    with pytest.raises(InvalidAmount):
        balance_adjust_by_staff(user=alice, amount=Decimal("5"), staff=staff, reason="  ")
    assert LedgerEntry.objects.filter(user=alice).count() == 1  # the opening balance
    assert not AdminAuditLog.objects.exists()


def test_a_repeated_one_time_key_writes_one_entry_and_one_audit_row(alice, staff):
    first = balance_adjust_by_staff(
        user=alice,
        amount=Decimal("-7.5"),
        staff=staff,
        reason="Chargeback 42",
        idempotency_key="k1",
    )
    again = balance_adjust_by_staff(
        user=alice,
        amount=Decimal("-7.5"),
        staff=staff,
        reason="Chargeback 42",
        idempotency_key="k1",
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.entry.pk == first.entry.pk
    assert LedgerEntry.objects.filter(user=alice, idempotency_key="k1").count() == 1
    audit = AdminAuditLog.objects.get()
    assert (audit.action, audit.area, audit.actor, audit.object_id) == (
        "balance_adjust",
        "money",
        staff,
        str(alice.pk),
    )
    assert audit.before == {"balance": "50.00000"}
    assert audit.after == {"balance": "42.50000", "ledger_entry": first.entry.pk}
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("42.50000")


def test_customer_suspend_spares_the_actor_and_audits_each_selected(alice, bob, staff):
    from accounts.models import User

    selected = User.objects.filter(pk__in=[alice.pk, bob.pk, staff.pk])
    assert customer_suspend(customers=selected, actor=staff) == 2
    assert set(User.objects.filter(is_active=False).values_list("pk", flat=True)) == {
        alice.pk,
        bob.pk,
    }
    rows = AdminAuditLog.objects.filter(action="suspend")
    assert {r.object_id for r in rows} == {str(alice.pk), str(bob.pk), str(staff.pk)}
    assert all(r.after == {"suspended": 2} and r.area == "access" for r in rows)
    assert customer_unsuspend(customers=User.objects.filter(pk=alice.pk), actor=staff) == 1
    assert AdminAuditLog.objects.get(action="unsuspend").after == {"unsuspended": 1}


def test_api_key_set_active_audits_the_keys_or_the_selected_customers(alice, staff):
    from accounts.models import User

    key = api_key_issue(user=alice)
    keys = ApiKey.objects.filter(user=alice)
    assert api_key_set_active(api_keys=keys, active=False, actor=staff) == 1
    assert api_key_get_user(raw_key=key.raw) is None
    row = AdminAuditLog.objects.get(action="disable_api_key")
    assert (row.object_type, row.after) == ("accounts.apikey", {"api_keys_disabled": 1})
    customers = User.objects.filter(pk=alice.pk)
    assert api_key_set_active(api_keys=keys, active=True, actor=staff, selection=customers) == 1
    row = AdminAuditLog.objects.get(action="enable_api_key")
    assert (row.object_type, row.object_id) == ("accounts.user", str(alice.pk))
    assert "API keys of the selected customers" in row.summary
    assert api_key_get_user(raw_key=key.raw) == alice


# --- The repeat guard (issue 11 #9) ----------------------------------------------------------


def _credit(alice, staff, amount: str, key: str, **kwargs):
    return balance_adjust_by_staff(
        user=alice,
        amount=Decimal(amount),
        staff=staff,
        reason="bank",
        idempotency_key=key,
        **kwargs,
    )


def test_an_identical_staff_change_soon_after_is_refused_unless_confirmed_again(alice, bob, staff):
    from accounts.services import RepeatedAdjustment

    first = _credit(alice, staff, "5", "k1")
    with pytest.raises(RepeatedAdjustment) as refused:
        _credit(alice, staff, "5.000001", "k2")  # rounds to the same 5.00000
    assert refused.value.previous == first.entry
    assert "+5.00000" in str(refused.value) and staff.username in str(refused.value)
    assert LedgerEntry.objects.filter(user=alice).count() == 2  # opening balance + first
    assert AdminAuditLog.objects.count() == 1
    # Confirmed again, it is written; other amounts, signs and customers were never refused.
    assert not _credit(alice, staff, "5", "k2", allow_repeat=True).replayed
    _credit(alice, staff, "-5", "k3")
    _credit(alice, staff, "6", "k4")
    balance_adjust_by_staff(user=bob, amount=Decimal("5"), staff=staff, reason="bank")
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("61.00000")


def test_the_one_time_key_replays_before_the_repeat_guard(alice, staff):
    first = _credit(alice, staff, "5", "k1")
    again = _credit(alice, staff, "5", "k1")
    assert again.replayed and again.entry == first.entry


def test_the_repeat_window_ends_and_zero_turns_the_guard_off(alice, staff, settings):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.services import RepeatedAdjustment

    settings.BALANCE_REPEAT_WINDOW_SECONDS = 600
    first = _credit(alice, staff, "5", "k1")
    LedgerEntry.objects.filter(pk=first.entry.pk).update(
        created_at=timezone.now() - timedelta(seconds=601)
    )
    second = _credit(alice, staff, "5", "k2")
    with pytest.raises(RepeatedAdjustment):
        _credit(alice, staff, "5", "k3")
    settings.BALANCE_REPEAT_WINDOW_SECONDS = 0
    _credit(alice, staff, "5", "k3")
    assert LedgerEntry.objects.filter(user=alice, amount=Decimal("5")).count() == 3
    assert second.entry.pk


def test_the_preview_shows_the_balances_and_the_repeat_and_writes_nothing(alice, staff):
    from accounts.services import balance_adjust_preview

    preview = balance_adjust_preview(user=alice, amount=Decimal("5"))
    assert (preview.amount, preview.balance, preview.balance_after, preview.repeat_of) == (
        Decimal("5.00000"),
        Decimal("50.00000"),
        Decimal("55.00000"),
        None,
    )
    assert preview.is_credit and preview.size == Decimal("5.00000")
    first = _credit(alice, staff, "5", "k1")
    assert balance_adjust_preview(user=alice, amount=Decimal("5")).repeat_of == first.entry
    assert balance_adjust_preview(user=alice, amount=Decimal("-5")).repeat_of is None
    with pytest.raises(InsufficientFunds):
        balance_adjust_preview(user=alice, amount=Decimal("-56"))
    with pytest.raises(InvalidAmount):
        balance_adjust_preview(user=alice, amount=Decimal("0"))
    assert LedgerEntry.objects.filter(user=alice).count() == 2
