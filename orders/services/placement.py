"""Sending an order upstream: claim, call `add` outside any transaction, store the outcome.

`add` is not idempotent upstream, so the rules are (docs/orders.md, "Placement"):

- the claim (QUEUED/WAITING_FUNDS -> SUBMITTING, submit_attempts + 1) is committed before the
  call, so a second worker, a retry or the sweeper finds nothing to claim;
- the request certainly never left (connection refused, DNS, connect timeout), or the provider
  answered that it did not act (429, a temporary refusal): back to QUEUED and retried;
- the outcome is unknown (read timeout, connection dropped, 5xx, an unreadable answer):
  NEEDS_REVIEW, never resent automatically;
- a permanent refusal: the next backup mapping, else CANCELED with a full refund;
- not enough funds at the provider: the next backup mapping, else WAITING_FUNDS; the admins
  are mailed once per episode either way.
"""

from datetime import timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db.models import F
from django.utils import timezone

from catalog.models import UpstreamService
from orders.models import Order, OrderStatusChange
from orders.services.common import OrderConflict, logger
from orders.services.create import order_cost
from orders.services.status import order_set_status
from providers.client import ErrorKind, ProviderError
from providers.gateway import provider_call
from providers.models import Provider

S = Order.Status
SRC = OrderStatusChange.Source
# After this many refusals that were not final (429, unknown error texts), a person looks.
MAX_SUBMIT_ATTEMPTS = 8
FIRST_POLL_AFTER = timedelta(minutes=1)


def enqueue_submit(order_id: int) -> None:
    """Queue the placement task. Never raises: the order is already charged and committed,
    and if the broker is down the requeue sweep sends it a minute later."""
    from orders.tasks import order_submit as task

    try:
        task.delay(order_id)
    except Exception:  # the broker, or an eager run's error; the sweeper retries
        logger.exception("could not enqueue the placement of order %s", order_id)


def upstream_params(order: Order) -> dict[str, str]:
    """The `add` form of an order, besides `service`: link (if any) and the type's params."""
    params = {"link": order.link} if order.link else {}
    params.update({k: str(v) for k, v in order.params.items()})
    return params


def _claim(order_id: int, now) -> Order | None:
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


def _targets(order: Order) -> list[UpstreamService]:
    """The primary mapping, then the backups by priority; the order's current one first."""
    service = order.service
    chain = [service.upstream] if service.upstream else []
    chain += [
        b.upstream
        for b in service.backups.select_related("upstream__provider").order_by("priority", "id")
    ]
    current = order.upstream_service
    if current is not None and current in chain:
        chain = chain[chain.index(current) :]
    return [u for u in chain if u.removed_at is None]


def order_submit(*, order_id: int) -> Order | None:
    """Place the order upstream if it is waiting to be sent; None when there was nothing to do.

    Raises the ProviderError when the request never left (the task retries it with backoff);
    the order is then QUEUED again.
    """
    now = timezone.now()
    order = _claim(order_id, now)
    if order is None:
        return None
    targets = _targets(order)
    if not targets:
        return _refused_for_good(order, "No upstream mapping is left for this service.")
    for position, upstream in enumerate(targets):
        if position:
            _fail_over(order, upstream)
        provider = upstream.provider
        if not provider.is_enabled:
            error = ProviderError("provider disabled", kind=ErrorKind.API_ERROR, permanent=True)
        else:
            error = _send(order, upstream, provider)
            if error is None:
                return order
        if error.insufficient_funds and position + 1 < len(targets):
            # A definite refusal too: the provider did not act, so the backup may take it.
            _alert_out_of_funds(provider, order)
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
    except OrderConflict:
        # Moved while the call was in flight (only the stuck-placement sweep does that, after
        # ORDER_SUBMIT_STUCK_AFTER): keep the upstream id so that the admin sees it was placed.
        logger.error("order %s placed as %s after it was moved", order.pk, upstream_id)
        Order.objects.filter(pk=order.pk).update(
            upstream_order_id=upstream_id,
            provider=provider,
            upstream_service=upstream,
            attention_reason=f"Placed at {provider.name} as {upstream_id} after it was moved.",
        )
    if provider.out_of_funds_since is not None:
        Provider.objects.filter(pk=provider.pk).update(out_of_funds_since=None)
    return None


def _placed(
    order: Order, upstream: UpstreamService, provider: Provider, upstream_id: str, now
) -> None:
    order_set_status(
        order=order,
        new=S.PENDING,
        source=SRC.SUBMIT,
        now=now,
        note=f"Placed at {provider.name} as {upstream_id}",
        extra={
            "upstream_order_id": upstream_id,
            "provider": provider,
            "upstream_service": upstream,
            "next_poll_at": now + FIRST_POLL_AFTER,
            "attention_reason": "",
        },
    )


def _fail_over(order: Order, upstream: UpstreamService) -> None:
    """Point the (still claimed) order at a backup mapping, with that provider's cost."""
    order.provider = upstream.provider
    order.upstream_service = upstream
    order.failed_over = True
    order.cost = order_cost(service=order.service, upstream=upstream, units=_units(order))
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


def _units(order: Order) -> int:
    return order.quantity


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
            extra={"attention_reason": f"{provider.name}: not enough funds"},
        )
        _alert_out_of_funds(provider, order)
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
            extra={"attention_reason": reason[:2000]},
        )
        return order
    # Certainly not acted on: safe to send again later.
    if order.submit_attempts >= MAX_SUBMIT_ATTEMPTS:
        order_set_status(
            order=order,
            new=S.NEEDS_REVIEW,
            source=SRC.SUBMIT,
            note=error.message,
            extra={
                "attention_reason": f"Not placed after {order.submit_attempts} attempts: "
                f"{error.message}"[:2000]
            },
        )
        return order
    order_set_status(
        order=order,
        new=S.QUEUED,
        source=SRC.SUBMIT,
        note=f"{error.kind}: {error.message}",
        extra={"attention_reason": f"Last attempt: {error.message}"[:2000]},
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
        extra={"attention_reason": reason[:2000]},
    )


def _alert_out_of_funds(provider: Provider, order: Order) -> None:
    """Mail the admins once per episode: only the call that sets out_of_funds_since mails."""
    now = timezone.now()
    first = Provider.objects.filter(pk=provider.pk, out_of_funds_since__isnull=True).update(
        out_of_funds_since=now
    )
    if first:
        mail_admins(
            f"Provider {provider.name} is out of funds",
            f"{provider.name} refused order {order.pk} for lack of funds. Orders wait in "
            f"'Waiting: provider out of funds' and are retried automatically once you top up.\n"
            f"{settings.PANEL_PUBLIC_URL}/admin/orders/order/?status=waiting_funds",
            fail_silently=True,
        )


def order_submit_safe(*, order_id: int) -> Order | None:
    """order_submit for callers that must not see ProviderError (commands, the sweeper)."""
    try:
        return order_submit(order_id=order_id)
    except ProviderError:
        return Order.objects.filter(pk=order_id).first()
    except OrderConflict:
        return None
