"""PayPal Orders v2 over real HTTP against the fake PayPal (accounts/fake_gateways/paypal.py):
create → approve → capture on return, webhooks verified by PayPal's verification call,
credited exactly once whatever the number of returns and webhooks."""

import json
import re
import socket
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection
from django.test import Client

from accounts.fake_gateways.testing import FakeGateways
from accounts.gateways import gateway_for
from accounts.models import LedgerEntry, Payment, PaymentCallback
from accounts.selectors import ledger_find_mismatches
from tests.threads import run_in_threads

NOWHERE = "http://127.0.0.1:9"  # the discard port: the fake's webhooks go nowhere


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _configure(settings, fake: FakeGateways) -> None:
    settings.PAYMENT_METHODS = ["paypal", "manual"]
    settings.PAYMENT_STARTS_PER_HOUR = 1000
    settings.PAYPAL_CLIENT_ID = fake.config.paypal_client_id
    settings.PAYPAL_CLIENT_SECRET = fake.config.paypal_client_secret
    settings.PAYPAL_WEBHOOK_ID = fake.config.paypal_webhook_id
    settings.PAYPAL_API_BASE = fake.url("paypal")


@pytest.fixture
def fake(settings):
    """The fake PayPal; its webhooks go nowhere (tests replay them by hand)."""
    with FakeGateways(panel_url=NOWHERE, webhook_attempts=1) as fake:
        _configure(settings, fake)
        yield fake


@pytest.fixture
def live_fake(settings, live_server):
    """The fake PayPal posting its webhooks to the live server."""
    with FakeGateways(panel_url=live_server.url, webhook_backoff=0.1) as fake:
        _configure(settings, fake)
        yield fake


@pytest.fixture
def customer(alice):
    client = Client()
    client.force_login(alice)
    return client


def _start(client: Client, amount: str = "10.00") -> Payment:
    answer = client.post("/funds/add/", {"method": "paypal", "amount": amount})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    payment = Payment.objects.get(method="paypal", checkout_url=answer["Location"])
    assert payment.status == Payment.Status.PENDING
    return payment


def _approve(payment: Payment) -> str:
    """The customer at PayPal: open the approval page, press Pay; returns the return URL's
    path and query, where PayPal sends the browser."""
    page = requests.get(payment.checkout_url, timeout=5)
    assert page.status_code == 200 and payment.gateway_id in page.text
    pay_action = re.search(r'action="([^"]+/pay\?[^"]+)"', page.text)
    assert pay_action is not None
    answer = requests.post(
        pay_action.group(1).replace("&amp;", "&"), timeout=5, allow_redirects=False
    )
    assert answer.status_code == 303
    back = urlsplit(answer.headers["Location"])
    assert back.path == f"/funds/payments/{payment.public_id}/"
    assert f"token={payment.gateway_id}" in back.query and "PayerID=" in back.query
    return f"{back.path}?{back.query}"


def _deposits(user) -> list[Decimal]:
    return list(
        LedgerEntry.objects.filter(
            user=user, kind=LedgerEntry.Kind.DEPOSIT, payment_ref__startswith="paypal:"
        ).values_list("amount", flat=True)
    )


def _balance(user) -> Decimal:
    user.wallet.refresh_from_db()
    return user.wallet.balance


def _post_webhook(client: Client, body: str, headers: dict[str, str]):
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    extra.pop("HTTP_CONTENT_TYPE", None)
    return client.post("/payments/paypal/webhook/", body, "application/json", **extra)


@pytest.mark.django_db
def test_not_offered_without_client_id_and_secret(settings):
    settings.PAYMENT_METHODS = ["paypal"]
    settings.PAYPAL_CLIENT_ID = ""
    settings.PAYPAL_CLIENT_SECRET = "x"
    assert gateway_for("paypal") is None


@pytest.mark.django_db
def test_create_approve_return_captures_and_credits_once(fake, customer, alice):
    payment = _start(customer)
    assert payment.checkout_url.startswith(fake.url("paypal") + "/checkoutnow?token=")
    back = _approve(payment)

    first = customer.get(back)
    second = customer.get(back)  # the customer reloads the page

    assert first.status_code == second.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert (payment.charged_amount, payment.charged_currency) == (Decimal("10.00"), "USD")
    assert _deposits(alice) == [Decimal("10.00000")]
    assert _balance(alice) == Decimal("60.00000")
    callback = PaymentCallback.objects.get(payment=payment)
    assert (callback.source, callback.outcome) == ("return", "applied")
    assert not ledger_find_mismatches()


def _paypal():
    gateway = gateway_for("paypal")
    assert gateway is not None
    return gateway


