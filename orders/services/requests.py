"""Refills and cancels: the customer's request, sending it upstream, following its status.

Both are claimed for sending with a conditional UPDATE (sent_at set while still QUEUED), so
two sweeps never send the same request. Providers that take a list get one call per 100
requests; the others one call each. Which is which is learned: a list call refused as an
unknown call ("Incorrect request") did nothing upstream, so its batch goes one by one and the
provider's supports_multi_* field is turned off (providers.services.provider_learn_capability).
"""

from collections import Counter
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from orders.models import (
    OPEN_CANCEL_STATUSES,
    OPEN_REFILL_STATUSES,
    CancelRequest,
    Order,
    OrderStatusChange,
    Refill,
)
from orders.services.common import Deadline, OrderConflict, OrderError, logger
from orders.services.enqueue import enqueue_provider_send_cancels, enqueue_provider_send_refills
from orders.services.events import publish_request_created, requests_update
from orders.services.status import order_set_status
from providers.client import ErrorKind, ItemError, ProviderError, is_unsupported_call
from providers.gateway import provider_call
from providers.models import REQUEST_RESEND_AFTER, Provider
from providers.schemas import CancelResult, CancelStatus, RefillStatus, RequestStatus
from providers.services import provider_fetch_refill_statuses, provider_learn_capability

S = Order.Status
RS = Refill.Status
CS = CancelRequest.Status
BATCH = 100
# Without the list form, the answers are written after this many single calls.
SINGLE_CALL_BATCH = 10
REFILL_POLL_INTERVAL = timedelta(minutes=5)
# Provider timeouts are bounded below this window (providers.models), so a call never outlives it.
STUCK_SENDING = REQUEST_RESEND_AFTER

REQUEST_TO_REFILL: dict[RequestStatus, str] = {
    RequestStatus.PENDING: RS.PENDING,
    RequestStatus.IN_PROGRESS: RS.IN_PROGRESS,
    RequestStatus.COMPLETED: RS.COMPLETED,
    RequestStatus.REJECTED: RS.REJECTED,
    RequestStatus.CANCELED: RS.REJECTED,
}


# --- the customer's requests ----------------------------------------------------------------


def order_refill_request(*, user: User, order: Order) -> Refill:
    """Ask for a refill of a completed order within the service's refill window.

    OrderError when the service has no refill, the order is not completed, the window is
    over, or a refill of it is still open.
    """
    now = timezone.now()
    with transaction.atomic():
        # Lock the order: two clicks at once must not make two refills.
        locked = (
            Order.objects.select_for_update(of=("self",))
            .select_related("service", "provider")
            .get(pk=order.pk)
        )
        if locked.user_id != user.pk:
            raise OrderError("order", "Order not found.")
        service = locked.service
        if not service.refill:
            raise OrderError("order", "This service has no refill.")
        if locked.provider is None or not locked.upstream_order_id:
            raise OrderError("order", "This order cannot be refilled automatically.")
        if locked.status != S.COMPLETED:
            raise OrderError("order", "Only completed orders can be refilled.")
        finished = locked.finished_at or locked.updated_at
        if now > finished + timedelta(days=service.refill_days):
            raise OrderError("order", f"The refill window of {service.refill_days} days is over.")
        if Refill.objects.filter(order=locked, status__in=OPEN_REFILL_STATUSES).exists():
            raise OrderError("order", "A refill of this order is already in progress.")
        refill = Refill.objects.create(order=locked, created_at=now)
        publish_request_created(request=refill, now=now)
        provider_id = locked.provider.pk
        transaction.on_commit(lambda: enqueue_provider_send_refills(provider_id))
    return refill


