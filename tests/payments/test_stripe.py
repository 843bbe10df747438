"""Stripe Checkout against the fake Stripe over real HTTP: the panel's gateway uses the official
SDK, the fake (accounts/fake_gateways/stripe.py) signs its webhooks on its own, as Stripe does.
A paid session credits once, however often and however concurrently it is delivered; what is
not believed is answered 400 and credits nothing; the customer's return credits nothing."""

import json
import time
from decimal import Decimal

import pytest
import requests
from django.core import mail

from accounts.fake_gateways.stripe import sign
from accounts.fake_gateways.testing import FakeGateways
from accounts.gateways import gateway_for
from accounts.gateways.stripe import major_units, minor_units
from accounts.models import LedgerEntry, Payment, PaymentCallback, PaymentMethodSetting
from accounts.payments import payment_refresh
from accounts.selectors import ledger_find_mismatches
from tests.threads import run_in_threads

WEBHOOK = "/payments/stripe/webhook/"
DEAD_PANEL = "http://127.0.0.1:9"  # nothing listens: the fake's own deliveries go nowhere


@pytest.fixture
def fake(settings):
    with FakeGateways(panel_url=DEAD_PANEL, webhook_attempts=1) as fake:
        settings.PAYMENT_METHODS = ["stripe"]
        settings.STRIPE_SECRET_KEY = fake.config.stripe_secret_key
        settings.STRIPE_WEBHOOK_SECRET = fake.config.stripe_webhook_secret
        settings.STRIPE_API_BASE = fake.url("stripe")
        settings.ADMINS = [("Ops", "ops@example.com")]
        yield fake


@pytest.fixture
def live_fake(fake, live_server):
    """The fake posts its webhooks to the live server, retrying as Stripe does."""
    fake.reconfigure(panel_url=live_server.url, webhook_attempts=3, webhook_backoff=0.2)
    return fake


def start(client, user, amount: str = "25.00") -> Payment:
    client.force_login(user)
    response = client.post("/funds/add/", {"method": "stripe", "amount": amount})
    assert response.status_code == 302, response.content.decode()[:2000]
    payment = Payment.objects.get(user=user)
    assert response["Location"] == payment.checkout_url
    return payment


def pay(payment: Payment) -> str:
    """The customer clicks Pay on the fake checkout; returns where the browser is sent."""
    answer = requests.post(payment.checkout_url + "/pay", allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    return answer.headers["Location"]


def session_of_payment_intent(payment: Payment) -> str:
    return (
        gateway_for("stripe")
        .fetch(gateway_id=payment.gateway_id)
        .payload["session"]["payment_intent"]
    )


def session_of(fake, payment: Payment) -> dict:
    with fake.server.context.lock:
        return dict(fake.server.context.store("stripe")["sessions"][payment.gateway_id])


def deposits(user) -> list[Decimal]:
    entries = LedgerEntry.objects.filter(
        user=user, kind="deposit", payment_ref__startswith="stripe:"
    )
    return [e.amount for e in entries]


def balance(user) -> Decimal:
    user.wallet.refresh_from_db()
    return user.wallet.balance


def headers_of(delivery) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Stripe-Signature": delivery.headers["Stripe-Signature"],
    }


def post_signed(client, body: bytes, signature: str):
    return client.post(
        WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


def control(fake, action: str, payment: Payment) -> None:
    url = f"{fake.url('stripe')}/_control/{action}/{payment.gateway_id}"
    assert requests.post(url, timeout=10).status_code == 200


# --- Starting ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_starting_creates_a_checkout_session_at_the_fake_and_redirects_to_it(fake, client, alice):
    PaymentMethodSetting.objects.create(method="stripe", fee_percent=Decimal("2"))
    payment = start(client, alice, "25.00")
    session = session_of(fake, payment)
    assert payment.status == Payment.Status.PENDING
    assert payment.gateway_id.startswith("cs_test_")
    assert payment.checkout_url == f"{fake.url('stripe')}/checkout/{payment.gateway_id}"
    assert session["amount_total"] == 2550  # 25.00 + 2 % fee, in cents
    assert session["currency"] == "usd"
    assert session["client_reference_id"] == str(payment.public_id)
    assert session["metadata"] == {"reference": str(payment.public_id)}
    assert session["customer_email"] == "alice@example.com"
    assert session["success_url"] == f"http://testserver/funds/payments/{payment.public_id}/"
    assert session["cancel_url"] == session["success_url"] + "?canceled=1"
    assert 3500 < session["expires_at"] - time.time() <= 3600
    assert abs(payment.expires_at.timestamp() - session["expires_at"]) < 1
    page = requests.get(payment.checkout_url, timeout=10)
    assert "Add funds: 25.50 USD" in page.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"STRIPE_SECRET_KEY": "sk_test_wrong"}, "Invalid API Key"),
        ({"STRIPE_API_BASE": DEAD_PANEL}, ""),
    ],
)
def test_a_gateway_that_refuses_or_is_down_fails_the_payment_and_says_so(
    fake, client, alice, settings, change, expected
):
    for name, value in change.items():
        setattr(settings, name, value)
    client.force_login(alice)
    response = client.post("/funds/add/", {"method": "stripe", "amount": "25"})
    assert response.status_code == 400
    assert "could not start the payment; nothing was charged" in response.content.decode()
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.FAILED
    assert expected in payment.note


