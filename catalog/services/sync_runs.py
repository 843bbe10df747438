"""The admin's "Sync the catalog now": a request queues a CatalogSyncRun and a worker runs it
(the sync takes tens of seconds on a big catalog, too long for a request). The run keeps the
sync's progress lines, then its summary or the reason it failed."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from catalog.models import CatalogSyncRun
from catalog.services.common import CatalogError, CatalogSyncError
from catalog.services.sync import catalog_sync_provider
from providers.models import Provider

logger = logging.getLogger(__name__)

Status = CatalogSyncRun.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)
# A run still queued or running after this long lost its worker (killed, or past the hard time
# limit): it no longer blocks a new one. Far above the task's time limit.
STALE_AFTER = timedelta(minutes=30)
PROGRESS_MAX_CHARS = 4000


def catalog_sync_request(
    *, provider: Provider, requested_by: User | None, allow_mass_removal: bool = False
) -> CatalogSyncRun:
    """Queue a catalog sync of `provider` for a worker; the task is sent after commit.

    Raises CatalogError, queueing nothing, while another run of this provider is queued or
    running (one started more than STALE_AFTER ago is closed as failed instead)."""
    now = timezone.now()
    with transaction.atomic():
        # The provider row lock makes two clicks at once queue one run, not two.
        Provider.objects.select_for_update().filter(pk=provider.pk).first()
        _close_stale_runs(provider=provider, now=now)
        active = CatalogSyncRun.objects.filter(provider=provider, status__in=ACTIVE).first()
        if active is not None:
            raise CatalogError(
                f"A catalog sync of {provider.name} is already {active.status} "
                f"(run #{active.pk}, since {active.created_at:%H:%M:%S} UTC)."
            )
        run = CatalogSyncRun.objects.create(
            provider=provider,
            requested_by=requested_by,
            allow_mass_removal=allow_mass_removal,
            created_at=now,
        )
        transaction.on_commit(lambda: _enqueue_run(run.pk))
    return run


def _close_stale_runs(*, provider: Provider, now: datetime) -> None:
    CatalogSyncRun.objects.filter(
        provider=provider, status__in=ACTIVE, created_at__lt=now - STALE_AFTER
    ).update(
        status=Status.FAILED,
        finished_at=now,
        error=f"No worker finished this run within {STALE_AFTER}; closed as stale.",
    )


def _enqueue_run(run_id: int) -> None:
    # Imported here: the tasks module imports the services (entry point → service).
    from catalog.tasks import catalog_sync_run_task

    try:
        catalog_sync_run_task.delay(run_id)
    except Exception as exc:  # the broker is down, or an eager run's own error
        logger.exception("could not queue catalog sync run %s", run_id)
        CatalogSyncRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
            status=Status.FAILED, finished_at=timezone.now(), error=f"Could not queue: {exc!r}"
        )


def catalog_sync_run_execute(*, run_id: int) -> CatalogSyncRun | None:
    """Run a queued sync: claim it (queued → running), sync, store the summary or the error.

    Returns the finished run, or None when it was not queued any more (already taken by
    another worker, or closed as stale): running a task twice syncs once."""
    now = timezone.now()
    claimed = CatalogSyncRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now
    )
    if not claimed:
        return None
    run = CatalogSyncRun.objects.select_related("provider").get(pk=run_id)
    try:
        report = catalog_sync_provider(
            provider=run.provider,
            progress=_progress_writer(run),
            allow_mass_removal=run.allow_mass_removal,
        )
    except CatalogSyncError as exc:
        run.status, run.error = Status.FAILED, str(exc)
    else:
        run.status, run.summary = Status.DONE, report.summary()
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "summary", "error", "finished_at"])
    return run


def _progress_writer(run: CatalogSyncRun) -> Callable[[str], None]:
    """A progress callback that appends each line to the run, so the admin sees it as it goes
    (the sync reports outside its transaction: each line is committed at once)."""
    lines: list[str] = []

    def write(message: str) -> None:
        lines.append(f"{timezone.now():%H:%M:%S} {message}")
        text = "\n".join(lines)[-PROGRESS_MAX_CHARS:]
        CatalogSyncRun.objects.filter(pk=run.pk).update(progress=text)
        run.progress = text

    return write
