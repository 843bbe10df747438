"""The one place that publishes order events to resellers' webhooks (docs/webhooks.md).

Every function here is called inside the transaction that changed an order, a refill or a
cancel: the event row is written in that transaction (a rollback takes it away with the change)
and its delivery is queued after commit (orders.services.webhooks delivers it). Only what a
reseller can see publishes: a change of the public status (API v2's), so QUEUED -> SUBMITTING ->
PENDING (all "Pending") publishes nothing, and a poll repeating the answer it had (no change
written) publishes nothing either. Events are only written for customers with an active webhook.
"""

import json
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.pricing import quantize_money
from orders.models import (
    PUBLIC_STATUS,
    REQUEST_PUBLIC_STATUS,
    CancelRequest,
    Order,
    Refill,
    WebhookEndpoint,
    WebhookEvent,
)
from orders.services.enqueue import enqueue_webhook_deliver

# An event is retried with back-off for this long after it was written, then given up.
RETRY_WINDOW = timedelta(hours=24)
T = WebhookEvent.Type

UpstreamRequest = Refill | CancelRequest


def iso_time(moment: datetime) -> str:
    """UTC, ISO 8601 with a Z: 2025-01-31T12:00:00.123456Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(value: Decimal | int | None) -> str:
    return str(quantize_money(Decimal(value or 0)))


def new_event(
    *, user_id: int, order_id: int | None, type: str, data: dict[str, Any], now: datetime
) -> WebhookEvent:
    """An unsaved event whose body (the JSON POSTed on every attempt) is fixed now."""
    event_id = "evt_" + secrets.token_hex(12)
    body = {"id": event_id, "type": type, "time": iso_time(now), "data": data}
    return WebhookEvent(
        event_id=event_id,
        user_id=user_id,
        order_id=order_id,
        type=type,
        payload=json.dumps(body, separators=(",", ":")),
        next_attempt_at=min(now, timezone.now()),  # due at once (a poll may pass a later now)
        give_up_at=now + (timedelta(0) if type == T.TEST else RETRY_WINDOW),
        created_at=now,
    )


def save_events(events: list[WebhookEvent]) -> list[WebhookEvent]:
    """Write the events (in the caller's transaction) and queue each delivery after commit."""
    if not events:
        return events
    WebhookEvent.objects.bulk_create(events)
    ids = [event.pk for event in events]

    def enqueue() -> None:
        for pk in ids:
            enqueue_webhook_deliver(pk)

    transaction.on_commit(enqueue)
    return events


def _users_with_webhook(user_ids: Iterable[int]) -> set[int]:
    return set(
        WebhookEndpoint.objects.filter(user_id__in=set(user_ids), is_active=True).values_list(
            "user_id", flat=True
        )
    )


def order_data(order: Order, *, previous: str | None) -> dict[str, Any]:
    """The `data` of an order event: ids, status, progress and money as the API shows them."""
    return {
        "order": order.pk,
        "status": PUBLIC_STATUS[order.status],
        "previous_status": PUBLIC_STATUS[previous] if previous else None,
        "remains": order.remains,
        "start_count": order.start_count,
        "charge": _money(order.charge),
        "refund": _money(order.refunded),
        "currency": settings.PANEL_CURRENCY,
    }


def publish_order_status(*, order: Order, old: str, now: datetime) -> None:
    """An order moved from `old` to `order.status` (its fields already the new ones)."""
    publish_order_changes(changes=[(order, old)], now=now)


def publish_order_changes(
    *, changes: list[tuple[Order, str]], now: datetime, webhook_users: set[int] | None = None
) -> None:
    """Orders that moved, each from its old status to its current one (a poll batch's writes):
    one event each whose public status changed, for customers with an active webhook, written
    in one INSERT. `webhook_users`: those customers when the caller knows them already (the
    poll's UPDATE returns them), else one query finds them."""
    moved = [(o, old) for o, old in changes if PUBLIC_STATUS[o.status] != PUBLIC_STATUS[old]]
    if not moved:
        return
    if webhook_users is None:
        webhook_users = _users_with_webhook(o.user_id for o, _ in moved)
    save_events(
        [
            new_event(
                user_id=o.user_id,
                order_id=o.pk,
                type=T.ORDER,
                data=order_data(o, previous=old),
                now=now,
            )
            for o, old in moved
            if o.user_id in webhook_users
        ]
    )


# --- refills and cancels ------------------------------------------------------------------------

Change = tuple[int, int, str | None, str]  # (request id, order id, old status or None, new)


def _request_type(model: type[UpstreamRequest]) -> tuple[str, str]:
    return (T.REFILL, "refill") if model is Refill else (T.CANCEL, "cancel")


def publish_request_changes(
    *, model: type[UpstreamRequest], changes: list[Change], now: datetime
) -> None:
    """Refills or cancels that moved (old None: just asked for); one event each whose public
    status changed. One query finds the orders' customers that have a webhook."""
    public = REQUEST_PUBLIC_STATUS
    moved = [c for c in changes if c[2] is None or public[c[2]] != public[c[3]]]
    if not moved:
        return
    owners = dict(
        Order.objects.filter(
            pk__in={c[1] for c in moved},
            user__webhook_endpoint__is_active=True,
        ).values_list("pk", "user_id")
    )
    type_, key = _request_type(model)
    events = []
    for pk, order_id, old, new in moved:
        if order_id not in owners:
            continue
        data = {
            key: pk,
            "order": order_id,
            "status": public[new],
            "previous_status": public[old] if old else None,
        }
        events.append(
            new_event(user_id=owners[order_id], order_id=order_id, type=type_, data=data, now=now)
        )
    save_events(events)


def publish_request_created(*, request: UpstreamRequest, now: datetime) -> None:
    """A refill or cancel was just asked for (in the caller's transaction)."""
    publish_request_changes(
        model=type(request),
        changes=[(request.pk, request.order_id, None, request.status)],
        now=now,
    )


def requests_update(
    queryset: QuerySet[Refill] | QuerySet[CancelRequest],
    *,
    now: datetime | None = None,
    **fields: Any,
) -> int:
    """UPDATE the refills or cancels of `queryset` with `fields`, and publish an event for each
    one whose public status it changes, in one transaction; returns how many were updated.

    The rows are locked first (SELECT ... FOR UPDATE re-checks the queryset's filter on the
    latest row), so the statuses read are the ones the UPDATE replaces."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(queryset.select_for_update().values_list("pk", "order_id", "status"))
        if not rows:
            return 0
        count = queryset.model.objects.filter(pk__in=[r[0] for r in rows]).update(**fields)
        if (new := fields.get("status")) is not None:
            changes: list[Change] = [(pk, oid, old, str(new)) for pk, oid, old in rows]
            publish_request_changes(model=queryset.model, changes=changes, now=now)
    return count
