"""The one place where catalog services hand work to Celery (like orders.services.enqueue).

Services call these after commit. What they enqueue is already committed, so a broker outage is
recorded on the row instead of raised.
"""

import logging
from types import ModuleType

from django.utils import timezone

from catalog.models import CatalogSyncRun

logger = logging.getLogger(__name__)


def _tasks() -> ModuleType:
    # catalog.tasks imports catalog.services (tasks are entry points that call services), so
    # the tasks are imported when something is first enqueued, not at import time. This is the
    # only module of catalog.services that refers to catalog.tasks (an import contract says so).
    from catalog import tasks

    return tasks


def enqueue_catalog_sync_run(run_id: int) -> None:
    """Queue a CatalogSyncRun for a worker (catalog.tasks.catalog_sync_run_task); if it cannot
    be queued, the run ends failed with the reason, so that the admin can ask again."""
    try:
        _tasks().catalog_sync_run_task.delay(run_id)
    except Exception as exc:  # the broker is down, or an eager run's own error
        logger.exception("could not queue catalog sync run %s", run_id)
        CatalogSyncRun.objects.filter(pk=run_id, status=CatalogSyncRun.Status.QUEUED).update(
            status=CatalogSyncRun.Status.FAILED,
            finished_at=timezone.now(),
            error=f"Could not queue: {exc!r}",
        )
