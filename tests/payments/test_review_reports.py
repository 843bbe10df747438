"""Review: what a gateway reports is checked before anything is credited. A "paid" without an
amount (a gateway answering garbage: a PayPal capture with no amount) credits nothing; only a
staff confirmation is taken at the payment's amount."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.gateways.base import Report
from accounts.gateways.paypal import _order_report
from accounts.models import LedgerEntry, Payment
from accounts.payments import PaymentUrls, payment_report_apply, payment_start

pytestmark = pytest.mark.django_db


def _urls() -> PaymentUrls:
    return PaymentUrls(
        base_url="http://testserver",
        return_path=lambda p: reverse("payment_detail", args=[p.public_id]),
        cancel_path=lambda p: reverse("payment_detail", args=[p.public_id]) + "?canceled=1",
        webhook_path=lambda m: reverse("payment_webhook", args=[m]),
    )


@pytest.fixture
def payment(alice, settings):
    settings.PAYMENT_METHODS = ["manual"]
    return payment_start(
        user=alice, method="manual", amount=Decimal("20.00"), urls=_urls(), customer_reference="T"
    )


def test_a_gateway_s_paid_without_an_amount_credits_nothing_and_flags(payment, alice):
    # A PayPal order whose capture says COMPLETED but carries no amount.
    order = {
        "id": payment.gateway_id,
        "status": "COMPLETED",
        "purchase_units": [
            {
                "custom_id": str(payment.public_id),
                "payments": {"captures": [{"status": "COMPLETED"}]},
            }
        ],
    }
    report = _order_report(order)
    assert (report.status, report.amount) == ("paid", None)
    for source in ("webhook", "return", "poll"):
        applied = payment_report_apply(method="manual", report=report, source=source)
        assert applied.outcome == "refused"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert payment.needs_attention
    assert not LedgerEntry.objects.filter(user=alice, payment_ref__startswith="manual:").exists()


def test_a_staff_confirmation_is_still_taken_at_the_payment_s_amount(payment, alice):
    report = Report(gateway_id=payment.gateway_id, status="paid")
    assert payment_report_apply(method="manual", report=report, source="staff").outcome == (
        "applied"
    )
    deposits = LedgerEntry.objects.filter(user=alice, payment_ref__startswith="manual:")
    assert [d.amount for d in deposits] == [Decimal("20.00000")]
