"""Manual transfer (a bank transfer, a local wallet): the customer sends the money as the
method's instructions say and submits the amount and the transfer's reference; the payment
waits until staff approve it in admin (which credits it) or reject it. There is no gateway to
hear from: nothing arrives by webhook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from django.conf import settings
from django.utils.translation import gettext_noop

from accounts.gateways.base import Checkout, Gateway, PaymentRequest, Refusal, Report


class ManualTransfer(Gateway):
    code = "manual"
    name = gettext_noop(
        "Bank transfer (confirmed by staff)"
    )  # shown through the catalog ({% translate offer.name %})

    @classmethod
    def from_settings(cls) -> Self | None:
        return cls() if settings.PAYMENT_MANUAL_ENABLED else None

    def start(self, request: PaymentRequest) -> Checkout:
        # The payment's own page tells the customer it waits for staff.
        return Checkout(gateway_id=request.reference, redirect_url=request.return_url)

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> Report | None:
        raise Refusal("Manual transfers have no webhook.")