def order_cancel_request(*, user: User, order: Order) -> CancelRequest:
    """Ask to cancel an order. An order not yet sent is canceled at once with a full refund
    (the request is answered Completed); a placed one gets a request sent upstream, and the
    order's status poll settles the money.

    OrderError when the service has no cancel, the provider cannot cancel, the order is final
    or being sent, or a cancel of it was already asked.
    """
    order = Order.objects.select_related("service", "provider").get(pk=order.pk)
    if order.user_id != user.pk:
        raise OrderError("order", "Order not found.")
    if not order.service.cancel:
        raise OrderError("order", "This service does not allow cancelling.")
    if order.is_final:
        raise OrderError("order", "This order is already finished.")
    if CancelRequest.objects.filter(order=order, status__in=OPEN_CANCEL_STATUSES).exists():
        raise OrderError("order", "A cancel of this order was already asked.")
    if order.status in (S.QUEUED, S.WAITING_FUNDS, S.MANUAL):
        return _cancel_before_sending(user=user, order=order)
    if order.status not in (S.PENDING, S.IN_PROGRESS, S.PROCESSING):
        raise OrderError("order", "This order is being sent or checked; try again later.")
    if order.provider is None or not order.provider.supports_cancel:
        raise OrderError("order", "The provider of this order does not accept cancels.")
    with transaction.atomic():
        Order.objects.select_for_update().filter(pk=order.pk).first()
        if CancelRequest.objects.filter(order=order, status__in=OPEN_CANCEL_STATUSES).exists():
            raise OrderError("order", "A cancel of this order was already asked.")
        cancel = CancelRequest.objects.create(order=order)
        publish_request_created(request=cancel, now=cancel.created_at)
        provider_id = order.provider.pk
        transaction.on_commit(lambda: enqueue_provider_send_cancels(provider_id))
    return cancel


def _cancel_before_sending(*, user: User, order: Order) -> CancelRequest:
    now = timezone.now()
    with transaction.atomic():
        try:
            # The conditional move races the placement claim: one of them wins.
            order_set_status(
                order=order,
                new=S.CANCELED,
                source=OrderStatusChange.Source.CUSTOMER,
                who=user,
                note="Canceled by the customer before it was sent",
                now=now,
            )
        except OrderConflict:
            raise OrderError("order", "This order is being sent; try again in a minute.") from None
        cancel = CancelRequest.objects.create(
            order=order, status=CS.COMPLETED, finished_at=now, created_at=now
        )
        publish_request_created(request=cancel, now=now)
        return cancel


# --- refills upstream -----------------------------------------------------------------------


def _claim(model: type[Refill] | type[CancelRequest], ids: list[int], now: datetime) -> list[int]:
    """Claim QUEUED rows for sending; returns the ids this caller won."""
    with transaction.atomic():
        won = list(
            model.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, status="queued", sent_at__isnull=True)
            .values_list("pk", flat=True)
        )
        model.objects.filter(pk__in=won).update(sent_at=now, updated_at=now)
    return won


def provider_send_refills(
    *, provider: Provider, now: datetime | None = None, deadline: Deadline | None = None
) -> Counter[str]:
    """Send the provider's QUEUED refills: a list per call when it takes one, else one call each.

    A provider that refuses the list form as an unknown call (seed 000 documents only
    `refill&order=`) gets that batch one by one, and its supports_multi_refill is turned off
    (providers.services.provider_learn_capability): the next sweeps send one by one at once."""
    now = now or timezone.now()
    counts: Counter[str] = Counter()
    ids = list(
        Refill.objects.filter(order__provider=provider, status=RS.QUEUED, sent_at__isnull=True)
        .order_by("id")
        .values_list("pk", flat=True)[:1000]
    )
    won = _claim(Refill, ids, now)
    refills = list(Refill.objects.filter(pk__in=won).select_related("order").order_by("pk"))
    deadline = deadline or Deadline()
    for start in range(0, len(refills), BATCH):
        chunk = refills[start : start + BATCH]
        if deadline.passed():
            _release(Refill, refills[start:], counts, "refill deferred")
            break
        try:
            if provider.supports_multi_refill:
                _send_refill_batch(provider, chunk, now, counts, deadline)
            else:
                _send_refills_one_by_one(provider, chunk, now, counts, deadline)
        except SoftTimeLimitExceeded:
            _release(Refill, refills[start + BATCH :], counts, "refill deferred")
            raise
    return counts


