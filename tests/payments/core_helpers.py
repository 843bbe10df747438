"""Helpers of the payment core's tests (tests/payments/test_manual.py and the others of the
core): a manual payment made the way /funds/add/ makes it, and a gateway double for the sweeps."""

from collections.abc import Mapping
from decimal import Decimal
from typing import Self

from django.urls import reverse

from accounts.gateways.base import Checkout, Gateway, GatewayError, PaymentRequest, Report
from accounts.models import Payment, User
from accounts.payments import PaymentUrls, payment_start


def payment_urls() -> PaymentUrls:
    return PaymentUrls(
        base_url="http://testserver",
        return_path=lambda p: reverse("payment_detail", args=[p.public_id]),
        cancel_path=lambda p: reverse("payment_detail", args=[p.public_id]) + "?canceled=1",
        webhook_path=lambda m: reverse("payment_webhook", args=[m]),
    )


def start_manual(user: User, amount: str = "20.00", reference: str = "TR-1") -> Payment:
    return payment_start(
        user=user,
        method="manual",
        amount=Decimal(amount),
        urls=payment_urls(),
        customer_reference=reference,
    )


class LedgerGateway(Gateway):
    """A gateway whose "server" is the dict `STATE`: gateway id -> the status it reports, or
    an exception to raise. It lets the sweeps' selection, bounds and error handling be tested
    without the real gateways (their own tests run them against the fake servers)."""

    code = "double"
    name = "Double"
    STATE: dict[str, object] = {}
    READS: list[str] = []
    ASKED: dict[str, tuple[Decimal, str]] = {}  # what each checkout asked: a paid read says it

    @classmethod
    def from_settings(cls) -> Self | None:
        return cls()

    def start(self, request: PaymentRequest) -> Checkout:
        gateway_id = f"dbl-{request.reference}"
        self.STATE[gateway_id] = "pending"
        self.ASKED[gateway_id] = (request.amount, request.currency)
        return Checkout(gateway_id=gateway_id, redirect_url="http://testserver/pay")

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> Report | None:
        return None

    def fetch(self, *, gateway_id: str) -> Report | None:
        self.READS.append(gateway_id)
        said = self.STATE.get(gateway_id, "pending")
        if isinstance(said, Exception):
            raise said
        amount, currency = self.ASKED.get(gateway_id, (None, ""))
        return Report(gateway_id=gateway_id, status=str(said), amount=amount, currency=currency)


def double_gateway_error() -> GatewayError:
    return GatewayError("connection refused")
