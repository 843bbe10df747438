"""What an admin does to an order by hand. Each move is recorded with who made it; refunds
follow the same rules (and the same once-only ledger entry) as the automatic ones."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from orders.models import FINAL_STATUSES, Order, OrderStatusChange
from orders.services.common import OrderConflict, OrderError
from orders.services.enqueue import enqueue_order_submit
from orders.services.placement import FIRST_POLL_AFTER
from orders.services.status import order_set_status

S = Order.Status
ADMIN = OrderStatusChange.Source.ADMIN
# The placement's own states: set by the placement and the sweeps, never by hand.
PLACEMENT_STATUSES = frozenset({S.QUEUED, S.SUBMITTING, S.WAITING_FUNDS})


def _moved(order: Order, **kwargs: Any) -> Order:
    if order.status == S.SUBMITTING:
        # The `add` is in flight: cancelling (and refunding) now could refund an order the
        # provider is about to accept. Wait for the outcome.
        raise OrderError(None, f"Order {order.pk} is being sent upstream; wait for the outcome.")
    try:
        return order_set_status(order=order, source=ADMIN, **kwargs)
    except OrderConflict:
        raise OrderError(
            None, f"Order {order.pk} changed meanwhile; reload and try again."
        ) from None


def order_resend(*, order: Order, who: User, note: str = "") -> Order:
    """Send a NEEDS_REVIEW order upstream again, explicitly. The admin has checked that the
    provider has no order for it: a resend after an unknown outcome can place it twice."""
    if order.status != S.NEEDS_REVIEW:
        raise OrderError(None, "Only orders that need review can be resent.")
    if order.upstream_order_id:
        # Placed for sure (polled too long, or accepted after the stuck sweep moved it): a
        # resend would place it a second time. Set its status instead.
        raise OrderError(
            None,
            f"Order {order.pk} is placed at the provider as {order.upstream_order_id}; "
            "set its status instead of resending.",
        )
    with transaction.atomic():
        order = _moved(
            order,
            new=S.QUEUED,
            who=who,
            note=note or "Resent by an admin",
            attention_reason="",
        )
        transaction.on_commit(lambda: enqueue_order_submit(order.pk))
    return order


def order_set_upstream_id(
    *, order: Order, upstream_order_id: str, who: User, note: str = ""
) -> Order:
    """Record the provider's order id found by hand (e.g. after an unknown outcome); the order
    is then polled like any placed order."""
    upstream_order_id = upstream_order_id.strip()
    if not upstream_order_id or len(upstream_order_id) > 64 or "," in upstream_order_id:
        raise OrderError("upstream_order_id", "Give the provider's order id (one id).")
    if order.provider_id is None:
        raise OrderError("upstream_order_id", "This order has no provider.")
    if order.status not in (S.NEEDS_REVIEW, S.QUEUED, S.WAITING_FUNDS):
        raise OrderError(None, "The upstream id can only be set while the order is not placed.")
    now = timezone.now()
    return _moved(
        order,
        new=S.PENDING,
        who=who,
        now=now,
        note=note or f"Upstream id {upstream_order_id} set by an admin",
        upstream_order_id=upstream_order_id,
        next_poll_at=now + FIRST_POLL_AFTER,
        attention_reason="",
    )


def order_set_status_by_admin(
    *,
    order: Order,
    new: str,
    who: User,
    remains: int | None = None,
    start_count: int | None = None,
    note: str = "",
) -> Order:
    """Set a status by hand (manual services, reviewed orders). Partial needs `remains`; the
    refund is charge * remains / quantity, Canceled refunds all, once."""
    if new not in S.values:
        raise OrderError("status", "Unknown status.")
    if new in PLACEMENT_STATUSES:
        # These send the order upstream (the requeue sweep picks up QUEUED ones): only Resend
        # may do that, after its checks.
        raise OrderError("status", "Use Resend to send an order upstream again.")
    if new == S.PARTIAL and remains is None:
        raise OrderError("remains", "Say how many were not delivered (remains) for Partial.")
    if remains is not None and not 0 <= remains <= order.quantity:
        raise OrderError("remains", f"Remains must be between 0 and {order.quantity}.")
    return _moved(
        order,
        new=new,
        who=who,
        remains=remains,
        start_count=start_count,
        note=note or "Set by an admin",
    )


def order_cancel_with_refund(*, order: Order, who: User, note: str = "") -> Order:
    """Cancel and refund the whole charge. The provider is not asked: use it when the order is
    not running upstream (never placed, refused, or already canceled there)."""
    if order.status in FINAL_STATUSES:
        raise OrderError(None, "This order is already finished.")
    return _moved(order, new=S.CANCELED, who=who, note=note or "Canceled with refund by an admin")
