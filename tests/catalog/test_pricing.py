"""Pure pricing math: no database."""

from decimal import Decimal as D

import pytest

from catalog.pricing import (
    Pause,
    convert_rate,
    decide_price,
    margin,
    margin_percent,
    markup_percent_error,
    retail_rate,
    rise_percent,
)


@pytest.mark.parametrize(
    ("cost", "markup", "expected"),
    [
        ("0.90", "50", "1.35000000"),
        ("0.0035", "50", "0.00525000"),  # a tiny rate keeps its digits
        ("1.23456789", "10", "1.35802468"),  # rounded half up to 8 places, once
        ("2.00", "0", "2.00000000"),
        ("2.00", "-25", "1.50000000"),  # a loss leader; callers decide if it is allowed
        ("2.00", "-150", "0E-8"),  # never negative
    ],
)
def test_retail_rate(cost, markup, expected):
    assert retail_rate(D(cost), D(markup)) == D(expected)


def test_convert_rate_applies_the_exchange_rate():
    assert convert_rate(D("100"), D("0.0125")) == D("1.25000000")  # e.g. RUB → USD


def test_margin_and_margin_percent():
    assert margin(D("1.5"), D("1")) == D("0.5")
    assert margin(D("0.9"), D("1")) == D("-0.1")
    assert margin_percent(D("1.5"), D("1")) == D("50.00")
    assert margin_percent(D("1"), D("0")) is None


def test_rise_percent():
    assert rise_percent(D("1"), D("1.25")) == D("25")
    assert rise_percent(D("1"), D("0.5")) == 0
    assert rise_percent(None, D("2")) == 0
    assert rise_percent(D("0"), D("1")) == D("Infinity")


def _decide(**kw):
    base = dict(
        fixed=False,
        current_rate=D("1.5"),
        priced_cost=D("1"),
        cost=D("1"),
        markup_percent=D("50"),
        hold_percent=D("20"),
        pause_on_hold=False,
        allow_below_cost=False,
    )
    return decide_price(**{**base, **kw})


def test_markup_follows_a_small_rise():
    decision = _decide(cost=D("1.1"))
    assert decision.rate == D("1.65") and not decision.is_held and decision.pause is Pause.NONE


def test_markup_follows_a_fall_of_any_size():
    assert _decide(cost=D("0.1")).rate == D("0.15")


def test_a_rise_above_the_threshold_is_held_at_the_old_rate():
    decision = _decide(cost=D("1.3"))
    assert decision.rate == D("1.5")
    assert (decision.held_rate, decision.held_cost) == (D("1.95"), D("1.3"))
    assert decision.pause is Pause.NONE
    assert "30.0%" in decision.reason


def test_a_rise_exactly_at_the_threshold_is_not_held():
    assert not _decide(cost=D("1.2")).is_held


def test_a_held_rise_pauses_when_the_policy_says_so():
    assert _decide(cost=D("1.3"), pause_on_hold=True).pause is Pause.PRICE_HOLD


def test_a_held_rise_pauses_when_the_old_rate_would_sell_below_cost():
    decision = _decide(cost=D("2"))  # old rate 1.5 < new cost 2
    assert decision.is_held and decision.pause is Pause.PRICE_HOLD


def test_a_held_rise_below_cost_keeps_selling_when_allowed():
    assert _decide(cost=D("2"), allow_below_cost=True).pause is Pause.NONE


def test_no_hold_without_a_known_previous_cost():
    assert not _decide(priced_cost=None, cost=D("5")).is_held


def test_negative_markup_is_clamped_to_cost_unless_allowed():
    assert _decide(markup_percent=D("-10")).rate == D("1")
    assert _decide(markup_percent=D("-10"), allow_below_cost=True).rate == D("0.9")


def test_fixed_rate_is_never_changed():
    decision = _decide(fixed=True, current_rate=D("3"), cost=D("2.9"))
    assert decision.rate == D("3") and decision.pause is Pause.NONE and not decision.is_held


def test_fixed_rate_below_cost_pauses_unless_allowed():
    assert _decide(fixed=True, current_rate=D("3"), cost=D("3.5")).pause is Pause.BELOW_COST
    allowed = _decide(fixed=True, current_rate=D("3"), cost=D("3.5"), allow_below_cost=True)
    assert allowed.pause is Pause.NONE and allowed.rate == D("3")


@pytest.mark.parametrize("value", ["-99.99", "0", "35.5", "999999.99"])
def test_markup_percent_error_accepts_a_valid_markup(value):
    assert markup_percent_error(D(value)) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-100", "above -100%"),
        ("1000000", "below 1,000,000%"),
        ("Infinity", "above -100%"),
        ("NaN", "above -100%"),
        ("35.125", "2 decimal places"),
        ("999999.999", "2 decimal places"),
    ],
)
def test_markup_percent_error_says_what_is_wrong(value, message):
    error = markup_percent_error(D(value))
    assert error is not None and message in error and value in error
