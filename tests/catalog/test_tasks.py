"""The periodic sweeps fan out one task per enabled provider (eager Celery from conftest)."""

from decimal import Decimal as D

import pytest

from catalog.models import UpstreamService
from catalog.tasks import catalog_sync_provider_task, catalog_sync_sweep
from providers.models import Provider
from providers.services import provider_create
from providers.tasks import provider_check_balance_task, provider_check_balances_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def disabled_provider(db):
    return provider_create(name="off", api_url="http://127.0.0.1:9/api/v2", api_key="k",
                           is_enabled=False)  # fmt: skip


def test_sync_sweep_syncs_every_enabled_provider(provider, disabled_provider, catalog_settings):
    assert catalog_sync_sweep.delay().get() == 1
    assert UpstreamService.objects.filter(provider=provider).count() == 5
    provider.refresh_from_db()
    assert provider.last_sync_at is not None


def test_sync_task_reports_a_failure_without_raising(provider, upstream):
    upstream.catalog = {"error": "Service temporarily unavailable"}
    result = catalog_sync_provider_task.delay(provider.pk).get()
    assert result.startswith("failed:") and "temporarily unavailable" in result
    provider.refresh_from_db()
    assert "temporarily unavailable" in provider.last_sync_error


def test_sync_task_skips_a_disabled_or_deleted_provider(disabled_provider):
    assert catalog_sync_provider_task.delay(disabled_provider.pk).get().startswith("skipped")
    assert catalog_sync_provider_task.delay(999999).get().startswith("skipped")


def test_balance_sweep(provider, upstream, disabled_provider):
    upstream.balance = D("12.5")
    assert provider_check_balances_sweep.delay().get() == 1
    assert Provider.objects.get(pk=provider.pk).balance == D("12.5")
    assert Provider.objects.get(pk=disabled_provider.pk).balance is None


def test_balance_task_reports_a_failure(db):
    provider = provider_create(name="down", api_url="http://127.0.0.1:9/api/v2", api_key="k")
    assert provider_check_balance_task.delay(provider.pk).get().startswith("failed: connect")
