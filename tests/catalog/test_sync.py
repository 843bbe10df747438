"""catalog_sync_provider on PostgreSQL against a loopback upstream whose catalog we control."""

import logging
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import CatalogChange, Category, PriceChange, Service, UpstreamService
from catalog.services import (
    CatalogSyncError,
    catalog_import_services,
    catalog_sync_provider,
    service_approve_held_price,
    service_set_price,
)
from providers.models import Provider
from tests.catalog.upstream import CatalogServer, item

pytestmark = pytest.mark.django_db


def _kinds(provider):
    return sorted(CatalogChange.objects.filter(provider=provider).values_list("kind", flat=True))


def _import(provider, *ids, **kw):
    return catalog_import_services(provider=provider, upstream_ids=[str(i) for i in ids], **kw)


def _fresh(service):
    return Service.objects.select_related("upstream").get(pk=service.pk)


def test_first_sync_stores_every_field_as_received(provider, upstream, catalog_settings):
    upstream.catalog[0].update(name="<b>Likes</b> & more", desc="line 1\nline 2", rate=0.0035)
    report = catalog_sync_provider(provider=provider)
    assert (report.upstream_total, report.new) == (5, 5)
    row = UpstreamService.objects.get(provider=provider, service_id="1")
    assert row.name == "<b>Likes</b> & more"  # stored as received, escaped only when shown
    assert row.description == "line 1\nline 2"
    assert row.rate == D("0.0035")  # a JSON number kept exact, never through float
    assert row.raw["rate"] == "0.0035" and row.raw["desc"] == "line 1\nline 2"
    assert (row.min, row.max, row.refill, row.cancel, row.dripfeed) == (
        10,
        10000,
        True,
        True,
        False,
    )
    assert _kinds(provider) == ["new"] * 5
    provider.refresh_from_db()
    assert provider.last_sync_at is not None and provider.last_sync_error == ""


def test_resync_without_changes_records_nothing(provider, catalog_settings):
    catalog_sync_provider(provider=provider)
    report = catalog_sync_provider(provider=provider)
    assert report.changes == 0
    assert CatalogChange.objects.count() == 5


