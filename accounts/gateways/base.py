"""The one small interface every payment gateway module implements.

A gateway turns a payment into a place to send the customer (`start`), and turns what the
gateway says about a payment (a webhook, the customer's return, a status read) into a
`Report`: the gateway's id, the status in the panel's words, the amount and currency paid.
What a report does to the payment and the balance is decided in one place,
accounts.payments.payment_report_apply, so a new gateway (Perfect Money, Payeer,
NOWPayments…) is one module here and one line in accounts.gateways.GATEWAYS.

Gateways speak HTTP and read settings; they never touch the ORM.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Self

# The statuses a Report may carry: Payment.Status values, "created" excepted.
PENDING = "pending"
PAID = "paid"
FAILED = "failed"
EXPIRED = "expired"
CANCELED = "canceled"
DISPUTED = "disputed"
REFUNDED = "refunded"
REPORT_STATUSES = frozenset({PENDING, PAID, FAILED, EXPIRED, CANCELED, DISPUTED, REFUNDED})

# Keys whose values never reach the stored payload of a callback.
SECRET_KEYS = frozenset(
    {"sign", "signature", "key", "secret", "api_key", "access_token", "token", "authorization"}
)


@dataclass(frozen=True)
class PaymentRequest:
    """What a gateway needs to start a payment. `amount` is what the customer pays (the
    deposit plus the method's fee), in `currency`, the panel's."""

    reference: str  # the payment's public id: sent as the order id / client reference
    amount: Decimal
    currency: str
    description: str
    customer_email: str
    return_url: str  # absolute; the customer comes back here (GET)
    cancel_url: str
    webhook_url: str


@dataclass(frozen=True)
class Checkout:
    """Where to send the customer, and the gateway's id of the payment it created."""

    gateway_id: str
    redirect_url: str
    expires_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """What the gateway says about one payment. `amount`/`currency` are what was paid (None
    when the gateway does not say); `reference` is the panel's reference when the gateway
    echoes it back, checked against the payment found by `gateway_id`."""

    gateway_id: str
    status: str
    amount: Decimal | None = None
    currency: str = ""
    reference: str = ""
    event_id: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in REPORT_STATUSES:
            raise ValueError(f"Unknown payment status {self.status!r}.")


class GatewayError(Exception):
    """The gateway could not be reached or refused to start a payment; the customer is told
    to try again (or another method) and nothing was charged."""


class Refusal(Exception):
    """A callback that is not believed (bad signature, stale timestamp, unreadable body).
    `retry=True` when the failure may pass (the gateway should send it again)."""

    def __init__(
        self, reason: str, *, retry: bool = False, payload: Mapping[str, Any] | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.payload = payload or {}


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: bytes = b"ok"
    content_type: str = "text/plain"


class Gateway(ABC):
    """One payment gateway, built from the settings by `from_settings` (None: not configured,
    and the method is not offered)."""

    code: ClassVar[str]
    name: ClassVar[str]  # what the customer sees, e.g. "Card (Stripe)"
    # True when the customer's return may settle the payment (PayPal captures on return);
    # Stripe and Cryptomus credit on the webhook only.
    settles_on_return: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def from_settings(cls) -> Self | None: ...

    @abstractmethod
    def start(self, request: PaymentRequest) -> Checkout:
        """Create the payment at the gateway. Raises GatewayError."""

    @abstractmethod
    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> Report | None:
        """Verify a webhook from the raw body and headers and read it. Raises Refusal when it
        is not believed; returns None for an event that says nothing about a payment's status."""

    def confirm_return(self, *, gateway_id: str, query: Mapping[str, str]) -> Report | None:
        """On the customer's return: a gateway that settles then (PayPal's capture) returns
        its report; the others return None, and the return credits nothing."""
        return None

    def fetch(self, *, gateway_id: str) -> Report | None:
        """Read the payment's status at the gateway (a missed webhook, staff's "check now").
        Raises GatewayError; None when the gateway has no such read."""
        return None

    def checkout_origins(self) -> list[str]:
        """The origins (scheme://host[:port]) `start` may send the customer to. The Add funds
        page allows them in its Content-Security-Policy's form-action: browsers apply it to
        the redirect that follows the form's POST, and would block the way to the checkout."""
        return []

    def answer(self, *, accepted: bool, retry: bool) -> WebhookAnswer:
        """How to answer a webhook. Accepted (applied, a repeat, ignored, or a believed callback
        refused for good: an amount that does not match, an unknown payment): 200, so the
        gateway stops sending it. Not believed: 400. A failure that may pass: 503, to retry."""
        if retry:
            return WebhookAnswer(503, b"retry later")
        if accepted:
            return WebhookAnswer(200, b"ok")
        return WebhookAnswer(400, b"refused")


def redact(value: Any) -> Any:
    """A copy of a callback's payload with secrets blanked, for the record."""
    if isinstance(value, Mapping):
        return {
            str(k): ("[redacted]" if str(k).lower() in SECRET_KEYS else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
