"""Parsing of upstream API v2 answers: each seed provider's documented examples, then the ways
real providers stray from them. Pure functions, no HTTP, no database."""

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from providers.schemas import (
    BadAnswer,
    Balance,
    CancelResult,
    CancelStatus,
    ItemError,
    OrderStatus,
    RefillStatus,
    RequestStatus,
    UpstreamStatus,
    ci_keys,
    is_funds_error,
    is_permanent_error,
    normalise_order_status,
    normalise_request_status,
    parse_balance,
    parse_cancel_item,
    parse_cancel_status,
    parse_multi,
    parse_order_id,
    parse_order_status,
    parse_refill_id,
    parse_refill_item,
    parse_refill_status,
    parse_services,
    to_bool,
    to_decimal,
    to_id,
    to_int,
)

FIXTURES = Path(__file__).parent / "fixtures"
PROVIDERS = ["helposmm", "hmsocialmedia", "heysmmprovider", "smmsend", "smmcloud"]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


def seeds(action: str) -> list[str]:
    """The providers whose seed document has an example answer for `action`."""
    return [p for p in PROVIDERS if (FIXTURES / p / f"{action}.json").exists()]


PARTIAL_1 = OrderStatus(
    status=UpstreamStatus.PARTIAL,
    raw_status="Partial",
    charge=Decimal("0.27819"),
    start_count=3572,
    remains=157,
    currency="USD",
)
IN_PROGRESS_100 = OrderStatus(
    status=UpstreamStatus.IN_PROGRESS,
    raw_status="In progress",
    charge=Decimal("1.44219"),
    start_count=234,
    remains=10,
    currency="USD",
)


def test_every_provider_has_its_seed_examples():
    assert seeds("services_ok") == PROVIDERS
    assert seeds("status_multi") == PROVIDERS
    assert seeds("cancel_status_multi") == ["smmsend"]
    assert "helposmm" not in seeds("refill_multi")
    assert "helposmm" not in seeds("cancel_multi")


# --- seed dialects ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parse_services_reads_seed_example(provider):
    services = parse_services(load(f"{provider}/services_ok.json"))

    assert services.skipped == []
    followers, comments = services
    assert followers.service_id == "1"
    assert followers.name == "Followers"
    assert followers.type == "Default"
    assert followers.category == "First Category"
    assert followers.rate == Decimal("0.90")
    assert str(followers.rate) == "0.90"  # precision kept as sent
    assert (followers.min, followers.max) == (50, 10000)
    assert followers.refill is True
    assert comments.type == "Custom Comments"
    assert comments.rate == Decimal("8")
    assert comments.refill is False
    assert followers.raw["service"] == 1


def test_parse_services_helposmm_has_desc_and_no_cancel_flag():
    followers, comments = parse_services(load("helposmm/services_ok.json"))
    assert followers.description == "Some Description"
    assert (followers.cancel, comments.cancel) == (False, False)
    assert followers.dripfeed is False


@pytest.mark.parametrize("provider", ["hmsocialmedia", "heysmmprovider", "smmcloud"])
def test_parse_services_cancel_flag_and_no_desc(provider):
    followers, comments = parse_services(load(f"{provider}/services_ok.json"))
    assert (followers.cancel, comments.cancel) == (True, True)
    assert followers.description == ""
    assert followers.dripfeed is False


def test_parse_services_smmsend_has_dripfeed():
    followers, comments = parse_services(load("smmsend/services_ok.json"))
    assert (followers.dripfeed, followers.refill, followers.cancel) == (True, True, False)
    assert (comments.dripfeed, comments.refill, comments.cancel) == (False, False, True)
    assert comments.max == 15000


@pytest.mark.parametrize("provider", seeds("add_ok"))
def test_parse_order_id_reads_seed_example(provider):
    assert parse_order_id(load(f"{provider}/add_ok.json")) == "23501"


@pytest.mark.parametrize("provider", seeds("status_ok"))
def test_parse_order_status_reads_seed_example(provider):
    assert parse_order_status(load(f"{provider}/status_ok.json")) == PARTIAL_1


