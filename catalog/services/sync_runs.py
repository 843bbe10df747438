"""The admin's "Sync the catalog now": a request queues a CatalogSyncRun and a worker runs it
(the sync takes tens of seconds on a big catalog, too long for a request). The run keeps the
sync's progress lines, then its summary or the reason it failed."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from catalog.models import CatalogSyncRun
from catalog.services.common import CatalogError, CatalogSyncError
from catalog.services.enqueue import enqueue_catalog_sync_run
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
    running (one queued or started more than STALE_AFTER ago is closed as failed instead).
    Never waits for a running sync: the partial unique constraint (one active run per
    provider) settles two clicks at once, not a lock on the provider row, which a running
    sync holds for its whole write step."""
    now = timezone.now()
    _close_stale_runs(provider=provider, now=now)
    try:
        with transaction.atomic():
            run = CatalogSyncRun.objects.create(
                provider=provider,
                requested_by=requested_by,
                allow_mass_removal=allow_mass_removal,
                created_at=now,
            )
            transaction.on_commit(lambda: enqueue_catalog_sync_run(run.pk))
    except IntegrityError:
        raise CatalogError(_already_active(provider)) from None
    return run


def _already_active(provider: Provider) -> str:
    active = CatalogSyncRun.objects.filter(provider=provider, status__in=ACTIVE).first()
    if active is None:  # it finished between our INSERT and this read
        return f"A catalog sync of {provider.name} was just running; ask again."
    return (
        f"A catalog sync of {provider.name} is already {active.status} "
        f"(run #{active.pk}, since {active.created_at:%H:%M:%S} UTC)."
    )


def _close_stale_runs(*, provider: Provider, now: datetime) -> None:
    # A queued run is stale when no worker took it in time; a running one when it started long
    # ago (not when it was queued: a run that waited in a busy queue may have just started).
    before = now - STALE_AFTER
    stale = Q(status=Status.QUEUED, created_at__lt=before) | Q(
        status=Status.RUNNING, started_at__lt=before
    )
    CatalogSyncRun.objects.filter(stale, provider=provider).update(
        status=Status.FAILED,
        finished_at=now,
        error=f"No worker finished this run within {STALE_AFTER}; closed as stale.",
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
    progress = _progress_writer(run)
    try:
        report = catalog_sync_provider(
            provider=run.provider, progress=progress, allow_mass_removal=run.allow_mass_removal
        )
    except CatalogSyncError as exc:
        run.status, run.error = Status.FAILED, str(exc)
        progress("failed, nothing changed")
    else:
        run.status, run.summary = Status.DONE, report.summary()
        progress(f"done in {report.seconds:.1f} s")
    run.finished_at = timezone.now()
    # Only over our own RUNNING row: a run closed as stale meanwhile keeps saying so.
    CatalogSyncRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
        status=run.status, summary=run.summary, error=run.error, finished_at=run.finished_at
    )
    run.refresh_from_db()
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
