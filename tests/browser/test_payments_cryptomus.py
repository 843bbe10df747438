"""A customer adds funds with crypto in Chromium: the panel's Add funds page, the fake
Cryptomus' payment page, back to the payment's page, and the balance rises exactly once."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.fake_gateways.testing import FakeGateways
from accounts.models import LedgerEntry, Payment
from accounts.selectors import ledger_find_mismatches
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_customer_pays_with_crypto_and_is_credited_once(new_page, live_server, alice, settings):
    settings.PAYMENT_METHODS = ["cryptomus"]
    settings.CRYPTOMUS_MERCHANT_ID = "browser-merchant"
    settings.CRYPTOMUS_PAYMENT_KEY = "browser-key"
    with FakeGateways(
        panel_url=live_server.url,
        cryptomus_merchant="browser-merchant",
        cryptomus_payment_key="browser-key",
    ) as fake:
        settings.CRYPTOMUS_API_BASE = fake.url("cryptomus")
        page = new_page(also_allow=(fake.base_url,))
        login(page, "alice", "pw-alice-123")

        page.goto("/funds/add/")
        expect(page.get_by_label("Crypto (Cryptomus)")).to_be_checked()
        page.get_by_label("Amount (USD)").fill("12.50")
        page.get_by_role("button", name="Continue to payment").click()

        expect(page.get_by_role("heading", name="Pay with crypto (fake Cryptomus)")).to_be_visible()
        assert page.url.startswith(fake.url("cryptomus") + "/pay/")
        page.get_by_role("button", name="Pay 12.50 USD").click()

        page.wait_for_url(f"{live_server.url}/funds/payments/**")
        (delivery,) = fake.wait_for_deliveries("cryptomus", 1)
        assert delivery.attempts[0]["status"] == 200, delivery.attempts
        # The page reloads itself every 5 seconds while it waits.
        expect(page.get_by_test_id("payment-status")).to_have_text("Paid", timeout=12_000)
        expect(page.get_by_test_id("balance")).to_have_text("$62.50")
        page.reload()
        page.go_back()  # the gateway's page again: the invoice is final, nothing more to pay
        page.goto("/funds/add/")
        expect(page.get_by_test_id("balance")).to_have_text("$62.50")

    payment = Payment.objects.get()
    assert payment.status == Payment.Status.PAID and payment.method == "cryptomus"
    deposits = LedgerEntry.objects.filter(user=alice, payment_ref__startswith="cryptomus:")
    assert [d.amount for d in deposits] == [Decimal("12.50000")]
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("62.50000")
    assert not ledger_find_mismatches()