def test_stripe_is_offered_only_with_both_secrets(settings):
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_x", ""
    assert gateway_for("stripe") is None
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    assert gateway_for("stripe") is not None


def test_amounts_go_to_stripe_in_the_currency_s_smallest_unit():
    assert minor_units(Decimal("25.50"), "usd") == 2550
    assert minor_units(Decimal("2500"), "JPY") == 2500
    assert minor_units(Decimal("100.50"), "JPY") == 101  # rounded up: never less than asked
    assert minor_units(Decimal("1.23"), "KWD") == 1230
    assert major_units(2550, "usd") == Decimal("25.50")
    assert major_units(2500, "jpy") == Decimal("2500")
    assert major_units(1230, "KWD") == Decimal("1.230")


# --- Crediting -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_fake_s_webhook_credits_once_and_five_redeliveries_change_nothing(
    live_fake, live_server, client, alice
):
    payment = start(client, alice)
    assert pay(payment) == f"http://testserver/funds/payments/{payment.public_id}/"
    (delivery,) = live_fake.wait_for_deliveries("stripe", 1)
    assert [a["status"] for a in delivery.attempts] == [200]
    assert json.loads(delivery.body)["type"] == "checkout.session.completed"
    for _ in range(5):
        again = requests.post(
            live_server.url + WEBHOOK,
            data=delivery.body.encode(),
            headers=headers_of(delivery),
            timeout=10,
        )
        assert again.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert (payment.charged_amount, payment.charged_currency) == (Decimal("25.00"), "USD")
    assert deposits(alice) == [Decimal("25.00000")]
    assert balance(alice) == Decimal("75.00000")
    outcomes = list(payment.callbacks.order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["applied"] + ["duplicate"] * 5
    assert not ledger_find_mismatches()


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_deliveries_of_one_signed_event_credit_once(
    fake, live_server, client, alice
):
    payment = start(client, alice)
    pay(payment)
    (delivery,) = fake.wait_for_deliveries("stripe", 1)  # to the dead address: not applied
    body = delivery.body.encode()

    def post(_index: int) -> int:
        url = live_server.url + WEBHOOK
        return requests.post(url, data=body, headers=headers_of(delivery), timeout=30).status_code

    assert run_in_threads(10, post) == [200] * 10
    assert deposits(alice) == [Decimal("25.00000")]
    assert balance(alice) == Decimal("75.00000")
    outcomes = sorted(payment.callbacks.values_list("outcome", flat=True))
    assert outcomes == ["applied"] + ["duplicate"] * 9
    assert not ledger_find_mismatches()


@pytest.mark.django_db
def test_a_zero_decimal_panel_currency_is_charged_and_credited_in_whole_units(
    fake, client, alice, settings
):
    settings.PANEL_CURRENCY = "JPY"
    PaymentMethodSetting.objects.create(method="stripe", max_amount=Decimal("100000"))
    payment = start(client, alice, "2500")
    assert session_of(fake, payment)["amount_total"] == 2500
    assert "Add funds: 2500 JPY" in requests.get(payment.checkout_url, timeout=10).text
    pay(payment)
    (delivery,) = fake.wait_for_deliveries("stripe", 1)
    assert (
        post_signed(
            client, delivery.body.encode(), delivery.headers["Stripe-Signature"]
        ).status_code
        == 200
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert (payment.charged_amount, payment.charged_currency) == (Decimal("2500"), "JPY")
    assert deposits(alice) == [Decimal("2500.00000")]


# --- Refusals ------------------------------------------------------------------------------------


@pytest.fixture
def paid_delivery(fake, client, alice):
    """A payment paid at the fake whose webhook never reached the panel, and that delivery."""
    payment = start(client, alice)
    pay(payment)
    (delivery,) = fake.wait_for_deliveries("stripe", 1)
    return payment, delivery


def assert_refused_and_nothing_credited(payment, alice, reason: str) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert deposits(alice) == []
    refused = PaymentCallback.objects.get(method="stripe", outcome="refused")
    assert reason in refused.reason
    assert not ledger_find_mismatches()


@pytest.mark.django_db
def test_a_tampered_body_is_refused_with_400(paid_delivery, client, alice):
    payment, delivery = paid_delivery
    body = delivery.body.replace('"amount_total": 2500', '"amount_total": 250000').encode()
    assert body != delivery.body.encode()
    assert post_signed(client, body, delivery.headers["Stripe-Signature"]).status_code == 400
    assert_refused_and_nothing_credited(payment, alice, "No signatures found matching")


@pytest.mark.django_db
def test_a_delivery_signed_with_another_secret_is_refused_with_400(fake, client, alice):
    fake.reconfigure(stripe_webhook_secret="whsec_of_another_endpoint")
    payment = start(client, alice)
    pay(payment)
    (delivery,) = fake.wait_for_deliveries("stripe", 1)
    answer = post_signed(client, delivery.body.encode(), delivery.headers["Stripe-Signature"])
    assert answer.status_code == 400
    assert_refused_and_nothing_credited(payment, alice, "No signatures found matching")


@pytest.mark.django_db
def test_a_delivery_signed_over_five_minutes_ago_is_refused_and_one_within_is_not(
    paid_delivery, client, alice, settings
):
    payment, delivery = paid_delivery
    body, secret = delivery.body.encode(), settings.STRIPE_WEBHOOK_SECRET
    stale = sign(body, secret, timestamp=int(time.time()) - 301)
    assert post_signed(client, body, stale).status_code == 400
    assert_refused_and_nothing_credited(payment, alice, "Timestamp outside the tolerance zone")
    recent = sign(body, secret, timestamp=int(time.time()) - 240)
    assert post_signed(client, body, recent).status_code == 200
    assert deposits(alice) == [Decimal("25.00000")]


@pytest.mark.django_db
def test_no_signature_or_garbage_is_refused_with_400(fake, client, settings):
    assert client.post(WEBHOOK, b"{}", content_type="application/json").status_code == 400
    garbage = b"not json"
    assert (
        post_signed(client, garbage, sign(garbage, settings.STRIPE_WEBHOOK_SECRET)).status_code
        == 400
    )
    reasons = list(PaymentCallback.objects.values_list("reason", flat=True))
    assert len(reasons) == 2 and all(r for r in reasons)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount_total", 2499, "Paid 24.99 USD, asked 25.00"),
        ("currency", "eur", "Paid in EUR, asked in USD"),
    ],
)
def test_a_signed_report_of_another_amount_or_currency_credits_nothing_and_flags(
    paid_delivery, client, alice, settings, django_capture_on_commit_callbacks, field, value, reason
):
    payment, delivery = paid_delivery
    event = json.loads(delivery.body)
    event["data"]["object"][field] = value
    body = json.dumps(event).encode()
    with django_capture_on_commit_callbacks(execute=True):
        answer = post_signed(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET))
    assert answer.status_code == 200  # believed, refused for good: Stripe must stop sending it
    assert_refused_and_nothing_credited(payment, alice, reason)
    payment.refresh_from_db()
    assert payment.needs_attention
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_event_about_no_payment_is_answered_200_and_changes_nothing(fake, client, settings):
    body = json.dumps(
        {"id": "evt_1", "object": "event", "type": "customer.created", "data": {"object": {}}}
    ).encode()
    assert post_signed(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET)).status_code == 200
    assert not PaymentCallback.objects.exists()