@pytest.mark.parametrize("provider", seeds("status_multi"))
def test_parse_multi_status_reads_seed_example(provider):
    result = parse_multi(
        load(f"{provider}/status_multi.json"), ["1", "10", "100"], ("order",), parse_order_status
    )
    assert result == {
        "1": PARTIAL_1,
        "10": ItemError("Incorrect order ID"),
        "100": IN_PROGRESS_100,
    }
    assert result["10"].permanent


@pytest.mark.parametrize("provider", seeds("refill_ok"))
def test_parse_refill_id_reads_seed_example(provider):
    assert parse_refill_id(load(f"{provider}/refill_ok.json")) == "1"


@pytest.mark.parametrize("provider", seeds("refill_multi"))
def test_parse_multi_refill_reads_seed_example(provider):
    data = load(f"{provider}/refill_multi.json")
    result = parse_multi(data, ["1", "2", "3"], ("order",), parse_refill_item)
    assert result == {"1": "1", "2": "2", "3": ItemError("Incorrect order ID")}


@pytest.mark.parametrize("provider", seeds("refill_status_ok"))
def test_parse_refill_status_reads_seed_example(provider):
    result = parse_refill_status(load(f"{provider}/refill_status_ok.json"))
    assert result == RefillStatus(status=RequestStatus.COMPLETED, raw_status="Completed")
    assert result.status == "Completed"


@pytest.mark.parametrize("provider", seeds("refill_status_multi"))
def test_parse_multi_refill_status_reads_seed_example(provider):
    # smmsend's second item says "type": "Rejected" where the others say "status".
    data = load(f"{provider}/refill_status_multi.json")
    result = parse_multi(data, ["1", "2", "3"], ("refill",), parse_refill_status)
    assert result == {
        "1": RefillStatus(RequestStatus.COMPLETED, "Completed"),
        "2": RefillStatus(RequestStatus.REJECTED, "Rejected"),
        "3": ItemError("Refill not found"),
    }


@pytest.mark.parametrize("provider", ["hmsocialmedia", "heysmmprovider", "smmcloud"])
def test_parse_multi_cancel_reads_seed_example(provider):
    data = load(f"{provider}/cancel_multi.json")
    result = parse_multi(data, ["9", "2"], ("order",), parse_cancel_item)
    assert result == {
        "9": ItemError("Incorrect order ID"),
        "2": CancelResult(cancel_id="1", type=None),
    }


def test_parse_multi_cancel_smmsend_carries_type():
    data = load("smmsend/cancel_multi.json")
    result = parse_multi(data, ["1", "10", "100", "1000"], ("order",), parse_cancel_item)
    assert result == {
        "1": CancelResult("100", "order"),
        "10": CancelResult("200", "dripfeed"),
        "100": CancelResult("300", "subscription"),
        "1000": ItemError("Cancellation request was sent earlier"),
    }


def test_parse_multi_cancel_status_smmsend():
    data = load("smmsend/cancel_status_multi.json")
    result = parse_multi(data, ["1", "2", "3"], ("cancel",), parse_cancel_status)
    assert result == {
        "1": CancelStatus(RequestStatus.COMPLETED, "Completed"),
        "2": CancelStatus(RequestStatus.REJECTED, "Rejected"),
        "3": ItemError("Cancel not found"),
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parse_balance_reads_seed_example(provider):
    assert parse_balance(load(f"{provider}/balance_ok.json")) == Balance(
        amount=Decimal("100.84292"), currency="USD"
    )


# --- off-spec answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture",
    [
        "helposmm/add_order_id.json",
        "helposmm/add_data_order.json",
        "helposmm/add_data_order_id.json",
        "helposmm/add_bare_number.json",
        "helposmm/add_bare_string.json",
    ],
)
def test_parse_order_id_finds_the_id_wherever_providers_put_it(fixture):
    assert parse_order_id(load(fixture)) == "23501"