def test_every_kind_of_change_is_recorded(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    upstream.set_rate(1, "1.10")
    upstream.catalog[1].update(min="20", max="500")
    upstream.catalog[2].update(name="Renamed", dripfeed=True)
    removed = upstream.remove(4)
    upstream.catalog.append(item(6))
    report = catalog_sync_provider(provider=provider)
    assert (report.new, report.price, report.limits, report.details, report.removed) == (
        1,
        1,
        1,
        1,
        1,
    )
    price = CatalogChange.objects.get(kind="price")
    assert (price.old, price.new) == ({"rate": "1.00000000"}, {"rate": "1.10000000"})
    details = CatalogChange.objects.get(kind="details")
    assert details.old == {"name": "Followers 3", "dripfeed": False}
    gone = UpstreamService.objects.get(provider=provider, service_id="4")
    assert gone.removed_at is not None
    upstream.catalog.append(removed)
    report = catalog_sync_provider(provider=provider)
    assert report.restored == 1
    gone.refresh_from_db()
    assert gone.removed_at is None


def test_query_count_does_not_grow_with_the_catalog(db, catalog_settings):
    counts = []
    for size in (50, 500):
        with CatalogServer([item(i, rate="1.00") for i in range(1, size + 1)]) as server:
            provider = Provider.objects.filter(name=f"p{size}").first()
            from providers.services import provider_create

            provider = provider_create(name=f"p{size}", api_url=server.url, api_key=server.key)
            catalog_sync_provider(provider=provider)
            catalog_import_services(provider=provider, all=True)
            for entry in server.catalog[: size // 10]:
                entry["rate"] = "1.10"
            with CaptureQueriesContext(connection) as first:
                catalog_sync_provider(provider=provider)
            counts.append(len(first.captured_queries))
    assert counts[1] <= counts[0] + 2, counts
    assert counts[1] < 30


def test_markup_rules_global_provider_category_service_and_exchange_rate(
    provider, upstream, catalog_settings
):
    catalog_sync_provider(provider=provider)
    (s0,) = _import(provider, 5)
    assert s0.rate == D("7.5")  # global 50%
    Provider.objects.filter(pk=provider.pk).update(markup_percent=D("100"), exchange_rate=D("2"))
    s1, s2, s3, s4 = _import(provider, 1, 2, 3, 4)
    own_cat = Category.objects.create(name="VIP", markup_percent=D("10"))
    Service.objects.filter(pk=s3.pk).update(category=own_cat)
    Service.objects.filter(pk=s4.pk).update(markup_percent=D("5"))
    upstream.set_rate(1, "1.10")  # a small rise: every service is re-priced by a sync
    catalog_sync_provider(provider=provider)
    assert _fresh(s1).rate == D("4.4")  # 1.10 x 2 (exchange) x 2 (provider 100%)
    assert _fresh(s2).rate == D("8")  # 2 x 2 x 2
    assert _fresh(s3).rate == D("6.6")  # 3 x 2 x 1.10 (category beats provider)
    assert _fresh(s4).rate == D("8.4")  # 4 x 2 x 1.05 (service beats category)
    change = PriceChange.objects.filter(service=s1).first()
    assert change.old_rate == D("4") and change.new_rate == D("4.4") and change.changed_by is None
    # s0 was priced at exchange rate 1: the doubled cost is a rise above the threshold, held.
    assert _fresh(s0).rate == D("7.5") and _fresh(s0).held_rate == D("20")


def test_fixed_price_is_never_overwritten(provider, upstream, catalog_settings, staff):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 2)
    service_set_price(service=service, rate=D("9.99"), changed_by=staff)
    upstream.set_rate(2, "2.20")
    catalog_sync_provider(provider=provider)
    service = _fresh(service)
    assert service.rate == D("9.99") and service.pricing == Service.Pricing.FIXED
    assert PriceChange.objects.filter(service=service).first().changed_by == staff


def test_fixed_price_below_new_cost_pauses_the_service(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 2)
    service_set_price(service=service, rate=D("2.5"))
    upstream.set_rate(2, "3.00")
    catalog_sync_provider(provider=provider)
    service = _fresh(service)
    assert not service.is_enabled and service.disabled_cause == "below_cost"
    assert "below the cost" in service.disabled_reason


def test_big_rise_is_held_and_kept_at_the_old_price(provider, upstream, catalog_settings, staff):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 2)  # cost 2 → rate 3
    upstream.set_rate(2, "2.60")  # +30% > 20%: held; 3 is still above the new cost
    report = catalog_sync_provider(provider=provider)
    assert report.held == 1
    service = _fresh(service)
    assert service.rate == D("3") and service.is_enabled
    assert (service.held_rate, service.held_cost) == (D("3.9"), D("2.6"))
    service_approve_held_price(service=service, approved_by=staff)
    service = _fresh(service)
    assert (
        service.rate == D("3.9") and service.held_rate is None and service.priced_cost == D("2.6")
    )
    assert PriceChange.objects.filter(service=service).first().changed_by == staff


def test_big_rise_pauses_the_service_when_its_policy_says_so(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 2)
    Service.objects.filter(pk=service.pk).update(hold_policy=Service.HoldPolicy.PAUSE)
    upstream.set_rate(2, "2.60")
    catalog_sync_provider(provider=provider)
    service = _fresh(service)
    assert not service.is_enabled and service.disabled_cause == "price_hold"
    assert "rose 30.0%" in service.disabled_reason
    service_approve_held_price(service=service)
    service = _fresh(service)
    assert service.is_enabled and service.rate == D("3.9") and service.disabled_reason == ""


def test_held_rise_that_goes_away_releases_the_hold(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 2)
    Service.objects.filter(pk=service.pk).update(hold_policy=Service.HoldPolicy.PAUSE)
    upstream.set_rate(2, "2.60")
    catalog_sync_provider(provider=provider)
    upstream.set_rate(2, "2.10")
    catalog_sync_provider(provider=provider)
    service = _fresh(service)
    assert service.is_enabled and service.held_rate is None and service.rate == D("3.15")


