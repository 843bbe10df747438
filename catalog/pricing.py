"""Pure Decimal helpers for money: one precision and one rounding rule for the whole panel.

Amounts carry 5 decimal places, as the API v2 examples do ("charge": "0.27819"). Rates per 1000
keep more, so that a provider's "0.0035" survives a markup without being rounded twice.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MONEY_DIGITS = 19
MONEY_PLACES = 5
RATE_DIGITS = 20
RATE_PLACES = 8

_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
_RATE_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)
ZERO = Decimal("0.00000")


def quantize_money(value: Decimal) -> Decimal:
    """Round an amount to the panel's 5 places, half up (the rule every charge and refund uses)."""
    return Decimal(value).quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_UP)


def quantize_rate(value: Decimal) -> Decimal:
    """Round a rate per 1000 to 8 places, half up."""
    return Decimal(value).quantize(_RATE_QUANTUM, rounding=ROUND_HALF_UP)


def charge_for(rate_per_1000: Decimal, quantity: int) -> Decimal:
    """The charge for `quantity` units at `rate_per_1000`, rounded once at the end."""
    return quantize_money(Decimal(rate_per_1000) * quantity / 1000)


def parse_money(value: object) -> Decimal:
    """Parse an amount from outside (form, CLI, upstream) exactly: never through float.

    Raises ValueError with a clear message on anything that is not a finite number.
    """
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not an amount") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    return amount


def format_money(value: Decimal) -> str:
    """The API's string form of an amount: always 5 places ("0.27819")."""
    return f"{quantize_money(value):.{MONEY_PLACES}f}"