@pytest.mark.parametrize(
    "data", [{"status": "success"}, {"order": 0}, {"order": None}, "OK", [], {"order": True}]
)
def test_parse_order_id_rejects_answers_without_an_id(data):
    with pytest.raises(BadAnswer):
        parse_order_id(data)


def test_parse_order_id_nested_error_is_an_item_error():
    assert parse_order_id({"order": {"error": "Incorrect link"}}) == ItemError("Incorrect link")


def test_parse_order_status_accepts_capitalised_keys_and_numbers():
    result = parse_order_status(load("hmsocialmedia/status_capitalised_key.json"))
    assert result == OrderStatus(
        status=UpstreamStatus.IN_PROGRESS,
        raw_status="In Progress",
        charge=Decimal("0.5"),
        start_count=10,
        remains=0,
        currency="USD",
    )


def test_parse_order_status_accepts_json_numbers():
    result = parse_order_status(load("helposmm/status_numbers.json"))
    assert result == dataclasses.replace(PARTIAL_1, raw_status="partial")


def test_parse_order_status_keeps_negative_remains():
    result = parse_order_status(load("heysmmprovider/status_negative_remains.json"))
    assert result.status is UpstreamStatus.COMPLETED
    assert result.remains == -25


def test_parse_order_status_unknown_text_is_unknown_not_guessed():
    result = parse_order_status(load("smmcloud/status_unknown.json"))
    assert result.status is UpstreamStatus.UNKNOWN
    assert result.raw_status == "Awaiting moderation"


def test_parse_order_status_missing_fields_are_none():
    assert parse_order_status(load("smmcloud/status_missing_fields.json")) == OrderStatus(
        UpstreamStatus.PENDING, "Pending", None, None, None, None
    )


def test_parse_order_status_without_status_is_a_bad_answer():
    with pytest.raises(BadAnswer):
        parse_order_status(load("smmcloud/status_no_status.json"))


def test_parse_order_status_error_body_is_an_item_error():
    assert parse_order_status(load("hmsocialmedia/status_error.json")) == ItemError(
        "Incorrect order ID"
    )


def test_parse_multi_status_variants_from_the_wild():
    ids = [str(n) for n in range(1, 15)]
    result = parse_multi(load("smmsend/status_multi_variants.json"), ids, (), parse_order_status)

    expected = {
        "1": UpstreamStatus.IN_PROGRESS,
        "2": UpstreamStatus.IN_PROGRESS,
        "3": UpstreamStatus.CANCELED,
        "4": UpstreamStatus.CANCELED,
        "5": UpstreamStatus.CANCELED,
        "6": UpstreamStatus.CANCELED,
        "7": UpstreamStatus.CANCELED,
        "8": UpstreamStatus.PROCESSING,
        "9": UpstreamStatus.PARTIAL,
        "10": UpstreamStatus.UNKNOWN,
        "11": UpstreamStatus.COMPLETED,
    }
    for id_, status in expected.items():
        assert result[id_].status is status, id_
    assert result["9"].remains == -3
    assert result["10"].raw_status == "Paused"
    assert result["11"].charge is None  # "abc": unreadable, so unknown
    assert isinstance(result["12"], ItemError)  # no status at all
    assert result["12"].message.startswith("unreadable answer")
    assert isinstance(result["13"], ItemError)  # a bare string instead of an object
    assert result["14"] == ItemError("no answer for this id")


def test_parse_multi_status_list_form():
    result = parse_multi(
        load("heysmmprovider/status_multi_list.json"), ["1", "10"], ("order",), parse_order_status
    )
    assert result["1"].status is UpstreamStatus.COMPLETED
    assert result["1"].charge == Decimal("0.5")
    assert result["10"] == ItemError("Incorrect order ID")


def test_parse_multi_single_id_answered_in_single_form():
    result = parse_multi({"status": "Completed"}, ["77"], ("refill",), parse_refill_status)
    assert result == {"77": RefillStatus(RequestStatus.COMPLETED, "Completed")}