def test_never_below_cost_unless_allowed(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    a, b = _import(provider, 1, 2, markup_percent=D("-20"))
    assert a.rate == D("1")  # clamped to the cost
    Service.objects.filter(pk=b.pk).update(allow_below_cost=True)
    upstream.set_rate(2, "2.10")
    catalog_sync_provider(provider=provider)
    assert _fresh(b).rate == D("1.68")
    with pytest.raises(Exception, match="below the cost"):
        service_set_price(service=a, rate=D("0.5"))


def test_removed_upstream_disables_mapped_services_with_a_reason(
    provider, upstream, catalog_settings
):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 3)
    removed = upstream.remove(3)
    report = catalog_sync_provider(provider=provider)
    assert report.disabled == 1
    service = _fresh(service)
    assert Service.objects.filter(pk=service.pk).exists()  # disabled, not deleted
    assert not service.is_enabled and service.disabled_cause == "upstream_removed"
    assert "#3 disappeared from acme" in service.disabled_reason
    upstream.catalog.append(removed)
    report = catalog_sync_provider(provider=provider)
    assert report.enabled == 1
    service = _fresh(service)
    assert service.is_enabled and service.disabled_reason == ""


def test_restored_upstream_does_not_re_enable_a_service_an_admin_disabled(
    provider, upstream, catalog_settings
):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 3)
    Service.objects.filter(pk=service.pk).update(
        is_enabled=False, disabled_cause="manual", disabled_reason="Bad quality"
    )
    removed = upstream.remove(3)
    catalog_sync_provider(provider=provider)
    upstream.catalog.append(removed)
    catalog_sync_provider(provider=provider)
    service = _fresh(service)
    assert not service.is_enabled and service.disabled_reason == "Bad quality"


def test_upstream_narrowing_limits_and_dropping_flags_follow(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 1)
    upstream.catalog[0].update(min="50", max="5000", refill=False)
    catalog_sync_provider(provider=provider)
    service = _fresh(service)
    assert (service.min, service.max, service.refill, service.cancel) == (50, 5000, False, True)


def test_upstream_type_change_disables_the_service(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 1)
    upstream.catalog[0]["type"] = "Package"
    catalog_sync_provider(provider=provider)
    service = _fresh(service)
    assert not service.is_enabled and service.disabled_cause == "upstream_changed"


def test_empty_answer_is_refused_and_changes_nothing(provider, upstream, catalog_settings, caplog):
    catalog_sync_provider(provider=provider)
    (service,) = _import(provider, 1)
    upstream.catalog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(CatalogSyncError, match="empty catalog"):
        catalog_sync_provider(provider=provider)
    assert UpstreamService.objects.filter(removed_at__isnull=False).count() == 0
    assert _fresh(service).is_enabled
    provider.refresh_from_db()
    assert "empty catalog" in provider.last_sync_error
    assert "nothing written" in caplog.text


def test_unreadable_item_is_skipped_but_not_treated_as_removed(
    provider, upstream, catalog_settings
):
    catalog_sync_provider(provider=provider)
    upstream.catalog[0]["rate"] = "n/a"
    report = catalog_sync_provider(provider=provider)
    assert report.skipped == 1 and report.removed == 0
    assert UpstreamService.objects.get(service_id="1").removed_at is None


def test_auto_import_of_new_services(provider, upstream, catalog_settings):
    catalog_sync_provider(provider=provider)
    catalog_settings.auto_import_new_services = True
    catalog_settings.save()
    upstream.catalog.append(item(7, rate="2.00", category="New stuff"))
    report = catalog_sync_provider(provider=provider)
    assert report.imported == 1
    service = Service.objects.get(upstream__service_id="7")
    assert service.category.name == "New stuff" and service.rate == D("3")


def test_auto_import_is_off_by_default(provider, upstream, db):
    catalog_sync_provider(provider=provider)
    upstream.catalog.append(item(7))
    catalog_sync_provider(provider=provider)
    assert not Service.objects.exists()


def test_mass_removal_is_refused_unless_allowed(db, catalog_settings):
    with CatalogServer([item(i) for i in range(1, 41)]) as server:
        from providers.services import provider_create

        provider = provider_create(name="big", api_url=server.url, api_key=server.key)
        catalog_sync_provider(provider=provider)
        services = catalog_import_services(provider=provider, all=True)
        del server.catalog[5:]  # a partial answer: 35 of 40 gone
        with pytest.raises(CatalogSyncError, match="35 of 40 services would be marked removed"):
            catalog_sync_provider(provider=provider)
        assert (
            Service.objects.filter(pk__in=[s.pk for s in services], is_enabled=True).count() == 40
        )
        report = catalog_sync_provider(provider=provider, allow_mass_removal=True)
        assert report.removed == 35 and report.disabled == 35
