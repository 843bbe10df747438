"""providers.gateway.provider_call refuses to run inside a database transaction."""

import pytest
from django.db import transaction

from providers.client import ApiV2Client
from providers.gateway import ProviderCallInTransaction, provider_call
from providers.models import Provider, ProviderCall
from providers.services import provider_create


def _provider() -> Provider:
    return provider_create(name="acme", api_url="http://127.0.0.1:9/api/v2", api_key="k-0001")


def _recording_call(sent: list[ApiV2Client]):
    def call(client: ApiV2Client) -> str:
        sent.append(client)  # stands for the HTTP request
        return "ok"

    return call


@pytest.mark.django_db(transaction=True)
def test_provider_call_inside_a_transaction_raises_before_sending():
    provider = _provider()
    sent: list[ApiV2Client] = []
    refused = pytest.raises(ProviderCallInTransaction, match="inside a database transaction")
    with refused, transaction.atomic():
        provider_call(provider, "balance", _recording_call(sent))
    assert sent == []
    assert not ProviderCall.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_provider_call_outside_a_transaction_runs_and_is_recorded():
    provider = _provider()
    sent: list[ApiV2Client] = []
    assert provider_call(provider, "balance", _recording_call(sent), order_ref=7) == "ok"
    assert len(sent) == 1
    call = ProviderCall.objects.get()
    assert (call.action, call.ok, call.order_ref) == ("balance", True, 7)


@pytest.mark.django_db
def test_provider_call_in_a_plain_db_test_is_outside_any_transaction_of_ours():
    # pytest-django's `db` wraps each test in an atomic block; the durable check tolerates it,
    # so unit tests of services that call providers keep working.
    sent: list[ApiV2Client] = []
    assert provider_call(_provider(), "balance", _recording_call(sent)) == "ok"
    assert len(sent) == 1
