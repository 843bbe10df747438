"""The reseller API's `balance` action (dispatched by panel/api_v2.py)."""

from django.conf import settings

from accounts.models import User, Wallet
from catalog.pricing import ZERO, format_money
from panel.api_protocol import ApiParams


def balance(*, user: User, params: ApiParams) -> dict[str, str]:
    """{"balance": "100.84292", "currency": "USD"}"""
    amount = Wallet.objects.filter(user=user).values_list("balance", flat=True).first()
    return {
        "balance": format_money(amount if amount is not None else ZERO),
        "currency": settings.PANEL_CURRENCY,
    }
