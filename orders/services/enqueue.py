"""The one place where orders services hand work to Celery.

Services call these after commit (`transaction.on_commit(lambda: enqueue_order_submit(pk))`).
They send through panel.broker.send, task.delay()'s message in one Redis command.
The ones services call never raise: what they enqueue is already committed, and a sweep finds
it again if the broker is down (the requeue sweep for placements, the next provider sweep for
refills and cancels). The fan-out's `enqueue_provider_sweep` raises: its beat task fails and
runs again a minute later.
"""

from types import ModuleType

from orders.services.common import logger
from panel import broker

# A provider sweep queued by the fan-out expires before the next fan-out queues another one.
SWEEP_EXPIRES = 55


def _tasks() -> ModuleType:
    # orders.tasks imports orders.services (tasks are entry points that call services), so this
    # module imports the tasks when it first enqueues, not at import time. It is the only
    # module of orders.services that refers to orders.tasks.
    from orders import tasks

    return tasks


def enqueue_order_submit(order_id: int) -> None:
    """Queue the placement of one order (orders.tasks.order_submit)."""
    try:
        broker.send(_tasks().order_submit, order_id)
    except Exception:  # the broker, or an eager run's error; the requeue sweep retries
        logger.exception("could not enqueue the placement of order %s", order_id)


def enqueue_provider_send_refills(provider_id: int) -> None:
    """Queue sending the provider's queued refills (orders.tasks.provider_send_refills)."""
    try:
        broker.send(_tasks().provider_send_refills, provider_id)
    except Exception:  # the next provider sweep sends them
        logger.exception("could not enqueue sending refills for provider %s", provider_id)


def enqueue_provider_send_cancels(provider_id: int) -> None:
    """Queue sending the provider's queued cancels (orders.tasks.provider_send_cancels)."""
    try:
        broker.send(_tasks().provider_send_cancels, provider_id)
    except Exception:  # the next provider sweep sends them
        logger.exception("could not enqueue sending cancels for provider %s", provider_id)


def enqueue_provider_sweep(provider_id: int) -> None:
    """Queue one sweep of one provider (orders.tasks.provider_sweep), expiring before the
    next fan-out so that sweeps never pile up behind a slow provider."""
    _tasks().provider_sweep.apply_async((provider_id,), expires=SWEEP_EXPIRES)


def enqueue_webhook_deliver(event_id: int) -> None:
    """Queue one attempt to deliver a webhook event (orders.tasks.webhook_deliver)."""
    try:
        broker.send(_tasks().webhook_deliver, event_id)
    except Exception:  # the retry sweep finds the event (its next attempt is due)
        logger.exception("could not enqueue the delivery of webhook event %s", event_id)
