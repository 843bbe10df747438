"""Celery entry points for providers: the periodic balance check (sweep + one task each)."""

from celery import shared_task

from providers.client import ProviderError
from providers.models import Provider
from providers.selectors import provider_ids_enabled
from providers.services import provider_check_balance

# Per-provider runs expire well before the next sweep queues new ones.
SWEEP_TASK_EXPIRES = 10 * 60


@shared_task(ignore_result=True)
def provider_check_balances_sweep() -> int:
    """Beat: enqueue one balance check per enabled provider."""
    ids = provider_ids_enabled()
    for provider_id in ids:
        # Expires before the next sweep: after a worker outage runs never pile up.
        provider_check_balance_task.apply_async((provider_id,), expires=SWEEP_TASK_EXPIRES)
    return len(ids)


@shared_task(ignore_result=True)
def provider_check_balance_task(provider_id: int) -> str:
    """Fetch and store one provider's balance (low-balance alert included). A failed call is
    recorded as a ProviderCall; the next sweep tries again."""
    provider = Provider.objects.filter(pk=provider_id, is_enabled=True).first()
    if provider is None:
        return "skipped: no such enabled provider"
    try:
        return str(provider_check_balance(provider=provider))
    except ProviderError as exc:
        return f"failed: {exc.kind}: {exc.message}"