def _release(
    model: type[Refill] | type[CancelRequest], claimed: list, counts: Counter[str], label: str
) -> None:
    """Unclaim requests the sweep had no time to send: never sent, so the next sweep sends them
    at once (not after the STUCK_SENDING wait meant for a worker that died mid-call)."""
    model.objects.filter(pk__in=[r.pk for r in claimed], sent_at__isnull=False).update(sent_at=None)
    counts[label] += len(claimed)


def _send_refill_batch(
    provider: Provider, chunk: list[Refill], now: datetime, counts: Counter[str], deadline: Deadline
) -> None:
    upstream_ids = [r.order.upstream_order_id for r in chunk]
    try:
        answers = provider_call(
            provider, "refill", lambda client: client.refills(order_ids=upstream_ids)
        )
    except SoftTimeLimitExceeded:
        _refills_in_flight(chunk, counts)
        raise
    except ProviderError as exc:
        if not is_unsupported_call(exc):
            _refill_send_failed(chunk, exc, counts)
            return
        # Refused as an unknown call: nothing was done upstream, so each claimed refill is
        # sent once, on its own. Learned only if the single form is understood.
        if _send_refills_one_by_one(provider, chunk, now, counts, deadline):
            provider_learn_capability(
                provider=provider, capability="supports_multi_refill", reason=exc.message
            )
        return
    for refill in chunk:
        _refill_sent(refill, answers.get(refill.order.upstream_order_id), now, counts)


def _send_refills_one_by_one(
    provider: Provider,
    refills: list[Refill],
    now: datetime,
    counts: Counter[str],
    deadline: Deadline | None = None,
) -> bool:
    """One refill call per refill, none started after `deadline` (the rest are unclaimed for
    the next sweep); True when the provider understood the single form at least once (an
    answer, or a refusal about the order rather than about the call)."""
    understood = False
    for position, refill in enumerate(refills):
        if deadline is not None and deadline.passed():
            _release(Refill, refills[position:], counts, "refill deferred")
            break
        oid = refill.order.upstream_order_id
        answer: str | ItemError
        try:
            answer = provider_call(
                provider,
                "refill",
                lambda client: client.refill(order_id=oid),  # noqa: B023 - called at once
                order_ref=refill.order_id,
            )
        except SoftTimeLimitExceeded:
            _refills_in_flight([refill], counts)
            _release(Refill, refills[position + 1 :], counts, "refill deferred")
            raise
        except ProviderError as exc:
            if exc.kind is not ErrorKind.API_ERROR:
                _refill_send_failed([refill], exc, counts)
                continue
            answer = ItemError(exc.message)
            understood = understood or not is_unsupported_call(exc)
        else:
            understood = True
        _refill_sent(refill, answer, now, counts)
    return understood


def _refill_sent(
    refill: Refill, answer: str | ItemError | None, now: datetime, counts: Counter[str]
) -> None:
    if isinstance(answer, str):
        requests_update(
            Refill.objects.filter(pk=refill.pk),
            now=now,
            status=RS.PENDING,
            upstream_refill_id=answer,
            next_poll_at=now + REFILL_POLL_INTERVAL,
            updated_at=now,
        )
        counts["refill sent"] += 1
        return
    message = answer.message if isinstance(answer, ItemError) else "not answered"
    requests_update(
        Refill.objects.filter(pk=refill.pk),
        now=now,
        status=RS.ERROR,
        error=message[:2000],
        finished_at=now,
        updated_at=now,
    )
    counts["refill refused"] += 1


def _refills_in_flight(refills: list[Refill], counts: Counter[str]) -> None:
    """The task's soft time limit struck during the call: it may have reached the provider, so
    these are never sent again automatically (an admin looks), like any unknown outcome."""
    requests_update(
        Refill.objects.filter(pk__in=[r.pk for r in refills], status=RS.QUEUED),
        status=RS.ERROR,
        error="Outcome unknown: the worker's time ran out during the call.",
    )
    counts["refill unknown"] += len(refills)


