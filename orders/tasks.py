"""Celery entry points for orders: each loads ids, calls one service, returns.

Beat schedule (the lead adds these to CELERY_BEAT_SCHEDULE, see docs/orders.md):
  orders_poll_sweep every minute (expires 50 s), orders_requeue_sweep every minute (expires 50 s).
"""

from celery import shared_task

from orders import services
from orders.selectors import provider_ids_with_due_orders
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


@shared_task(acks_late=True)
def provider_poll_orders(provider_id: int) -> None:
    """One sweep of one provider: order statuses, refills and cancels."""
    provider = Provider.objects.filter(pk=provider_id, is_enabled=True).first()
    if provider is not None:
        services.provider_sweep(provider=provider)


@shared_task(acks_late=True)
def provider_process_refills(provider_id: int) -> None:
    provider = Provider.objects.filter(pk=provider_id, is_enabled=True).first()
    if provider is not None:
        services.provider_send_refills(provider=provider)


@shared_task(acks_late=True)
def provider_process_cancels(provider_id: int) -> None:
    provider = Provider.objects.filter(pk=provider_id, is_enabled=True).first()
    if provider is not None:
        services.provider_send_cancels(provider=provider)


@shared_task(expires=50)
def orders_poll_sweep() -> None:
    """Fan out: one provider_poll_orders task per provider with something due."""
    from django.utils import timezone

    for provider_id in provider_ids_with_due_orders(now=timezone.now()):
        provider_poll_orders.apply_async((provider_id,), expires=55)


@shared_task(expires=50)
def orders_requeue_sweep() -> None:
    """Re-enqueue placement of waiting orders; send orders stuck mid-placement to review."""
    services.orders_requeue()
    services.order_release_stuck_requests()
