"""Reads for orders, refills and cancel requests, with their joins chosen."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db.models import F, QuerySet

from accounts.models import User
from orders.models import (
    POLLED_STATUSES,
    CancelRequest,
    Order,
    Refill,
)
from providers.models import Provider


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    """The customer's orders, newest first."""
    return (
        Order.objects.filter(user=user)
        .select_related("service", "service__category")
        .order_by("-id")
    )


def order_get_for_user(*, user: User, order_id: int) -> Order | None:
    """The customer's order; another customer's id is None, exactly like a missing one."""
    try:
        order_id = int(order_id)
    except (TypeError, ValueError):
        return None
    return order_list_for_user(user=user).filter(pk=order_id).first()


def _ids(values: Sequence[int]) -> list[int]:
    ids = []
    for value in values:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return ids


def order_get_many_for_user(*, user: User, order_ids: Sequence[int]) -> dict[int, Order]:
    """The customer's orders among `order_ids`, in one query; others' ids are left out."""
    ids = _ids(order_ids)
    if not ids:
        return {}
    return {o.pk: o for o in order_list_for_user(user=user).filter(pk__in=ids)}


# What an order's status answer (API v2 `status`) shows. Loading only these, with no join, builds
# one model object per id instead of three (order, service, category): docs/api.md, Speed.
ORDER_STATUS_FIELDS = ("id", "user_id", "status", "charge", "start_count", "remains", "quantity")


def order_status_many_for_user(*, user: User, order_ids: Sequence[int]) -> dict[int, Order]:
    """The customer's orders among `order_ids` with only ORDER_STATUS_FIELDS loaded, in one
    query; others' ids are left out. Reading another field costs a query per order."""
    ids = _ids(order_ids)
    if not ids:
        return {}
    rows = Order.objects.filter(user=user, pk__in=ids).only(*ORDER_STATUS_FIELDS)
    return {o.pk: o for o in rows}


def order_request_many_for_user(*, user: User, order_ids: Sequence[int]) -> dict[int, Order]:
    """The customer's orders among `order_ids` as a refill or cancel request starts from them,
    in one query: the id, the params and the service's type as `service_type`, nothing joined
    (order_refill_request / order_cancel_request load and lock the order themselves)."""
    ids = _ids(order_ids)
    if not ids:
        return {}
    rows = (
        Order.objects.filter(user=user, pk__in=ids)
        .only("id", "user_id", "params")
        .annotate(service_type=F("service__type"))
    )
    return {o.pk: o for o in rows}


def refill_get_many_for_user(*, user: User, refill_ids: Sequence[int]) -> dict[int, Refill]:
    ids = _ids(refill_ids)
    if not ids:
        return {}
    rows = Refill.objects.filter(pk__in=ids, order__user=user).select_related("order")
    return {r.pk: r for r in rows}


def cancel_get_many_for_user(*, user: User, cancel_ids: Sequence[int]) -> dict[int, CancelRequest]:
    ids = _ids(cancel_ids)
    if not ids:
        return {}
    rows = CancelRequest.objects.filter(pk__in=ids, order__user=user).select_related("order")
    return {c.pk: c for c in rows}


def refill_list_for_order(*, order: Order) -> QuerySet[Refill]:
    return Refill.objects.filter(order=order).order_by("-id")


def order_list_due_for_poll(
    *, provider: Provider, now: datetime, limit: int = 5000
) -> QuerySet[Order]:
    """Placed, unsettled orders of `provider` whose next poll has come, oldest due first.
    Served by the partial index order_provider_due_for_poll."""
    return (
        Order.objects.filter(
            provider=provider,
            status__in=POLLED_STATUSES,
            next_poll_at__lte=now,
        )
        .exclude(upstream_order_id="")
        .only(
            "id",
            "user_id",
            "status",
            "quantity",
            "charge",
            "start_count",
            "remains",
            "upstream_order_id",
            "upstream_status",
            "created_at",
            "next_poll_at",
            "poll_errors",
            "provider_id",
        )
        .order_by("next_poll_at")[:limit]
    )


def provider_ids_with_due_orders(*, now: datetime) -> list[int]:
    """Enabled providers that have at least one order, refill or cancel to look at."""
    ids = set(
        Order.objects.filter(status__in=POLLED_STATUSES, next_poll_at__lte=now)
        .values_list("provider_id", flat=True)
        .distinct()
    )
    ids |= set(
        Refill.objects.filter(
            status__in=[Refill.Status.QUEUED, Refill.Status.PENDING, Refill.Status.IN_PROGRESS]
        )
        .values_list("order__provider_id", flat=True)
        .distinct()
    )
    ids |= set(
        CancelRequest.objects.filter(
            status__in=[CancelRequest.Status.QUEUED, CancelRequest.Status.SENT]
        )
        .values_list("order__provider_id", flat=True)
        .distinct()
    )
    ids.discard(None)
    return list(Provider.objects.filter(pk__in=ids, is_enabled=True).values_list("pk", flat=True))


def order_ids_waiting_to_send(
    *,
    now: datetime,
    queued_for: timedelta = timedelta(minutes=1),
    funds_retry: timedelta = timedelta(minutes=10),
    limit: int = 1000,
) -> list[int]:
    """QUEUED orders untouched for `queued_for` (their task was lost or gave up) and
    WAITING_FUNDS orders untouched for `funds_retry`: the requeue sweep sends them again."""
    queued = (
        Order.objects.filter(status=Order.Status.QUEUED, updated_at__lte=now - queued_for)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    funds = (
        Order.objects.filter(status=Order.Status.WAITING_FUNDS, updated_at__lte=now - funds_retry)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    return [*queued, *funds]


def order_list_stuck_submitting(*, now: datetime, older_than: timedelta) -> QuerySet[Order]:
    """Orders claimed for placement long ago: the worker died mid-call."""
    return Order.objects.filter(
        status=Order.Status.SUBMITTING, submitted_at__lte=now - older_than
    ).order_by("id")


def order_list_needing_attention() -> QuerySet[Order]:
    """Orders a person has to look at: unknown placement outcome, manual services, provider
    out of funds; oldest first, with what the admin list shows joined."""
    return (
        Order.objects.filter(
            status__in=[Order.Status.NEEDS_REVIEW, Order.Status.MANUAL, Order.Status.WAITING_FUNDS]
        )
        .select_related("user", "service", "provider")
        .order_by("created_at")
    )
