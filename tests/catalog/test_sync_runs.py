"""The admin's "Sync now" as a queued CatalogSyncRun: a worker task runs it (eager Celery from
conftest; the task is sent on commit), the run keeps the progress and the outcome, and one run
at a time per provider (a stale one does not block)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AdminAuditLog
from catalog.models import CatalogSyncRun, UpstreamService
from catalog.services import (
    CatalogError,
    SyncReport,
    catalog_sync_request,
    catalog_sync_run_execute,
    sync_runs,
)
from catalog.tasks import catalog_sync_run_task
from panel.celery import app

pytestmark = pytest.mark.django_db
Status = CatalogSyncRun.Status


def test_a_requested_sync_runs_on_commit_and_ends_done(
    provider, staff, catalog_settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = catalog_sync_request(provider=provider, requested_by=staff)
        assert run.status == Status.QUEUED and not UpstreamService.objects.exists()
    # One enqueue; the sync it ran then replaced the price lists' version after its commit.
    enqueues = [c for c in callbacks if c.__module__ != "catalog.price_lists"]
    assert len(enqueues) == 1 and len(callbacks) == 2
    run.refresh_from_db()
    assert run.status == Status.DONE and run.requested_by == staff
    assert "5 upstream services" in run.summary and not run.error
    assert "fetching the catalog" in run.progress and "5 services received" in run.progress
    assert run.progress.splitlines()[-1].endswith(" s")  # the last line says it is over
    assert run.created_at <= run.started_at <= run.finished_at
    assert run.outcome == run.summary
    assert UpstreamService.objects.filter(provider=provider).count() == 5


def test_a_failing_sync_ends_failed_with_the_reason(
    provider, upstream, staff, django_capture_on_commit_callbacks
):
    upstream.catalog = {"error": "Service temporarily unavailable"}
    with django_capture_on_commit_callbacks(execute=True):
        run = catalog_sync_request(provider=provider, requested_by=staff)
    run.refresh_from_db()
    assert run.status == Status.FAILED and "temporarily unavailable" in run.error
    assert run.progress.endswith("failed, nothing changed")
    assert not run.summary and run.finished_at is not None
    assert run.outcome.startswith("Sync failed, nothing changed:")
    provider.refresh_from_db()
    assert "temporarily unavailable" in provider.last_sync_error


def test_a_second_request_while_one_is_queued_or_running_is_refused(provider, staff):
    first = catalog_sync_request(provider=provider, requested_by=staff)  # on_commit never runs
    with pytest.raises(CatalogError, match=f"already queued \\(run #{first.pk}"):
        catalog_sync_request(provider=provider, requested_by=staff)
    CatalogSyncRun.objects.filter(pk=first.pk).update(status=Status.RUNNING)
    with pytest.raises(CatalogError, match="already running"):
        catalog_sync_request(provider=provider, requested_by=staff, allow_mass_removal=True)
    assert CatalogSyncRun.objects.count() == 1


def test_a_stale_run_does_not_block_a_new_one(provider, staff):
    stale = catalog_sync_request(provider=provider, requested_by=staff)
    long_ago = timezone.now() - timedelta(minutes=31)
    CatalogSyncRun.objects.filter(pk=stale.pk).update(
        status=Status.RUNNING, created_at=long_ago, started_at=long_ago
    )
    fresh = catalog_sync_request(provider=provider, requested_by=staff)
    stale.refresh_from_db()
    assert stale.status == Status.FAILED and "stale" in stale.error
    assert fresh.status == Status.QUEUED and fresh.pk != stale.pk


def test_a_run_that_waited_long_in_the_queue_but_just_started_still_blocks(provider, staff):
    run = catalog_sync_request(provider=provider, requested_by=staff)
    CatalogSyncRun.objects.filter(pk=run.pk).update(
        status=Status.RUNNING,
        created_at=timezone.now() - timedelta(minutes=45),
        started_at=timezone.now() - timedelta(minutes=1),
    )
    with pytest.raises(CatalogError, match="already running"):
        catalog_sync_request(provider=provider, requested_by=staff)
    run.refresh_from_db()
    assert run.status == Status.RUNNING and not run.error


def test_a_run_closed_as_stale_while_it_ran_stays_failed(provider, staff, monkeypatch):
    run = catalog_sync_request(provider=provider, requested_by=staff)

    def sync_that_outlives_its_run(*, provider, progress, allow_mass_removal):
        # What a new request does to a run started more than STALE_AFTER ago.
        CatalogSyncRun.objects.filter(pk=run.pk).update(status=Status.FAILED, error="stale")
        return SyncReport(provider=provider.name)

    monkeypatch.setattr(sync_runs, "catalog_sync_provider", sync_that_outlives_its_run)
    finished = catalog_sync_run_execute(run_id=run.pk)
    assert finished is not None
    assert finished.status == Status.FAILED and finished.error == "stale"
    assert not finished.summary


def test_running_a_run_twice_syncs_once(provider, staff, catalog_settings):
    run = catalog_sync_request(provider=provider, requested_by=staff)
    assert catalog_sync_run_execute(run_id=run.pk).status == Status.DONE
    assert catalog_sync_run_execute(run_id=run.pk) is None
    assert catalog_sync_run_task.delay(run.pk).get().startswith("skipped")


def test_a_run_that_cannot_be_queued_is_closed(
    provider, staff, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(catalog_sync_run_task, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        run = catalog_sync_request(provider=provider, requested_by=staff)
    run.refresh_from_db()
    assert run.status == Status.FAILED and "broker down" in run.error
    catalog_sync_request(provider=provider, requested_by=staff)  # no longer blocks


def test_the_run_task_goes_to_the_provider_io_queue():
    route = app.amqp.router.route({}, catalog_sync_run_task.name)
    assert route["queue"].name == "provider_io"


def test_admin_action_queues_and_links_the_run_and_refuses_a_second(
    client, staff, provider, django_capture_on_commit_callbacks
):
    client.force_login(staff)
    url = reverse("admin:providers_provider_changelist")
    data = {"action": "sync_now", "_selected_action": [provider.pk]}
    response = client.post(url, data, follow=True)  # the run stays queued: no commit in a test
    run = CatalogSyncRun.objects.get()
    run_url = reverse("admin:catalog_catalogsyncrun_change", args=[run.pk])
    page = response.content.decode()
    assert "Catalog sync of acme queued" in page and f'href="{run_url}"' in page
    response = client.post(url, data, follow=True)
    assert "Not queued: A catalog sync of acme is already queued" in response.content.decode()
    rows = AdminAuditLog.objects.filter(action="sync").order_by("pk")
    assert [r.after["ok"] for r in rows] == [True, False]
    assert rows[0].after["run"] == run.pk and CatalogSyncRun.objects.count() == 1
    assert client.get(run_url).status_code == 200
    assert client.get(reverse("admin:catalog_catalogsyncrun_changelist")).status_code == 200
    page = client.get(reverse("admin:providers_provider_change", args=[provider.pk]))
    assert run_url in page.content.decode()
