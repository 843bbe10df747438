"""Moving an order between statuses (the table in orders.models) and the refunds that go with
the final ones. Every move is a conditional UPDATE plus an OrderStatusChange row."""

from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from decimal import Decimal
from enum import Enum

from django.db import transaction
from django.utils import timezone

from accounts.models import LedgerEntry, Notification, User
from accounts.notifications import notify, notify_staff
from accounts.services import balance_credit
from catalog.models import UpstreamService
from catalog.order_types import OrderType
from catalog.pricing import ZERO, quantize_money
from orders.models import (
    FINAL_STATUSES,
    CancelRequest,
    Order,
    OrderStatusChange,
    status_change_allowed,
)
from orders.services.common import OrderConflict, OrderError, logger
from orders.services.events import publish_order_status, requests_update
from orders.services.summary import daily_summary_tracking
from providers.models import Provider

S = Order.Status


def refund_amount(*, order: Order, status: str, remains: int | None) -> Decimal:
    """What a final status gives back: all of the charge for Canceled, charge * remains /
    quantity for Partial (remains clamped to 0..quantity, rounded half up to 5 places). A
    Partial without remains uses the last remains the order recorded. A subscription's
    reserve is settled the same way when it ends Completed: what it did not use comes back."""
    if status == S.CANCELED:
        return order.charge
    left = undelivered(order=order, status=status, remains=remains)
    if not left or status not in (S.PARTIAL, S.COMPLETED):
        return ZERO
    # Looked up only for a Completed order that reports remains: the poll loads no service.
    if status == S.COMPLETED and order.service.type != OrderType.SUBSCRIPTIONS:
        return ZERO
    return quantize_money(order.charge * left / order.quantity)


def undelivered(*, order: Order, status: str, remains: int | None) -> int:
    """The remains a refund is for, clamped to 0..quantity (a Partial without remains: the
    order's last recorded remains)."""
    if status == S.PARTIAL and remains is None:
        remains = order.remains
    return min(max(remains or 0, 0), order.quantity)


def _refund(*, order: Order, amount: Decimal, change: OrderStatusChange) -> Decimal:
    """Credit the refund through the ledger. The ledger's unique (order_ref, kind) makes a
    second refund of the same order return the first entry: a replay pays nothing."""
    if amount <= ZERO:
        return ZERO
    entry = balance_credit(
        user=order.user,
        amount=amount,
        kind=LedgerEntry.Kind.REFUND,
        order_ref=order.pk,
        created_by=change.changed_by,
        memo=refund_memo(
            order=order, status=change.new_status, source=change.source, remains=change.remains
        ),
    )
    return entry.amount


SRC = OrderStatusChange.Source
_CANCELED_MEMO = {
    SRC.SUBMIT.value: "Refund: the order could not be placed",
    SRC.CUSTOMER.value: "Refund: canceled at your request",
}


def refund_memo(*, order: Order, status: str, source: str, remains: int | None) -> str:
    """The refund's line on the customer's statement (the ledger memo). It never carries the
    status change's note: that is the provider's raw error text or staff's remark, kept for
    staff on the OrderStatusChange row and the order's attention_reason."""
    if status == S.PARTIAL:
        left = undelivered(order=order, status=status, remains=remains)
        return f"Refund: {left} of {order.quantity} not delivered"
    if status == S.COMPLETED:
        return "Refund: the unused part of the subscription"
    return _CANCELED_MEMO.get(source, "Refund: the order was canceled")


