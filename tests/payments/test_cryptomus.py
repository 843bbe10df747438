"""Cryptomus over real HTTP: the panel creates invoices at the fake Cryptomus, the fake posts its
signed webhooks to the live server, and a paid invoice credits once. Forged, altered or
mismatched callbacks credit nothing and are recorded."""

import base64
import hashlib
import json
from decimal import Decimal

import pytest
import requests
from django.urls import reverse

from accounts.fake_gateways.testing import FakeGateways
from accounts.gateways import gateway_for
from accounts.gateways.cryptomus import CryptomusGateway, cryptomus_sign, php_json
from accounts.models import LedgerEntry, Payment, PaymentCallback, PaymentMethodSetting
from accounts.payments import PaymentError, PaymentUrls, payment_refresh, payment_start
from accounts.selectors import ledger_find_mismatches
from tests.threads import run_in_threads

MERCHANT = "test-merchant-uuid"
KEY = "test-payment-key"
WEBHOOK = "/payments/cryptomus/webhook/"


@pytest.fixture
def fake(live_server, settings):
    settings.PAYMENT_METHODS = ["cryptomus"]
    settings.CRYPTOMUS_MERCHANT_ID = MERCHANT
    settings.CRYPTOMUS_PAYMENT_KEY = KEY
    settings.PANEL_NAME = "Panel ünï"  # non-ASCII in the signed webhook (additional_data)
    with FakeGateways(
        panel_url=live_server.url,
        cryptomus_merchant=MERCHANT,
        cryptomus_payment_key=KEY,
        webhook_attempts=3,
        webhook_backoff=0.05,
    ) as fake:
        settings.CRYPTOMUS_API_BASE = fake.url("cryptomus")
        yield fake


def _urls(base_url: str) -> PaymentUrls:
    return PaymentUrls(
        base_url=base_url,
        return_path=lambda p: reverse("payment_detail", args=[p.public_id]),
        cancel_path=lambda p: reverse("payment_detail", args=[p.public_id]) + "?canceled=1",
        webhook_path=lambda m: reverse("payment_webhook", args=[m]),
    )


def _start(user, base_url, amount="10.00") -> Payment:
    return payment_start(
        user=user, method="cryptomus", amount=Decimal(amount), urls=_urls(base_url)
    )


