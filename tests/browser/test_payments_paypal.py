"""A customer adds funds with PayPal in Chromium: Add funds → the fake PayPal's approval page →
Pay → back on the payment's page, captured and credited once; PayPal's webhook after it
credits nothing more."""

import json
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.fake_gateways.testing import FakeGateways
from accounts.models import LedgerEntry, Payment, PaymentCallback
from accounts.selectors import ledger_find_mismatches
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _allow_fake(page, live_server, fake: FakeGateways) -> None:
    """The page may reach the panel and the fake PayPal, and nothing else."""
    page.unroute("**/*")
    allowed = (live_server.url, fake.base_url)
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(allowed) else route.abort(),
    )


def test_a_customer_pays_with_paypal_and_is_credited_once(new_page, live_server, alice, settings):
    with FakeGateways(panel_url=live_server.url, webhook_backoff=0.1) as fake:
        settings.PAYMENT_METHODS = ["paypal", "manual"]
        settings.PAYMENT_STARTS_PER_HOUR = 1000
        settings.PAYPAL_CLIENT_ID = fake.config.paypal_client_id
        settings.PAYPAL_CLIENT_SECRET = fake.config.paypal_client_secret
        settings.PAYPAL_WEBHOOK_ID = fake.config.paypal_webhook_id
        settings.PAYPAL_API_BASE = fake.url("paypal")
        page = new_page()
        _allow_fake(page, live_server, fake)
        login(page, "alice", "pw-alice-123")

        page.goto("/funds/add/")
        page.get_by_label("PayPal").check()
        page.get_by_label("Amount (USD)").fill("25")
        page.get_by_role("button", name="Continue to payment").click()

        expect(page.get_by_role("heading", name="PayPal (fake)")).to_be_visible()
        expect(page.get_by_text("25.00 USD", exact=True)).to_be_visible()
        page.get_by_role("button", name="Pay").click()

        expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
        expect(page.get_by_test_id("balance")).to_have_text("$75.00")
        (delivery,) = fake.wait_for_deliveries("paypal", 1)
        assert json.loads(delivery.body)["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
        assert [a["status"] for a in delivery.attempts] == [200]

    payment = Payment.objects.get(method="paypal")
    assert payment.status == Payment.Status.PAID
    deposits = LedgerEntry.objects.filter(user=alice, payment_ref__startswith="paypal:")
    assert [d.amount for d in deposits] == [Decimal("25.00000")]
    outcomes = PaymentCallback.objects.filter(payment=payment).values_list("outcome", flat=True)
    assert sorted(outcomes) == ["applied", "duplicate"]
    assert not ledger_find_mismatches()
