"""Integration: the sync over real HTTP against the sandbox provider, faults included."""

import logging
from decimal import Decimal as D

import pytest

from catalog.models import CatalogChange, Service, UpstreamService
from catalog.services import CatalogSyncError, catalog_import_services, catalog_sync_provider
from providers.models import ProviderCall

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_sync_and_import_the_sandbox_catalog(sandbox_provider, catalog_settings):
    report = catalog_sync_provider(provider=sandbox_provider)
    assert report.new == report.upstream_total > 10 and report.skipped == 0
    types = set(UpstreamService.objects.values_list("type", flat=True))
    assert {"Default", "Package", "Custom Comments", "Subscriptions", "Poll"} <= types
    services = catalog_import_services(provider=sandbox_provider, all=True)
    assert len(services) == report.upstream_total
    for service in services:
        assert service.rate == (service.upstream.rate * D("1.5")).quantize(D("0.00000001"))
        assert service.is_enabled and service.type == service.upstream.type
    assert catalog_sync_provider(provider=sandbox_provider).changes == 0


FAULTS = [
    # mode, extra spec, the error kind the provider row and the ProviderCall get
    ("timeout", {"seconds": 3}, "timeout"),
    ("http500", {"status": 503}, "http_error"),
    ("html", {}, "html"),
    ("invalid_json", {"body": '[{"service": 1, "rate": '}, "invalid_json"),
    ("invalid_json", {}, "html"),  # the default body: a PHP notice before the JSON
    ("error", {"message": "Service temporarily unavailable"}, "api_error"),
    ("drop", {}, "timeout"),
]


@pytest.mark.parametrize(("mode", "spec", "kind"), FAULTS, ids=[f"{f[0]}-{f[2]}" for f in FAULTS])
def test_a_failed_sync_writes_nothing_and_says_why(
    sandbox_provider, clean_sandbox, catalog_settings, caplog, mode, spec, kind
):
    sandbox_provider.read_timeout = 1
    sandbox_provider.save(update_fields=["read_timeout"])
    catalog_sync_provider(provider=sandbox_provider)
    services = catalog_import_services(provider=sandbox_provider, upstream_ids=["1", "2"])
    before = list(UpstreamService.objects.values_list("service_id", "rate", "removed_at"))
    changes, synced_at = CatalogChange.objects.count(), sandbox_provider.last_sync_at
    clean_sandbox.set_fault(mode, actions=["services"], count=1, **spec)
    with caplog.at_level(logging.WARNING), pytest.raises(CatalogSyncError) as failure:
        catalog_sync_provider(provider=sandbox_provider)
    assert kind in str(failure.value)
    assert list(UpstreamService.objects.values_list("service_id", "rate", "removed_at")) == before
    assert CatalogChange.objects.count() == changes
    assert all(s.is_enabled for s in Service.objects.filter(pk__in=[s.pk for s in services]))
    sandbox_provider.refresh_from_db()
    assert sandbox_provider.last_sync_at == synced_at
    assert kind in sandbox_provider.last_sync_error
    call = ProviderCall.objects.filter(provider=sandbox_provider, action="services").first()
    assert not call.ok and call.error_kind == kind
    assert "failed, nothing written" in caplog.text
    # The fault was for one request: the next sync works and clears the error.
    catalog_sync_provider(provider=sandbox_provider)
    sandbox_provider.refresh_from_db()
    assert sandbox_provider.last_sync_error == ""


def test_connection_refused_is_a_clear_failure(db, catalog_settings):
    from providers.services import provider_create

    provider = provider_create(name="down", api_url="http://127.0.0.1:9/api/v2", api_key="k")
    with pytest.raises(CatalogSyncError, match="connect"):
        catalog_sync_provider(provider=provider)
    provider.refresh_from_db()
    assert "connect" in provider.last_sync_error
    assert not UpstreamService.objects.exists()
