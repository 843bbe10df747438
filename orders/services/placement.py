"""Sending an order upstream: claim, call `add` outside any transaction, store the outcome.

`add` is not idempotent upstream, so the rules are (docs/orders.md, "Placement"):

- the claim (QUEUED/WAITING_FUNDS -> SUBMITTING, submit_attempts + 1) is committed before the
  call, so a second worker, a retry or the sweeper finds nothing to claim;
- the request certainly never left (connection refused, DNS, connect timeout), or the provider
  answered that it did not act (429, a temporary refusal): back to QUEUED and retried;
- the outcome is unknown (read timeout, connection dropped, 5xx, an unreadable answer):
  NEEDS_REVIEW, never resent automatically;
- a permanent refusal: the next backup mapping, else CANCELED with a full refund;
- not enough funds at the provider: the next backup mapping, else WAITING_FUNDS; the provider
  is flagged out of funds (providers.services.provider_mark_out_of_funds mails the admins once
  per episode) and the flag is cleared by its next successful placement.

Where an order may go is catalog.selectors.service_upstream_candidates: the primary mapping,
then the backups by priority, without those removed upstream or at a disabled provider,
starting at the order's current mapping.
"""

from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from catalog.models import UpstreamService
from catalog.selectors import service_upstream_candidates
from orders.models import Order, OrderStatusChange
from orders.services.common import OrderConflict, logger
from orders.services.costs import order_cost
from orders.services.status import order_set_status
from orders.services.summary import daily_summary_tracking
from providers.client import ErrorKind, ProviderError
from providers.gateway import provider_call
from providers.models import Provider
from providers.schemas import clean_text
from providers.services import provider_clear_out_of_funds, provider_mark_out_of_funds

S = Order.Status
SRC = OrderStatusChange.Source
# After this many refusals that were not final (429, unknown error texts), a person looks.
MAX_SUBMIT_ATTEMPTS = 8
FIRST_POLL_AFTER = timedelta(minutes=1)
# A refused write: DatabaseError, or a text psycopg cannot even encode (UnicodeEncodeError).
UNSTORABLE = (DatabaseError, ValueError)


def upstream_params(order: Order) -> dict[str, str]:
    """The `add` form of an order, besides `service`: link (if any) and the type's params."""
    params = {"link": order.link} if order.link else {}
    params.update({k: str(v) for k, v in order.params.items()})
    return params


def _claim(order_id: int, now: datetime) -> Order | None:
    order = Order.objects.filter(pk=order_id).first()
    if order is None or order.status not in (S.QUEUED, S.WAITING_FUNDS):
        return None
    won = Order.objects.filter(pk=order_id, status=order.status).update(
        status=S.SUBMITTING,
        submit_attempts=F("submit_attempts") + 1,
        submitted_at=now,
        updated_at=now,
    )
    if not won:
        return None
    OrderStatusChange.objects.create(
        order=order,
        old_status=order.status,
        new_status=S.SUBMITTING,
        source=SRC.SUBMIT,
        created_at=now,
    )
    return Order.objects.select_related("service", "upstream_service__provider", "user").get(
        pk=order_id
    )


def order_submit(*, order_id: int) -> Order | None:
    """Place the order upstream if it is waiting to be sent; None when there was nothing to do.

    Raises the ProviderError when the request never left (the task retries it with backoff);
    the order is then QUEUED again.
    """
    now = timezone.now()
    order = _claim(order_id, now)
    if order is None:
        return None
    try:
        return _place(order)
    except UNSTORABLE as exc:
        # The claim is committed: without this the order would stay in SUBMITTING, where only
        # the stuck-placement sweep finds it, after ORDER_SUBMIT_STUCK_AFTER.
        return _outcome_not_stored(order, exc)


def _place(order: Order) -> Order:
    """Try the order's upstream candidates in turn and store the outcome."""
    targets = service_upstream_candidates(service=order.service, start_at=order.upstream_service)
    if not targets:
        return _refused_for_good(
            order,
            "No upstream mapping is left for this service "
            "(all removed upstream or at disabled providers).",
        )
    for position, upstream in enumerate(targets):
        if upstream.pk != order.upstream_service_id:
            _fail_over(order, upstream)
        provider = upstream.provider
        error = _send(order, upstream, provider)
        if error is None:
            return order
        if error.insufficient_funds and position + 1 < len(targets):
            # A definite refusal too: the provider did not act, so the backup may take it.
            _mark_out_of_funds(provider, order, error)
            logger.warning("order %s: %s is out of funds, falling over", order.pk, provider.name)
            last_error = error
            continue
        if not (error.kind is ErrorKind.API_ERROR and error.permanent) or _is_our_config(error):
            return _not_placed(order, error, provider)
        logger.warning("order %s refused by %s: %s", order.pk, provider.name, error.message)
        last_error = error
    return _refused_for_good(order, f"Refused upstream: {last_error.message}")


