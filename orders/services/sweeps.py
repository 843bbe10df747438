"""Periodic work that is not one provider's: resending what waits, rescuing what is stuck."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from orders.models import CancelRequest, Order, OrderStatusChange, Refill
from orders.selectors import order_ids_waiting_to_send, order_list_stuck_submitting
from orders.services.common import Deadline, OrderConflict, OrderError
from orders.services.enqueue import enqueue_order_submit
from orders.services.polling import PollResult, orders_make_due, provider_poll_orders
from orders.services.requests import (
    provider_poll_cancels,
    provider_poll_refills,
    provider_send_cancels,
    provider_send_refills,
)
from orders.services.status import order_set_status
from providers.models import Provider


def funds_retry_after() -> timedelta:
    # Each retry is an `add` the provider refuses while we are out of funds there: not too often.
    return getattr(settings, "ORDER_FUNDS_RETRY_AFTER", timedelta(minutes=10))


def stuck_after() -> timedelta:
    # Longer than any provider call can take (read timeout + total timeout + a margin).
    return getattr(settings, "ORDER_SUBMIT_STUCK_AFTER", timedelta(minutes=10))


@dataclass
class RequeueResult:
    requeued: list[int] = field(default_factory=list)
    to_review: list[int] = field(default_factory=list)


def orders_requeue(*, now: datetime | None = None) -> RequeueResult:
    """Enqueue placement again for QUEUED orders older than a minute and WAITING_FUNDS ones;
    send orders stuck in SUBMITTING (the worker died during the call) to review: whether the
    provider got the `add` is unknown."""
    now = now or timezone.now()
    result = RequeueResult()
    for order in order_list_stuck_submitting(now=now, older_than=stuck_after()):
        reason = (
            "Placement started but never finished (the worker stopped during the call). "
            "Check the provider's order list, then set the upstream id, resend, or cancel."
        )
        try:
            order_set_status(
                order=order,
                new=Order.Status.NEEDS_REVIEW,
                source=OrderStatusChange.Source.SYSTEM,
                note=reason,
                now=now,
                attention_reason=reason,
            )
        except (OrderConflict, OrderError):
            continue
        result.to_review.append(order.pk)
    for order_id in order_ids_waiting_to_send(now=now, funds_retry=funds_retry_after()):
        enqueue_order_submit(order_id)
        result.requeued.append(order_id)
    return result


@dataclass
class ProviderSweep:
    """What one sweep of one provider did: order statuses, refills and cancels."""

    orders: PollResult
    requests: dict[str, int]


def provider_sweep(*, provider: Provider, now: datetime | None = None) -> ProviderSweep:
    """One full look at a provider: send queued cancels and refills, then poll order, cancel
    and refill statuses. Each step survives the others' upstream failures."""
    now = now or timezone.now()
    # One time budget for the whole sweep: no upstream call starts after it, and what was not
    # reached stays queued or due for the next sweep a minute later.
    deadline = Deadline()
    counts: Counter = Counter()
    counts.update(provider_send_cancels(provider=provider, now=now, deadline=deadline))
    counts.update(provider_send_refills(provider=provider, now=now, deadline=deadline))
    polled = provider_poll_orders(provider=provider, now=now, deadline=deadline)
    counts.update(provider_poll_cancels(provider=provider, now=now, deadline=deadline))
    counts.update(provider_poll_refills(provider=provider, now=now, deadline=deadline))
    return ProviderSweep(orders=polled, requests=dict(counts))


@dataclass
class MadeDue:
    """What `orders_make_all_due` made due: placed active orders, open refills, and the sent
    cancels (settled by their orders' status polls, which are among the orders)."""

    orders: int
    refills: int
    cancels: int


def orders_make_all_due(*, providers: Iterable[Provider], now: datetime | None = None) -> MadeDue:
    """Everything active of `providers` due for its poll now (the poll_orders command's
    --all-due): every placed, active order, every refill waiting for its refill_status, and
    the orders of every cancel sent upstream. Queued refills and cancels need nothing: each
    sweep sends them."""
    now = now or timezone.now()
    providers = list(providers)
    orders = orders_make_due(providers=providers, now=now)
    refills = Refill.objects.filter(
        order__provider__in=providers,
        status__in=[Refill.Status.PENDING, Refill.Status.IN_PROGRESS],
    ).update(next_poll_at=now)
    cancels = CancelRequest.objects.filter(
        order__provider__in=providers, status=CancelRequest.Status.SENT
    ).count()
    return MadeDue(orders=orders, refills=refills, cancels=cancels)
