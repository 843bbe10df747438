"""The payment gateways the panel knows, by code. A method is offered on the Add funds page
when its gateway is configured (its settings are set) and staff have not switched it off
(accounts.models.PaymentMethodSetting). PAYMENT_METHODS (settings) orders them."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from accounts.gateways.base import Gateway

GATEWAYS: dict[str, str] = {
    "stripe": "accounts.gateways.stripe.StripeGateway",
    "cryptomus": "accounts.gateways.cryptomus.CryptomusGateway",
    "paypal": "accounts.gateways.paypal.PayPalGateway",
    "manual": "accounts.gateways.manual.ManualTransfer",
}


def gateway_for(code: str) -> Gateway | None:
    """The configured gateway of that code, or None (unknown or not configured)."""
    path = GATEWAYS.get(code)
    if path is None:
        return None
    gateway_class: type[Gateway] = import_string(path)
    return gateway_class.from_settings()


def gateways_configured() -> list[Gateway]:
    """The configured gateways, in the order of settings.PAYMENT_METHODS."""
    found = (gateway_for(code) for code in settings.PAYMENT_METHODS)
    return [g for g in found if g is not None]
