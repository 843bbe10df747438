"""A NUL character upstream never stalls the status poll of a provider (issue 11, point 4): the
texts are cleaned by the client and the recorded call, and a database error in one batch's
writes postpones that batch while the provider's other batches go on."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from orders.services import order_create, order_submit, provider_poll_orders
from orders.services import polling as polling_module
from orders.services.polling import ERROR_BACKOFF
from providers.client import ItemError, OrderStatus
from providers.models import ProviderCall
from providers.schemas import UpstreamStatus
from tests.orders.factories import make_service

S = Order.Status
SPEED = 1.0


def _placed(alice, service, link: str) -> Order:
    order = order_create(user=alice, service=service, data={"link": link, "quantity": "300"})
    # Under transaction=True the on_commit task (eager) has placed it already.
    placed = order_submit(order_id=order.pk) or Order.objects.get(pk=order.pk)
    assert placed.status == S.PENDING, placed.attention_reason
    return placed


@pytest.mark.django_db
def test_a_status_error_with_nul_is_recorded_and_the_orders_postponed(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    orders = [_placed(alice, service, f"https://instagram.com/p/nul-{i}") for i in range(2)]
    sandbox.fault("error", actions=("status",), message="Service\u0000 unavailable\ud800")
    now = timezone.now() + timedelta(minutes=10)
    result = provider_poll_orders(provider=provider, now=now)  # raised DataError before
    assert (result.upstream_calls, result.errors, result.changed) == (1, 2, 0)
    call = ProviderCall.objects.filter(provider=provider, action="status").get()
    assert (call.ok, call.error_message) == (False, "Service unavailable\ufffd")
    for order in orders:
        order.refresh_from_db()
        assert order.status == S.PENDING and order.next_poll_at >= now + ERROR_BACKOFF


@pytest.mark.django_db
def test_status_answers_with_nul_in_every_text_settle_with_exact_refunds(
    alice, sandbox, provider, ledger_clean
):
    sandbox.config(speed=SPEED)
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    done = _placed(alice, service, "https://instagram.com/p/nul-done")
    partial = _placed(alice, service, "https://instagram.com/p/partial-nul")
    failed = _placed(alice, service, "https://instagram.com/p/fail-nul")
    sandbox.advance(SPEED + 0.2)  # past their end
    sandbox.fault("nul_text", actions=("status",), count=None)
    result = provider_poll_orders(provider=provider, now=timezone.now() + timedelta(minutes=10))
    assert (result.changed, result.errors) == (3, 0)
    for order in (done, partial, failed):
        order.refresh_from_db()
    assert (done.status, done.upstream_status) == (S.COMPLETED, "Completed")
    assert partial.status == S.PARTIAL and partial.refunded == Decimal("0.30000")
    assert failed.status == S.CANCELED and failed.refunded == Decimal("0.90000")
    ledger_clean()


@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_one_batch_postpones_it_and_the_others_go_on(
    alice, sandbox, provider, monkeypatch, caplog
):
    # transaction=True: autocommit, as in a worker. The answers bypass the client (which would
    # clean them), so that the first batch's write really fails in the database driver.
    provider.status_batch_size = 1
    provider.save(update_fields=["status_batch_size"])
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    bad, good, third = (_placed(alice, service, f"https://instagram.com/p/b{i}") for i in range(3))
    answers = {
        bad.upstream_order_id: OrderStatus(
            UpstreamStatus.COMPLETED, "Compl\x00eted", None, 1, 0, ""
        ),
        good.upstream_order_id: OrderStatus(UpstreamStatus.COMPLETED, "Completed", None, 1, 0, ""),
        third.upstream_order_id: ItemError("Incorrect order ID"),
    }

    # Each batch looks up its own order in the answers.
    monkeypatch.setattr(polling_module, "provider_fetch_statuses", lambda *args, **kwargs: answers)
    now = timezone.now() + timedelta(minutes=10)
    result = provider_poll_orders(provider=provider, now=now)  # raised DataError before
    assert result.upstream_calls == 3
    bad.refresh_from_db(), good.refresh_from_db(), third.refresh_from_db()
    assert good.status == S.COMPLETED
    assert bad.status == S.PENDING and bad.poll_errors == 1
    assert bad.next_poll_at == now + ERROR_BACKOFF and bad.upstream_status != "Completed"
    assert third.status == S.PENDING and third.poll_errors == 1
    assert "the writes of a batch of 1 orders failed" in caplog.text
