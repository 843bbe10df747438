"""The payment core: a report of "paid" credits once, whatever repeats it; refusals credit
nothing and are recorded. Gateway-free: the manual transfer and hand-made reports."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.gateways.base import Report
from accounts.models import LedgerEntry, Payment, PaymentCallback
from accounts.payments import PaymentError, PaymentUrls, payment_report_apply, payment_start
from accounts.selectors import ledger_find_mismatches

pytestmark = pytest.mark.django_db


def _urls() -> PaymentUrls:
    return PaymentUrls(
        base_url="http://testserver",
        return_path=lambda p: reverse("payment_detail", args=[p.public_id]),
        cancel_path=lambda p: reverse("payment_detail", args=[p.public_id]) + "?canceled=1",
        webhook_path=lambda m: reverse("payment_webhook", args=[m]),
    )


@pytest.fixture
def manual_payment(alice, settings):
    settings.PAYMENT_METHODS = ["manual"]
    return payment_start(
        user=alice, method="manual", amount=Decimal("20.00"), urls=_urls(), customer_reference="T1"
    )


def test_a_manual_payment_waits_with_its_reference(manual_payment):
    assert manual_payment.status == Payment.Status.PENDING
    assert manual_payment.gateway_id == str(manual_payment.public_id)
    assert manual_payment.checkout_url.endswith(f"/funds/payments/{manual_payment.public_id}/")


def test_paid_credits_once_however_often_it_is_reported(manual_payment, alice):
    report = Report(gateway_id=manual_payment.gateway_id, status="paid")
    outcomes = [
        payment_report_apply(method="manual", report=report, source="staff").outcome
        for _ in range(5)
    ]
    assert outcomes == ["applied"] + ["duplicate"] * 4
    deposits = LedgerEntry.objects.filter(user=alice, payment_ref__startswith="manual:")
    assert [d.amount for d in deposits] == [Decimal("20.00000")]
    assert deposits[0].idempotency_key == f"deposit:manual:{manual_payment.gateway_id}"
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("70.00000")
    assert PaymentCallback.objects.filter(payment=manual_payment).count() == 5
    assert not ledger_find_mismatches()


def test_an_amount_below_the_asked_one_credits_nothing_and_flags(manual_payment, alice):
    report = Report(
        gateway_id=manual_payment.gateway_id, status="paid", amount=Decimal("19.99"), currency="USD"
    )
    applied = payment_report_apply(method="manual", report=report, source="webhook")
    assert applied.outcome == "refused"
    manual_payment.refresh_from_db()
    assert manual_payment.status == Payment.Status.PENDING
    assert manual_payment.needs_attention
    assert not LedgerEntry.objects.filter(user=alice, payment_ref__startswith="manual:").exists()


def test_a_report_for_an_unknown_payment_is_refused_and_recorded(db):
    applied = payment_report_apply(
        method="manual", report=Report(gateway_id="nope", status="paid"), source="webhook"
    )
    assert applied.outcome == "refused"
    assert PaymentCallback.objects.get().reason.startswith("No payment")


def test_amount_outside_the_method_limits_is_refused(alice, settings):
    settings.PAYMENT_METHODS = ["manual"]
    with pytest.raises(PaymentError, match="smallest amount"):
        payment_start(user=alice, method="manual", amount=Decimal("0.50"), urls=_urls())
    assert not Payment.objects.exists()


def test_webhook_of_an_unknown_method_is_404(client):
    assert client.post("/payments/nosuch/webhook/", b"{}", "application/json").status_code == 404


def test_add_funds_page_lets_its_form_redirect_to_the_gateways_checkout(
    client, alice, settings, monkeypatch
):
    from accounts.gateways.manual import ManualTransfer

    settings.PAYMENT_METHODS = ["manual"]
    monkeypatch.setattr(ManualTransfer, "checkout_origins", lambda self: ["http://127.0.0.1:9"])
    client.force_login(alice)
    policy = client.get("/funds/add/").headers["Content-Security-Policy"]
    form_action = next(d for d in policy.split(";") if d.strip().startswith("form-action"))
    assert form_action.split() == ["form-action", "'self'", "http://127.0.0.1:9"]
