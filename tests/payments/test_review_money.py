"""Review of the payments' money paths: a payment disputed after it was credited stays
disputed, whatever stale "paid" word about it comes later (a status read, or a late or
redelivered webhook); only staff close a dispute."""

import json
from decimal import Decimal

import pytest

from accounts.fake_gateways.stripe import sign
from accounts.gateways.base import Report
from accounts.models import Payment, PaymentCallback
from accounts.payments import payment_refresh, payment_report_apply
from accounts.selectors import ledger_find_mismatches
from tests.payments.test_stripe import deposits, fake, paid_delivery, post_signed  # noqa: F401


def _paid_then_disputed(client, paid_delivery, settings) -> tuple[Payment, bytes]:  # noqa: F811
    payment, delivery = paid_delivery
    body = delivery.body.encode()
    assert post_signed(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET)).status_code == 200
    dispute = Report(gateway_id=payment.gateway_id, status="disputed", event_id="evt_dispute")
    assert payment_report_apply(method="stripe", report=dispute, source="webhook").outcome == (
        "applied"
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.DISPUTED
    return payment, body


@pytest.mark.django_db
def test_a_status_read_does_not_move_a_disputed_payment_back_to_paid(
    paid_delivery,  # noqa: F811
    client,
    alice,
    settings,
):
    payment, _body = _paid_then_disputed(client, paid_delivery, settings)
    # Stripe's session still reads complete/paid: the dispute lives on the charge.
    payment_refresh(payment=payment)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.DISPUTED
    assert payment.needs_attention
    assert deposits(alice) == [Decimal("25.00000")]
    assert not ledger_find_mismatches()


@pytest.mark.django_db
def test_a_late_paid_webhook_does_not_move_a_disputed_payment_back_to_paid(
    paid_delivery,  # noqa: F811
    client,
    alice,
    settings,
):
    payment, body = _paid_then_disputed(client, paid_delivery, settings)
    # Stripe redelivers the checkout.session.completed (a resend, or out of order).
    event = json.loads(body)
    event["id"] = "evt_resent"
    body = json.dumps(event).encode()
    assert post_signed(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.DISPUTED
    last = PaymentCallback.objects.order_by("-id").first()
    assert last.outcome == "ignored"
    assert deposits(alice) == [Decimal("25.00000")]