class _Unset(Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET  # "leave the field as it is" where None is a value to write


def order_set_status(
    *,
    order: Order,
    new: str,
    source: str,
    start_count: int | None = None,
    remains: int | None = None,
    note: str = "",
    who: User | None = None,
    upstream_status: str | None = None,
    now: datetime | None = None,
    attention_reason: str | None = None,
    upstream_order_id: str | None = None,
    provider: Provider | None = None,
    upstream_service: UpstreamService | None = None,
    next_poll_at: datetime | _Unset | None = UNSET,
    last_polled_at: datetime | None = None,
    poll_errors: int | None = None,
) -> Order:
    """Move `order` to `new` if the table allows it (else OrderError) and nobody moved it
    first (`UPDATE ... WHERE status = <read>`; else OrderConflict, nothing written). A final
    status settles the money once, in the same transaction, and clears next_poll_at. The other
    arguments are fields saved with the move: None (UNSET for next_poll_at) leaves one as is."""
    old = order.status
    _check_allowed(order, new)
    now = now or timezone.now()
    given: dict[str, object] = {
        "start_count": start_count,
        "remains": remains,
        "upstream_status": upstream_status[:64] if upstream_status is not None else None,
        "attention_reason": attention_reason,
        "upstream_order_id": upstream_order_id,
        "provider": provider,
        "upstream_service": upstream_service,
        "last_polled_at": last_polled_at,
        "poll_errors": poll_errors,
    }
    fields = _move_fields(given=given, next_poll_at=next_poll_at, new=new, now=now)
    _write_move(
        order=order,
        old=old,
        fields=fields,
        change=OrderStatusChange(
            order=order,
            old_status=old,
            new_status=new,
            start_count=start_count,
            remains=remains,
            source=source,
            note=note[:2000],
            changed_by=who,
            created_at=now,
        ),
    )
    return order


def _check_allowed(order: Order, new: str) -> None:
    if not status_change_allowed(order.status, new):
        raise OrderError(
            None, f"An order cannot go from {order.get_status_display()} to {S(new).label}."
        )


def _move_fields(
    *, given: dict[str, object], next_poll_at: datetime | _Unset | None, new: str, now: datetime
) -> dict[str, object]:
    """The columns a move writes: the fields given (not None), the poll time, what a final
    status implies, and the status last, so that nothing can overwrite it."""
    fields = {name: value for name, value in given.items() if value is not None}
    if next_poll_at is not UNSET:
        fields["next_poll_at"] = next_poll_at
    if new in FINAL_STATUSES:
        fields["finished_at"] = now
        fields["next_poll_at"] = None
    fields.update(status=new, updated_at=now)
    return fields


def _write_move(
    *, order: Order, old: str, fields: dict[str, object], change: OrderStatusChange
) -> None:
    """The conditional UPDATE, the refund of a final status (added to `fields`), the history
    row (`change`), the open cancel requests and the webhook event, in one transaction; the
    fields written are set on `order`."""
    new = change.new_status
    with transaction.atomic():
        with _summary_tracking(order=order, new=new, fields=fields):
            if Order.objects.filter(pk=order.pk, status=old).update(**fields) != 1:
                raise OrderConflict(f"order {order.pk} is no longer {old}")
            amount = refund_amount(order=order, status=new, remains=change.remains)
            refund = _refund(order=order, amount=amount, change=change)
            if refund:
                Order.objects.filter(pk=order.pk).update(refunded=refund)
                fields["refunded"] = refund
        change.save()
        for name, value in fields.items():
            setattr(order, name, value)
        publish_order_status(order=order, old=old, now=change.created_at)
        if new in FINAL_STATUSES:
            settle_cancel_requests(order=order, new=new, now=change.created_at)
        _tell(order=order, change=change, refund=refund)
    refunded = f" refund {refund}" if refund else ""
    logger.info("order %s: %s -> %s (%s)%s", order.pk, old, new, change.source, refunded)


def _summary_tracking(
    *, order: Order, new: str, fields: dict[str, object]
) -> AbstractContextManager[None]:
    """The daily summary follows a move that settles the order (final status, refund) or
    changes its provider; other moves change none of its figures and skip the extra work."""
    if new in FINAL_STATUSES or "provider" in fields:
        return daily_summary_tracking([order.pk])
    return nullcontext()


def _tell(*, order: Order, change: OrderStatusChange, refund: Decimal) -> None:
    """The notices of a move, written in its transaction (their mails leave after the commit;
    a move that rolls back tells nobody): the customer hears of a Partial or Canceled order and
    its refund, staff of an order needing review. A status is reached once per order (the
    conditional UPDATE), and the dedupe key keeps it so if it were told twice."""
    new = change.new_status
    if new in (S.PARTIAL, S.CANCELED):
        notify(
            user=order.user,
            event=Notification.Event.ORDER_REFUNDED,
            context={
                "order_id": order.pk,
                "status": S(new).label,
                "refund": refund,
                "charge": order.charge,
                "remains": undelivered(order=order, status=new, remains=change.remains),
                "quantity": order.quantity,
                "target": order.link[:100],
            },
            dedupe_key=f"order:{order.pk}:{new}",
        )
    elif new == S.NEEDS_REVIEW:
        reason = change.note or order.attention_reason or "the upstream outcome is unknown"
        notify_staff(
            event=Notification.Event.ORDER_NEEDS_REVIEW,
            context={"order_id": order.pk, "reason": reason[:300]},
        )


def settle_cancel_requests(*, order: Order, new: str, now: datetime) -> None:
    """A final status answers the order's open cancel requests: canceled (or partly) = done."""
    outcome = (
        CancelRequest.Status.REJECTED if new == S.COMPLETED else CancelRequest.Status.COMPLETED
    )
    requests_update(
        CancelRequest.objects.filter(
            order=order, status__in=[CancelRequest.Status.QUEUED, CancelRequest.Status.SENT]
        ),
        now=now,
        status=outcome,
        finished_at=now,
        updated_at=now,
    )