def test_parse_multi_keyed_refill_statuses():
    result = parse_multi(
        load("smmcloud/refill_status_multi_keyed.json"),
        ["1", "2"],
        ("refill",),
        parse_refill_status,
    )
    assert result == {
        "1": RefillStatus(RequestStatus.IN_PROGRESS, "In Progress"),
        "2": ItemError("Refill not found"),
    }


@pytest.mark.parametrize("data", [None, "text", 42])
def test_parse_multi_rejects_non_container(data):
    with pytest.raises(BadAnswer):
        parse_multi(data, ["1"], ("order",), parse_order_status)


def test_parse_services_skips_invalid_items_and_keeps_the_rest():
    services = parse_services(load("smmsend/services_invalid_items.json"))

    assert [s.service_id for s in services] == ["1"]
    assert services[0].name == "Good"
    reasons = [s.reason for s in services.skipped]
    assert len(reasons) == 7
    assert "not a number" in reasons[0]
    assert "not a number" in reasons[1]
    assert "min/max" in reasons[2]
    assert "not an id" in reasons[3]
    assert reasons[4] == "duplicate service id"
    assert "negative rate" in reasons[5]
    assert "expected a JSON object" in reasons[6]
    assert services.skipped[0].raw["service"] == 2


def test_parse_services_numbers_flags_and_capitalised_keys():
    likes, views = parse_services(load("helposmm/services_numbers.json"))

    assert likes.service_id == "101"
    assert likes.rate == Decimal("0.0123456789")
    assert (likes.min, likes.max) == (10, 5000)
    assert (likes.refill, likes.cancel, likes.dripfeed) == (True, False, False)
    assert likes.type == "Default"  # absent type: the protocol's plain form
    assert likes.description == "Fast"
    assert views.service_id == "102"
    assert (views.name, views.type, views.category) == ("Views", "Package", "TikTok")
    assert views.rate == Decimal("12")
    assert (views.min, views.max) == (1, 1)


def test_parse_services_wrapped_list():
    (members,) = parse_services(load("smmcloud/services_wrapped.json"))
    assert members.type == "Invites from Groups"
    assert members.rate == Decimal("3.5")


@pytest.mark.parametrize("data", [{"error": "x"}, {"services": "none"}, "text", None])
def test_parse_services_rejects_a_non_list(data):
    with pytest.raises(BadAnswer):
        parse_services(data)


def test_parse_balance_variants():
    assert parse_balance(load("smmcloud/balance_number.json")) == Balance(
        Decimal("100.84292"), "USD"
    )
    assert parse_balance(load("heysmmprovider/balance_no_currency.json")) == Balance(
        Decimal("5"), ""
    )
    with pytest.raises(BadAnswer):
        parse_balance(load("heysmmprovider/balance_missing.json"))
    with pytest.raises(BadAnswer):
        parse_balance({"balance": "lots"})


def test_parse_refill_variants():
    assert parse_refill_id(load("smmcloud/refill_number.json")) == "1"
    assert parse_refill_id(load("heysmmprovider/refill_nested_error.json")) == ItemError(
        "Incorrect order ID"
    )
    assert parse_refill_status(load("smmsend/refill_status_type.json")) == RefillStatus(
        RequestStatus.REJECTED, "Rejected"
    )
    assert parse_refill_status(load("hmsocialmedia/refill_status_nested_error.json")) == ItemError(
        "Refill not found"
    )
    with pytest.raises(BadAnswer):
        parse_refill_status({"refill": 1})


def test_parse_cancel_item_variants():
    assert parse_cancel_item({"order": 5, "error": "Order not cancelable"}) == ItemError(
        "Order not cancelable"
    )
    assert parse_cancel_item(17) == CancelResult("17", None)
    with pytest.raises(BadAnswer):
        parse_cancel_item({"order": 5})


