"""Stripe Checkout, through the official `stripe` SDK (docs/payments.md, "Stripe Checkout").

`start` creates a Checkout Session and sends the customer to its page; the payment is
credited on the `checkout.session.completed` webhook (or `..async_payment_succeeded` for the
methods that settle later), verified by the SDK from the raw body and the `Stripe-Signature`
header with a 5-minute tolerance. The customer's return credits nothing. A dispute or a
refund arrives about the PaymentIntent, not the session: the session is found by asking
Stripe for the Checkout Session of that PaymentIntent (a documented list filter), so the
report names the gateway id the payment was stored under and this module needs no ORM.

https://docs.stripe.com/api/checkout/sessions and https://docs.stripe.com/webhooks
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from functools import cached_property
from typing import Any, Self
from urllib.parse import urlsplit

import stripe
from django.conf import settings
from django.utils.translation import gettext_noop

from accounts.gateways.base import (
    EXPIRED,
    FAILED,
    PAID,
    PENDING,
    Checkout,
    Gateway,
    GatewayError,
    PaymentRequest,
    Refusal,
    Report,
)

# Stripe's own default, kept explicit: a delivery signed more than 5 minutes ago is refused.
SIGNATURE_TOLERANCE_SECONDS = 300
# Stripe accepts 30 minutes to 24 hours; a customer at the checkout needs minutes, and a
# shorter life means a stale payment is closed (checkout.session.expired) the same hour.
SESSION_LIFETIME_SECONDS = 3600
CONNECT_TIMEOUT, READ_TIMEOUT = 5.0, 20.0
CHECKOUT_ORIGIN = "https://checkout.stripe.com"

# Currencies Stripe takes in whole units (https://docs.stripe.com/currencies#zero-decimal),
# and the three-decimal ones (amounts in thousandths, a multiple of 10).
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())  # noqa: SIM905
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())  # noqa: SIM905


def minor_units(amount: Decimal, currency: str) -> int:
    """`amount` in Stripe's smallest unit of `currency`, rounded up (the customer pays at
    least what was asked: JPY 100.50 is charged 101)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return int(amount.to_integral_value(rounding=ROUND_CEILING))
    if code in THREE_DECIMAL:
        return int((amount * 100).to_integral_value(rounding=ROUND_CEILING)) * 10
    return int((amount * 100).to_integral_value(rounding=ROUND_CEILING))


def major_units(amount: int, currency: str) -> Decimal:
    """Stripe's integer amount back in `currency`'s major unit."""
    code = currency.upper()
    exponent = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return Decimal(int(amount)).scaleb(-exponent)