def _press(fake, payment, button: str) -> requests.Response:
    """A button of the fake payment page; returns the redirect it answers."""
    answer = requests.post(
        f"{fake.url('cryptomus')}/pay/{payment.gateway_id}/{button}",
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303
    return answer


def _deposits(user):
    return LedgerEntry.objects.filter(
        user=user, kind=LedgerEntry.Kind.DEPOSIT, payment_ref__startswith="cryptomus:"
    )


def _hand_signed(fields: dict, key: str) -> bytes:
    """A webhook signed here, without the panel's encoder: PHP's escaping of "/" by hand."""
    text = json.dumps(fields, separators=(",", ":")).replace("/", "\\/")
    sign = hashlib.md5(base64.b64encode(text.encode()) + key.encode()).hexdigest()
    return json.dumps({**fields, "sign": sign}).encode()


def _webhook_fields(payment, **changes) -> dict:
    return {
        "type": "payment",
        "uuid": payment.gateway_id,
        "order_id": str(payment.public_id),
        "amount": f"{payment.total:.2f}",
        "payment_amount": f"{payment.total:.2f}",
        "payment_amount_usd": f"{payment.total:.2f}",
        "is_final": True,
        "status": "paid",
        "currency": "USD",
        "payer_currency": "USDT",
        "additional_data": "https://panel.example/funds/",
        **changes,
    }


def _post(live_server, body: bytes) -> requests.Response:
    return requests.post(
        live_server.url + WEBHOOK,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


# --- The signature --------------------------------------------------------------------------

VECTOR_FIELDS = {
    "type": "payment",
    "uuid": "7f1c2b1e-0d7a-4a8e-9a44-1c2e3f4a5b6c",
    "order_id": "0b9e6a52-3c1d-4f0e-8d77-2a6b5c4d3e21",
    "amount": "10.00",
    "status": "paid",
    "currency": "USD",
    "additional_data": "Panel ünï https://panel.example/funds/payments/x/",
}


def test_the_signature_matches_a_known_vector():
    """PHP's json_encode written out by hand, and the md5 computed by Node's crypto."""
    unescaped = (
        '{"type":"payment","uuid":"7f1c2b1e-0d7a-4a8e-9a44-1c2e3f4a5b6c",'
        '"order_id":"0b9e6a52-3c1d-4f0e-8d77-2a6b5c4d3e21","amount":"10.00","status":"paid",'
        '"currency":"USD","additional_data":"Panel ünï https:\\/\\/panel.example\\/funds'
        '\\/payments\\/x\\/"}'
    )
    escaped = unescaped.replace("ünï", "\\u00fcn\\u00ef")
    assert php_json(VECTOR_FIELDS) == unescaped
    assert php_json(VECTOR_FIELDS, escape_unicode=True) == escaped
    assert cryptomus_sign(unescaped, "key-é/1") == "8c69fba0824315758454294dbcdc4d71"
    assert cryptomus_sign(escaped, "key-é/1") == "b0b6f3be1e3b80648c61693b8f8db659"
    assert php_json({"s": "line\u2028sep"}) == '{"s":"line\\u2028sep"}'


def test_a_webhook_signed_either_way_is_believed_and_unsigned_one_is_not(settings):
    gateway = CryptomusGateway(merchant_id=MERCHANT, payment_key="key-é/1", api_base="x")
    for sign in ("8c69fba0824315758454294dbcdc4d71", "B0B6F3BE1E3B80648C61693B8F8DB659"):
        body = json.dumps({**VECTOR_FIELDS, "sign": sign}).encode()
        report = gateway.parse_webhook(body=body, headers={})
        assert report is not None
        assert (report.status, report.amount, report.reference) == (
            "paid",
            Decimal("10.00"),
            VECTOR_FIELDS["order_id"],
        )


def test_the_payment_pages_origin_is_allowed_as_a_form_target():
    def origins(base):
        return CryptomusGateway(merchant_id="m", payment_key="k", api_base=base).checkout_origins()

    assert origins("https://api.cryptomus.com") == [
        "https://api.cryptomus.com",
        "https://pay.cryptomus.com",
    ]
    assert origins("https://api.heleket.com/")[1] == "https://pay.heleket.com"
    assert origins("http://127.0.0.1:8766/cryptomus") == ["http://127.0.0.1:8766"]


def test_not_configured_without_merchant_and_key(settings):
    settings.CRYPTOMUS_MERCHANT_ID = ""
    settings.CRYPTOMUS_PAYMENT_KEY = "k"
    assert gateway_for("cryptomus") is None
    settings.CRYPTOMUS_MERCHANT_ID = "m"
    assert isinstance(gateway_for("cryptomus"), CryptomusGateway)


# --- Paying at the fake ---------------------------------------------------------------------


def test_an_invoice_paid_in_full_credits_once_however_often_the_webhook_comes(
    fake, live_server, alice
):
    payment = _start(alice, live_server.url)
    assert payment.status == Payment.Status.PENDING
    assert payment.checkout_url == f"{fake.url('cryptomus')}/pay/{payment.gateway_id}"
    page = requests.get(payment.checkout_url, timeout=10).text
    assert "Pay 10.00 USD" in page and "Pay less" in page and "<script" not in page

    back = _press(fake, payment, "full")
    assert back.headers["Location"] == live_server.url + f"/funds/payments/{payment.public_id}/"
    (delivery,) = fake.wait_for_deliveries("cryptomus", 1)
    assert delivery.attempts[0]["status"] == 200
    assert "\\/" in delivery.body  # PHP's escaping of "/" was on the wire, and verified
    for _ in range(4):  # Cryptomus' "resend webhook", four more times
        resent = requests.post(
            f"{fake.url('cryptomus')}/v1/payment/resend",
            data=php_json({"uuid": payment.gateway_id}),
            headers={
                "merchant": MERCHANT,
                "sign": cryptomus_sign(php_json({"uuid": payment.gateway_id}), KEY),
            },
            timeout=10,
        )
        assert resent.json()["state"] == 0
    deliveries = fake.wait_for_deliveries("cryptomus", 5)
    assert [d.attempts[0]["status"] for d in deliveries] == [200] * 5

    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert [d.amount for d in _deposits(alice)] == [Decimal("10.00000")]
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("60.00000")
    outcomes = list(payment.callbacks.order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["applied"] + ["duplicate"] * 4
    assert not ledger_find_mismatches()


def test_an_overpaid_invoice_credits_the_amount_asked_once_and_flags_the_rest(
    fake, live_server, alice
):
    payment = _start(alice, live_server.url)
    _press(fake, payment, "more")
    fake.wait_for_deliveries("cryptomus", 1)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert [d.amount for d in _deposits(alice)] == [Decimal("10.00000")]
    assert payment.charged_amount == Decimal("12.50")
    assert payment.needs_attention and payment.note.startswith("Overpaid: 12.50 USDT")
    assert not ledger_find_mismatches()


def test_an_underpaid_invoice_fails_credits_nothing_and_flags(fake, live_server, alice):
    payment = _start(alice, live_server.url)
    _press(fake, payment, "less")
    (delivery,) = fake.wait_for_deliveries("cryptomus", 1)
    assert delivery.attempts[0]["status"] == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    assert not _deposits(alice).exists()
    assert payment.needs_attention and payment.note.startswith("Underpaid")
    callback = payment.callbacks.get()
    assert (callback.outcome, callback.reported_amount) == ("applied", Decimal("6.00"))


def test_cancel_sends_the_customer_back_and_cancels(fake, live_server, alice):
    payment = _start(alice, live_server.url)
    back = _press(fake, payment, "cancel")
    assert back.headers["Location"].endswith("?canceled=1")
    fake.wait_for_deliveries("cryptomus", 1)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    assert not _deposits(alice).exists()


def test_a_missed_webhook_is_caught_by_reading_the_invoice(fake, live_server, alice):
    payment = _start(alice, "http://127.0.0.1:9")  # the webhook goes nowhere
    _press(fake, payment, "full")
    fake.wait_for_deliveries("cryptomus", 1)
    assert payment_refresh(payment=payment).outcome == "applied"
    assert payment_refresh(payment=payment).outcome == "duplicate"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert [d.amount for d in _deposits(alice)] == [Decimal("10.00000")]


def test_a_refused_invoice_fails_the_payment_and_tells_the_customer(
    fake, live_server, alice, settings
):
    settings.CRYPTOMUS_PAYMENT_KEY = "not-the-key"
    with pytest.raises(PaymentError, match="could not start"):
        _start(alice, live_server.url)
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.FAILED
    assert "Invalid Sign" in payment.note


# --- Callbacks not believed, or not matching --------------------------------------------------


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda p: _hand_signed(_webhook_fields(p), "wrong-key"), id="wrong-key"),
        pytest.param(
            lambda p: _hand_signed(_webhook_fields(p), KEY).replace(b'"10.00"', b'"99.00"', 1),
            id="tampered-body",
        ),
        pytest.param(lambda p: json.dumps(_webhook_fields(p)).encode(), id="no-sign"),
        pytest.param(lambda p: b"not json", id="not-json"),
    ],
)
def test_a_forged_webhook_is_refused_with_400_and_recorded(fake, live_server, alice, forge):
    payment = _start(alice, live_server.url)
    answer = _post(live_server, forge(payment))
    assert answer.status_code == 400
    assert not _deposits(alice).exists()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    refused = PaymentCallback.objects.get()
    assert refused.outcome == "refused" and refused.reason


