"""Pure Decimal helpers for money: one precision and one rounding rule for the whole panel.

Amounts carry 5 decimal places, as the API v2 examples do ("charge": "0.27819"). Rates per 1000
keep more, so that a provider's "0.0035" survives a markup without being rounded twice.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property

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


def trimmed_text(value: Decimal, places: int) -> str:
    """`value` with thousands separators and at least 2 decimals, trailing zeros beyond them
    dropped: 1234.50000 → "1,234.50" (money_text's number)."""
    text = f"{value:.{places}f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{int(whole):,}.{frac}" if not whole.startswith("-") else f"-{abs(int(whole)):,}.{frac}"


# --- how amounts are shown -----------------------------------------------------------------------

# The sign written before an amount, by ISO 4217 code. A code not here is written after the
# number ("12.50 XAF"): a sign shared by several currencies ("$" of CAD, AUD...) carries its
# country prefix so that "$" always means USD.
CURRENCY_SIGNS: dict[str, str] = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "RUB": "₽",
    "UAH": "₴",
    "TRY": "₺",
    "KRW": "₩",
    "NGN": "₦",
    "PHP": "₱",
    "VND": "₫",
    "ILS": "₪",
    "KZT": "₸",
    "BRL": "R$",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "MXN": "MX$",
    "HKD": "HK$",
    "SGD": "S$",
}


def money_text(
    value: Decimal | int | str | None,
    currency: str,
    *,
    signed: bool = False,
    places: int = MONEY_PLACES,
) -> str:
    """An amount as the panel shows it, everywhere (pages, messages, mails, admin): the
    currency's sign, then at least 2 decimals and more only where the amount has them, up to
    `places` (the ledger's 5; RATE_PLACES for a rate per 1000), rounded half up.

    12.5, "USD" → "$12.50"; 0.27819 → "$0.27819"; -1.575 → "-$1.575"; signed 0.5229 →
    "+$0.5229"; a code without a sign: 12.5, "XAF" → "12.50 XAF"; None → "".
    """
    if value is None or value == "":
        return ""
    amount = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    number = trimmed_text(abs(amount), places)
    sign = "-" if amount < 0 else ("+" if signed and amount > 0 else "")
    code = currency.upper()
    prefix = CURRENCY_SIGNS.get(code)
    return f"{sign}{prefix}{number}" if prefix else f"{sign}{number} {code}"


def money_number(value: Decimal, *, places: int = MONEY_PLACES) -> str:
    """money_text's number for a file a program reads (the statement's CSV): the same decimals
    (2, more only where needed), no sign, currency or thousands separator: "-1234.575"."""
    amount = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return trimmed_text(amount, places).replace(",", "")


@dataclass(frozen=True)
class DisplayRate:
    """A currency the customer reads prices and the balance in: `rate` units of `code` for one
    unit of the panel's currency (staff's DisplayCurrency row). Charges and the ledger stay in
    the panel's currency."""

    code: str
    rate: Decimal

    def convert(self, value: Decimal, *, places: int = MONEY_PLACES) -> Decimal:
        return (Decimal(value) * self.rate).quantize(
            Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP
        )


def display_money_text(
    value: Decimal | int | str | None,
    currency: str,
    display: DisplayRate | None,
    *,
    places: int = MONEY_PLACES,
) -> str:
    """An amount in the customer's display currency with the panel's beside it:
    "€92.10 ($100.00)"; just the panel's when there is no display currency or it is the same."""
    panel = money_text(value, currency, places=places)
    if display is None or value is None or value == "" or display.code.upper() == currency.upper():
        return panel
    shown = money_text(display.convert(Decimal(value), places=places), display.code, places=places)
    return f"{shown} ({panel})"


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
    """The API's string form of an amount: always 5 places ("0.27819"), no sign or currency
    (a machine reads it; people read money_text)."""
    return f"{quantize_money(value):.{MONEY_PLACES}f}"


# --- retail pricing ------------------------------------------------------------------------------

HUNDRED = Decimal(100)


def convert_rate(rate: Decimal, exchange_rate: Decimal) -> Decimal:
    """An upstream rate in the provider's currency, converted to the panel's currency."""
    return quantize_rate(Decimal(rate) * Decimal(exchange_rate))


def retail_rate(cost_rate: Decimal, markup_percent: Decimal) -> Decimal:
    """The retail rate per 1000 for a cost rate with `markup_percent` on top (50 means cost * 1.5).

    A negative markup (a loss leader) gives a rate below cost; callers decide whether that is
    allowed (Service.allow_below_cost). The result is never negative.
    """
    rate = quantize_rate(Decimal(cost_rate) * (HUNDRED + Decimal(markup_percent)) / HUNDRED)
    return max(rate, Decimal(0))


