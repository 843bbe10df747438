"""Upstream text PostgreSQL cannot store (NUL, lone surrogates) is cleaned where it enters: the
client's parsed replies and error messages, and the recorded provider calls (issue 11, point 4).
The client is tested over real sockets with the fake upstream of test_client."""

import json

import pytest
from django.db import DataError

from providers import gateway
from providers.client import ApiV2Client, ErrorKind, ProviderError
from providers.gateway import provider_call
from providers.models import Provider, ProviderCall
from providers.schemas import (
    ItemError,
    UpstreamStatus,
    clean_json,
    clean_text,
    has_unstorable,
    parse_order_status,
    parse_services,
)
from providers.services import provider_create
from tests.providers.test_client import API_KEY, FakeUpstream

NUL, LONE = "\x00", "\ud800"  # what JSON's "\u0000" and "\ud800" decode to


@pytest.fixture
def upstream():
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture
def client(upstream):
    with ApiV2Client(base_url=upstream.url, api_key=API_KEY, timeout=(1.0, 2.0)) as api:
        yield api


def _stores(text: str) -> bool:
    """True when PostgreSQL's driver would take `text`: no NUL, encodable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return NUL not in text


# --- the helpers --------------------------------------------------------------------------------


def test_clean_text_drops_nul_and_replaces_lone_surrogates():
    assert clean_text(f"Fol{NUL}lowers{LONE} 😀") == "Followers\ufffd 😀"
    assert clean_text("\udc00x\ud83d") == "\ufffdx\ufffd"
    plain = "Instagram Followers [Real]"
    assert clean_text(plain) is plain  # nothing to clean: the same object, no copy


def test_clean_json_cleans_every_string_keys_included():
    data = {f"na{NUL}me": [f"a{NUL}", {"d": f"x{LONE}"}, 5, None, True], "rate": 1}
    assert clean_json(data) == {"name": ["a", {"d": "x\ufffd"}, 5, None, True], "rate": 1}
    assert has_unstorable(data) and not has_unstorable(clean_json(data))


def test_parsers_clean_the_texts_they_return():
    [service] = parse_services(
        [
            {
                "service": 1,
                "name": f"A{NUL}{LONE}",
                "rate": "1",
                "min": 1,
                "max": 9,
                "category": f"C{NUL}",
                "desc": f"D{LONE}",
            }
        ]
    )
    assert (service.name, service.category, service.description) == ("A\ufffd", "C", "D\ufffd")
    status = parse_order_status({"status": f"Compl{NUL}eted", "currency": f"US{NUL}D"})
    assert (status.status, status.raw_status, status.currency) == (
        UpstreamStatus.COMPLETED,
        "Completed",
        "USD",
    )
    assert parse_order_status({"error": f"Incorrect{NUL} order ID{LONE}"}) == ItemError(
        "Incorrect order ID\ufffd"
    )


def test_provider_error_messages_are_cleaned():
    exc = ProviderError(f"HTTP 500: bad{NUL} page{LONE}", kind=ErrorKind.HTTP_ERROR)
    assert exc.message == str(exc) == "HTTP 500: bad page\ufffd"


# --- the client over HTTP -----------------------------------------------------------------------


def test_services_with_nul_and_lone_surrogates_are_read_clean(upstream, client):
    items = [
        {
            "service": 1,
            "name": f"Fol{NUL}lowers{LONE}",
            "type": "Default",
            "rate": "1.5",
            "min": 10,
            "max": 100,
            "category": f"Insta{NUL}gram",
            "desc": f"<b>{NUL}x</b>",
        },
        {"service": 2, "name": "Likes", "rate": "2", "min": 10, "max": 100},
    ]
    upstream.reply(json.dumps(items))  # ensure_ascii: sent as the escapes \u0000 and \ud800
    assert b"\\u0000" in json.dumps(items).encode()
    services = client.services()
    assert [s.name for s in services] == ["Followers\ufffd", "Likes"]
    assert services[0].category == "Instagram" and services[0].description == "<b>x</b>"
    assert services[0].raw["name"] == "Followers\ufffd"  # the raw item is stored too
    assert all(_stores(str(s.raw)) for s in services)


def test_a_utf8_encoded_surrogate_is_cleaned_too(upstream, client):
    # json decodes bytes with "surrogatepass": ED A0 80 becomes a lone U+D800.
    upstream.reply(b'{"balance": "1.5", "currency": "US\xed\xa0\x80D"}')
    assert client.balance().currency == "US\ufffdD"


def test_status_answers_with_nul_are_read_clean(upstream, client):
    upstream.reply({"1": {"status": f"Par{NUL}tial", "remains": "5"}, "2": {"error": f"In{NUL}"}})
    answers = client.statuses(["1", "2"])
    assert answers["1"].status is UpstreamStatus.PARTIAL and answers["1"].raw_status == "Partial"
    assert answers["2"] == ItemError("In")


@pytest.mark.parametrize("status", [200, 400])
def test_error_bodies_with_nul_become_clean_errors(upstream, client, status):
    upstream.reply({"error": f"Incorrect{NUL} link{LONE}"}, status=status)
    with pytest.raises(ProviderError) as info:
        client.add_order(service=1, params={"link": "x", "quantity": 10})
    assert info.value.message == "Incorrect link\ufffd"
    assert info.value.kind is ErrorKind.API_ERROR and info.value.permanent


def test_an_html_error_page_with_nul_bytes_gives_a_clean_message(upstream, client):
    upstream.reply(
        b"<html><title>Bad\x00 gateway</title></html>",
        status=502,
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(ProviderError) as info:
        client.balance()
    assert info.value.message == "HTTP 502: Bad gateway"


# --- the recorded calls -------------------------------------------------------------------------


def _provider() -> Provider:
    return provider_create(name="acme", api_url="http://127.0.0.1:9/api/v2", api_key="k-0001")


def _failing(message: str):
    def call(client: ApiV2Client) -> str:
        error = ProviderError("placeholder", kind=ErrorKind.API_ERROR)
        error.message = message  # as raised by code that set it after cleaning (or none did)
        raise error

    return call


@pytest.mark.django_db
def test_a_call_whose_error_holds_nul_is_recorded_clean():
    provider = _provider()
    with pytest.raises(ProviderError):
        provider_call(
            provider,
            "add",
            _failing(f"Incorrect{NUL} link{LONE}"),
            order_ref=3,
            request={"link": f"@chan{NUL}nel", f"k{LONE}": "v"},
        )
    call = ProviderCall.objects.get()
    assert (call.ok, call.order_ref, call.error_message) == (False, 3, "Incorrect link\ufffd")
    assert call.request == {"link": "@channel", "k\ufffd": "v"}


@pytest.mark.django_db
def test_a_successful_call_whose_result_holds_nul_is_recorded_clean():
    class Odd(str):
        def __repr__(self) -> str:  # a result whose repr does not escape what it holds
            return f"Odd{NUL}{LONE}"

    assert provider_call(_provider(), "balance", lambda client: Odd("x")) == "x"
    assert ProviderCall.objects.get().response_excerpt == "Odd\ufffd"


@pytest.mark.django_db
def test_a_call_that_cannot_be_recorded_still_returns_its_result(caplog):
    # An action longer than the column (32): the database refuses both records; the caller
    # still gets what the provider answered.
    assert provider_call(_provider(), "a" * 40, lambda client: "23501") == "23501"
    assert not ProviderCall.objects.exists()
    assert "not recorded at all" in caplog.text


@pytest.mark.django_db
def test_a_refused_record_is_stored_again_without_its_texts(monkeypatch):
    real, attempts = gateway._save_call, []

    def refuse_once(call: ProviderCall) -> None:
        attempts.append(call.error_message)
        if len(attempts) == 1:
            raise DataError("refused")
        real(call)

    monkeypatch.setattr(gateway, "_save_call", refuse_once)
    with pytest.raises(ProviderError):
        provider_call(_provider(), "status", _failing("gone"), request={"orders": "1"})
    call = ProviderCall.objects.get()
    assert attempts[0] == "gone" and not call.ok and call.request == {}
    assert "could not be stored" in call.error_message
