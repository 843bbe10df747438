"""Keeping placed orders up to date: multi-status calls per provider, only changes written.

An order is due when its next_poll_at has passed. After each look its next poll is pushed back
by an interval that grows with the order's age (fresh orders every minute, week-old ones every
few hours, with jitter so that a burst of orders does not stay a burst). An order older than
ORDER_MAX_POLL_AGE goes to NEEDS_REVIEW instead of being polled forever.
"""

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from orders.models import POLLED_STATUSES, Order, OrderStatusChange, status_change_allowed
from orders.selectors import order_list_due_for_poll
from orders.services.common import Deadline, OrderConflict, OrderError, logger
from orders.services.poll_writes import poll_batch_write, write_rows
from orders.services.status import UNSET, order_set_status
from providers.client import ItemError, OrderStatus, ProviderError
from providers.gateway import ProviderSession, provider_session
from providers.models import Provider
from providers.schemas import UpstreamStatus
from providers.services import provider_fetch_statuses

S = Order.Status
SRC = OrderStatusChange.Source

MIN_POLL_INTERVAL = timedelta(minutes=1)
MAX_POLL_INTERVAL = timedelta(hours=6)
AGE_DIVISOR = 60  # the interval is 1/60 of the order's age: 1 day old -> 24 min, 1 week -> 2.8 h
ERROR_BACKOFF = timedelta(minutes=5)
# At a provider without multi status, orders are written after this many single calls.
SINGLE_CALL_BATCH = 10
# Due orders read at a time by one provider's poll (a multiple of the 100 ids of a call).
POLL_CHUNK = 10_000

UPSTREAM_TO_STATUS: dict[UpstreamStatus, str] = {
    UpstreamStatus.PENDING: S.PENDING,
    UpstreamStatus.IN_PROGRESS: S.IN_PROGRESS,
    UpstreamStatus.PROCESSING: S.PROCESSING,
    UpstreamStatus.COMPLETED: S.COMPLETED,
    UpstreamStatus.PARTIAL: S.PARTIAL,
    UpstreamStatus.CANCELED: S.CANCELED,
}


def max_poll_age() -> timedelta:
    return getattr(settings, "ORDER_MAX_POLL_AGE", timedelta(days=30))


def next_poll_at(
    *, created_at: datetime, now: datetime, rng: random.Random | None = None
) -> datetime:
    """When to look at an order again: age/60 between 1 minute and 6 hours, ±20% jitter."""
    interval = min(max((now - created_at) / AGE_DIVISOR, MIN_POLL_INTERVAL), MAX_POLL_INTERVAL)
    jitter = (rng or random).uniform(0.8, 1.2)
    return now + interval * jitter


