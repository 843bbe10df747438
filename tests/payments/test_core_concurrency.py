"""Real races on PostgreSQL (threads, each with its own connection): ten deliveries of one
"paid" report at once credit once; staff approving while the same "paid" arrives from a
gateway-like report credit once; two members of staff approving at once credit once. The
ledger checks clean after each."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.gateways.base import Report
from accounts.models import AdminAuditLog, LedgerEntry, Payment, PaymentCallback, User
from accounts.payments import payment_approve_manual, payment_report_apply
from accounts.selectors import ledger_find_mismatches
from tests.threads import run_in_threads

from .core_helpers import start_manual

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


@pytest.fixture
def waiting(alice, settings):
    settings.PAYMENT_METHODS = ["manual"]
    return start_manual(alice, "20.00")


def _credits(payment):
    return LedgerEntry.objects.filter(payment_ref=f"manual:{payment.gateway_id}")


def _assert_credited_once(payment, alice):
    assert [e.amount for e in _credits(payment)] == [Decimal("20.00000")]
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("70.00000")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert not ledger_find_mismatches()
    call_command("check_ledger")


def test_ten_concurrent_paid_reports_credit_once(waiting, alice):
    report = Report(
        gateway_id=waiting.gateway_id, status="paid", amount=Decimal("20.00"), currency="USD"
    )
    results = run_in_threads(
        10, lambda i: payment_report_apply(method="manual", report=report, source="webhook")
    )
    outcomes = sorted(getattr(r, "outcome", repr(r)) for r in results)
    assert outcomes == ["applied"] + ["duplicate"] * 9, results
    assert PaymentCallback.objects.filter(payment=waiting).count() == 10
    _assert_credited_once(waiting, alice)


def test_approval_racing_a_gateway_report_credits_once(waiting, alice, staff):
    report = Report(
        gateway_id=waiting.gateway_id,
        status="paid",
        amount=waiting.total,
        currency=waiting.currency,
        event_id="evt_race",
    )

    def work(i: int):
        if i % 2:
            return payment_report_apply(method="manual", report=report, source="webhook")
        return payment_approve_manual(payment=Payment.objects.get(pk=waiting.pk), actor=staff)

    results = run_in_threads(6, work)
    outcomes = sorted(getattr(r, "outcome", repr(r)) for r in results)
    assert outcomes == ["applied"] + ["duplicate"] * 5, results
    _assert_credited_once(waiting, alice)
    # An audit row only if it was staff's approval that credited it.
    staff_applied = PaymentCallback.objects.filter(
        payment=waiting, source="staff", outcome="applied"
    ).count()
    assert AdminAuditLog.objects.filter(action="approve payment").count() == staff_applied


def test_two_members_of_staff_approving_at_once_credit_once(waiting, alice, staff):
    other = User.objects.create_superuser("other", "other@example.com", "pw-other-123")
    actors = [staff, other] * 4
    results = run_in_threads(
        8,
        lambda i: payment_approve_manual(
            payment=Payment.objects.get(pk=waiting.pk), actor=actors[i]
        ),
    )
    outcomes = sorted(getattr(r, "outcome", repr(r)) for r in results)
    assert outcomes == ["applied"] + ["duplicate"] * 7, results
    _assert_credited_once(waiting, alice)
    assert AdminAuditLog.objects.filter(action="approve payment").count() == 1
