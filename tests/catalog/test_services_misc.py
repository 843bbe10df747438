"""Import rules, bulk markup, manual disable and the failover candidates for the orders app."""

from decimal import Decimal as D

import pytest

from catalog.models import PriceChange, Service, ServiceBackup, UpstreamService
from catalog.selectors import service_cost, service_upstream_candidates
from catalog.services import (
    CatalogError,
    catalog_apply_markup,
    catalog_import_services,
    catalog_sync_provider,
    service_disable,
    service_enable,
    service_set_price,
)
from providers.models import Provider
from providers.services import provider_create
from tests.catalog.upstream import CatalogServer, item

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(provider, catalog_settings):
    catalog_sync_provider(provider=provider)
    return provider


def test_import_is_idempotent_and_keeps_the_order_asked(synced):
    first = catalog_import_services(provider=synced, upstream_ids=["3", "1"])
    again = catalog_import_services(provider=synced, upstream_ids=["1", "3", "2"])
    assert [s.pk for s in again[:2]] == [first[1].pk, first[0].pk]
    assert Service.objects.count() == 3
    assert PriceChange.objects.filter(old_rate__isnull=True).count() == 3


def test_import_refuses_unknown_removed_and_unsupported(synced, upstream):
    with pytest.raises(CatalogError, match="No active upstream service 77"):
        catalog_import_services(provider=synced, upstream_ids=["1", "77"])
    upstream.remove(2)
    upstream.catalog[0]["type"] = "Teleport"
    catalog_sync_provider(provider=synced)
    with pytest.raises(CatalogError, match="No active upstream service 2"):
        catalog_import_services(provider=synced, upstream_ids=["2"])
    with pytest.raises(CatalogError, match="Unsupported order type: #1 'Teleport'"):
        catalog_import_services(provider=synced, upstream_ids=["1"])
    with pytest.raises(CatalogError, match="either"):
        catalog_import_services(provider=synced)
    assert not Service.objects.exists()
    assert len(catalog_import_services(provider=synced, all=True)) == 3  # 2 gone, 1 skipped


def test_import_clamps_zero_min_and_keeps_upstream_text(db, catalog_settings):
    with CatalogServer([item(1, min="0", name="", desc="a\nb <i>x</i>")]) as server:
        provider = provider_create(name="z", api_url=server.url, api_key=server.key)
        catalog_sync_provider(provider=provider)
        (service,) = catalog_import_services(provider=provider, all=True)
    assert service.min == 1 and service.name == "z #1" and service.description == "a\nb <i>x</i>"


def test_apply_markup_in_bulk_turns_fixed_back_to_markup(synced):
    services = catalog_import_services(provider=synced, upstream_ids=["1", "2"])
    service_set_price(service=services[0], rate=D("7"))
    assert catalog_apply_markup(services=services, markup_percent=D("100")) == 2
    rates = sorted(Service.objects.values_list("rate", "pricing"))
    assert rates == [(D("2"), "markup"), (D("4"), "markup")]
    with pytest.raises(CatalogError):
        catalog_apply_markup(services=services, markup_percent=D("-100"))


def test_manual_disable_and_enable(synced):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["1"])
    service_disable(service=service, reason="Too many complaints")
    service.refresh_from_db()
    assert not service.is_enabled and service.disabled_cause == "manual"
    catalog_sync_provider(provider=synced)
    service.refresh_from_db()
    assert not service.is_enabled  # a sync never re-enables what an admin disabled
    service_enable(service=service)
    service.refresh_from_db()
    assert service.is_enabled and service.disabled_reason == ""


def test_enable_refuses_a_service_that_cannot_be_served_or_sells_below_cost(synced):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["1"])
    service_disable(service=service, reason="checking")
    Service.objects.filter(pk=service.pk).update(rate=D("0.5"))  # upstream costs 1.00
    service.refresh_from_db()
    with pytest.raises(CatalogError, match="below the cost"):
        service_enable(service=service)
    service.allow_below_cost = True
    UpstreamService.objects.filter(pk=service.upstream_id).update(removed_at="2026-01-01T00:00Z")
    service.upstream.refresh_from_db()
    with pytest.raises(CatalogError, match="removed at the provider"):
        service_enable(service=service)
    UpstreamService.objects.filter(pk=service.upstream_id).update(removed_at=None)
    service.upstream.refresh_from_db()
    Provider.objects.filter(pk=synced.pk).update(is_enabled=False)
    service.upstream.provider.refresh_from_db()
    with pytest.raises(CatalogError, match="is disabled"):
        service_enable(service=service)
    service.refresh_from_db()
    assert not service.is_enabled


def test_upstream_candidates_for_failover(synced, upstream):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["1"])
    with CatalogServer([item(9), item(10)]) as other_server:
        other = provider_create(name="other", api_url=other_server.url, api_key=other_server.key)
        catalog_sync_provider(provider=other)
    b9 = UpstreamService.objects.get(provider=other, service_id="9")
    b10 = UpstreamService.objects.get(provider=other, service_id="10")
    ServiceBackup.objects.create(service=service, upstream=b9, priority=2)
    ServiceBackup.objects.create(service=service, upstream=b10, priority=1)
    ups = service_upstream_candidates(service=service)
    assert [(u.provider.name, u.service_id) for u in ups] == [
        ("acme", "1"), ("other", "10"), ("other", "9")
    ]  # fmt: skip
    Provider.objects.filter(pk=other.pk).update(is_enabled=False)
    UpstreamService.objects.filter(service_id="1").update(removed_at="2026-01-01T00:00Z")
    service.refresh_from_db()
    assert service_upstream_candidates(service=service) == []


def test_service_cost_of_the_service_or_of_a_backup_in_the_panel_currency(synced):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["2"])
    with CatalogServer([item(9, rate="3.00")]) as other_server:
        other = provider_create(name="other", api_url=other_server.url, api_key=other_server.key)
        catalog_sync_provider(provider=other)
    Provider.objects.filter(pk=other.pk).update(exchange_rate=D("0.5"))
    backup = UpstreamService.objects.select_related("provider").get(provider=other)
    assert service_cost(service) == D("2.00000000")
    assert service_cost(service, upstream=backup) == D("1.50000000")
    manual = Service(category=service.category, name="by hand", rate=D(1))
    assert service_cost(manual) is None


def test_approving_or_pricing_by_hand_re_enables_only_a_price_paused_service(synced):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["2"])
    service_disable(service=service, reason="held", cause=Service.DisabledCause.PRICE_HOLD)
    service_set_price(service=service, rate=D("5"))
    service.refresh_from_db()
    assert service.is_enabled and service.disabled_cause == Service.DisabledCause.NONE
    service_disable(service=service, reason="by an admin")
    service_set_price(service=service, rate=D("6"))
    service.refresh_from_db()
    assert not service.is_enabled and service.disabled_cause == Service.DisabledCause.MANUAL