def _refill_send_failed(refills: list[Refill], exc: ProviderError, counts: Counter[str]) -> None:
    if exc.sent is False or not exc.outcome_unknown:
        # Never acted on: unclaim, the next sweep sends it again.
        Refill.objects.filter(pk__in=[r.pk for r in refills]).update(sent_at=None)
        counts["refill retry"] += len(refills)
        return
    # It may have arrived: do not ask twice, let an admin look.
    requests_update(
        Refill.objects.filter(pk__in=[r.pk for r in refills]),
        status=RS.ERROR,
        error=f"Outcome unknown: {exc.message}"[:2000],
    )
    counts["refill unknown"] += len(refills)


def provider_poll_refills(
    *, provider: Provider, now: datetime | None = None, deadline: Deadline | None = None
) -> Counter[str]:
    """Follow the provider's open refills with refill_status calls of up to 100 ids (one call
    per refill, written every SINGLE_CALL_BATCH, without the list form). No batch starts after
    `deadline`: the refills it did not reach stay due for the next sweep."""
    now = now or timezone.now()
    counts: Counter[str] = Counter()
    if not provider.supports_refill_status:
        return counts
    refills = list(
        Refill.objects.filter(
            order__provider=provider,
            status__in=[RS.PENDING, RS.IN_PROGRESS],
            next_poll_at__lte=now,
        )
        .exclude(upstream_refill_id="")
        .order_by("next_poll_at")[:5000]
    )
    deadline = deadline or Deadline()
    size = BATCH if provider.supports_multi_refill_status else SINGLE_CALL_BATCH
    for start in range(0, len(refills), size):
        if deadline.passed():
            counts["refill status deferred"] += len(refills) - start
            break
        chunk = refills[start : start + size]
        ids = [r.upstream_refill_id for r in chunk]
        try:
            # One call with refills=, or one per refill at a provider without the list form.
            answers = provider_fetch_refill_statuses(provider=provider, refill_ids=ids)
        except ProviderError as exc:
            logger.warning("refill_status at %s failed: %r", provider.name, exc)
            Refill.objects.filter(pk__in=[r.pk for r in chunk]).update(
                next_poll_at=now + REFILL_POLL_INTERVAL
            )
            continue
        for refill in chunk:
            _apply_refill_status(refill, answers.get(refill.upstream_refill_id), now, counts)
    return counts


def _apply_refill_status(
    refill: Refill, answer: RefillStatus | ItemError | None, now: datetime, counts: Counter[str]
) -> None:
    fields: dict[str, str | datetime | None] = {
        "next_poll_at": now + REFILL_POLL_INTERVAL,
        "updated_at": now,
    }
    if (
        not isinstance(answer, RefillStatus)
        or (new := REQUEST_TO_REFILL.get(answer.status)) is None
    ):
        logger.warning("refill %s: no usable status (%r)", refill.pk, answer)
    elif new != refill.status:
        fields.update(status=new, upstream_status=answer.raw_status[:64])
        if new in (RS.COMPLETED, RS.REJECTED):
            fields.update(finished_at=now, next_poll_at=None)
        counts[f"refill {new}"] += 1
    requests_update(Refill.objects.filter(pk=refill.pk, status=refill.status), now=now, **fields)


# --- cancels upstream -----------------------------------------------------------------------


