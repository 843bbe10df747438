"""Celery entry points for the catalog: the periodic sync sweep, one sync per provider, and the
admin's "Sync now" runs."""

import logging

from celery import shared_task

from catalog.services import CatalogSyncError, catalog_sync_provider, catalog_sync_run_execute
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


@shared_task(ignore_result=True, queue="provider_io")
def catalog_sync_run_task(run_id: int) -> str:
    """Run one CatalogSyncRun queued from admin; its row keeps the progress and the outcome.
    No retry: the admin sees a failure and can ask again."""
    run = catalog_sync_run_execute(run_id=run_id)
    if run is None:
        return "skipped: not queued any more"
    return run.summary or f"failed: {run.error}"
