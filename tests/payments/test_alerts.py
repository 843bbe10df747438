"""A dispute or refund reported by a gateway flags the payment and tells staff (accounts.
notifications: the staff users and the ADMINS addresses of no staff user) once the transaction
commits: never from inside it, never for one rolled back."""

from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction

from accounts.gateways.base import Report
from accounts.models import LedgerEntry, Payment
from accounts.payments import payment_approve_manual, payment_report_apply

from .core_helpers import start_manual

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


@pytest.fixture
def paid(alice, staff, settings):
    settings.PAYMENT_METHODS = ["manual"]
    settings.ADMINS = [("Ops", "ops@example.com")]
    payment = start_manual(alice)
    payment_approve_manual(payment=payment, actor=staff)
    mail.outbox.clear()
    return payment


def _report(payment, status):
    return Report(gateway_id=payment.gateway_id, status=status)


@pytest.mark.parametrize("status", ["disputed", "refunded"])
def test_a_dispute_or_refund_flags_and_mails_after_commit(paid, status):
    with transaction.atomic():
        applied = payment_report_apply(
            method="manual", report=_report(paid, status), source="webhook"
        )
        assert applied.outcome == "applied"
        assert mail.outbox == []  # not while the transaction may still roll back
    assert sorted(m.to[0] for m in mail.outbox) == ["ops@example.com", "staff@example.com"]
    for message in mail.outbox:
        assert f"Payment #{paid.pk} needs attention" in message.subject
        assert f"reports payment #{paid.pk} {status}" in message.body and "alice" in message.body
    paid.refresh_from_db()
    assert paid.status == status and paid.needs_attention
    # Taking the money back stays a staff decision: the deposit is still in the ledger.
    assert LedgerEntry.objects.filter(payment_ref=f"manual:{paid.gateway_id}").count() == 1


def test_nothing_is_mailed_or_flagged_when_the_transaction_rolls_back(paid):
    with pytest.raises(Rollback), transaction.atomic():
        payment_report_apply(method="manual", report=_report(paid, "disputed"), source="webhook")
        raise Rollback
    assert mail.outbox == []
    paid.refresh_from_db()
    assert paid.status == Payment.Status.PAID and not paid.needs_attention


def test_a_repeated_dispute_mails_once(paid):
    for _ in range(3):
        payment_report_apply(method="manual", report=_report(paid, "disputed"), source="webhook")
    assert sorted(m.to[0] for m in mail.outbox) == ["ops@example.com", "staff@example.com"]


def test_a_mismatched_amount_flags_and_mails_after_commit(alice, settings):
    settings.PAYMENT_METHODS = ["manual"]
    settings.ADMINS = [("Ops", "ops@example.com")]
    payment = start_manual(alice, "20.00")
    wrong = Report(
        gateway_id=payment.gateway_id, status="paid", amount=Decimal("2.00"), currency="USD"
    )
    payment_report_apply(method="manual", report=wrong, source="webhook")
    assert len(mail.outbox) == 1 and "was not credited" in mail.outbox[0].body
    payment.refresh_from_db()
    assert payment.needs_attention and payment.status == Payment.Status.PENDING
