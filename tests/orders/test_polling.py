"""Status polling, refunds exactly once, refills and cancels, against the sandbox over HTTP."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import LedgerEntry
from catalog.models import Service
from orders.models import CancelRequest, Order, Refill
from orders.services import (
    OrderError,
    next_poll_at,
    order_apply_upstream_status,
    order_cancel_request,
    order_create,
    order_refill_request,
    order_submit,
    provider_poll_orders,
    provider_poll_refills,
    provider_send_cancels,
    provider_send_refills,
    refund_amount,
)
from orders.services import (
    StatusOutcome as Outcome,
)
from providers.client import OrderStatus
from providers.models import Provider, ProviderCall
from providers.schemas import UpstreamStatus
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
S = Order.Status
SPEED = 1.0  # seconds from Pending to the final status at the sandbox


def _placed(alice, service, link, quantity="300"):
    order = order_create(user=alice, service=service, data={"link": link, "quantity": quantity})
    placed = order_submit(order_id=order.pk)
    assert placed.status == S.PENDING, placed.attention_reason
    return placed


def _later(minutes=10):
    return timezone.now() + timedelta(minutes=minutes)


def _finish(sandbox):
    """Past the end of every order and refill placed so far (the sandbox's clock)."""
    sandbox.advance(SPEED + 0.2)


@pytest.fixture
def fast(sandbox):
    sandbox.config(speed=SPEED)
    return sandbox


def test_poll_completes_partial_and_canceled_with_exact_refunds(
    alice, fast, provider, ledger_clean
):
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    done = _placed(alice, service, "https://instagram.com/p/done")
    partial = _placed(alice, service, "https://instagram.com/p/partial")
    failed = _placed(alice, service, "https://instagram.com/p/fail")
    _finish(fast)
    result = provider_poll_orders(provider=provider, now=_later())
    assert result.upstream_calls == 1 and result.changed == 3
    done.refresh_from_db(), partial.refresh_from_db(), failed.refresh_from_db()
    assert done.status == S.COMPLETED and done.remains == 0 and done.refunded == 0
    assert done.start_count is not None and done.next_poll_at is None
    assert partial.status == S.PARTIAL and partial.remains == 100
    # charge 0.9 for 300; 100 undelivered -> 0.3
    assert partial.refunded == Decimal("0.30000")
    assert failed.status == S.CANCELED and failed.refunded == Decimal("0.90000")
    refunds = LedgerEntry.objects.filter(kind="refund")
    assert sorted(e.amount for e in refunds) == [Decimal("0.3"), Decimal("0.9")]
    assert partial.public_status == "Partial" and failed.public_status == "Canceled"
    change = partial.status_changes.last()
    assert (change.old_status, change.new_status, change.remains, change.source) == (
        S.PENDING,
        S.PARTIAL,
        100,
        "poll",
    )
    # Settled orders leave the poll.
    again = provider_poll_orders(provider=provider, now=_later(60))
    assert again.upstream_calls == 0
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("50") - Decimal("2.7") + Decimal("1.2")
    ledger_clean()


def test_the_same_final_status_processed_twice_refunds_once(alice, fast, provider, ledger_clean):
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    order = _placed(alice, service, "https://instagram.com/p/partial-twice")
    stale = Order.objects.get(pk=order.pk)  # a second worker's copy, read before the first
    answer = OrderStatus(UpstreamStatus.PARTIAL, "Partial", None, 5, 100, "USD")
    now = timezone.now()
    assert order_apply_upstream_status(order=order, answer=answer, now=now) is Outcome.WRITTEN
    # The second worker's copy is stale: the conditional move finds nothing, no-op.
    assert order_apply_upstream_status(order=stale, answer=answer, now=now) is Outcome.CONFLICT
    assert LedgerEntry.objects.filter(order_ref=order.pk, kind="refund").count() == 1
    order.refresh_from_db()
    assert order.refunded == Decimal("0.30000")
    assert order.status_changes.filter(new_status=S.PARTIAL).count() == 1
    ledger_clean()


def test_partial_without_remains_never_settles_with_a_zero_refund(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    order = _placed(alice, service, "https://instagram.com/p/partial-no-remains")
    no_remains = OrderStatus(UpstreamStatus.PARTIAL, "Partial", None, 5, None, "USD")
    outcome = order_apply_upstream_status(order=order, answer=no_remains, now=timezone.now())
    assert outcome is Outcome.UNKNOWN and outcome.caller_saves
    order.refresh_from_db()
    assert order.status == S.PENDING and order.refunded == 0
    # Progress seen earlier (100 of 300 left) settles a Partial that leaves remains out.
    Order.objects.filter(pk=order.pk).update(remains=100)
    order.refresh_from_db()
    outcome = order_apply_upstream_status(order=order, answer=no_remains, now=timezone.now())
    assert outcome is Outcome.WRITTEN and not outcome.caller_saves
    order.refresh_from_db()
    assert order.status == S.PARTIAL and order.refunded == Decimal("0.30000")


def test_refund_rule_clamps_remains():
    order = Order(charge=Decimal("1.00000"), quantity=3, service=Service(type="Default"))
    assert refund_amount(order=order, status=S.PARTIAL, remains=1) == Decimal("0.33333")
    assert refund_amount(order=order, status=S.PARTIAL, remains=-4) == 0
    assert refund_amount(order=order, status=S.PARTIAL, remains=99) == Decimal("1.00000")
    assert refund_amount(order=order, status=S.CANCELED, remains=0) == Decimal("1.00000")
    assert refund_amount(order=order, status=S.COMPLETED, remains=3) == 0


def test_a_subscription_that_ends_completed_refunds_its_unused_reserve(
    alice, sandbox, provider, ledger_clean
):
    service = make_service(provider=provider, sandbox_id=15, rate="1")
    data = {"username": "ann", "min": "100", "max": "200", "delay": "30", "posts": "10"}
    order = order_submit(order_id=order_create(user=alice, service=service, data=data).pk)
    assert order.quantity == 2000 and order.charge == Decimal("2.00000")
    # Fewer posts than reserved before it ended: 600 of the 2000 units were never delivered.
    ended = OrderStatus(UpstreamStatus.COMPLETED, "Completed", None, 0, 600, "USD")
    assert order_apply_upstream_status(order=order, answer=ended, now=timezone.now()) is (
        Outcome.WRITTEN
    )
    order.refresh_from_db()
    assert order.status == S.COMPLETED and order.refunded == Decimal("0.60000")
    ledger_clean()


def test_a_completed_order_with_remains_refunds_nothing(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    order = _placed(alice, service, "https://instagram.com/p/done-remains")
    done = OrderStatus(UpstreamStatus.COMPLETED, "Completed", None, 5, 40, "USD")
    assert order_apply_upstream_status(order=order, answer=done, now=timezone.now()) is (
        Outcome.WRITTEN
    )
    order.refresh_from_db()
    assert order.status == S.COMPLETED and order.refunded == 0
    assert not LedgerEntry.objects.filter(order_ref=order.pk, kind="refund").exists()


def test_unchanged_orders_are_not_written_but_rescheduled(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/slow")
    now = _later()
    result = provider_poll_orders(provider=provider, now=now)
    order.refresh_from_db()
    assert result.polled == 1
    assert order.status == S.PENDING
    assert order.status_changes.count() == 3  # created, submitting, pending: nothing new
    assert order.next_poll_at > now and order.last_polled_at == now


def test_per_id_errors_and_unknown_statuses_leave_the_order(alice, sandbox, provider, caplog):
    service = make_service(provider=provider, sandbox_id=1)
    good = _placed(alice, service, "https://instagram.com/p/good")
    lost = _placed(alice, service, "https://instagram.com/p/lost")
    Order.objects.filter(pk=lost.pk).update(upstream_order_id="999999")
    result = provider_poll_orders(provider=provider, now=_later())
    lost.refresh_from_db()
    assert lost.status == S.PENDING and lost.poll_errors == 1
    assert result.errors == 1 and result.polled == 2
    weird = OrderStatus(UpstreamStatus.UNKNOWN, "Hold on", None, None, None, None)
    outcome = order_apply_upstream_status(order=good, answer=weird, now=timezone.now())
    assert outcome is Outcome.UNKNOWN and outcome.caller_saves
    good.refresh_from_db()
    assert good.status == S.PENDING
    assert "Hold on" in caplog.text


def test_batches_follow_the_providers_batch_size(alice, sandbox, provider):
    Provider.objects.filter(pk=provider.pk).update(status_batch_size=2)
    provider.refresh_from_db()
    service = make_service(provider=provider, sandbox_id=1)
    for i in range(5):
        _placed(alice, service, f"https://instagram.com/p/batch{i}", quantity="50")
    result = provider_poll_orders(provider=provider, now=_later())
    assert result.upstream_calls == 3 and result.polled == 5
    assert ProviderCall.objects.filter(action="status").count() == 3


def test_upstream_failure_postpones_the_batch(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/outage")
    sandbox.fault("http500", actions=("status",))
    now = _later()
    result = provider_poll_orders(provider=provider, now=now)
    order.refresh_from_db()
    assert result.errors == 1 and order.status == S.PENDING
    assert order.next_poll_at >= now + timedelta(minutes=5) and order.poll_errors == 1


def test_backoff_grows_with_age_with_jitter():
    now = timezone.now()
    fresh = next_poll_at(created_at=now, now=now) - now
    day = next_poll_at(created_at=now - timedelta(days=1), now=now) - now
    week = next_poll_at(created_at=now - timedelta(days=7), now=now) - now
    assert timedelta(seconds=48) <= fresh <= timedelta(seconds=72)
    assert timedelta(minutes=19) <= day <= timedelta(minutes=29)
    assert timedelta(hours=2.2) <= week <= timedelta(hours=3.4)
    old = next_poll_at(created_at=now - timedelta(days=90), now=now) - now
    assert old <= timedelta(hours=7.2)


def test_orders_past_the_max_age_go_to_review(alice, sandbox, provider, settings):
    settings.ORDER_MAX_POLL_AGE = timedelta(days=2)
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/ancient")
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(days=3))
    result = provider_poll_orders(provider=provider, now=_later())
    order.refresh_from_db()
    assert result.to_review == 1 and result.upstream_calls == 0
    assert order.status == S.NEEDS_REVIEW and "2 days" in order.attention_reason


# --- refills --------------------------------------------------------------------------------


def _completed(alice, fast, provider, link="https://instagram.com/p/refillme"):
    service = make_service(provider=provider, sandbox_id=1)  # refill and cancel
    order = _placed(alice, service, link)
    _finish(fast)
    provider_poll_orders(provider=provider, now=_later())
    order.refresh_from_db()
    assert order.status == S.COMPLETED
    return order


@pytest.mark.parametrize("multi", [True, False])
def test_refill_is_sent_and_followed(alice, fast, provider, multi):
    Provider.objects.filter(pk=provider.pk).update(supports_multi_refill=multi)
    provider.refresh_from_db()
    order = _completed(alice, fast, provider)
    refill = order_refill_request(user=alice, order=order)
    assert refill.status == Refill.Status.QUEUED and refill.public_status == "Pending"
    with pytest.raises(OrderError, match="already in progress"):
        order_refill_request(user=alice, order=order)
    counts = provider_send_refills(provider=provider)
    assert counts["refill sent"] == 1
    assert provider_send_refills(provider=provider) == {}  # claimed: never sent twice
    refill.refresh_from_db()
    assert refill.status == Refill.Status.PENDING and refill.upstream_refill_id
    [call] = ProviderCall.objects.filter(action="refill")
    assert call.ok
    assert len(sandbox_log_refills := fast.log("refill")) == 1
    assert ("orders" in sandbox_log_refills[0]["params"]) is multi
    _finish(fast)
    provider_poll_refills(provider=provider, now=_later())
    refill.refresh_from_db()
    assert refill.status == Refill.Status.COMPLETED and refill.public_status == "Completed"
    assert list(order.refills.all()) == [refill]


def test_refill_is_refused_with_reasons(alice, fast, provider):
    service = make_service(provider=provider, sandbox_id=3)  # no refill
    order = _placed(alice, service, "https://instagram.com/p/norefill")
    with pytest.raises(OrderError, match="no refill"):
        order_refill_request(user=alice, order=order)
    refillable = make_service(provider=provider, sandbox_id=1)
    running = _placed(alice, refillable, "https://instagram.com/p/running")
    with pytest.raises(OrderError, match="completed"):
        order_refill_request(user=alice, order=running)
    done = _completed(alice, fast, provider, "https://instagram.com/p/old")
    Order.objects.filter(pk=done.pk).update(finished_at=timezone.now() - timedelta(days=31))
    with pytest.raises(OrderError, match="window"):
        order_refill_request(user=alice, order=done)
    assert not Refill.objects.exists()


def test_rejected_refill(alice, fast, provider):
    order = _completed(alice, fast, provider, "https://instagram.com/p/reject-refill")
    refill = order_refill_request(user=alice, order=order)
    provider_send_refills(provider=provider)
    _finish(fast)
    provider_poll_refills(provider=provider, now=_later())
    refill.refresh_from_db()
    assert refill.status == Refill.Status.REJECTED and refill.public_status == "Rejected"
    # The window is still open and nothing is pending: a new refill may be asked.
    assert order_refill_request(user=alice, order=order).pk != refill.pk


def test_poll_orders_all_due_polls_refills_and_cancels_now(alice, fast, provider, ledger_clean):
    """--all-due means everything active: a refill whose next refill_status is minutes away
    and a cancel whose order's next poll is minutes away are both settled now."""
    order = _completed(alice, fast, provider, "https://instagram.com/p/refill-all-due")
    refill = order_refill_request(user=alice, order=order)
    assert provider_send_refills(provider=provider)["refill sent"] == 1
    refill.refresh_from_db()
    assert refill.next_poll_at > timezone.now() + timedelta(minutes=4)  # its own interval
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    running = _placed(alice, service, "https://instagram.com/p/cancel-all-due")
    cancel = order_cancel_request(user=alice, order=running)
    assert provider_send_cancels(provider=provider)["cancel sent"] == 1
    Order.objects.filter(pk=running.pk).update(next_poll_at=_later())
    _finish(fast)
    out = StringIO()
    call_command("poll_orders", "--provider", provider.name, "--all-due", stdout=out)
    assert "made due: 1 order(s), 1 refill(s), 1 cancel(s)" in out.getvalue()
    refill.refresh_from_db()
    assert refill.status == Refill.Status.COMPLETED
    running.refresh_from_db()
    cancel.refresh_from_db()
    assert running.status == S.CANCELED and running.refunded == running.charge
    assert cancel.status == CancelRequest.Status.COMPLETED
    ledger_clean()


# --- cancels --------------------------------------------------------------------------------


def test_cancel_is_sent_and_the_poll_refunds(alice, sandbox, provider, ledger_clean):
    Provider.objects.filter(pk=provider.pk).update(supports_cancel_status=True)
    provider.refresh_from_db()
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    order = _placed(alice, service, "https://instagram.com/p/cancelme")
    cancel = order_cancel_request(user=alice, order=order)
    assert cancel.public_status == "Pending"
    with pytest.raises(OrderError, match="already asked"):
        order_cancel_request(user=alice, order=order)
    assert provider_send_cancels(provider=provider)["cancel sent"] == 1
    cancel.refresh_from_db()
    assert cancel.status == CancelRequest.Status.SENT and cancel.upstream_cancel_id
    assert cancel.upstream_type == "order"
    result = provider_poll_orders(provider=provider)  # due now: the send moved next_poll_at
    assert result.changed == 1
    order.refresh_from_db()
    cancel.refresh_from_db()
    assert order.status == S.CANCELED and order.refunded == order.charge
    assert cancel.status == CancelRequest.Status.COMPLETED
    ledger_clean()


def test_cancel_before_sending_refunds_at_once(alice, sandbox, provider, ledger_clean):
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    order = order_create(
        user=alice, service=service, data={"link": "https://instagram.com/p/x", "quantity": "100"}
    )
    cancel = order_cancel_request(user=alice, order=order)
    order.refresh_from_db()
    assert cancel.status == CancelRequest.Status.COMPLETED
    assert order.status == S.CANCELED and order.refunded == Decimal("0.30000")
    assert order_submit(order_id=order.pk) is None
    assert sandbox.log("add") == []
    ledger_clean()


def test_cancel_is_refused_before_anything_is_written(alice, bob, sandbox, provider):
    no_cancel = make_service(provider=provider, sandbox_id=2)
    order = _placed(alice, no_cancel, "https://instagram.com/p/nocancel")
    with pytest.raises(OrderError, match="does not allow"):
        order_cancel_request(user=alice, order=order)
    cancellable = make_service(provider=provider, sandbox_id=1)
    other = _placed(alice, cancellable, "https://instagram.com/p/theirs")
    with pytest.raises(OrderError, match="not found"):
        order_cancel_request(user=bob, order=other)
    Provider.objects.filter(pk=provider.pk).update(supports_cancel=False)
    with pytest.raises(OrderError, match="does not accept"):
        order_cancel_request(user=alice, order=other)
    assert not CancelRequest.objects.exists()


def test_rejected_cancel_keeps_the_order_running(alice, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/reject-cancel")
    Provider.objects.filter(pk=provider.pk).update(supports_cancel_status=True)
    provider.refresh_from_db()
    cancel = order_cancel_request(user=alice, order=order)
    provider_send_cancels(provider=provider)
    from orders.services import provider_poll_cancels

    assert provider_poll_cancels(provider=provider)["cancel rejected"] == 1
    cancel.refresh_from_db()
    order.refresh_from_db()
    assert cancel.status == CancelRequest.Status.REJECTED
    assert cancel.public_status == "Rejected"
    assert order.status == S.PENDING and order.refunded == 0
    # The customer may ask again once the first request is closed.
    assert order_cancel_request(user=alice, order=order).pk != cancel.pk


def test_moves_between_active_statuses_are_written_in_bulk(
    alice, sandbox, provider, django_assert_max_num_queries
):
    sandbox.config(speed=10)
    service = make_service(provider=provider, sandbox_id=1)
    orders = [_placed(alice, service, f"https://instagram.com/p/bulk{i}") for i in range(6)]
    sandbox.advance(1.3)  # past the sandbox's Pending tenth: In progress
    # Due selection, the call's record, one UPDATE + one read + one INSERT for the pair, one
    # read of which customers have a webhook, savepoints: the same count for 6 orders as for 100.
    with django_assert_max_num_queries(11):
        result = provider_poll_orders(provider=provider, now=_later())
    assert result.changed == 6 and result.statuses[S.IN_PROGRESS] == 6
    for order in orders:
        order.refresh_from_db()
        assert order.status == S.IN_PROGRESS and order.public_status == "In progress"
        assert 0 < order.remains < 300 or order.remains == 300
        change = order.status_changes.last()
        assert (change.old_status, change.new_status, change.source) == (
            S.PENDING,
            S.IN_PROGRESS,
            "poll",
        )
        assert order.next_poll_at > timezone.now()


def test_dripfeed_is_placed_with_runs_and_canceled_as_dripfeed(
    alice, sandbox, provider, ledger_clean
):
    service = make_service(provider=provider, sandbox_id=3, rate="1")  # drip-feed and cancel
    order = order_create(
        user=alice,
        service=service,
        data={
            "link": "https://instagram.com/p/drip",
            "quantity": "100",
            "runs": "3",
            "interval": "10",
        },
    )
    assert order.quantity == 300 and order.charge == Decimal("0.30000")
    order_submit(order_id=order.pk)
    [upstream] = sandbox.orders()
    assert (upstream["quantity"], upstream["runs"], upstream["interval"]) == (300, 3, 10)
    order_cancel_request(user=alice, order=order)
    provider_send_cancels(provider=provider)
    assert CancelRequest.objects.get(order=order).upstream_type == "dripfeed"
    provider_poll_orders(provider=provider)
    order.refresh_from_db()
    assert order.status == S.CANCELED and order.refunded == Decimal("0.30000")
    ledger_clean()