# --- small helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", UpstreamStatus.PENDING),
        ("In progress", UpstreamStatus.IN_PROGRESS),
        ("In Progress", UpstreamStatus.IN_PROGRESS),
        ("inprogress", UpstreamStatus.IN_PROGRESS),
        ("in_progress", UpstreamStatus.IN_PROGRESS),
        ("IN-PROGRESS", UpstreamStatus.IN_PROGRESS),
        ("Processing", UpstreamStatus.PROCESSING),
        ("Completed", UpstreamStatus.COMPLETED),
        ("Partial", UpstreamStatus.PARTIAL),
        ("Canceled", UpstreamStatus.CANCELED),
        ("Cancelled", UpstreamStatus.CANCELED),
        ("Refunded", UpstreamStatus.CANCELED),
        ("Fail", UpstreamStatus.CANCELED),
        ("Failed", UpstreamStatus.CANCELED),
        ("Error", UpstreamStatus.CANCELED),
        (" completed ", UpstreamStatus.COMPLETED),
        ("Paused", UpstreamStatus.UNKNOWN),
        ("", UpstreamStatus.UNKNOWN),
        ("Partially completed", UpstreamStatus.UNKNOWN),
    ],
)
def test_normalise_order_status(raw, expected):
    assert normalise_order_status(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", RequestStatus.PENDING),
        ("In progress", RequestStatus.IN_PROGRESS),
        ("processing", RequestStatus.IN_PROGRESS),
        ("Completed", RequestStatus.COMPLETED),
        ("Rejected", RequestStatus.REJECTED),
        ("Cancelled", RequestStatus.CANCELED),
        ("Whatever", RequestStatus.UNKNOWN),
    ],
)
def test_normalise_request_status(raw, expected):
    assert normalise_request_status(raw) is expected


def test_to_decimal_and_to_int():
    assert to_decimal("0.90") == Decimal("0.90")
    assert to_decimal(8) == Decimal(8)
    assert to_decimal(0.1) == Decimal("0.1")  # via str(), not the binary float
    assert to_decimal(" 1.5 ") == Decimal("1.5")
    assert to_int("157") == 157
    assert to_int("-3") == -3
    assert to_int("50.0") == 50
    for bad in ["abc", "", None, True, "NaN", "Infinity", "1e999999999", [], {}]:
        with pytest.raises(BadAnswer):
            to_decimal(bad)
    with pytest.raises(BadAnswer):
        to_int("1.5")


def test_to_id_and_to_bool():
    assert to_id(23501) == "23501"
    assert to_id("23501") == "23501"
    assert to_id(Decimal("23501.0")) == "23501"
    assert to_id(" abc-12 ") == "abc-12"
    for bad in [0, "0", -1, None, True, "", "two words", {}, 1.5]:
        with pytest.raises(BadAnswer):
            to_id(bad)
    assert [to_bool(v) for v in [True, 1, "1", "true", "Yes"]] == [True] * 5
    assert [to_bool(v) for v in [False, 0, "0", "false", "", None, "maybe"]] == [False] * 7


def test_ci_keys_prefers_the_lower_case_key():
    assert ci_keys({"Status": "A", "status": "B"}) == {"status": "B"}
    assert ci_keys({"status": "B", "Status": "A"}) == {"status": "B"}
    assert ci_keys({"STATUS": "A"}) == {"status": "A"}


@pytest.mark.parametrize(
    "message",
    [
        "Incorrect service ID",
        "incorrect link",
        "Link duplicate",
        "Quantity less than minimal 50",
        "Quantity more than maximal 1000",
        "Invalid API key",
        "Incorrect request",
        "Service disabled",
    ],
)
def test_permanent_errors_match_case_insensitively(message):
    assert is_permanent_error(message)
    assert is_permanent_error(message.upper())
    assert not is_funds_error(message)


@pytest.mark.parametrize(
    "message",
    ["Not enough funds on balance", "Insufficient balance", "INSUFFICIENT FUNDS", "Low balance"],
)
def test_funds_errors(message):
    assert is_funds_error(message)
    assert not is_permanent_error(message)
    assert ItemError(message).insufficient_funds


def test_unknown_error_is_neither():
    assert not is_permanent_error("Server busy, try later")
    assert not is_funds_error("Server busy, try later")