def _api(fake: FakeGateways, method: str, path: str, **options) -> requests.Response:
    """A call to the fake PayPal's API as the merchant's other tools would make it."""
    headers = {"Authorization": f"Bearer {_token(fake)}", **options.pop("headers", {})}
    return requests.request(
        method, fake.url("paypal") + path, headers=headers, timeout=5, **options
    )


@pytest.mark.django_db
def test_capturing_twice_with_the_same_request_id_captures_once(fake, customer):
    payment = _start(customer)
    _approve(payment)

    reports = [_paypal().confirm_return(gateway_id=payment.gateway_id, query={}) for _ in range(2)]

    assert [(r.status, r.amount, r.currency) for r in reports if r] == [
        ("paid", Decimal("10.00"), "USD")
    ] * 2
    assert reports[0] is not None and reports[0].reference == str(payment.public_id)
    order = _api(fake, "GET", f"/v2/checkout/orders/{payment.gateway_id}").json()
    assert len(order["purchase_units"][0]["payments"]["captures"]) == 1
    assert len(fake.deliveries("paypal")) == 1  # one capture, one webhook


@pytest.mark.django_db
def test_an_order_captured_elsewhere_is_read_instead(fake, customer, alice):
    """Captured under another PayPal-Request-Id (an earlier process, the dashboard): PayPal
    answers the panel's capture 422 ORDER_ALREADY_CAPTURED, and the gateway reads the order."""
    payment = _start(customer)
    back = _approve(payment)
    other = _api(
        fake,
        "POST",
        f"/v2/checkout/orders/{payment.gateway_id}/capture",
        headers={"PayPal-Request-Id": "another"},
        json={},
    )
    assert other.status_code == 201

    again = _api(
        fake,
        "POST",
        f"/v2/checkout/orders/{payment.gateway_id}/capture",
        headers={"PayPal-Request-Id": f"capture-{payment.gateway_id}"},
        json={},
    )
    assert again.status_code == 422
    assert again.json()["details"][0]["issue"] == "ORDER_ALREADY_CAPTURED"

    assert customer.get(back).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert _deposits(alice) == [Decimal("10.00000")]


@pytest.mark.django_db
def test_one_token_serves_many_calls_and_a_revoked_one_is_renewed(fake, customer):
    payments = [_start(customer) for _ in range(3)]
    tokens = fake.server.context.store("paypal")["tokens"]
    assert len(tokens) == 1

    with fake.server.context.lock:  # PayPal expired or revoked it: the next call is 401
        tokens.clear()
    report = _paypal().fetch(gateway_id=payments[0].gateway_id)

    assert report is not None and report.status == "pending"
    assert len(tokens) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_concurrent_returns_credit_once(fake, alice):
    customer = Client()
    customer.force_login(alice)
    payment = _start(customer)
    back = _approve(payment)

    def return_to_panel(_: int) -> int:
        client = Client()
        client.force_login(alice)
        return client.get(back).status_code

    assert run_in_threads(2, return_to_panel) == [200, 200]

    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert _deposits(alice) == [Decimal("10.00000")]
    assert _balance(alice) == Decimal("60.00000")
    outcomes = sorted(
        PaymentCallback.objects.filter(payment=payment).values_list("outcome", flat=True)
    )
    assert outcomes in (["applied"], ["applied", "duplicate"])
    assert not ledger_find_mismatches()


