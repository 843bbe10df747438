"""order_set_status's explicit fields and what order_apply_upstream_status answers."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from orders.services import (
    StatusOutcome,
    order_apply_upstream_status,
    order_create,
    order_set_status,
)
from orders.services.polling import _postpone
from providers.client import OrderStatus
from providers.schemas import UpstreamStatus
from tests.orders.factories import make_provider, make_service

pytestmark = pytest.mark.django_db
S = Order.Status


@pytest.fixture
def placed(alice):
    """A Pending order at a provider nobody calls (these tests never go upstream)."""
    service = make_service(provider=make_provider(), sandbox_id=1, rate="3")
    order = order_create(
        user=alice, service=service, data={"link": "https://x.com/p/1", "quantity": "100"}
    )
    Order.objects.filter(pk=order.pk).update(
        status=S.PENDING, upstream_order_id="501", next_poll_at=timezone.now()
    )
    order.refresh_from_db()
    return order


def _answer(status: UpstreamStatus, remains: int | None = None, start: int | None = None):
    return OrderStatus(status, status.value, None, start, remains, "USD")


def test_order_set_status_takes_named_fields_only(placed):
    with pytest.raises(TypeError):
        order_set_status(  # the old catch-all could overwrite the status itself
            order=placed, new=S.IN_PROGRESS, source="poll", extra={"status": S.COMPLETED}
        )
    later = timezone.now() + timedelta(hours=1)
    order = order_set_status(
        order=placed,
        new=S.IN_PROGRESS,
        source="poll",
        attention_reason="look",
        next_poll_at=later,
        poll_errors=0,
    )
    order.refresh_from_db()
    assert (order.status, order.attention_reason, order.next_poll_at) == (
        S.IN_PROGRESS,
        "look",
        later,
    )
    assert order.upstream_order_id == "501"  # not given: left as it was


def test_order_set_status_next_poll_none_is_a_value_and_unset_leaves_it(placed):
    due = placed.next_poll_at
    order = order_set_status(order=placed, new=S.IN_PROGRESS, source="poll")
    order.refresh_from_db()
    assert order.next_poll_at == due  # not given
    order = order_set_status(order=order, new=S.NEEDS_REVIEW, source="poll", next_poll_at=None)
    order.refresh_from_db()
    assert order.next_poll_at is None  # given as None: never polled again


def test_unchanged_answer(placed):
    outcome = order_apply_upstream_status(
        order=placed, answer=_answer(UpstreamStatus.PENDING), now=timezone.now()
    )
    assert outcome is StatusOutcome.UNCHANGED and outcome.caller_saves


def test_progress_answer_is_set_on_the_order_and_saved_by_the_caller(placed):
    now = timezone.now()
    outcome = order_apply_upstream_status(
        order=placed, answer=_answer(UpstreamStatus.PENDING, remains=40, start=7), now=now
    )
    assert outcome is StatusOutcome.PROGRESS and outcome.caller_saves
    assert (placed.remains, placed.start_count) == (40, 7)
    assert Order.objects.get(pk=placed.pk).remains is None  # not written yet
    assert not hasattr(placed, "_progress")
    _postpone([placed], now)  # what the batch poll does with PROGRESS
    saved = Order.objects.get(pk=placed.pk)
    assert (saved.status, saved.remains, saved.start_count) == (S.PENDING, 40, 7)
    assert saved.status_changes.filter(new_status=S.PENDING).count() == 0  # no history row


def test_move_between_active_statuses_is_queued_for_the_bulk_write(placed):
    moves: list = []
    outcome = order_apply_upstream_status(
        order=placed,
        answer=_answer(UpstreamStatus.IN_PROGRESS, remains=10),
        now=timezone.now(),
        moves=moves,
    )
    assert outcome is StatusOutcome.QUEUED_FOR_BULK and not outcome.caller_saves
    assert [(o.pk, new) for o, new, _ in moves] == [(placed.pk, S.IN_PROGRESS)]
    assert Order.objects.get(pk=placed.pk).status == S.PENDING  # the caller writes it


def test_written_and_conflict(placed):
    stale = Order.objects.get(pk=placed.pk)
    now = timezone.now()
    answer = _answer(UpstreamStatus.CANCELED)
    assert order_apply_upstream_status(order=placed, answer=answer, now=now) is (
        StatusOutcome.WRITTEN
    )
    outcome = order_apply_upstream_status(order=stale, answer=answer, now=now)
    assert outcome is StatusOutcome.CONFLICT and not outcome.caller_saves
    placed.refresh_from_db()
    assert placed.status == S.CANCELED and placed.refunded == placed.charge == Decimal("0.30000")


def test_unknown_answer(placed):
    weird = OrderStatus(UpstreamStatus.UNKNOWN, "Hold on", None, None, None, None)
    outcome = order_apply_upstream_status(order=placed, answer=weird, now=timezone.now())
    assert outcome is StatusOutcome.UNKNOWN and outcome.caller_saves