@dataclass
class PollResult:
    provider: str
    polled: int = 0
    changed: int = 0
    unchanged: int = 0
    errors: int = 0
    upstream_calls: int = 0
    to_review: int = 0
    deferred: int = 0  # due orders left for the next sweep (its time budget ran out)
    statuses: Counter = field(default_factory=Counter)  # new status -> count
    changes: list[str] = field(default_factory=list)  # "order 12: pending -> completed"

    def merge(self, other: "PollResult") -> None:
        names = ("polled", "changed", "unchanged", "errors", "upstream_calls", "to_review")
        for name in (*names, "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.statuses.update(other.statuses)
        self.changes.extend(other.changes)


def provider_poll_orders(
    *,
    provider: Provider,
    now: datetime | None = None,
    limit: int = 100_000,
    deadline: Deadline | None = None,
) -> PollResult:
    """Poll the due orders of one provider in multi-status calls of status_batch_size ids (one
    call per order, in batches of SINGLE_CALL_BATCH, at a provider without multi status). No
    batch starts after `deadline`: the orders it did not reach stay due for the next sweep.

    The due orders are read POLL_CHUNK at a time (a written order is no longer due), up to
    `limit` in all: a provider with 100,000 active orders is swept in one run, within its time
    budget, without holding them all in memory at once.

    All its calls go through one ProviderSession: one client (the key decrypted once, the
    connection kept alive), and each batch's call for the next batch sent while the answers
    of the current one are written (`_poll_due`)."""
    now = now or timezone.now()
    deadline = deadline or Deadline()
    result = PollResult(provider=provider.name)
    with provider_session(provider) as session:
        _poll_chunks(session, now=now, limit=limit, deadline=deadline, result=result)
    return result


def _poll_chunks(
    session: ProviderSession, *, now: datetime, limit: int, deadline: Deadline, result: PollResult
) -> None:
    provider = session.provider
    seen: set[int] = set()
    while len(seen) < limit:
        wanted = min(POLL_CHUNK, limit - len(seen))
        due = list(order_list_due_for_poll(provider=provider, now=now, limit=wanted))
        # An order still due after its batch (a lost race left its next poll as it was) is
        # not asked twice in one run.
        fresh = [o for o in due if o.pk not in seen]
        seen.update(o.pk for o in fresh)
        deferred = result.deferred
        if fresh:
            _poll_due(session, due=fresh, now=now, deadline=deadline, result=result)
        if len(due) < wanted or not fresh or result.deferred > deferred:
            break  # none left, or the deadline stopped the batches (checked before each)


def _poll_due(
    session: ProviderSession,
    *,
    due: list[Order],
    now: datetime,
    deadline: Deadline,
    result: PollResult,
) -> None:
    """The batches of `due`, each one's upstream call made while the previous one's answers
    are written (started ahead by provider_fetch_statuses). No call starts after `deadline`;
    a batch whose call was started ahead before it is still written."""
    provider = session.provider
    too_old = now - max_poll_age()
    fresh = []
    for order in due:
        if order.created_at < too_old:
            _send_to_review(order, result, now)
        else:
            fresh.append(order)
    size = max(1, min(provider.status_batch_size, 100))
    if not provider.supports_multi_status:
        size = min(size, SINGLE_CALL_BATCH)  # written after every few calls, not after 100
    batches = [fresh[start : start + size] for start in range(0, len(fresh), size)]
    for index, batch in enumerate(batches):
        if deadline.passed() and not session.is_ahead(_upstream_ids(batch)):
            result.deferred += sum(len(rest) for rest in batches[index:])
            break
        following = batches[index + 1] if index + 1 < len(batches) else []
        _apply_batch_isolated(
            provider=provider,
            orders=batch,
            now=now,
            result=result,
            session=session,
            next_ids=_upstream_ids(following) if not deadline.passed() else (),
        )


def _upstream_ids(orders: list[Order]) -> tuple[str, ...]:
    return tuple(o.upstream_order_id for o in orders)


def _apply_batch_isolated(
    *,
    provider: Provider,
    orders: list[Order],
    now: datetime,
    result: PollResult,
    session: ProviderSession | None = None,
    next_ids: tuple[str, ...] = (),
) -> None:
    """apply_status_batch, where a database error in one batch's writes (a value a column
    refuses) is logged and postpones that batch, and the provider's other batches go on.

    Each write of a batch is its own transaction (provider calls run outside any), so what
    was written before the error stays consistent and the connection stays usable."""
    try:
        apply_status_batch(
            provider=provider,
            orders=orders,
            now=now,
            result=result,
            session=session,
            next_ids=next_ids,
        )
    except (DatabaseError, ValueError):
        # ValueError: a text psycopg cannot encode (a lone surrogate) is raised unwrapped.
        logger.exception(
            "status poll at %s: the writes of a batch of %d orders failed; postponed",
            provider.name,
            len(orders),
        )
        result.errors += len(orders)
        _postpone_after_db_error(orders, now)


def _postpone_after_db_error(orders: list[Order], now: datetime) -> None:
    """Push back the next poll of a batch whose writes failed, by ERROR_BACKOFF, in one plain
    UPDATE that carries no upstream text (the in-memory orders may hold the culprit)."""
    try:
        Order.objects.filter(pk__in=[o.pk for o in orders], status__in=POLLED_STATUSES).update(
            next_poll_at=now + ERROR_BACKOFF,
            last_polled_at=now,
            poll_errors=F("poll_errors") + 1,
        )
    except DatabaseError:
        logger.exception("status poll: could not postpone %d orders", len(orders))


def orders_make_due(*, providers: Iterable[Provider], now: datetime | None = None) -> int:
    """Make every placed, active order of `providers` due for its status poll now (the
    poll_orders command's --all-due); returns how many. Orders no poll follows are left."""
    now = now or timezone.now()
    return Order.objects.filter(provider__in=list(providers), status__in=POLLED_STATUSES).update(
        next_poll_at=now
    )


def _send_to_review(order: Order, result: PollResult, now: datetime) -> None:
    reason = f"Still {order.get_status_display()} upstream after {max_poll_age().days} days."
    try:
        order_set_status(
            order=order,
            new=S.NEEDS_REVIEW,
            source=SRC.POLL,
            note=reason,
            now=now,
            attention_reason=reason,
            next_poll_at=None,
        )
    except (OrderConflict, OrderError):
        return
    result.to_review += 1
    result.changes.append(f"order {order.pk}: {order.status} -> needs_review (too old)")


def apply_status_batch(
    *,
    provider: Provider,
    orders: list[Order],
    now: datetime,
    result: PollResult,
    session: ProviderSession | None = None,
    next_ids: tuple[str, ...] = (),
) -> None:
    """One multi-status call for up to 100 orders, then the writes for what changed. With a
    `session`, the call is made on it and the one for `next_ids` is started ahead."""
    ids = [o.upstream_order_id for o in orders]
    result.upstream_calls += 1
    try:
        # One multi call, or one call per order at a provider without multi status.
        answers = provider_fetch_statuses(
            provider=provider, order_ids=ids, session=session, next_ids=next_ids
        )
    except ProviderError as exc:
        logger.warning("status poll of %d orders at %s failed: %r", len(ids), provider.name, exc)
        result.errors += len(orders)
        _postpone(orders, now, errors=True)
        return
    result.polled += len(orders)
    quiet: list[Order] = []
    moves: list[tuple[Order, str, OrderStatus]] = []
    for order in orders:
        answer = answers.get(order.upstream_order_id)
        if isinstance(answer, ItemError) or answer is None:
            logger.warning(
                "order %s (%s at %s): %s",
                order.pk,
                order.upstream_order_id,
                provider.name,
                answer.message if answer else "not answered",
            )
            result.errors += 1
            order.poll_errors += 1
            quiet.append(order)
            continue
        outcome = order_apply_upstream_status(
            order=order, answer=answer, now=now, result=result, moves=moves
        )
        if outcome.caller_saves:
            quiet.append(order)
    _write_batch(quiet, moves, now, result)


def _write_batch(
    quiet: list[Order],
    moves: list[tuple[Order, str, OrderStatus]],
    now: datetime,
    result: PollResult,
) -> None:
    """Write the batch in one transaction (poll_writes): the quiet orders' next poll and
    progress, and every move, a final one with its refund, in a constant number of statements.
    A move the status table refuses is logged and left (the order is asked again later)."""
    allowed: list[tuple[Order, str]] = []
    for order, new, answer in moves:
        if not status_change_allowed(order.status, new):
            logger.warning(
                "order %s: poll answer %s not applied from %s", order.pk, new, order.status
            )
            quiet.append(order)
            continue
        if answer.remains is not None:
            order.remains = min(max(answer.remains, 0), order.quantity)
        if answer.start_count is not None:
            order.start_count = answer.start_count
        order.upstream_status = answer.raw_status[:64]
        order.poll_errors = 0
        allowed.append((order, new))
    _schedule(quiet + [o for o, _ in allowed], now)
    won = poll_batch_write(quiet=quiet, moves=allowed, now=now)
    for order, _ in allowed:
        if order.pk in won:
            result.changed += 1
            result.statuses[order.status] += 1
            result.changes.append(f"order {order.pk}: {won[order.pk]} -> {order.status}")


class StatusOutcome(Enum):
    """What order_apply_upstream_status did with one status answer."""

    WRITTEN = "written"  # the new status was saved (and the next poll scheduled)
    QUEUED_FOR_BULK = "queued_for_bulk"  # a move (final ones too), added to `moves`
    CONFLICT = "conflict"  # someone moved the order first: nothing written, nothing to do
    UNCHANGED = "unchanged"  # the same status, remains and start count as we have
    PROGRESS = "progress"  # same status, remains or start count moved: set on the object
    UNKNOWN = "unknown"  # unusable: an unknown status, or Partial without remains

    @property
    def caller_saves(self) -> bool:
        """True when the caller must still schedule the next poll (and save the progress)."""
        return self in (StatusOutcome.UNCHANGED, StatusOutcome.PROGRESS, StatusOutcome.UNKNOWN)


def order_apply_upstream_status(
    *,
    order: Order,
    answer: OrderStatus,
    now: datetime,
    result: PollResult | None = None,
    moves: list[tuple[Order, str, OrderStatus]] | None = None,
) -> StatusOutcome:
    """Apply one status answer to a polled order and say what happened (StatusOutcome).

    WRITTEN and CONFLICT need nothing more; QUEUED_FOR_BULK is written by the caller with
    `moves` (given only by the batch poll); UNCHANGED, PROGRESS and UNKNOWN leave the next
    poll (and PROGRESS's new remains/start count, set on `order`) for the caller to save.
    Unknown statuses are logged. A Partial or Canceled answer refunds through the ledger, once,
    however often it is processed.
    """
    result = result if result is not None else PollResult(provider="")
    new, remains = _read_answer(order, answer)
    if new is None:
        result.errors += 1
        return StatusOutcome.UNKNOWN
    start_count = answer.start_count
    if new == order.status:
        if (remains is None or remains == order.remains) and (
            start_count is None or start_count == order.start_count
        ):
            result.unchanged += 1
            return StatusOutcome.UNCHANGED
        # Progress only (remains or start_count moved): no status row; _postpone writes it.
        order.remains = remains if remains is not None else order.remains
        order.start_count = start_count if start_count is not None else order.start_count
        order.upstream_status = answer.raw_status[:64]
        result.changed += 1
        return StatusOutcome.PROGRESS
    if moves is not None and order.status in POLLED_STATUSES:
        moves.append((order, new, answer))  # written in bulk by the caller, finals too
        return StatusOutcome.QUEUED_FOR_BULK
    return _write_status(order, new, remains, answer, now, result)


def _read_answer(order: Order, answer: OrderStatus) -> tuple[str | None, int | None]:
    """Our status for the answer and its remains clamped to 0..quantity; None for the status
    when the answer cannot be used (logged)."""
    new = UPSTREAM_TO_STATUS.get(answer.status)
    if new is None:
        logger.warning("order %s: unknown upstream status %r", order.pk, answer.raw_status)
        return None, None
    remains = answer.remains
    if remains is not None:
        return new, min(max(remains, 0), order.quantity)
    if new == S.PARTIAL and order.remains is None:
        # Nothing says how much was not delivered: settling now would refund nothing, for good.
        logger.warning("order %s: Partial without remains, left as it was", order.pk)
        return None, None
    return new, None


def _write_status(
    order: Order,
    new: str,
    remains: int | None,
    answer: OrderStatus,
    now: datetime,
    result: PollResult,
) -> StatusOutcome:
    old = order.status
    try:
        order_set_status(
            order=order,
            new=new,
            source=SRC.POLL,
            start_count=answer.start_count,
            remains=remains,
            upstream_status=answer.raw_status,
            now=now,
            last_polled_at=now,
            poll_errors=0,
            next_poll_at=(
                UNSET
                if new in (S.COMPLETED, S.PARTIAL, S.CANCELED)
                else next_poll_at(created_at=order.created_at, now=now)
            ),
        )
    except (OrderConflict, OrderError) as exc:
        logger.info("order %s: poll answer %s not applied: %s", order.pk, new, exc)
        return StatusOutcome.CONFLICT
    result.changed += 1
    result.statuses[new] += 1
    result.changes.append(f"order {order.pk}: {old} -> {new}")
    return StatusOutcome.WRITTEN


def _schedule(orders: list[Order], now: datetime, *, errors: bool = False) -> None:
    """Set the next poll (and, after a failed call, the error count) on the orders."""
    for order in orders:
        later = next_poll_at(created_at=order.created_at, now=now)
        order.next_poll_at = max(later, now + ERROR_BACKOFF) if errors else later
        order.last_polled_at = now
        if errors:
            order.poll_errors += 1


def _postpone(orders: list[Order], now: datetime, *, errors: bool = False) -> None:
    """Schedule the next poll of orders whose status stays (a failed call) in one UPDATE,
    only where the row is still in the status we read: a concurrent move is never overwritten."""
    if orders:
        _schedule(orders, now, errors=errors)
        write_rows([(o, o.status, o.status) for o in orders], now=now)