def test_the_webhook_after_the_return_credits_nothing_more(live_fake, customer, alice):
    payment = _start(customer)
    assert customer.get(_approve(payment)).status_code == 200

    (delivery,) = live_fake.wait_for_deliveries("paypal", 1)

    assert [a["status"] for a in delivery.attempts] == [200]
    assert json.loads(delivery.body)["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
    callbacks = PaymentCallback.objects.filter(payment=payment)
    assert sorted(c.outcome for c in callbacks) == ["applied", "duplicate"]
    assert {c.source for c in callbacks} == {"return", "webhook"}
    assert _deposits(alice) == [Decimal("10.00000")]
    assert not ledger_find_mismatches()


def _capture_at_paypal(fake: FakeGateways, payment: Payment) -> None:
    """The capture happens but the panel never hears its answer (the customer's browser
    closed, the answer timed out): only the webhook can tell."""
    _paypal().confirm_return(gateway_id=payment.gateway_id, query={})


def test_the_webhook_alone_credits_once(live_fake, customer, alice):
    payment = _start(customer)
    _approve(payment)
    _capture_at_paypal(live_fake, payment)

    (delivery,) = live_fake.wait_for_deliveries("paypal", 1)

    assert [a["status"] for a in delivery.attempts] == [200]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert _deposits(alice) == [Decimal("10.00000")]
    # The same delivery again (PayPal retries): a duplicate, nothing more.
    assert _post_webhook(customer, delivery.body, delivery.headers).status_code == 200
    assert _deposits(alice) == [Decimal("10.00000")]
    outcomes = PaymentCallback.objects.filter(payment=payment).values_list("outcome", flat=True)
    assert sorted(outcomes) == ["applied", "duplicate"]
    assert not ledger_find_mismatches()


@pytest.mark.django_db
def test_a_forged_or_tampered_webhook_is_refused_with_400(fake, customer, alice):
    payment = _start(customer)
    _approve(payment)
    _capture_at_paypal(fake, payment)
    (delivery,) = fake.deliveries("paypal")
    event = json.loads(delivery.body)

    tampered = json.loads(delivery.body)
    tampered["resource"]["amount"]["value"] = "1000.00"
    forged_headers = dict(delivery.headers, **{"PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk"})
    answers = [
        _post_webhook(customer, json.dumps(tampered), delivery.headers),
        _post_webhook(customer, delivery.body, forged_headers),
        _post_webhook(customer, delivery.body, {"PAYPAL-AUTH-ALGO": "SHA256withRSA"}),
    ]

    assert [a.status_code for a in answers] == [400, 400, 400]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert _deposits(alice) == []
    refused = PaymentCallback.objects.filter(method="paypal", outcome="refused", payment=None)
    reasons = [c.reason for c in refused.order_by("id")]
    assert reasons[0].startswith("PayPal did not verify the signature (FAILURE)")
    assert reasons[1].startswith("PayPal did not verify the signature (FAILURE)")
    assert reasons[2].startswith("Missing PayPal headers")
    # The genuine one is believed.
    assert _post_webhook(customer, delivery.body, delivery.headers).status_code == 200
    assert event["resource"]["supplementary_data"]["related_ids"]["order_id"] == payment.gateway_id
    assert _deposits(alice) == [Decimal("10.00000")]


@pytest.mark.django_db
def test_a_webhook_signed_for_another_webhook_id_is_refused(fake, customer, alice, settings):
    payment = _start(customer)
    _approve(payment)
    _capture_at_paypal(fake, payment)
    (delivery,) = fake.deliveries("paypal")
    settings.PAYPAL_WEBHOOK_ID = "SOMEONE-ELSES-WEBHOOK"

    assert _post_webhook(customer, delivery.body, delivery.headers).status_code == 400
    assert _deposits(alice) == []


@pytest.mark.django_db
def test_paypal_unreachable_during_verification_is_503_and_recorded(fake, customer, settings):
    payment = _start(customer)
    _approve(payment)
    _capture_at_paypal(fake, payment)
    (delivery,) = fake.deliveries("paypal")
    settings.PAYPAL_API_BASE = f"http://127.0.0.1:{_closed_port()}"

    answer = _post_webhook(customer, delivery.body, delivery.headers)

    assert answer.status_code == 503
    callback = PaymentCallback.objects.get(method="paypal")
    assert callback.outcome == "refused"
    assert callback.reason.startswith("Could not verify with PayPal")
    assert callback.payload["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    # PayPal retries later, when it answers again: credited then.
    settings.PAYPAL_API_BASE = fake.url("paypal")
    assert _post_webhook(customer, delivery.body, delivery.headers).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID


@pytest.mark.django_db
def test_a_capture_below_the_amount_asked_is_refused_and_flagged(fake, customer, alice):
    payment = _start(customer)
    # The order at PayPal is for 10.00; the payment now asks 12.00 (as if the order had been
    # created for less than the payment's total).
    Payment.objects.filter(pk=payment.pk).update(amount=Decimal("12.00"))
    back = _approve(payment)

    assert customer.get(back).status_code == 200

    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert payment.needs_attention
    assert "Paid 10.00 USD, asked 12.00" in payment.note
    assert _deposits(alice) == []
    assert PaymentCallback.objects.get(payment=payment).outcome == "refused"
    assert not ledger_find_mismatches()


def _refund_at_paypal(fake: FakeGateways, payment: Payment) -> requests.Response:
    capture_id = _capture_id(fake, payment)
    return _api(fake, "POST", f"/v2/payments/captures/{capture_id}/refund", json={})


def _capture_id(fake: FakeGateways, payment: Payment) -> str:
    order = _api(fake, "GET", f"/v2/checkout/orders/{payment.gateway_id}").json()
    return str(order["purchase_units"][0]["payments"]["captures"][0]["id"])


def _token(fake: FakeGateways) -> str:
    answer = requests.post(
        fake.url("paypal") + "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(fake.config.paypal_client_id, fake.config.paypal_client_secret),
        timeout=5,
    )
    return str(answer.json()["access_token"])


def test_a_refund_at_paypal_marks_the_payment_refunded_and_flags_it(live_fake, customer, alice):
    payment = _start(customer)
    customer.get(_approve(payment))
    live_fake.wait_for_deliveries("paypal", 1)

    assert _refund_at_paypal(live_fake, payment).status_code == 201
    deliveries = live_fake.wait_for_deliveries("paypal", 2)

    assert json.loads(deliveries[1].body)["event_type"] == "PAYMENT.CAPTURE.REFUNDED"
    assert [a["status"] for a in deliveries[1].attempts] == [200]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert payment.needs_attention
    # Taking the money back is staff's decision: the balance keeps the deposit.
    assert _deposits(alice) == [Decimal("10.00000")]
    assert _balance(alice) == Decimal("60.00000")
    assert not ledger_find_mismatches()


def test_a_dispute_tied_to_the_capture_marks_the_payment_disputed(live_fake, customer, alice):
    payment = _start(customer)
    customer.get(_approve(payment))
    live_fake.wait_for_deliveries("paypal", 1)
    capture_id = _capture_id(live_fake, payment)

    requests.post(f"{live_fake.url('paypal')}/_fake/dispute/{capture_id}", timeout=5)
    deliveries = live_fake.wait_for_deliveries("paypal", 2)

    assert [a["status"] for a in deliveries[1].attempts] == [200]
    payment.refresh_from_db()
    assert payment.status == Payment.Status.DISPUTED
    assert payment.needs_attention
    assert _deposits(alice) == [Decimal("10.00000")]


@pytest.mark.django_db
def test_cancel_at_paypal_comes_back_and_changes_nothing(fake, customer, alice):
    payment = _start(customer)
    page = requests.get(payment.checkout_url, timeout=5)
    cancel = re.search(r'action="([^"]+/cancel\?[^"]+)"', page.text)
    assert cancel is not None
    answer = requests.post(cancel.group(1), timeout=5, allow_redirects=False)
    back = urlsplit(answer.headers["Location"])

    page = customer.get(f"{back.path}?{back.query}")
    assert page.status_code == 200 and "You left the checkout" in page.content.decode()

    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # only the Cancel button (a POST) cancels
    assert _deposits(alice) == []


@pytest.mark.django_db
def test_a_return_without_approval_captures_nothing(fake, customer, alice):
    payment = _start(customer)
    assert (
        customer.get(f"/funds/payments/{payment.public_id}/?token={payment.gateway_id}").status_code
        == 200
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert _deposits(alice) == []


@pytest.mark.django_db
def test_wrong_client_secret_starts_nothing(fake, customer, settings):
    settings.PAYPAL_CLIENT_SECRET = "not-the-secret"
    answer = customer.post("/funds/add/", {"method": "paypal", "amount": "10.00"})
    assert answer.status_code == 400
    assert "could not start the payment" in answer.content.decode()
    assert Payment.objects.get(method="paypal").status == Payment.Status.FAILED


@pytest.mark.django_db
def test_the_add_funds_form_may_redirect_to_paypal_and_nowhere_else(fake, customer, settings):
    """The form's answer redirects to PayPal; browsers check that against form-action."""
    csp = customer.get("/funds/add/")["Content-Security-Policy"]
    form_action = next(d for d in csp.split(";") if d.strip().startswith("form-action"))
    assert form_action.split() == ["form-action", "'self'", fake.base_url]
    settings.PAYPAL_API_BASE = "https://api-m.sandbox.paypal.com"
    assert _paypal().checkout_origins() == ["https://www.sandbox.paypal.com"]
    settings.PAYPAL_API_BASE = "https://api-m.paypal.com"
    assert _paypal().checkout_origins() == ["https://www.paypal.com"]


@pytest.mark.parametrize(
    ("outcome", "status", "credited"),
    [
        ("COMPLETED", Payment.Status.PAID, [Decimal("10.00000")]),
        ("DENIED", Payment.Status.FAILED, []),
    ],
)
def test_a_pending_capture_waits_for_the_webhook(
    live_fake, customer, alice, outcome, status, credited
):
    """An eCheck: the capture on return is PENDING (nothing credited); PayPal's later
    PAYMENT.CAPTURE.COMPLETED credits it, PAYMENT.CAPTURE.DENIED fails it."""
    payment = _start(customer)
    requests.post(f"{live_fake.url('paypal')}/_fake/next-capture?status=PENDING", timeout=5)
    assert customer.get(_approve(payment)).status_code == 200
    (pending,) = live_fake.wait_for_deliveries("paypal", 1)
    assert json.loads(pending.body)["event_type"] == "PAYMENT.CAPTURE.PENDING"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert _deposits(alice) == []

    capture_id = _capture_id(live_fake, payment)
    settle = f"{live_fake.url('paypal')}/_fake/settle/{capture_id}?status={outcome}"
    assert requests.post(settle, timeout=5).status_code == 200
    deliveries = live_fake.wait_for_deliveries("paypal", 2)

    assert [a["status"] for a in deliveries[1].attempts] == [200]
    payment.refresh_from_db()
    assert payment.status == status
    assert _deposits(alice) == credited
    assert not ledger_find_mismatches()