class Rounding(StrEnum):
    """How a retail rate computed from cost + markup is rounded (CatalogSettings.rate_rounding)."""

    NONE = "none"
    STEP = "step"  # to a multiple of a step per 1000, e.g. 0.01
    SIGNIFICANT = "significant"  # to a number of significant digits, e.g. 4


@dataclass(frozen=True)
class RateRounding:
    """Staff's rounding rule for retail rates: 4.99995 sells as 5.00 (step 0.01) or 5.000 (4
    significant digits). Half up, except that a rate never drops below `floor` (the cost, when
    selling below it is not allowed) nor from above zero to zero: there it rounds up instead."""

    mode: Rounding = Rounding.NONE
    step: Decimal = Decimal("0.01")
    digits: int = 4

    def __post_init__(self) -> None:
        if self.mode == Rounding.STEP and not (
            self.step.is_finite() and self.step > 0 and self.step == quantize_rate(self.step)
        ):
            raise ValueError(f"A rounding step must be above 0 with at most 8 places: {self.step}")
        if self.mode == Rounding.SIGNIFICANT and not 1 <= self.digits <= 12:
            raise ValueError(f"Significant digits must be from 1 to 12, got {self.digits}.")

    def apply(self, rate: Decimal, *, floor: Decimal | None = None) -> Decimal:
        rate = quantize_rate(rate)
        if self.mode == Rounding.NONE or rate <= 0:
            return rate
        rounded = self._round(rate, ROUND_HALF_UP)
        if rounded == 0 or (floor is not None and rounded < floor):
            rounded = self._round(max(rate, floor or rate), ROUND_CEILING)
        return rounded

    def _round(self, rate: Decimal, how: str) -> Decimal:
        if self.mode == Rounding.STEP:
            return quantize_rate((rate / self.step).quantize(Decimal(1), rounding=how) * self.step)
        quantum = Decimal(1).scaleb(rate.adjusted() - self.digits + 1)
        if quantum < _RATE_QUANTUM:
            return rate  # already at the rate's 8 places: nothing to round
        return quantize_rate(rate.quantize(quantum, rounding=how))


NO_ROUNDING = RateRounding()


def discounted_rate(rate: Decimal, percent: Decimal) -> Decimal:
    """`rate` with `percent` off (10 means rate * 0.9), rounded as a rate."""
    return quantize_rate(Decimal(rate) * ((HUNDRED - Decimal(percent)) / HUNDRED))


@dataclass(frozen=True)
class CustomerPricing:
    """One customer's price rule, its factors worked out once for a whole price list (the API
    prices 5,000 services with it). Without a custom rate (which wins over all of this) a
    service sells at the lower of the retail rate with the customer's own discount and with
    their tier's discount. The tier's price stops at the cost (None for a manual service: no
    floor) unless `tier_below_cost`, and it never raises a retail rate that staff set below the
    cost. The customer's own discount is staff's explicit choice and is not floored."""

    own_percent: Decimal = Decimal(0)
    tier_percent: Decimal = Decimal(0)
    tier_below_cost: bool = False

    @property
    def needs_cost(self) -> bool:
        """Whether a rate needs the service's cost (a tier discount that stops at it)."""
        return self.tier_percent > 0 and not self.tier_below_cost

    def rate(self, retail: Decimal, cost_of: Callable[[], Decimal | None] | None = None) -> Decimal:
        """The customer's rate for a retail rate; `cost_of` is asked for the cost only when the
        floor can change the answer."""
        own = quantize_rate(retail * self._own_factor) if self.own_percent else retail
        if self.tier_percent <= 0:
            return own
        tiered = quantize_rate(retail * self._tier_factor)
        if tiered >= own:
            return own
        if self.needs_cost and cost_of is not None:
            cost = cost_of()
            if cost is not None:
                tiered = max(tiered, min(cost, retail))
        return min(own, tiered)

    @cached_property
    def _own_factor(self) -> Decimal:
        return (HUNDRED - Decimal(self.own_percent)) / HUNDRED

    @cached_property
    def _tier_factor(self) -> Decimal:
        return (HUNDRED - Decimal(self.tier_percent)) / HUNDRED


def customer_rate(
    *,
    retail: Decimal,
    own_percent: Decimal,
    tier_percent: Decimal,
    cost: Decimal | None,
    tier_below_cost: bool,
) -> Decimal:
    """CustomerPricing's rule for one rate."""
    rule = CustomerPricing(own_percent, tier_percent, tier_below_cost)
    return rule.rate(quantize_rate(Decimal(retail)), lambda: cost)


