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
