"""How the dispatcher reads parameters: strings, comma lists, JSON values."""

import pytest

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
        ("", None),
    ],
)
def test_parse_id(raw, parsed):
    assert parse_id(raw) == parsed
