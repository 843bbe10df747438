"""A customer adds funds by card in Chromium: the panel sends her to the fake Stripe Checkout,
she pays, comes back to the payment's page, and her balance rises once, when the fake's signed
webhook arrives (the page refreshes itself until then)."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.fake_gateways.testing import FakeGateways
from accounts.models import LedgerEntry, Payment
from accounts.selectors import ledger_find_mismatches
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_customer_pays_by_card_and_is_credited_once(new_page, live_server, alice, settings):
    with FakeGateways(panel_url=live_server.url, webhook_backoff=0.2) as fake:
        settings.PAYMENT_METHODS = ["stripe", "manual"]
        settings.STRIPE_SECRET_KEY = fake.config.stripe_secret_key
        settings.STRIPE_WEBHOOK_SECRET = fake.config.stripe_webhook_secret
        settings.STRIPE_API_BASE = fake.url("stripe")
        page = new_page()
        # The checkout is on the gateway's own address (new_page lets only the panel through).
        page.route(f"{fake.base_url}/**", lambda route: route.continue_())
        login(page, "alice", "pw-alice-123")

        page.goto("/funds/add/")
        page.get_by_label("Card (Stripe)").check()
        page.get_by_label("Amount (USD)").fill("30")
        page.get_by_role("button", name="Continue to payment").click()

        page.wait_for_url(f"{fake.base_url}/stripe/checkout/cs_test_*")
        expect(page.get_by_text("Add funds: 30.00 USD")).to_be_visible()
        page.get_by_role("button", name="Pay").click()

        payment = Payment.objects.get(user=alice)
        page.wait_for_url(f"**/funds/payments/{payment.public_id}/")
        # The page refreshes itself while the payment waits; the webhook may land first.
        expect(page.get_by_test_id("payment-status")).to_have_text("Paid", timeout=15_000)
        expect(page.get_by_test_id("balance")).to_have_text("$80.00")

        fake.wait_for_deliveries("stripe", 1)
        page.reload()
        expect(page.get_by_test_id("balance")).to_have_text("$80.00")
        deposits = LedgerEntry.objects.filter(user=alice, payment_ref__startswith="stripe:")
        assert [d.amount for d in deposits] == [Decimal("30.00000")]
        assert not ledger_find_mismatches()
