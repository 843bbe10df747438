"""A status sweep talks to each provider through one ProviderSession: one HTTP connection kept
alive for all its batches, the API key decrypted once, and each batch's call sent while the
previous batch's answers are written. Against the sandbox over HTTP (it counts the TCP
connections it accepts)."""

import time

import pytest

from orders.models import Order
from orders.services import polling as polling_module
from orders.services import provider_poll_orders
from providers import models as provider_models
from providers.client import ApiV2Client, ErrorKind, ProviderError
from providers.models import Provider, ProviderCall
from tests.orders.factories import make_service
from tests.orders.test_polling import _later, _placed
from tests.orders.test_sweep_budget import PassesAfter

pytestmark = pytest.mark.django_db
S = Order.Status


def _orders_in_batches_of_two(alice, provider, count):
    Provider.objects.filter(pk=provider.pk).update(status_batch_size=2)
    provider.refresh_from_db()
    service = make_service(provider=provider, sandbox_id=1)
    return [
        _placed(alice, service, f"https://instagram.com/p/session{i}", quantity="50")
        for i in range(count)
    ]


def test_a_sweep_uses_one_connection_and_decrypts_the_key_once(
    alice, sandbox, provider, monkeypatch
):
    _orders_in_batches_of_two(alice, provider, 5)
    decrypted = []
    real_decrypt = provider_models.crypto.decrypt
    monkeypatch.setattr(
        provider_models.crypto, "decrypt", lambda text: decrypted.append(1) or real_decrypt(text)
    )
    connections = sandbox.server.connections
    result = provider_poll_orders(provider=provider, now=_later())
    assert result.upstream_calls == 3 and result.polled == 5 and result.errors == 0
    assert len(sandbox.log("status")) == 3
    assert ProviderCall.objects.filter(provider=provider, action="status", ok=True).count() == 3
    # Three calls, one TCP connection (a new client per call opened one each), one decryption.
    assert sandbox.server.connections - connections == 1
    assert len(decrypted) == 1


def test_the_next_batch_is_asked_while_the_current_one_is_written(
    alice, sandbox, provider, monkeypatch
):
    _orders_in_batches_of_two(alice, provider, 4)
    asked_during_writes = []
    real_write = polling_module.poll_batch_write

    def write(**kwargs):
        # The first batch's writes wait (up to 5 s) for the second batch's call to arrive
        # upstream: it does only when it was sent ahead, in the session's worker thread.
        give_up = time.monotonic() + 5
        while len(sandbox.log("status")) < 2 and time.monotonic() < give_up:
            time.sleep(0.02)
        asked_during_writes.append(len(sandbox.log("status")))
        return real_write(**kwargs)

    monkeypatch.setattr(polling_module, "poll_batch_write", write)
    result = provider_poll_orders(provider=provider, now=_later())
    assert asked_during_writes == [2, 2]
    assert result.upstream_calls == 2 and result.polled == 4 and result.errors == 0
    assert len(sandbox.log("status")) == 2  # ceil(4 / 2): nothing asked twice
    assert ProviderCall.objects.filter(provider=provider, action="status").count() == 2
    assert not Order.objects.filter(provider=provider, last_polled_at__isnull=True).exists()


def test_a_batch_sent_ahead_is_written_after_the_deadline_and_no_other_starts(
    alice, sandbox, provider
):
    orders = _orders_in_batches_of_two(alice, provider, 5)
    # Looks 1-2: the first batch starts, and sends the second ahead; look 3 has passed.
    result = provider_poll_orders(provider=provider, now=_later(), deadline=PassesAfter(2))
    assert result.upstream_calls == 2 and result.polled == 4 and result.deferred == 1
    assert len(sandbox.log("status")) == 2
    assert ProviderCall.objects.filter(provider=provider, action="status").count() == 2
    polled = Order.objects.filter(pk__in=[o.pk for o in orders], last_polled_at__isnull=False)
    assert polled.count() == 4


def test_a_failed_call_ahead_postpones_only_its_batch(alice, sandbox, provider, monkeypatch):
    orders = _orders_in_batches_of_two(alice, provider, 6)
    second = {orders[2].upstream_order_id, orders[3].upstream_order_id}
    real_statuses = ApiV2Client.statuses

    def statuses(client, ids):
        # The second batch's call (the first one sent ahead, in the worker thread) fails.
        if set(ids) == second:
            raise ProviderError("HTTP 502", kind=ErrorKind.HTTP_ERROR, status_code=502)
        return real_statuses(client, ids)

    monkeypatch.setattr(ApiV2Client, "statuses", statuses)
    result = provider_poll_orders(provider=provider, now=_later())
    assert result.upstream_calls == 3 and result.polled == 4 and result.errors == 2
    calls = ProviderCall.objects.filter(provider=provider, action="status").order_by("pk")
    assert [call.ok for call in calls] == [True, False, True]
    assert calls[1].error_message == "HTTP 502"
    failed = Order.objects.filter(pk__in=[o.pk for o in orders], poll_errors=1)
    assert sorted(failed.values_list("pk", flat=True)) == sorted(o.pk for o in orders[2:4])