def test_a_genuine_webhook_signed_by_hand_credits(fake, live_server, alice):
    """The counterpart of the forgeries above: the same body with the right key works."""
    payment = _start(alice, live_server.url)
    assert _post(live_server, _hand_signed(_webhook_fields(payment), KEY)).status_code == 200
    assert [d.amount for d in _deposits(alice)] == [Decimal("10.00000")]


@pytest.mark.parametrize(
    "changes",
    [{"amount": "9.99"}, {"currency": "EUR"}, {"amount": "10.00", "currency": "BTC"}],
    ids=["amount-below", "other-currency", "crypto-currency"],
)
def test_an_amount_or_currency_that_does_not_match_credits_nothing(
    fake, live_server, alice, changes
):
    payment = _start(alice, live_server.url)
    answer = _post(live_server, _hand_signed(_webhook_fields(payment, **changes), KEY))
    assert answer.status_code == 200  # believed, refused for good: Cryptomus stops sending
    assert not _deposits(alice).exists()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and payment.needs_attention
    assert PaymentCallback.objects.get().outcome == "refused"


def test_the_order_id_of_another_payment_is_refused(fake, live_server, alice, bob):
    mine = _start(alice, live_server.url)
    theirs = _start(bob, live_server.url)
    fields = _webhook_fields(mine, order_id=str(theirs.public_id))
    assert _post(live_server, _hand_signed(fields, KEY)).status_code == 200
    assert not _deposits(alice).exists() and not _deposits(bob).exists()
    callback = PaymentCallback.objects.get()
    assert callback.outcome == "refused" and "reference" in callback.reason