@pytest.mark.django_db
def test_the_customer_s_return_alone_credits_nothing(paid_delivery, client, alice):
    payment, _delivery = paid_delivery
    page = client.get(f"/funds/payments/{payment.public_id}/")
    assert page.status_code == 200
    assert "waiting for the payment" in page.content.decode()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert deposits(alice) == []


@pytest.mark.django_db
def test_cancel_at_the_checkout_sends_the_customer_back_to_the_cancel_url(fake, client, alice):
    payment = start(client, alice)
    answer = requests.post(payment.checkout_url + "/cancel", allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith(f"/funds/payments/{payment.public_id}/?canceled=1")
    page = client.get(answer.headers["Location"].removeprefix("http://testserver"))
    assert "You left the checkout" in page.content.decode()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING  # only the Cancel button (a POST) cancels
    assert deposits(alice) == []


# --- Later events --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("action", "status"), [("dispute", "disputed"), ("refund", "refunded")])
def test_a_dispute_or_refund_flags_the_paid_payment_and_tells_staff(
    live_fake, client, alice, action, status
):
    payment = start(client, alice)
    pay(payment)
    live_fake.wait_for_deliveries("stripe", 1)
    control(live_fake, action, payment)
    second = live_fake.wait_for_deliveries("stripe", 2)[1]
    assert [a["status"] for a in second.attempts] == [200]
    payment.refresh_from_db()
    assert payment.status == status
    assert payment.needs_attention
    last = payment.callbacks.order_by("-id").first()
    assert (last.outcome, last.reported_status) == ("applied", status)
    assert deposits(alice) == [Decimal("25.00000")]  # taking it back stays staff's decision
    assert any(status in m.body for m in mail.outbox)
    assert not ledger_find_mismatches()


@pytest.mark.django_db(transaction=True)
def test_an_expired_session_expires_the_payment(live_fake, client, alice):
    payment = start(client, alice)
    control(live_fake, "expire", payment)
    live_fake.wait_for_deliveries("stripe", 1)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.EXPIRED
    assert requests.get(payment.checkout_url, timeout=10).status_code == 410


@pytest.mark.django_db(transaction=True)
def test_a_session_past_its_expiry_expires_by_itself(live_fake, client, alice):
    payment = start(client, alice)
    with live_fake.server.context.lock:
        live_fake.server.context.store("stripe")["sessions"][payment.gateway_id]["expires_at"] = (
            time.time() - 1
        )
    assert requests.get(payment.checkout_url, timeout=10).status_code == 410
    (delivery,) = live_fake.wait_for_deliveries("stripe", 1)
    assert json.loads(delivery.body)["type"] == "checkout.session.expired"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.EXPIRED


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("outcome", "status", "credited"),
    [("async_succeeded", "paid", [Decimal("25.00000")]), ("async_failed", "failed", [])],
)
def test_a_payment_that_settles_later_waits_then_follows_stripe(
    live_fake, client, alice, outcome, status, credited
):
    payment = start(client, alice)
    control(live_fake, "pay_later", payment)  # completed, unpaid: a bank debit
    live_fake.wait_for_deliveries("stripe", 1)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert deposits(alice) == []
    control(live_fake, outcome, payment)
    live_fake.wait_for_deliveries("stripe", 2)
    payment.refresh_from_db()
    assert payment.status == status
    assert deposits(alice) == credited
    assert not ledger_find_mismatches()


