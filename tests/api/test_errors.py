"""Refused calls: a clear {"error": ...} at HTTP 200 in JSON, and nothing written."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime

import pytest

from accounts.models import ApiKey, LedgerEntry
from orders.models import Order
from tests.api.conftest import API_URL, decode
from tests.api.factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(db):
    return ServiceFactory(rate=Decimal("1000"), min=10, max=1000, dripfeed=False)


def state():
    return (
        Order.objects.count(),
        LedgerEntry.objects.count(),
        sorted(LedgerEntry.objects.values_list("balance_after", flat=True)),
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "balance"}, 'Missing API key: send your key in the "key" parameter.'),
        ({"key": "wrong", "action": "balance"}, "Invalid API key."),
        (
            {"key": "", "action": "balance"},
            'Missing API key: send your key in the "key" parameter.',
        ),
    ],
)
def test_missing_or_wrong_key(api, alice_key, params, message):
    assert api(**params) == {"error": message}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, 'Missing parameter "action".'),
        (
            {"action": "steal"},
            'Unknown action "steal". The actions are: add, balance, cancel, refill, refill_status, services, status.',
        ),
        ({"action": "add"}, 'Missing parameter "service".'),
        ({"action": "add", "service": "abc"}, "Incorrect service ID"),
        ({"action": "add", "service": "999999"}, "Incorrect service ID"),
        ({"action": "status"}, 'Missing parameter "order" (or "orders" for several).'),
        ({"action": "status", "order": "x"}, "Incorrect order ID"),
        ({"action": "status", "order": "99999999999999999999999"}, "Incorrect order ID"),
        ({"action": "status", "orders": ",,"}, 'The parameter "orders" lists no ids.'),
        (
            {"action": "status", "orders": ",".join(map(str, range(1, 102)))},
            'Too many ids in "orders": at most 100 per call, 101 were sent.',
        ),
        ({"action": "refill"}, 'Missing parameter "order" (or "orders" for several).'),
        ({"action": "refill", "order": "7"}, "Incorrect order ID"),
        ({"action": "refill_status"}, 'Missing parameter "refill" (or "refills" for several).'),
        ({"action": "refill_status", "refill": "7"}, "Refill not found"),
        (
            {"action": "cancel"},
            'Missing parameter "orders" (or "cancels" for the status of cancels).',
        ),
        ({"action": "balance", "link": "a\x00b"}, None),  # unknown parameters are never read
        ({"action": "status", "order": "1\x00"}, 'The parameter "order" contains a NUL character.'),
    ],
)
def test_refused_calls_say_why(api, alice_key, params, message):
    before = state()
    answer = api(alice_key, **params)
    if message is None:
        assert "error" not in answer
    else:
        assert answer == {"error": message}
    assert state() == before


def test_add_refusals_name_the_problem_and_charge_nothing(api, alice_key, service):
    before = state()
    answer = api(alice_key, action="add", service=service.pk, link="https://x.com/p")
    assert "quantity" in answer["error"].lower(), answer
    answer = api(alice_key, action="add", service=service.pk, link="https://x.com/p", quantity="5")
    assert "error" in answer and set(answer) == {"error"}
    # 1000 per 1000, times 100 = 100.00000, alice has 50.
    answer = api(
        alice_key, action="add", service=service.pk, link="https://x.com/p", quantity="100"
    )
    assert answer == {"error": "Not enough funds on balance."}
    assert state() == before


@pytest.mark.parametrize(
    "link",
    [
        "http://[abc/p",
        "https://[::1",
        "https://a]b/p",
        "instagram.com/x",
        "@channel",
        "some.user_name",
    ],
)
def test_add_takes_any_one_line_link_like_the_providers_do(api, alice_key, service, link):
    # Once refused with "Link must be a full http:// or https:// address."; providers take a
    # username, an @channel or a bare domain, and reseller scripts send exactly that.
    answer = api(alice_key, action="add", service=service.pk, link=link, quantity="20")
    assert set(answer) == {"order"}, answer
    assert Order.objects.get(pk=answer["order"]).link == link


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("@chan\tnel", "Link must be one line without control characters."),
        ("@chan\rnel", "Link must be one line without control characters."),
        ("@chan\x1bnel", "Link must be one line without control characters."),
        ("@chan\u2029nel", "Link must be one line without control characters."),
        ("@chan\x00nel", 'The parameter "link" contains a NUL character.'),
        ("x" * 2001, "Link is too long (at most 2000 characters)."),
    ],
)
def test_add_refuses_a_link_with_control_characters_or_too_long(
    api, alice_key, service, link, message
):
    before = state()
    answer = api(alice_key, action="add", service=service.pk, link=link, quantity="20")
    assert answer == {"error": message}
    assert state() == before


def test_add_refuses_an_order_whose_charge_rounds_to_zero(api, alice_key, service):
    service.rate = Decimal("0.0001")  # 20 units cost 0.000002, which rounds to 0.00000
    service.save()
    before = state()
    answer = api(alice_key, action="add", service=service.pk, link="@channel", quantity="20")
    assert answer == {
        "error": "This order's charge at 0.0001 per 1000 rounds to 0.00000: order at least "
        "50 units."
    }
    assert state() == before
    answer = api(alice_key, action="add", service=service.pk, link="@channel", quantity="50")
    assert Order.objects.get(pk=answer["order"]).charge == Decimal("0.00001")


def test_bad_bodies(client, alice_key):
    def post(body, content_type):
        return decode(client.post(API_URL, body, content_type=content_type))

    assert post("{not json", "application/json") == {"error": "The request body is not valid JSON."}
    assert post("[1, 2]", "application/json") == {
        "error": "The JSON body must be an object of parameters."
    }
    assert post(json.dumps({"key": alice_key, "action": {"x": 1}}), "application/json") == {
        "error": 'The parameter "action" must be a string or a number.'
    }
    assert post(json.dumps({"key": alice_key, "action": "balance"}), "text/plain")["balance"]
    assert post(b"\xff\xfe\x00garbage", "application/octet-stream") == {
        "error": 'Missing API key: send your key in the "key" parameter.'
    }


def test_a_malformed_action_is_reported_after_the_key_and_counted_for_it(
    client, alice_key, settings
):
    def post(key, action):
        body = json.dumps({"key": key, "action": action})
        return decode(client.post(API_URL, body, content_type="application/json"))

    assert post("not-a-key", {"x": 1}) == {"error": "Invalid API key."}
    settings.API_RATE_LIMIT_PER_KEY = "2/60s"
    bad = {"error": 'The parameter "action" must be a string or a number.'}
    assert post(alice_key, {"x": 1}) == bad
    assert post(alice_key, "nul\u0000") == {  # another malformed action, also counted
        "error": 'The parameter "action" contains a NUL character.'
    }
    refused = post(alice_key, "balance")
    assert "for this API key" in refused["error"]  # the key's limit counted both


def test_an_unexpected_failure_is_a_json_error_not_a_500(api, alice_key, monkeypatch, caplog):
    from panel import api_v2

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setitem(api_v2.ACTIONS, "balance", broken)
    try:
        answer = api(alice_key, action="balance")
    finally:
        monkeypatch.undo()
    assert answer == {"error": "Internal error: the request was not completed. Try again later."}
    assert "boom" in caplog.text


def test_each_call_records_the_keys_last_use(api, alice, alice_key):
    assert ApiKey.objects.get(user=alice).last_used_at is None
    api(alice_key, action="balance")
    key = ApiKey.objects.get(user=alice)
    assert key.last_used_at is not None and key.last_used_ip == "127.0.0.1"


def test_a_disabled_key_or_customer_is_refused(api, alice, alice_key):
    ApiKey.objects.filter(user=alice).update(is_active=False)
    assert api(alice_key, action="balance") == {"error": "Invalid API key."}


def test_oversized_bodies_are_refused_in_json(client, alice_key):
    big = "x" * (3 * 1024 * 1024)
    answer = decode(client.post(API_URL, {"key": alice_key, "action": "balance", "link": big}))
    assert answer == {"error": "The request body is too large or has too many fields."}
    many = {f"p{i}": "1" for i in range(1200)} | {"key": alice_key, "action": "balance"}
    answer = decode(client.post(API_URL, many))
    assert answer == {"error": "The request body is too large or has too many fields."}
    answer = decode(client.post(API_URL, big, content_type="text/plain"))
    assert answer == {"error": "The request body is too large."}


def test_touch_interval_coalesces_writes(api, settings, alice, alice_key):
    from datetime import timedelta

    from django.utils import timezone

    settings.API_KEY_TOUCH_SECONDS = 60
    api(alice_key, action="balance")
    first = ApiKey.objects.get(user=alice).last_used_at
    api(alice_key, action="balance")
    assert ApiKey.objects.get(user=alice).last_used_at == first  # within the interval
    ApiKey.objects.filter(user=alice).update(last_used_at=timezone.now() - timedelta(minutes=2))
    api(alice_key, action="balance")
    assert ApiKey.objects.get(user=alice).last_used_at > first
    settings.API_KEY_TOUCH_SECONDS = 0
    before = ApiKey.objects.get(user=alice).last_used_at
    api(alice_key, action="balance")
    assert ApiKey.objects.get(user=alice).last_used_at > before  # every call by default


@pytest.fixture
def spooled(monkeypatch, settings, tmp_path):
    """Every upload Django would hold for the request: temporary files (on disk) and in-memory
    files. FILE_UPLOAD_MAX_MEMORY_SIZE 0 sends any file part straight to a temporary file."""
    from django.core.files import uploadhandler

    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    seen: list[str] = []
    for handler in (
        uploadhandler.TemporaryFileUploadHandler,
        uploadhandler.MemoryFileUploadHandler,
    ):
        original = handler.new_file

        def spy(self, *args, _original=original, **kwargs):
            seen.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(handler, "new_file", spy)
    return seen


@pytest.mark.parametrize("key", ["valid", "wrong", None])
def test_a_file_part_is_refused_before_anything_is_spooled(client, alice_key, spooled, key):
    from io import BytesIO

    data = {"action": "balance", "upload": BytesIO(b"x" * 200_000)}
    if key is not None:
        data["key"] = alice_key if key == "valid" else "wrong"
    answer = decode(client.post(API_URL, data))  # the test client sends it as multipart
    assert answer == {
        "error": "File uploads are not accepted: send the parameters as form fields or JSON."
    }
    assert spooled == []


def test_a_multipart_form_without_files_still_works(client, alice_key, spooled):
    answer = decode(client.post(API_URL, {"key": alice_key, "action": "balance"}))
    assert answer == {"balance": "50.00000", "currency": "USD"}
    assert decode(client.post(API_URL, "--x\r\ngarbage", content_type="multipart/form-data")) == {
        "error": "The request body could not be read."
    }


def test_json_bodies_are_read_strictly_and_answers_written_like_drf_did(client, alice_key):
    """The dispatcher is a plain Django view (no DRF): NaN/Infinity are not JSON, a charset in
    the Content-Type is honoured, an empty body has no parameters, and the answer is compact
    UTF-8 JSON."""

    def post(body, content_type):
        return client.post(API_URL, body, content_type=content_type)

    nan = json.dumps({"key": alice_key, "action": "balance"})[:-1] + ', "x": NaN}'
    assert decode(post(nan, "application/json")) == {"error": "The request body is not valid JSON."}
    body = json.dumps({"key": alice_key, "action": "balance"})  # sent as UTF-16 by the client
    assert "balance" in decode(post(body, "application/json; charset=utf-16"))
    assert decode(post(b"\xff\xfe{}", "application/json")) == {
        "error": "The request body is not valid JSON."
    }
    assert decode(post("", "application/json")) == {
        "error": 'Missing API key: send your key in the "key" parameter.'
    }
    response = post(json.dumps({"key": alice_key, "action": "ünknown\u2028"}), "application/json")
    assert (
        response.content
        == (
            '{"error":"Unknown action \\"ünknown\\u2028\\". The actions are: add, balance, cancel, '
            'refill, refill_status, services, status."}'
        ).encode()
    )
    assert "no-cache" in response["Cache-Control"] and "no-store" in response["Cache-Control"]
    # Already stale for an HTTP/1.0 cache, as add_never_cache_headers' date of now is.
    assert parsedate_to_datetime(response["Expires"]) < datetime.now(UTC)


@pytest.mark.parametrize(
    "data",
    [
        {"balance": "100.84292", "currency": "USD"},
        {"error": 'Unknown action "x\u2028y\u2029z" … — ünïcode 😀'},
        {
            "123": {"charge": "0.90000", "status": "In progress"},
            "x": {"error": "Incorrect order ID"},
        },
        [{"order": 2**63 - 1, "refill": {"error": "e"}}, {"order": "abc", "cancel": 7}],
        {"nested": [[], {}, None, True, False, 0, -1]},
    ],
)
def test_answers_are_written_as_the_json_module_wrote_them(data):
    """orjson writes the answers: the same bytes as json.dumps did (compact, UTF-8, U+2028 and
    U+2029 escaped as JavaScript needs)."""
    from panel.api_v2 import _json_bytes

    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert _json_bytes(data) == (
        text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
    )


@pytest.mark.parametrize("name", ["order", "orders"])
def test_an_id_of_more_digits_than_python_converts_is_no_id(client, alice_key, name):
    """int() refuses more than 4,300 digits with a ValueError: such a token is an invalid id,
    before the key check (status_key_extra) as after it, never an internal error."""
    huge = "9" * 5000
    answer = decode(client.post(API_URL, {"key": "not-a-key", "action": "status", name: huge}))
    assert answer == {"error": "Invalid API key."}
    answer = decode(client.post(API_URL, {"key": alice_key, "action": "status", name: huge}))
    assert answer == (
        {"error": "Incorrect order ID"}
        if name == "order"
        else {huge: {"error": "Incorrect order ID"}}
    )
