"""The reseller API's `balance` action (dispatched by panel/api_v2.py)."""

from django.conf import settings

from accounts.models import User
from accounts.selectors import wallet_balance
from catalog.pricing import format_money
from panel.api_protocol import ApiParams


def balance(*, user: User, params: ApiParams) -> dict[str, str]:
    """{"balance": "100.84292", "currency": "USD"}: the balance read with the key (no query)."""
    return {
        "balance": format_money(wallet_balance(user=user)),
        "currency": settings.PANEL_CURRENCY,
    }
