"""The one money format (catalog.pricing.money_text) and the retail rate rounding rule: pure
functions, no database."""

from decimal import Decimal as D

import pytest

from catalog.pricing import (
    DisplayRate,
    Pause,
    RateRounding,
    Rounding,
    decide_price,
    display_money_text,
    money_number,
    money_text,
)


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (D("100.00000"), "USD", "$100.00"),  # two decimals...
        (D("97.85425"), "USD", "$97.85425"),  # ...more only where the amount has them
        (D("0.52290"), "USD", "$0.5229"),
        (D("1234567.5"), "USD", "$1,234,567.50"),
        (D("-1.575"), "USD", "-$1.575"),  # the minus before the sign
        (D("0"), "USD", "$0.00"),
        (D("-0.000001"), "USD", "$0.00"),  # rounds to zero: no "-$0.00"
        (D("4.999996"), "USD", "$5.00"),  # the ledger's 5 places, half up
        (D("12.5"), "EUR", "€12.50"),
        (D("12.5"), "eur", "€12.50"),
        (D("12.5"), "TRY", "₺12.50"),
        (D("12.5"), "CAD", "CA$12.50"),  # "$" alone always means USD
        (D("12.5"), "XAF", "12.50 XAF"),  # no sign in the table: the code after the number
        (D("-3"), "XAF", "-3.00 XAF"),
        (7, "USD", "$7.00"),
        ("0.1", "USD", "$0.10"),
        (None, "USD", ""),
        ("", "USD", ""),
    ],
)
def test_money_text(value, currency, expected):
    assert money_text(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(D("0.5229"), "+$0.5229"), (D("-1.575"), "-$1.575"), (D("0"), "$0.00"), (None, "")],
)
def test_money_text_signed(value, expected):
    assert money_text(value, "USD", signed=True) == expected


def test_money_text_rate_places():
    assert money_text(D("0.00350000"), "USD", places=8) == "$0.0035"
    assert money_text(D("0.00123456"), "USD", places=8) == "$0.00123456"
    assert money_text(D("0.00123456"), "USD") == "$0.00123"  # 5 places by default


def test_money_number_for_files():
    assert money_number(D("-1234.57500")) == "-1234.575"
    assert money_number(D("50")) == "50.00"
    assert money_number(D("0.000004")) == "0.00"


def test_display_money_text_converts_with_the_panel_currency_beside():
    eur = DisplayRate("EUR", D("0.921"))
    assert display_money_text(D("100"), "USD", eur) == "€92.10 ($100.00)"
    assert display_money_text(D("0.0035"), "USD", eur, places=8) == "€0.0032235 ($0.0035)"
    assert display_money_text(D("100"), "USD", None) == "$100.00"
    assert display_money_text(D("100"), "USD", DisplayRate("USD", D("1"))) == "$100.00"
    assert display_money_text(None, "USD", eur) == ""


# --- the rounding rule ----------------------------------------------------------------------------

STEP = RateRounding(Rounding.STEP, D("0.01"))
SIG4 = RateRounding(Rounding.SIGNIFICANT, digits=4)


@pytest.mark.parametrize(
    ("rule", "rate", "floor", "expected"),
    [
        (STEP, "4.99995", None, "5.00"),
        (STEP, "1.234", None, "1.23"),  # half up: down when nearer
        (STEP, "1.235", None, "1.24"),
        (STEP, "1.234", "1.2345", "1.24"),  # would go below the cost: rounds up instead
        (STEP, "0.0035", None, "0.01"),  # never from above zero to zero
        (STEP, "0", None, "0"),
        (RateRounding(Rounding.STEP, D("0.05")), "1.12", None, "1.10"),
        (SIG4, "4.99995", None, "5.000"),
        (SIG4, "0.00349876", None, "0.003499"),
        (SIG4, "123.456", None, "123.5"),
        (SIG4, "12345.6", None, "12350"),
        (SIG4, "1.23449", "1.23449", "1.235"),  # below the floor: up
        (SIG4, "0.00000123", None, "0.00000123"),  # already at the rate's 8 places
        (RateRounding(), "4.99995", None, "4.99995"),  # no rounding
    ],
)
def test_rate_rounding(rule, rate, floor, expected):
    result = rule.apply(D(rate), floor=D(floor) if floor else None)
    assert result == D(expected)
    assert floor is None or result >= D(floor)


def test_rate_rounding_rejects_a_bad_rule():
    with pytest.raises(ValueError, match="step"):
        RateRounding(Rounding.STEP, D("0"))
    with pytest.raises(ValueError, match="step"):
        RateRounding(Rounding.STEP, D("0.000000001"))
    with pytest.raises(ValueError, match="Significant"):
        RateRounding(Rounding.SIGNIFICANT, digits=0)


def _decide(cost: str, markup: str, *, rounding: RateRounding, allow_below_cost: bool = False):
    return decide_price(
        fixed=False,
        current_rate=D("1"),
        priced_cost=None,
        cost=D(cost),
        markup_percent=D(markup),
        hold_percent=D("20"),
        pause_on_hold=False,
        allow_below_cost=allow_below_cost,
        rounding=rounding,
    )


def test_decide_price_rounds_the_retail_rate():
    assert _decide("3.3333", "50", rounding=STEP).rate == D("5.00")  # not 4.99995
    assert _decide("3.3333", "50", rounding=SIG4).rate == D("5.000")


def test_decide_price_rounding_never_goes_below_cost():
    # A zero markup sells at the cost, 1.2345: rounding to 0.01 would give 1.23, below it.
    assert _decide("1.2345", "0", rounding=STEP).rate == D("1.24")
    # A negative markup clamps to the cost first, then rounds up from it.
    assert _decide("1.2345", "-10", rounding=STEP).rate == D("1.24")
    # Where selling below the cost is allowed, the loss leader rounds half up as usual.
    assert _decide("1.2345", "-10", rounding=STEP, allow_below_cost=True).rate == D("1.11")


def test_decide_price_keeps_a_fixed_rate_unrounded():
    decision = decide_price(
        fixed=True,
        current_rate=D("4.99995"),
        priced_cost=None,
        cost=D("1"),
        markup_percent=D("50"),
        hold_percent=D("20"),
        pause_on_hold=False,
        allow_below_cost=False,
        rounding=STEP,
    )
    assert decision.rate == D("4.99995") and decision.pause == Pause.NONE


def test_decide_price_rounds_a_held_rate_too():
    decision = decide_price(
        fixed=False,
        current_rate=D("1.50"),
        priced_cost=D("1.00"),
        cost=D("3.3333"),
        markup_percent=D("50"),
        hold_percent=D("20"),
        pause_on_hold=False,
        allow_below_cost=False,
        rounding=STEP,
    )
    assert decision.is_held and decision.held_rate == D("5.00")