MARKUP_MAX = Decimal(1_000_000)  # Service.markup_percent: PERCENT digits hold less than this
_MARKUP_QUANTUM = Decimal("0.01")


def markup_percent_error(value: Decimal) -> str | None:
    """Why `value` cannot be a markup percentage, or None when it can: finite, above -100 (a
    price of zero or less), below 1,000,000 and at most 2 decimal places."""
    if not value.is_finite() or not Decimal(-100) < value < MARKUP_MAX:
        return f"The markup must be a percentage above -100% and below 1,000,000%, got {value}."
    # The column holds 2 places (PERCENT): more would be rounded by the database, and a price
    # computed from the unrounded value would not match the one the next sync computes.
    if value != value.quantize(_MARKUP_QUANTUM):
        return f"The markup takes at most 2 decimal places, got {value}."
    return None


def margin(retail: Decimal, cost: Decimal) -> Decimal:
    """What the panel keeps per 1000: retail minus cost (negative when selling at a loss)."""
    return quantize_rate(Decimal(retail) - Decimal(cost))


def margin_percent(retail: Decimal, cost: Decimal) -> Decimal | None:
    """The margin as a percentage of the cost (the markup actually earned); None at zero cost."""
    if not cost:
        return None
    return ((Decimal(retail) - Decimal(cost)) * HUNDRED / Decimal(cost)).quantize(Decimal("0.01"))


def rise_percent(old_cost: Decimal | None, new_cost: Decimal) -> Decimal:
    """How much a cost rose, in percent of the old one (0 when it fell or was unknown)."""
    if old_cost is None or new_cost <= old_cost:
        return Decimal(0)
    if old_cost == 0:
        return Decimal("Infinity")
    return (Decimal(new_cost) - Decimal(old_cost)) * HUNDRED / Decimal(old_cost)


class Pause(StrEnum):
    """Why a price decision stops a service from selling (matches Service.DisabledCause)."""

    NONE = ""
    PRICE_HOLD = "price_hold"
    BELOW_COST = "below_cost"


@dataclass(frozen=True)
class PriceDecision:
    """What a service should sell at after its cost or markup changed."""

    rate: Decimal  # the retail rate to sell at now
    held_rate: Decimal | None = None  # a rise waiting for an admin's approval
    held_cost: Decimal | None = None
    pause: Pause = Pause.NONE
    reason: str = ""  # why it is held or paused, for the admin

    @property
    def is_held(self) -> bool:
        return self.held_rate is not None


def decide_price(
    *,
    fixed: bool,
    current_rate: Decimal,
    priced_cost: Decimal | None,
    cost: Decimal,
    markup_percent: Decimal,
    hold_percent: Decimal,
    pause_on_hold: bool,
    allow_below_cost: bool,
    rounding: RateRounding = NO_ROUNDING,
) -> PriceDecision:
    """The pricing rules in one pure function.

    - A fixed rate is never changed; if the cost rises above it (and selling below cost is not
      allowed) the service is paused instead.
    - Otherwise the rate is cost + markup, rounded by staff's `rounding` rule, never below cost
      unless allowed (a rounding that would go below it rounds up instead).
    - A cost rise of more than `hold_percent` over `priced_cost` (the cost the current rate was
      set from) is held: the old rate stays (or the service pauses, `pause_on_hold`) until an
      admin approves `held_rate`. Keeping an old rate that is now below cost is not allowed
      either, so such a hold always pauses.
    """
    below_cost = not allow_below_cost
    if fixed:
        if below_cost and current_rate < cost:
            return PriceDecision(
                current_rate,
                pause=Pause.BELOW_COST,
                reason=f"Fixed rate {current_rate.normalize():f} is below the cost {cost.normalize():f}.",
            )
        return PriceDecision(current_rate)
    target = retail_rate(cost, markup_percent)
    if below_cost and target < cost:
        target = cost
    target = rounding.apply(target, floor=cost if below_cost else None)
    rise = rise_percent(priced_cost, cost)
    if priced_cost is None or rise <= hold_percent:
        return PriceDecision(target)
    reason = (
        f"Upstream cost rose {_pct(rise)}% ({priced_cost.normalize():f} → {cost.normalize():f}); "
        f"new rate {target.normalize():f} waits for approval."
    )
    pause = pause_on_hold or (below_cost and current_rate < cost)
    return PriceDecision(
        current_rate,
        held_rate=target,
        held_cost=cost,
        pause=Pause.PRICE_HOLD if pause else Pause.NONE,
        reason=reason,
    )


def _pct(value: Decimal) -> str:
    return "∞" if not value.is_finite() else f"{value.quantize(Decimal('0.1'))}"