def provider_send_cancels(
    *, provider: Provider, now: datetime | None = None, deadline: Deadline | None = None
) -> Counter[str]:
    """Send the provider's QUEUED cancel requests, up to 100 orders per call, or one call each
    at a provider that refused the list form as an unknown call (supports_multi_cancel learned
    off). A provider that refuses the single form too has no cancel: supports_cancel is turned
    off and the requests are rejected with its answer."""
    now = now or timezone.now()
    counts: Counter[str] = Counter()
    ids = list(
        CancelRequest.objects.filter(
            order__provider=provider, status=CS.QUEUED, sent_at__isnull=True
        )
        .order_by("id")
        .values_list("pk", flat=True)[:1000]
    )
    won = _claim(CancelRequest, ids, now)
    cancels = list(CancelRequest.objects.filter(pk__in=won).select_related("order").order_by("pk"))
    deadline = deadline or Deadline()
    for start in range(0, len(cancels), BATCH):
        chunk = cancels[start : start + BATCH]
        if deadline.passed():
            _release(CancelRequest, cancels[start:], counts, "cancel deferred")
            break
        try:
            if provider.supports_multi_cancel:
                _send_cancel_batch(provider, chunk, now, counts, deadline)
            else:
                _send_cancels_one_by_one(provider, chunk, now, counts, deadline)
        except SoftTimeLimitExceeded:
            _release(CancelRequest, cancels[start + BATCH :], counts, "cancel deferred")
            raise
    return counts


def _send_cancel_batch(
    provider: Provider,
    chunk: list[CancelRequest],
    now: datetime,
    counts: Counter[str],
    deadline: Deadline,
) -> None:
    order_ids = [c.order.upstream_order_id for c in chunk]
    try:
        answers = provider_call(
            provider, "cancel", lambda client: client.cancel(order_ids=order_ids)
        )
    except SoftTimeLimitExceeded:
        _cancels_in_flight(chunk, counts)
        raise
    except ProviderError as exc:
        if not is_unsupported_call(exc):
            _cancel_send_failed(chunk, exc, counts)
            return
        # Refused as an unknown call: nothing was done upstream; each one once, on its own.
        if _send_cancels_one_by_one(provider, chunk, now, counts, deadline):
            provider_learn_capability(
                provider=provider, capability="supports_multi_cancel", reason=exc.message
            )
        return
    for cancel in chunk:
        _cancel_sent(cancel, answers.get(cancel.order.upstream_order_id), now, counts)


def _send_cancels_one_by_one(
    provider: Provider,
    cancels: list[CancelRequest],
    now: datetime,
    counts: Counter[str],
    deadline: Deadline | None = None,
) -> bool:
    """One cancel call per request, none started after `deadline` (the rest are unclaimed for
    the next sweep); True when the provider understood the single form at least once. When it
    refused every one as an unknown call, it has no cancel at all."""
    understood, unknown = False, ""
    for position, cancel in enumerate(cancels):
        if deadline is not None and deadline.passed():
            _release(CancelRequest, cancels[position:], counts, "cancel deferred")
            break
        oid = cancel.order.upstream_order_id
        answer: CancelResult | ItemError
        try:
            answer = provider_call(
                provider,
                "cancel",
                lambda client: client.cancel_one(order_id=oid),  # noqa: B023 - called at once
                order_ref=cancel.order_id,
            )
        except SoftTimeLimitExceeded:
            _cancels_in_flight([cancel], counts)
            _release(CancelRequest, cancels[position + 1 :], counts, "cancel deferred")
            raise
        except ProviderError as exc:
            if exc.kind is not ErrorKind.API_ERROR:
                _cancel_send_failed([cancel], exc, counts)
                continue
            answer = ItemError(exc.message)
            unknown = exc.message if is_unsupported_call(exc) else unknown
            understood = understood or not is_unsupported_call(exc)
        else:
            understood = True
        _cancel_sent(cancel, answer, now, counts)
    if unknown and not understood:
        provider_learn_capability(provider=provider, capability="supports_cancel", reason=unknown)
    return understood


def _cancels_in_flight(cancels: list[CancelRequest], counts: Counter[str]) -> None:
    """The soft time limit struck during the call: it may have arrived, so never send it again;
    the order's own status poll tells whether it was canceled (as for any unknown outcome)."""
    requests_update(
        CancelRequest.objects.filter(pk__in=[c.pk for c in cancels], status=CS.QUEUED),
        status=CS.SENT,
    )
    counts["cancel unknown"] += len(cancels)