class StripeGateway(Gateway):
    code = "stripe"
    name = gettext_noop("Card (Stripe)")  # shown through the catalog ({% translate offer.name %})

    def __init__(self, *, secret_key: str, webhook_secret: str, api_base: str) -> None:
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.api_base = api_base

    @cached_property
    def client(self) -> stripe.StripeClient:
        # Built when first used: the Add funds page builds every gateway to list the methods.
        return stripe.StripeClient(
            self.secret_key,
            base_addresses={"api": self.api_base.rstrip("/")},
            # Bounded: a slow Stripe must not hold a web worker for the SDK's default 80 s.
            http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)),
            # Retried POSTs carry the same idempotency key (below): one session, however often.
            max_network_retries=1,
        )

    @classmethod
    def from_settings(cls) -> Self | None:
        if not (settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET):
            return None
        return cls(
            secret_key=settings.STRIPE_SECRET_KEY,
            webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
            api_base=settings.STRIPE_API_BASE,
        )

    def checkout_origins(self) -> list[str]:
        """Stripe's hosted checkout; a stand-in API (the fake) serves its checkout itself."""
        api = urlsplit(self.api_base)
        if api.hostname in (None, "api.stripe.com"):
            return [CHECKOUT_ORIGIN]
        return [CHECKOUT_ORIGIN, f"{api.scheme}://{api.netloc}"]

    def start(self, request: PaymentRequest) -> Checkout:
        """Create a Checkout Session (https://docs.stripe.com/api/checkout/sessions/create)."""
        expires_at = int(time.time()) + SESSION_LIFETIME_SECONDS
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": minor_units(request.amount, request.currency),
                        "product_data": {
                            "name": "Add funds",
                            "description": request.description[:500],
                        },
                    },
                }
            ],
            "client_reference_id": request.reference,
            "metadata": {"reference": request.reference},
            "success_url": request.return_url,
            "cancel_url": request.cancel_url,
            "expires_at": expires_at,
        }
        if request.customer_email:
            params["customer_email"] = request.customer_email
        try:
            session = self.client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]  # a plain dict of the documented fields
                {"idempotency_key": f"panel-checkout-{request.reference}"},
            )
        except stripe.StripeError as exc:
            raise GatewayError(_error_text(exc)) from exc
        if not session.id or not session.url:
            raise GatewayError("Stripe answered without a session id or URL.")
        return Checkout(
            gateway_id=session.id,
            redirect_url=session.url,
            expires_at=datetime.fromtimestamp(session.expires_at or expires_at, tz=UTC),
        )

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> Report | None:
        """Verify the delivery with the SDK (signature and timestamp) and read the event."""
        try:
            event = self.client.construct_event(
                body,
                headers.get("stripe-signature"),
                self.webhook_secret,
                tolerance=SIGNATURE_TOLERANCE_SECONDS,
            )
        except stripe.SignatureVerificationError as exc:
            raise Refusal(f"Stripe signature refused: {exc.user_message or exc}") from None
        except ValueError:
            raise Refusal("The body is not a Stripe event (unreadable JSON).") from None
        data = event.to_dict()
        obj = (data.get("data") or {}).get("object") or {}
        kind = str(data.get("type", ""))
        event_id = str(data.get("id", ""))
        if kind in SESSION_EVENTS:
            return _session_report(obj, status=SESSION_EVENTS[kind](obj), event=data)
        if kind in CHARGE_EVENTS:
            return self._charge_report(obj, status=CHARGE_EVENTS[kind], event_id=event_id)
        return None

    def fetch(self, *, gateway_id: str) -> Report | None:
        """Read the session (https://docs.stripe.com/api/checkout/sessions/retrieve)."""
        try:
            session = self.client.v1.checkout.sessions.retrieve(gateway_id)
        except stripe.StripeError as exc:
            raise GatewayError(_error_text(exc)) from exc
        obj = session.to_dict()
        if obj.get("status") == "expired":
            status = EXPIRED
        elif obj.get("status") == "complete" and obj.get("payment_status") == "paid":
            status = PAID
        else:
            status = PENDING
        return _session_report(obj, status=status, event={"session": obj})

    def _charge_report(self, obj: Mapping[str, Any], *, status: str, event_id: str) -> Report:
        """A dispute or a refund names the PaymentIntent: find its Checkout Session
        (https://docs.stripe.com/api/checkout/sessions/list, `payment_intent`)."""
        payment_intent = obj.get("payment_intent")
        if not payment_intent:
            raise Refusal(f"A {obj.get('object')} without a payment_intent.", payload=obj)
        try:
            found = self.client.v1.checkout.sessions.list(
                {"payment_intent": str(payment_intent), "limit": 1}
            )
        except stripe.StripeError as exc:
            # Believed, but not readable now: 503, and Stripe delivers it again later.
            raise Refusal(f"Stripe unreachable: {_error_text(exc)}", retry=True) from exc
        sessions = [s.to_dict() for s in found.data]
        session_id = str(sessions[0]["id"]) if sessions else f"unknown:{payment_intent}"
        reference = str(sessions[0].get("client_reference_id") or "") if sessions else ""
        return Report(
            gateway_id=session_id,
            status=status,
            reference=reference,
            event_id=event_id,
            payload={"object": dict(obj)},
        )


def _session_report(obj: Mapping[str, Any], *, status: str, event: Mapping[str, Any]) -> Report:
    amount = obj.get("amount_total")
    currency = str(obj.get("currency") or "")
    return Report(
        gateway_id=str(obj.get("id", "")),
        status=status,
        amount=major_units(amount, currency) if amount is not None and status == PAID else None,
        currency=currency.upper() if status == PAID else "",
        reference=str(obj.get("client_reference_id") or ""),
        event_id=str(event.get("id", "")),
        payload=dict(event),
    )


def _completed_status(session: Mapping[str, Any]) -> str:
    # A card is paid when the session completes; a bank debit or voucher completes "unpaid"
    # and is settled later by async_payment_succeeded or _failed.
    return PAID if session.get("payment_status") == "paid" else PENDING


SESSION_EVENTS = {
    "checkout.session.completed": _completed_status,
    "checkout.session.async_payment_succeeded": lambda _session: PAID,
    "checkout.session.async_payment_failed": lambda _session: FAILED,
    "checkout.session.expired": lambda _session: EXPIRED,
}
CHARGE_EVENTS = {"charge.dispute.created": "disputed", "charge.refunded": "refunded"}


def _error_text(exc: stripe.StripeError) -> str:
    return str(exc.user_message or exc.__class__.__name__)[:500]
