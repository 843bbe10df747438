"""What counts as "the provider does not know this call", learning it once, the single-call
fallback of reads, and the capability fields in admin."""

import pytest
from django.urls import reverse

from providers.client import ErrorKind, ProviderError, api_error, is_unsupported_call
from providers.models import Provider, ProviderCall
from providers.schemas import CancelResult, ItemError, OrderStatus
from providers.services import (
    provider_fetch_refill_statuses,
    provider_fetch_statuses,
    provider_learn_capability,
)
from tests.providers.test_client import API_KEY, FakeUpstream, raises

STATUS = {"charge": "0.1", "start_count": "5", "status": "Completed", "remains": "0"}


@pytest.fixture
def upstream():
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture
def provider(db, upstream):
    provider = Provider(name="up", api_url=upstream.url, read_timeout=2)
    provider.set_api_key(API_KEY)
    provider.save()
    return provider


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (api_error("Incorrect request", status_code=200), True),
        (api_error("Unknown action", status_code=200), True),
        (api_error("Invalid action", status_code=200), True),
        (api_error("This action is not supported", status_code=200), True),
        (api_error("Incorrect order ID", status_code=200), False),  # about the ids
        (api_error("Not enough funds on balance", status_code=200), False),
        (api_error("Invalid API key", status_code=200), False),
        # Never on anything but an answered {"error": ...}: the outcome must be known.
        (ProviderError("Incorrect request", kind=ErrorKind.HTTP_ERROR, status_code=500), False),
        (ProviderError("Incorrect request", kind=ErrorKind.TIMEOUT, sent=None), False),
        (ProviderError("Incorrect request", kind=ErrorKind.CONNECT, sent=False), False),
        (ProviderError("Incorrect request", kind=ErrorKind.HTML), False),
    ],
)
def test_only_an_error_answer_naming_the_call_means_unsupported(exc, expected):
    assert is_unsupported_call(exc) is expected


def test_a_5xx_with_an_incorrect_request_body_is_not_a_refusal(upstream):
    from providers.client import ApiV2Client

    upstream.reply({"error": "Incorrect request"}, status=502)
    with ApiV2Client(base_url=upstream.url, api_key=API_KEY) as client:
        exc = raises(lambda: client.refills(["1", "2"]), kind=ErrorKind.HTTP_ERROR)
    assert not is_unsupported_call(exc)


def test_cancel_one_sends_a_lone_order_and_reads_both_answer_forms(upstream):
    from providers.client import ApiV2Client

    upstream.reply([{"order": 7, "type": "order", "cancel": 3}])
    upstream.reply({"cancel": "4"})
    upstream.reply({"order": 7, "cancel": {"error": "Order can't be canceled"}})
    upstream.reply({"error": "Incorrect request"})
    with ApiV2Client(base_url=upstream.url, api_key=API_KEY) as client:
        assert client.cancel_one("7") == CancelResult("3", "order")
        assert client.cancel_one("7") == CancelResult("4", None)
        raises(lambda: client.cancel_one("7"), kind=ErrorKind.API_ERROR)
        exc = raises(lambda: client.cancel_one("7"), kind=ErrorKind.API_ERROR)
    assert is_unsupported_call(exc)
    assert [r["form"].get("order") for r in upstream.requests] == ["7"] * 4
    assert all("orders" not in r["form"] for r in upstream.requests)


# --- learning ---------------------------------------------------------------------------------


def test_a_capability_is_learned_once_even_by_two_sweeps_at_once(provider):
    stale = Provider.objects.get(pk=provider.pk)
    assert provider_learn_capability(
        provider=provider, capability="supports_multi_refill", reason="Incorrect request"
    )
    assert provider.supports_multi_refill is False
    assert not provider_learn_capability(
        provider=stale, capability="supports_multi_refill", reason="Incorrect request"
    )
    provider.refresh_from_db()
    assert provider.supports_multi_refill is False and provider.capabilities_learned_at
    assert provider.capabilities_note.count("\n") == 1
    assert "multi refill (refill with orders=) turned off" in provider.capabilities_note
    assert "'Incorrect request'" in provider.capabilities_note
    # A second capability goes on top, the first stays.
    provider_learn_capability(provider=provider, capability="supports_cancel", reason="Unknown")
    provider.refresh_from_db()
    first, second = provider.capabilities_note.splitlines()
    assert "cancel turned off" in first and "multi refill" in second
    with pytest.raises(ValueError, match="not a learnable capability"):
        provider_learn_capability(provider=provider, capability="is_enabled", reason="x")


def test_statuses_fall_back_to_single_calls_and_learn(upstream, provider):
    upstream.reply({"error": "Incorrect request"})
    upstream.reply(STATUS)
    upstream.reply({"error": "Incorrect order ID"})
    answers = provider_fetch_statuses(provider=provider, order_ids=["1", "2"])
    assert isinstance(answers["1"], OrderStatus) and answers["2"] == ItemError("Incorrect order ID")
    assert [r["form"].get("orders") for r in upstream.requests] == ["1,2", None, None]
    assert [r["form"].get("order") for r in upstream.requests] == [None, "1", "2"]
    provider.refresh_from_db()
    assert provider.supports_multi_status is False
    assert ProviderCall.objects.filter(action="status").count() == 3
    # From now on: single calls only.
    upstream.reply(STATUS)
    provider_fetch_statuses(provider=provider, order_ids=["1"])
    assert upstream.requests[-1]["form"].get("order") == "1"


def test_a_single_form_refused_too_learns_nothing(upstream, provider):
    upstream.reply({"error": "Incorrect request"})
    upstream.reply({"error": "Incorrect request"})
    answers = provider_fetch_refill_statuses(provider=provider, refill_ids=["5"])
    assert answers == {"5": ItemError("Incorrect request")}
    provider.refresh_from_db()
    assert provider.supports_multi_refill_status is True and not provider.capabilities_note


def test_a_network_failure_in_the_single_round(upstream, provider):
    Provider.objects.filter(pk=provider.pk).update(supports_multi_status=False)
    provider.refresh_from_db()
    # Before any answer: raised, as a failed multi call would be.
    upstream.reply(b"", mode="drop")
    raises(
        lambda: provider_fetch_statuses(provider=provider, order_ids=["1", "2"]),
        kind=ErrorKind.TIMEOUT,
    )
    # After an answer: the round ends, the rest is marked as not asked.
    upstream.reply(STATUS)
    upstream.reply(b"", mode="drop")
    answers = provider_fetch_statuses(provider=provider, order_ids=["1", "2", "3"])
    assert isinstance(answers["1"], OrderStatus)
    assert all(
        isinstance(answers[i], ItemError) and answers[i].message.startswith("not asked")
        for i in ("2", "3")
    )
    assert len(upstream.requests) == 3  # 1, then 1 and 2: never 3


# --- admin --------------------------------------------------------------------------------------


def test_admin_shows_and_edits_the_capabilities(client, staff, provider):
    provider_learn_capability(
        provider=provider, capability="supports_multi_cancel", reason="Incorrect request"
    )
    client.force_login(staff)
    response = client.get(reverse("admin:providers_provider_change", args=[provider.pk]))
    assert response.status_code == 200
    form = response.context["adminform"].form
    for name in ("supports_multi_status", "supports_multi_refill",
                 "supports_multi_refill_status", "supports_multi_cancel", "capabilities_note"):  # fmt: skip
        assert name in form.fields, name
    assert form.initial["supports_multi_cancel"] is False
    body = response.content.decode()
    assert "multi cancel (cancel with orders=) turned off" in body
    assert "Capabilities learned at" in body
