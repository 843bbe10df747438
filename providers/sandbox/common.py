"""Small things every sandbox module shares: the API error and the money rule."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# Providers answer amounts with five decimals ("0.27819", "100.84292").
MONEY_PLACES = Decimal("0.00001")


class ApiError(Exception):
    """An API v2 error: answered as ``{"error": message}`` with HTTP 200, like real providers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def quantize_money(value: Decimal) -> Decimal:
    """The one rounding rule of the sandbox: five decimals, half up."""
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def format_money(value: Decimal) -> str:
    return format(quantize_money(value), "f")


# Error messages. The first block is worded exactly as real API v2 providers word them (see the
# seeds); the rest follow the same style for checks whose wording the seeds don't show.
INVALID_KEY = "Invalid API key"
INCORRECT_REQUEST = "Incorrect request"
INCORRECT_SERVICE = "Incorrect service ID"
INCORRECT_LINK = "Incorrect link"
INCORRECT_ORDER = "Incorrect order ID"
NOT_ENOUGH_FUNDS = "Not enough funds on balance"
REFILL_NOT_FOUND = "Refill not found"
CANCEL_NOT_FOUND = "Cancel not found"
CANCEL_SENT_EARLIER = "Cancellation request was sent earlier"

INCORRECT_QUANTITY = "Incorrect quantity"
QUANTITY_BELOW_MIN = "Quantity less than minimal {min}"
QUANTITY_ABOVE_MAX = "Quantity more than maximal {max}"
QUANTITY_NOT_LINES = "Quantity must equal the number of lines in {field}"
DRIPFEED_DISABLED = "Drip-feed is not available for this service"
INCORRECT_RUNS = "Incorrect runs"
INCORRECT_INTERVAL = "Incorrect interval"
TOO_MANY_IDS = "Too many IDs, the maximum is 100"
REFILL_DISABLED = "Refill is disabled for this service"
REFILL_NOT_ALLOWED = "Order is not eligible for refill"
REFILL_SENT_EARLIER = "Refill request was sent earlier"
CANCEL_DISABLED = "Cancel is disabled for this service"
CANCEL_NOT_ALLOWED = "Order can't be canceled"