@pytest.mark.django_db
def test_reading_the_session_repairs_a_missed_webhook_once(paid_delivery, alice):
    payment, _delivery = paid_delivery
    assert payment_refresh(payment=payment).outcome == "applied"
    assert payment_refresh(payment=payment).outcome == "duplicate"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    assert deposits(alice) == [Decimal("25.00000")]
    assert [c.source for c in payment.callbacks.all()] == ["poll", "poll"]
    assert not ledger_find_mismatches()


@pytest.mark.django_db
def test_the_add_funds_page_lets_its_form_lead_to_the_checkout(fake, client, alice, settings):
    # Browsers check the redirect after the form's POST against form-action: without Stripe's
    # checkout origin there, Chromium blocks the way to the checkout (tests/browser).
    client.force_login(alice)
    policy = client.get("/funds/add/")["Content-Security-Policy"]
    form_action = next(d for d in policy.split("; ") if d.startswith("form-action"))
    assert sorted(form_action.split()[1:]) == sorted(
        ["'self'", "https://checkout.stripe.com", fake.base_url]
    )
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    policy = client.get("/funds/add/")["Content-Security-Policy"]
    assert "form-action 'self' https://checkout.stripe.com;" in policy + ";"


def charge_event(kind: str, payment_intent: str) -> bytes:
    charge = {"id": "ch_1", "object": "charge", "payment_intent": payment_intent}
    return json.dumps(
        {"id": "evt_2", "object": "event", "type": kind, "data": {"object": charge}}
    ).encode()


@pytest.mark.django_db
def test_a_refund_of_a_charge_that_is_not_a_panel_payment_is_recorded_and_credits_nothing(
    fake, client, settings
):
    body = charge_event("charge.refunded", "pi_of_another_shop")
    assert post_signed(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET)).status_code == 200
    callback = PaymentCallback.objects.get()
    assert (callback.outcome, callback.payment) == ("refused", None)
    assert callback.gateway_id == "unknown:pi_of_another_shop"


@pytest.mark.django_db
def test_a_dispute_stripe_cannot_be_asked_about_now_is_answered_503_to_come_again(
    fake, paid_delivery, client, settings
):
    payment, _delivery = paid_delivery
    settings.STRIPE_API_BASE = DEAD_PANEL
    body = charge_event("charge.dispute.created", session_of(fake, payment)["payment_intent"])
    answer = post_signed(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET))
    assert answer.status_code == 503
    assert "Stripe unreachable" in PaymentCallback.objects.get().reason
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
