"""order_submit against the sandbox over real HTTP, with its fault modes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import LedgerEntry
from orders.models import Order
from orders.services import order_create, order_submit, orders_requeue
from providers.client import ProviderError
from providers.models import Provider, ProviderCall
from tests.orders.factories import add_backup, make_provider, make_service, make_upstream
from tests.orders.sandbox import KEY
from tests.orders.test_create import SUB, VALID

pytestmark = pytest.mark.django_db
S = Order.Status


def _order(alice, service, link="https://instagram.com/p/placement", **data):
    data = {"link": link, "quantity": "100", **data}
    return order_create(user=alice, service=service, data=data)


def _upstream_orders_for(sandbox, order) -> int:
    return sum(1 for o in sandbox.orders() if o["link"] == order.link)


@pytest.mark.parametrize(
    ("order_type", "data"),
    [(v[0], v[1]) for v in VALID] + [("Subscriptions", SUB)],
    ids=[v[0] for v in VALID] + ["Subscriptions"],
)
def test_every_type_is_placed_at_the_sandbox(alice, sandbox, provider, order_type, data):
    service = make_service(provider=provider, order_type=order_type)
    order = order_create(user=alice, service=service, data=data)
    placed = order_submit(order_id=order.pk)
    assert placed.status == S.PENDING, placed.attention_reason
    assert placed.upstream_order_id
    assert placed.submit_attempts == 1
    assert len(sandbox.orders()) == 1
    [call] = ProviderCall.objects.filter(order_ref=order.pk)
    assert call.action == "add" and call.ok
    assert order_submit(order_id=order.pk) is None  # a second run is a no-op
    assert len(sandbox.orders()) == 1
    assert [c.new_status for c in placed.status_changes.all()] == [
        S.QUEUED,
        S.SUBMITTING,
        S.PENDING,
    ]


@pytest.mark.parametrize(
    "mode", ["timeout", "drop_after_accept", "invalid_json", "http500", "html", "drop"]
)
def test_unknown_outcome_goes_to_review_and_is_never_resent(
    alice, sandbox, provider, mode, ledger_clean
):
    Provider.objects.filter(pk=provider.pk).update(read_timeout=1)
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service, link=f"https://instagram.com/p/{mode}")
    sandbox.fault(mode, seconds=3)
    result = order_submit(order_id=order.pk)
    assert result.status == S.NEEDS_REVIEW
    assert result.attention_reason
    assert result.public_status == "Pending"
    # Neither a second run, nor the requeue sweep sends it again.
    assert order_submit(order_id=order.pk) is None
    orders_requeue()
    carried_out = mode in ("timeout", "drop_after_accept", "invalid_json")
    assert _upstream_orders_for(sandbox, order) == (1 if carried_out else 0)
    assert len(sandbox.log("add")) == 1
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    ledger_clean()


def test_connection_refused_is_retried_and_placed_once(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    Provider.objects.filter(pk=provider.pk).update(api_url="http://127.0.0.1:9/api/v2")
    with pytest.raises(ProviderError) as info:
        order_submit(order_id=order.pk)
    assert info.value.sent is False
    order.refresh_from_db()
    assert order.status == S.QUEUED and order.submit_attempts == 1
    Provider.objects.filter(pk=provider.pk).update(api_url=sandbox.api_url)
    placed = order_submit(order_id=order.pk)
    assert placed.status == S.PENDING and placed.submit_attempts == 2
    assert _upstream_orders_for(sandbox, order) == 1


def test_rate_limited_goes_back_to_the_queue(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    sandbox.fault("http500", status=429)
    with pytest.raises(ProviderError):
        order_submit(order_id=order.pk)
    order.refresh_from_db()
    assert order.status == S.QUEUED
    assert order_submit(order_id=order.pk).status == S.PENDING


def test_permanent_refusal_cancels_with_one_full_refund(alice, sandbox, provider, ledger_clean):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    sandbox.fault("error", message="Incorrect link")
    result = order_submit(order_id=order.pk)
    assert result.status == S.CANCELED
    assert result.refunded == order.charge
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("50")
    assert LedgerEntry.objects.filter(order_ref=order.pk, kind="refund").count() == 1
    assert order_submit(order_id=order.pk) is None
    assert LedgerEntry.objects.filter(order_ref=order.pk, kind="refund").count() == 1
    ledger_clean()


def test_permanent_refusal_falls_over_to_the_backup(alice, sandbox, provider, ledger_clean):
    service = make_service(provider=provider, sandbox_id=1)
    backup_provider = make_provider(api_url=sandbox.api_url, key=KEY, name="backup")
    backup = make_upstream(provider=backup_provider, sandbox_id=1, rate=Decimal("1.10"))
    add_backup(service=service, upstream=backup)
    order = _order(alice, service)
    assert order.cost == Decimal("0.09000")
    sandbox.fault("error", message="Incorrect service ID")
    result = order_submit(order_id=order.pk)
    result.refresh_from_db()
    assert result.status == S.PENDING
    assert result.failed_over and result.provider == backup_provider
    assert result.upstream_service == backup
    assert result.cost == Decimal("0.11000")
    assert _upstream_orders_for(sandbox, order) == 1
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    ledger_clean()


def test_provider_out_of_funds_falls_over_to_the_backup(
    alice, sandbox, provider, settings, ledger_clean, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("Admin", "admin@example.com")]
    service = make_service(provider=provider, sandbox_id=1)
    backup_provider = make_provider(api_url=sandbox.api_url, key=KEY, name="backup")
    backup = make_upstream(provider=backup_provider, sandbox_id=1, rate=Decimal("1.10"))
    add_backup(service=service, upstream=backup)
    order = _order(alice, service)
    sandbox.fault("error", message="Not enough funds on balance")  # the primary's answer only
    with django_capture_on_commit_callbacks(execute=True):  # staff are told after the commit
        result = order_submit(order_id=order.pk)
    result.refresh_from_db()
    assert (result.status, result.provider, result.failed_over) == (
        S.PENDING,
        backup_provider,
        True,
    )
    provider.refresh_from_db()
    assert provider.out_of_funds_since is not None
    assert len(mail.outbox) == 1
    assert _upstream_orders_for(sandbox, order) == 1
    ledger_clean()


def test_provider_out_of_funds_waits_and_mails_once(
    alice, sandbox, provider, settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("Admin", "admin@example.com")]
    service = make_service(provider=provider, sandbox_id=1)
    sandbox.control("POST", "balance", balance="0")
    first = _order(alice, service, link="https://instagram.com/p/one")
    second = _order(alice, service, link="https://instagram.com/p/two")
    with django_capture_on_commit_callbacks(execute=True):  # staff are told after the commit
        assert order_submit(order_id=first.pk).status == S.WAITING_FUNDS
        assert order_submit(order_id=second.pk).status == S.WAITING_FUNDS
    provider.refresh_from_db()
    assert provider.out_of_funds_since is not None
    assert len(mail.outbox) == 1 and provider.name in mail.outbox[0].subject
    assert Order.objects.get(pk=first.pk).public_status == "Pending"
    # Topped up: the sweep sends them (the eager task runs in place).
    sandbox.control("POST", "balance", balance="100")
    assert orders_requeue().requeued == []  # retried every ORDER_FUNDS_RETRY_AFTER, not at once
    result = orders_requeue(now=timezone.now() + timedelta(minutes=11))
    assert sorted(result.requeued) == [first.pk, second.pk]
    assert set(Order.objects.values_list("status", flat=True)) == {S.PENDING}
    provider.refresh_from_db()
    assert provider.out_of_funds_since is None
    assert len(sandbox.orders()) == 2


def test_temporary_refusal_is_requeued(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    sandbox.fault("error", message="Service is temporarily busy")
    assert order_submit(order_id=order.pk).status == S.QUEUED
    assert order_submit(order_id=order.pk).status == S.PENDING


def test_invalid_api_key_never_cancels_orders(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    provider.set_api_key("wrong-key")
    provider.save()
    order = _order(alice, service)
    result = order_submit(order_id=order.pk)
    assert result.status == S.QUEUED
    assert "API key" in result.attention_reason


def test_stuck_submitting_goes_to_review(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    long_ago = timezone.now() - timedelta(hours=1)
    Order.objects.filter(pk=order.pk).update(status=S.SUBMITTING, submitted_at=long_ago)
    result = orders_requeue()
    assert result.to_review == [order.pk]
    order.refresh_from_db()
    assert order.status == S.NEEDS_REVIEW
    assert sandbox.log("add") == []


def test_requeue_sweep_task_sends_orders_whose_task_was_lost(alice, sandbox, provider):
    from orders.tasks import orders_requeue_sweep

    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)  # on_commit never ran: its task was "lost"
    orders_requeue_sweep.delay()
    order.refresh_from_db()
    assert order.status == S.QUEUED  # younger than a minute: left alone
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    orders_requeue_sweep.delay()  # eager in tests
    order.refresh_from_db()
    assert order.status == S.PENDING
    assert _upstream_orders_for(sandbox, order) == 1