def test_an_unknown_status_is_refused(fake, live_server, alice):
    payment = _start(alice, live_server.url)
    body = _hand_signed(_webhook_fields(payment, status="paid_maybe"), KEY)
    assert _post(live_server, body).status_code == 400
    assert "Unknown Cryptomus status" in PaymentCallback.objects.get().reason


def test_ten_concurrent_deliveries_credit_once(fake, live_server, alice):
    payment = _start(alice, live_server.url)
    body = _hand_signed(_webhook_fields(payment), KEY)
    statuses = run_in_threads(10, lambda _: _post(live_server, body).status_code)
    assert statuses == [200] * 10
    assert [d.amount for d in _deposits(alice)] == [Decimal("10.00000")]
    outcomes = sorted(payment.callbacks.values_list("outcome", flat=True))
    assert outcomes == ["applied"] + ["duplicate"] * 9
    assert not ledger_find_mismatches()


def test_an_underpaid_invoice_reported_again_alerts_staff_once(
    fake, live_server, alice, settings, mailoutbox
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    payment = _start(alice, live_server.url)
    body = _hand_signed(
        _webhook_fields(payment, status="wrong_amount", payment_amount_usd="4.00"), KEY
    )
    assert [_post(live_server, body).status_code for _ in range(3)] == [200] * 3
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED and payment.needs_attention
    assert "4.00 USD" in payment.note
    assert [m.to for m in mailoutbox] == [["ops@example.com"]]
    assert "Underpaid" in mailoutbox[0].body
    assert not _deposits(alice).exists()


def test_the_fee_is_invoiced_on_top_and_the_deposit_credited(fake, live_server, alice):
    PaymentMethodSetting.objects.create(method="cryptomus", fee_percent=Decimal("2"))
    payment = _start(alice, live_server.url)
    invoice = requests.post(
        f"{fake.url('cryptomus')}/v1/payment/info",
        data=php_json({"order_id": str(payment.public_id)}),
        headers={
            "merchant": MERCHANT,
            "sign": cryptomus_sign(php_json({"order_id": str(payment.public_id)}), KEY),
        },
        timeout=10,
    ).json()["result"]
    assert (invoice["amount"], invoice["currency"], invoice["uuid"]) == (
        "10.20",
        "USD",
        payment.gateway_id,
    )
    _press(fake, payment, "full")
    fake.wait_for_deliveries("cryptomus", 1)
    assert [d.amount for d in _deposits(alice)] == [Decimal("10.00000")]


@pytest.mark.parametrize(
    ("cryptomus_status", "status", "flagged"),
    [
        ("process", "pending", False),
        ("confirm_check", "pending", False),
        ("wrong_amount_waiting", "pending", False),
        ("locked", "pending", True),
        ("cancel", "canceled", False),
        ("fail", "failed", False),
        ("system_fail", "failed", False),
    ],
)
def test_what_each_status_does_to_a_waiting_payment(
    fake, live_server, alice, cryptomus_status, status, flagged
):
    payment = _start(alice, live_server.url)
    body = _hand_signed(_webhook_fields(payment, status=cryptomus_status), KEY)
    assert _post(live_server, body).status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.needs_attention) == (status, flagged)
    assert not _deposits(alice).exists()


def test_a_refund_after_payment_marks_it_refunded_and_flags(fake, live_server, alice):
    payment = _start(alice, live_server.url)
    _post(live_server, _hand_signed(_webhook_fields(payment), KEY))
    for step in ("refund_process", "refund_paid"):
        _post(live_server, _hand_signed(_webhook_fields(payment, status=step), KEY))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED and payment.needs_attention
    # Taking the credit back is a staff decision: the deposit stays until they adjust it.
    assert [d.amount for d in _deposits(alice)] == [Decimal("10.00000")]
