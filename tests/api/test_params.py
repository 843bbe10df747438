"""How the dispatcher reads parameters: strings, comma lists, JSON values."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from panel.api_protocol import ApiError, ApiParams, IdItem, parse_id


def test_values_are_read_as_strings():
    params = ApiParams(
        {
            "quantity": 100,
            "float": 100.0,
            "flag": True,
            "off": False,
            "none": None,
            "comments": ["one", "two"],
            "orders": [1, 2],
            "blank": "  ",
        }
    )
    assert params.get("quantity") == "100"
    assert params.get("float") == "100"
    assert (params.get("flag"), params.get("off")) == ("true", "false")
    assert params.get("none") is None and params.get("blank") is None
    assert params.get("comments") == "one\ntwo"
    assert params.get("orders") == "1,2"
    assert params.get("unknown") is None


def test_objects_are_refused_with_the_parameter_named():
    with pytest.raises(ApiError, match='"link" must be a string or a number'):
        ApiParams({"link": {"a": 1}}).get("link")


def test_id_lists_keep_order_drop_blanks_and_repeats():
    items = ApiParams({"orders": " 3, 1,,3 ,x,-2,0"}).id_list("orders")
    assert items == [
        IdItem("3", 3),
        IdItem("1", 1),
        IdItem("x", None),
        IdItem("-2", None),
        IdItem("0", None),
    ]
    assert [i.echo for i in items] == [3, 1, "x", "-2", "0"]


def test_id_lists_are_capped_at_100():
    assert len(ApiParams({"orders": ",".join(map(str, range(1, 101)))}).id_list("orders")) == 100
    with pytest.raises(ApiError, match="at most 100 per call, 101 were sent"):
        ApiParams({"orders": ",".join(map(str, range(1, 102)))}).id_list("orders")


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("1", 1),
        (" 42 ", 42),
        ("0", None),
        ("-1", None),
        ("1.5", None),
        ("٣", None),
        ("9" * 30, None),
        ("9" * 5000, None),  # more digits than Python converts
        ("0" * 5000 + "7", 7),
        ("", None),
    ],
)
def test_parse_id(raw, parsed):
    assert parse_id(raw) == parsed


def _id_list_token_by_token(value: str) -> list[IdItem]:
    """The id list's rule written plainly, to hold the fast path for plain lists against."""
    seen: dict[str, IdItem] = {}
    for token in value.split(","):
        token = token.strip()
        if token and token not in seen:
            seen[token] = IdItem(token, parse_id(token))
    return list(seen.values())


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=2**64),
            st.sampled_from(["", " 7", "007", "x", "-3", "1e3", "٣", "9" * 19]),
        ),
        min_size=1,
        max_size=120,
    )
)
@example(["999999999999999999"])  # 18 digits: the fast path's longest
@example(["1000000000000000000", "9223372036854775807", "9223372036854775808"])  # 19 digits
@example(["5", "5", "05", " 5"])
@example(list(range(1, 102)))  # one over the cap: the same error, the same count
@example(list(range(1, 101)) * 2)  # repeats are counted once
def test_plain_and_other_id_lists_read_as_token_by_token(tokens):
    value = ",".join(map(str, tokens))
    expected = _id_list_token_by_token(value)
    if not expected:
        with pytest.raises(ApiError, match=r"lists no ids|Missing parameter"):
            ApiParams({"orders": value}).id_list("orders")
        return
    if len(expected) > 100:
        with pytest.raises(ApiError, match=f"at most 100 per call, {len(expected)} were sent"):
            ApiParams({"orders": value}).id_list("orders")
        return
    items = ApiParams({"orders": value}).id_list("orders")
    assert items == expected
    assert all(type(i) is IdItem for i in items)


def test_an_id_list_is_read_once_per_request():
    params = ApiParams({"orders": "5,6,5"})
    first = params.id_list("orders")
    assert params.id_list("orders") is first and first == [IdItem("5", 5), IdItem("6", 6)]
