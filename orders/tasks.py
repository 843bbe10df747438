"""Celery entry points for orders: each loads ids, calls one service, returns; each is named
after the service it wraps.

Beat schedule (setup_schedules, see docs/orders.md):
  orders_poll_sweep every minute (expires 50 s), orders_requeue_sweep every minute (expires 50 s),
  webhooks_retry_sweep every minute (expires 50 s), service_average_times_sweep every 10
  minutes (expires 9 min), service_average_times_refresh_all every night.
"""

from celery import shared_task
from django.utils import timezone

from orders import services
from orders.selectors import provider_ids_with_due_orders
from orders.services.enqueue import enqueue_provider_sweep
from orders.services.webhooks import ATTEMPT_SOFT_TIME_LIMIT, ATTEMPT_TIME_LIMIT
from providers.client import ProviderError
from providers.models import Provider


@shared_task(
    autoretry_for=(ProviderError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def order_submit(order_id: int) -> None:
    """Place one order upstream. Retried only when the request never left (the service raises
    ProviderError then, with the order QUEUED again); after the cap the requeue sweep takes
    over. Running it twice is a no-op: the service claims the order with a conditional UPDATE."""
    services.order_submit(order_id=order_id)


def _enabled_provider(provider_id: int) -> Provider | None:
    return Provider.objects.filter(pk=provider_id, is_enabled=True).first()


@shared_task(acks_late=True)
def provider_sweep(provider_id: int) -> None:
    """One sweep of one provider: cancels and refills sent, order/refill/cancel statuses polled."""
    if (provider := _enabled_provider(provider_id)) is not None:
        services.provider_sweep(provider=provider)


@shared_task(acks_late=True)
def provider_send_refills(provider_id: int) -> None:
    """Send the provider's queued refills now (a customer just asked for one)."""
    if (provider := _enabled_provider(provider_id)) is not None:
        services.provider_send_refills(provider=provider)


@shared_task(acks_late=True)
def provider_send_cancels(provider_id: int) -> None:
    """Send the provider's queued cancel requests now (a customer just asked for one)."""
    if (provider := _enabled_provider(provider_id)) is not None:
        services.provider_send_cancels(provider=provider)


@shared_task(expires=50)
def orders_poll_sweep() -> None:
    """Fan out: one provider_sweep task per provider with something due."""
    for provider_id in provider_ids_with_due_orders(now=timezone.now()):
        enqueue_provider_sweep(provider_id)


@shared_task(expires=50)
def orders_requeue_sweep() -> None:
    """Re-enqueue placement of waiting orders; send orders stuck mid-placement to review."""
    services.orders_requeue()
    services.order_release_stuck_requests()


@shared_task(expires=540)
def service_average_times_sweep() -> None:
    """Refresh the average time of the services with an order completed lately."""
    services.service_average_times_refresh_recent()


@shared_task(expires=3000)
def service_average_times_refresh_all() -> None:
    """Refresh every service's average time (nightly: catches what the sweep missed)."""
    services.service_average_times_refresh()


@shared_task(
    acks_late=True,
    soft_time_limit=ATTEMPT_SOFT_TIME_LIMIT,
    time_limit=ATTEMPT_TIME_LIMIT,
)
def webhook_deliver(event_id: int) -> None:
    """One attempt to deliver one webhook event (a no-op unless it is due and first in line)."""
    services.webhook_event_deliver(event_id=event_id)


@shared_task(expires=50)
def webhooks_retry_sweep() -> None:
    """Queue one attempt per webhook event whose retry is due (the state is in the rows, so
    retries survive a worker restart)."""
    services.webhooks_retry_due()


@shared_task(ignore_result=True)
def webhook_events_cleanup_sweep() -> str:
    """Beat: delete the delivered and given-up webhook events older than
    PANEL_WEBHOOK_EVENT_DAYS."""
    deleted = services.webhook_events_prune()
    return "events kept (setting 0)" if deleted is None else f"deleted {deleted}"


# --- old task names ---------------------------------------------------------------------------
# Registered for one release only: messages queued under these names before the deploy that
# renamed the tasks must still find a consumer. Nothing enqueues them any more; remove them in
# the release after.


@shared_task(acks_late=True)
def provider_poll_orders(provider_id: int) -> None:
    """Old name of provider_sweep (kept for messages already in a queue at deploy time)."""
    provider_sweep(provider_id)


@shared_task(acks_late=True)
def provider_process_refills(provider_id: int) -> None:
    """Old name of provider_send_refills (kept for messages already in a queue at deploy time)."""
    provider_send_refills(provider_id)


@shared_task(acks_late=True)
def provider_process_cancels(provider_id: int) -> None:
    """Old name of provider_send_cancels (kept for messages already in a queue at deploy time)."""
    provider_send_cancels(provider_id)