def _send(order: Order, upstream: UpstreamService, provider: Provider) -> ProviderError | None:
    params = upstream_params(order)
    try:
        upstream_id = provider_call(
            provider,
            "add",
            lambda client: client.add_order(service=upstream.service_id, params=params),
            order_ref=order.pk,
            request={"service": upstream.service_id, **params},
        )
    except ProviderError as exc:
        return exc
    now = timezone.now()
    try:
        _placed(order, upstream, provider, upstream_id, now)
    except UNSTORABLE as exc:
        _outcome_not_stored(order, exc, placed_as=f"{provider.name} as {upstream_id}")
        return None
    except OrderConflict:
        # Moved while the call was in flight (only the stuck-placement sweep does that, after
        # ORDER_SUBMIT_STUCK_AFTER): keep the upstream id so that the admin sees it was placed.
        logger.error("order %s placed as %s after it was moved", order.pk, upstream_id)
        with daily_summary_tracking([order.pk]):  # the provider may change
            Order.objects.filter(pk=order.pk).update(
                upstream_order_id=upstream_id,
                provider=provider,
                upstream_service=upstream,
                attention_reason=f"Placed at {provider.name} as {upstream_id} after it was moved.",
            )
    if provider.out_of_funds_since is not None:
        provider_clear_out_of_funds(provider=provider)
    return None


def _placed(
    order: Order, upstream: UpstreamService, provider: Provider, upstream_id: str, now: datetime
) -> None:
    order_set_status(
        order=order,
        new=S.PENDING,
        source=SRC.SUBMIT,
        now=now,
        note=f"Placed at {provider.name} as {upstream_id}",
        upstream_order_id=upstream_id,
        provider=provider,
        upstream_service=upstream,
        next_poll_at=now + FIRST_POLL_AFTER,
        attention_reason="",
    )


def _outcome_not_stored(order: Order, exc: Exception, *, placed_as: str = "") -> Order:
    """The database refused the outcome of `add` (a text or value a column cannot hold): the
    order, if still SUBMITTING, goes to NEEDS_REVIEW with a plain reason instead. The call
    itself is in the provider's recorded calls (providers.gateway stores it in any case)."""
    logger.exception("order %s: the outcome of add could not be stored", order.pk)
    order.refresh_from_db()  # in place: the caller may return this very object
    if order.status != S.SUBMITTING:
        return order  # stored after all (the error came later), or moved by someone else
    what = f"Placed at {placed_as}, but" if placed_as else "The outcome of `add`:"
    reason = clean_text(
        f"{what} the panel could not store it ({type(exc).__name__}: {str(exc)[:200]}). "
        "Check the provider's recorded calls and order list, then set the upstream id, "
        "resend, or cancel."
    )
    return order_set_status(
        order=order,
        new=S.NEEDS_REVIEW,
        source=SRC.SUBMIT,
        note=reason[:500],
        attention_reason=reason[:2000],
    )


def _fail_over(order: Order, upstream: UpstreamService) -> None:
    """Point the (still claimed) order at a backup mapping, with that provider's cost."""
    order.provider = upstream.provider
    order.upstream_service = upstream
    order.failed_over = True
    # Order.quantity is the priced units for every type but packages, priced per package.
    order.cost = order_cost(service=order.service, upstream=upstream, priced_units=order.quantity)
    with daily_summary_tracking([order.pk]):  # its provider and cost change
        Order.objects.filter(pk=order.pk, status=S.SUBMITTING).update(
            provider=upstream.provider,
            upstream_service=upstream,
            failed_over=True,
            cost=order.cost,
        )
    OrderStatusChange.objects.create(
        order=order,
        old_status=S.SUBMITTING,
        new_status=S.SUBMITTING,
        source=SRC.SUBMIT,
        note=f"Falling over to {upstream}",
    )


def _is_our_config(error: ProviderError) -> bool:
    # "Invalid API key" is permanent but says nothing about the order: never cancel for it.
    return "api key" in error.message.casefold()


def _not_placed(order: Order, error: ProviderError, provider: Provider) -> Order:
    if error.insufficient_funds:
        order_set_status(
            order=order,
            new=S.WAITING_FUNDS,
            source=SRC.SUBMIT,
            note=error.message,
            attention_reason=f"{provider.name}: not enough funds",
        )
        _mark_out_of_funds(provider, order, error)
        return order
    if error.outcome_unknown:
        reason = (
            f"The outcome of `add` at {provider.name} is unknown ({error.kind}: {error.message}). "
            "Check the provider's order list, then set the upstream id, resend, or cancel."
        )
        order_set_status(
            order=order,
            new=S.NEEDS_REVIEW,
            source=SRC.SUBMIT,
            note=error.message,
            attention_reason=reason[:2000],
        )
        return order
    # Certainly not acted on: safe to send again later.
    if order.submit_attempts >= MAX_SUBMIT_ATTEMPTS:
        order_set_status(
            order=order,
            new=S.NEEDS_REVIEW,
            source=SRC.SUBMIT,
            note=error.message,
            attention_reason=f"Not placed after {order.submit_attempts} attempts: {error.message}"[
                :2000
            ],
        )
        return order
    order_set_status(
        order=order,
        new=S.QUEUED,
        source=SRC.SUBMIT,
        note=f"{error.kind}: {error.message}",
        attention_reason=f"Last attempt: {error.message}"[:2000],
    )
    if error.sent is False or error.kind is ErrorKind.RATE_LIMITED:
        raise error  # the task retries it with backoff; the sweeper after the cap
    return order


def _refused_for_good(order: Order, reason: str) -> Order:
    return order_set_status(
        order=order,
        new=S.CANCELED,
        source=SRC.SUBMIT,
        note=reason,
        attention_reason=reason[:2000],
    )


def _mark_out_of_funds(provider: Provider, order: Order, error: ProviderError) -> None:
    """Flag the provider (the admins are mailed once per episode, by the providers service)."""
    provider_mark_out_of_funds(provider=provider, message=error.message, order_ref=order.pk)