def _cancel_send_failed(
    cancels: list[CancelRequest], exc: ProviderError, counts: Counter[str]
) -> None:
    pks = [c.pk for c in cancels]
    if exc.sent is False or not exc.outcome_unknown:
        # Never acted on: unclaim, the next sweep sends it again.
        CancelRequest.objects.filter(pk__in=pks).update(sent_at=None)
        counts["cancel retry"] += len(cancels)
    else:
        # It may have arrived: the order's status poll will tell.
        requests_update(CancelRequest.objects.filter(pk__in=pks), status=CS.SENT)
        counts["cancel unknown"] += len(cancels)


def _cancel_sent(
    cancel: CancelRequest,
    answer: CancelResult | ItemError | None,
    now: datetime,
    counts: Counter[str],
) -> None:
    if not isinstance(answer, CancelResult):
        message = answer.message if answer else "not answered"
        requests_update(
            CancelRequest.objects.filter(pk=cancel.pk),
            now=now,
            status=CS.REJECTED,
            error=message[:2000],
            finished_at=now,
            updated_at=now,
        )
        counts["cancel refused"] += 1
        return
    requests_update(
        CancelRequest.objects.filter(pk=cancel.pk),
        now=now,
        status=CS.SENT,
        upstream_cancel_id=answer.cancel_id,
        upstream_type=answer.type or "",
        updated_at=now,
    )
    # Look at the order soon: its status settles the cancel and the refund.
    Order.objects.filter(
        pk=cancel.order_id, status__in=[S.PENDING, S.IN_PROGRESS, S.PROCESSING]
    ).update(next_poll_at=now)
    counts["cancel sent"] += 1


def provider_poll_cancels(
    *, provider: Provider, now: datetime | None = None, deadline: Deadline | None = None
) -> Counter[str]:
    """smmsend-style cancel status (`action=cancel&cancels=`): a Rejected request is closed
    here; an accepted one is settled by the order's own status poll."""
    now = now or timezone.now()
    counts: Counter[str] = Counter()
    if not provider.supports_cancel_status:
        return counts
    cancels = list(
        CancelRequest.objects.filter(order__provider=provider, status=CS.SENT)
        .exclude(upstream_cancel_id="")
        .order_by("id")[:5000]
    )
    deadline = deadline or Deadline()
    for start in range(0, len(cancels), BATCH):
        if deadline.passed():
            counts["cancel status deferred"] += len(cancels) - start
            break
        chunk = cancels[start : start + BATCH]
        ids = [c.upstream_cancel_id for c in chunk]
        try:
            answers = provider_call(
                provider,
                "cancel_status",
                lambda client: client.cancel_statuses(cancel_ids=ids),  # noqa: B023 - called at once
            )
        except ProviderError as exc:
            logger.warning("cancel status at %s failed: %r", provider.name, exc)
            continue
        for cancel in chunk:
            answer = answers.get(cancel.upstream_cancel_id)
            if not isinstance(answer, CancelStatus):
                continue
            fields: dict[str, str | datetime] = {
                "upstream_status": answer.raw_status[:64],
                "updated_at": now,
            }
            if answer.status == RequestStatus.REJECTED:
                fields.update(status=CS.REJECTED, finished_at=now)
                counts["cancel rejected"] += 1
            requests_update(
                CancelRequest.objects.filter(pk=cancel.pk, status=CS.SENT), now=now, **fields
            )
    return counts


def order_release_stuck_requests(*, now: datetime | None = None) -> int:
    """Refills/cancels claimed for sending but never answered (the worker died): unclaim the
    ones still QUEUED after STUCK_SENDING so the next sweep sends them."""
    now = now or timezone.now()
    n = Refill.objects.filter(status=RS.QUEUED, sent_at__lte=now - STUCK_SENDING).update(
        sent_at=None
    )
    n += CancelRequest.objects.filter(status=CS.QUEUED, sent_at__lte=now - STUCK_SENDING).update(
        sent_at=None
    )
    return n
