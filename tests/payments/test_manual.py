"""Manual transfers: staff approve (credit once, however often and by however many) or reject
(with the reason) through accounts.payments, each decision audited."""

from decimal import Decimal

import pytest

from accounts.models import AdminAuditLog, LedgerEntry, Payment, PaymentCallback
from accounts.payments import PaymentError, payment_approve_manual, payment_reject_manual
from accounts.selectors import ledger_find_mismatches

from .core_helpers import start_manual

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _manual_only(settings):
    settings.PAYMENT_METHODS = ["manual"]


def _deposits(user):
    return LedgerEntry.objects.filter(
        user=user, kind=LedgerEntry.Kind.DEPOSIT, payment_ref__startswith="manual:"
    )


def test_approving_credits_once_and_is_audited(alice, staff):
    payment = start_manual(alice, "20.00")
    first = payment_approve_manual(payment=payment, actor=staff)
    second = payment_approve_manual(payment=payment, actor=staff)
    assert (first.outcome, second.outcome) == ("applied", "duplicate")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert payment.reviewed_by == staff
    assert [e.amount for e in _deposits(alice)] == [Decimal("20.00000")]
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("70.00000")
    (audit,) = AdminAuditLog.objects.filter(action="approve payment")
    assert audit.area == AdminAuditLog.Area.MONEY
    assert audit.actor == staff
    assert audit.object_id == str(payment.pk)
    assert audit.before == {"status": "pending"} and audit.after["status"] == "paid"
    sources = set(PaymentCallback.objects.filter(payment=payment).values_list("source", flat=True))
    assert sources == {"staff"}
    assert not ledger_find_mismatches()


def test_rejecting_fails_the_payment_with_the_reason(alice, staff):
    payment = start_manual(alice)
    applied = payment_reject_manual(payment=payment, actor=staff, reason="No such transfer")
    assert applied.outcome == "applied"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    assert payment.note == "Rejected by staff: No such transfer"
    assert payment.reviewed_by == staff
    assert not _deposits(alice).exists()
    (audit,) = AdminAuditLog.objects.filter(action="reject payment")
    assert audit.area == AdminAuditLog.Area.MONEY
    assert "No such transfer" in audit.summary
    callback = PaymentCallback.objects.get(payment=payment)
    assert callback.payload["reason"] == "No such transfer"


def test_a_rejection_needs_a_reason(alice, staff):
    payment = start_manual(alice)
    with pytest.raises(PaymentError, match="why"):
        payment_reject_manual(payment=payment, actor=staff, reason="   ")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert not AdminAuditLog.objects.exists()


def test_a_paid_transfer_is_not_rejected_afterwards(alice, staff):
    payment = start_manual(alice)
    payment_approve_manual(payment=payment, actor=staff)
    applied = payment_reject_manual(payment=payment, actor=staff, reason="oops")
    assert applied.outcome == "ignored"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert payment.note == ""
    assert _deposits(alice).count() == 1
    assert not AdminAuditLog.objects.filter(action="reject payment").exists()


def test_a_rejected_transfer_that_arrives_after_all_is_credited_on_approval(alice, staff):
    payment = start_manual(alice)
    payment_reject_manual(payment=payment, actor=staff, reason="not seen yet")
    assert payment_approve_manual(payment=payment, actor=staff).outcome == "applied"
    assert _deposits(alice).count() == 1


def test_only_manual_transfers_are_decided_by_staff(alice, staff):
    payment = Payment.objects.create(
        user=alice, method="stripe", amount=Decimal("5"), currency="USD", gateway_id="cs_1"
    )
    with pytest.raises(PaymentError, match="Only manual"):
        payment_approve_manual(payment=payment, actor=staff)
    with pytest.raises(PaymentError, match="Only manual"):
        payment_reject_manual(payment=payment, actor=staff, reason="x")
    assert not PaymentCallback.objects.exists()
