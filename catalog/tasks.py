"""Celery entry points for the catalog: the periodic sync sweep and one sync per provider."""

import logging

from celery import shared_task

from catalog.services import CatalogSyncError, catalog_sync_provider
from providers.models import Provider
from providers.selectors import provider_ids_enabled

logger = logging.getLogger(__name__)
# Per-provider runs expire well before the next sweep queues new ones.
SWEEP_TASK_EXPIRES = 10 * 60


@shared_task(ignore_result=True)
def catalog_sync_sweep() -> int:
    """Beat: enqueue one catalog sync per enabled provider."""
    ids = provider_ids_enabled()
    for provider_id in ids:
        # Expires before the next sweep: after a worker outage runs never pile up.
        catalog_sync_provider_task.apply_async((provider_id,), expires=SWEEP_TASK_EXPIRES)
    return len(ids)


@shared_task(ignore_result=True, queue="provider_io")
def catalog_sync_provider_task(provider_id: int) -> str:
    """Sync one provider's catalog. A failure is stored on the provider (last_sync_error) and
    the next sweep tries again, so there is no retry here."""
    provider = Provider.objects.filter(pk=provider_id, is_enabled=True).first()
    if provider is None:
        return "skipped: no such enabled provider"
    try:
        return catalog_sync_provider(provider=provider).summary()
    except CatalogSyncError as exc:
        return f"failed: {exc}"
