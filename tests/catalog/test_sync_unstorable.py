"""One service the database cannot store never fails a whole catalog sync (issue 11, point 4):
NUL and lone surrogates are cleaned by the client, a row no column can hold is skipped with its
reason, and a write the database still refuses fails the sync clearly with nothing written."""

from decimal import Decimal as D

import pytest
from django.db import DataError

from catalog.models import CatalogChange, UpstreamService
from catalog.services import CatalogSyncError, catalog_sync_provider
from catalog.services import sync as sync_module
from providers.models import ProviderCall
from providers.schemas import ServiceList
from providers.schemas import UpstreamService as FetchedService
from tests.catalog.upstream import item

pytestmark = pytest.mark.django_db

NUL, LONE = "\x00", "\ud800"


def _names(provider) -> dict[str, str]:
    return dict(UpstreamService.objects.filter(provider=provider).values_list("service_id", "name"))


def test_sync_of_the_sandbox_with_nul_in_every_text_succeeds_clean(
    sandbox_provider, clean_sandbox, catalog_settings
):
    clean_sandbox.set_fault("nul_text", actions=["services"], count=1)
    report = catalog_sync_provider(provider=sandbox_provider)
    assert report.new == report.upstream_total > 10 and report.skipped == 0
    row = UpstreamService.objects.get(provider=sandbox_provider, service_id="1")
    assert row.name == "Instagram Followers [Refill 30D]\ufffd"  # the NUL gone, the surrogate shown
    assert row.category.startswith("Instagram") and NUL not in row.description
    assert row.raw["name"] == row.name and row.rate == D("0.90")
    sandbox_provider.refresh_from_db()
    assert sandbox_provider.last_sync_error == ""
    call = ProviderCall.objects.get(provider=sandbox_provider, action="services")
    assert call.ok


def test_nul_in_one_name_from_an_upstream_leaves_the_others_synced(
    provider, upstream, catalog_settings
):
    upstream.catalog[1].update(name=f"Lik{NUL}es{LONE}", desc=f"a{NUL}b")
    report = catalog_sync_provider(provider=provider)
    assert (report.new, report.skipped) == (5, 0)
    assert _names(provider)["2"] == "Likes\ufffd"
    assert UpstreamService.objects.get(provider=provider, service_id="2").description == "ab"


def test_a_service_id_longer_than_the_column_is_skipped_with_its_reason(
    provider, upstream, catalog_settings
):
    upstream.catalog.append(item(1, name="Long id") | {"service": "x" * 70})
    report = catalog_sync_provider(provider=provider)
    assert (report.new, report.skipped) == (5, 1)
    assert "not an id" in report.skipped_reasons[0]
    assert sorted(_names(provider)) == ["1", "2", "3", "4", "5"]


def _fetched(service_id: str, name: str, raw_extra: dict | None = None) -> FetchedService:
    raw = {"service": service_id, "name": name, **(raw_extra or {})}
    return FetchedService(
        service_id=service_id,
        name=name,
        type="Default",
        category="Cat",
        rate=D("1.5"),
        min=10,
        max=100,
        refill=False,
        cancel=False,
        dripfeed=False,
        description="",
        raw=raw,
    )


def test_an_unwritable_item_not_cleaned_by_the_client_is_skipped_not_fatal(
    provider, monkeypatch, catalog_settings
):
    # A ServiceList from anywhere (not our client, which cleans): the sync checks every row.
    catalog_sync_provider(provider=provider)  # 1..5 known
    fetched = ServiceList(
        [
            *(_fetched(str(i), f"Followers {i}") for i in range(1, 5)),
            _fetched("5", f"Bad{NUL}name"),
            _fetched("6", "Bad raw", {"desc": f"x{LONE}"}),
            _fetched("7", "Fine"),
        ]
    )
    monkeypatch.setattr(sync_module, "provider_call", lambda *args, **kwargs: fetched)
    report = catalog_sync_provider(provider=provider)
    assert (report.new, report.skipped, report.removed) == (1, 2, 0)
    assert [r.split(":")[0] for r in report.skipped_reasons] == ["5", "6"]
    assert all("cannot store" in r for r in report.skipped_reasons)
    names = _names(provider)
    assert names["7"] == "Fine" and names["5"] == "Followers 5"  # kept as it was, not removed
    assert UpstreamService.objects.get(provider=provider, service_id="5").removed_at is None


def test_a_write_the_database_refuses_fails_the_sync_clearly_with_nothing_written(
    provider, upstream, monkeypatch, catalog_settings
):
    catalog_sync_provider(provider=provider)
    upstream.set_rate(1, "9.00")
    before = list(UpstreamService.objects.values_list("service_id", "rate"))
    changes = CatalogChange.objects.count()

    def refuse(*args, **kwargs):
        raise DataError("value too long for type character varying(64)")

    monkeypatch.setattr(sync_module.CatalogChange.objects, "bulk_create", refuse)
    with pytest.raises(CatalogSyncError, match="the database refused a write, nothing written"):
        catalog_sync_provider(provider=provider)
    assert list(UpstreamService.objects.values_list("service_id", "rate")) == before
    assert CatalogChange.objects.count() == changes
    provider.refresh_from_db()
    assert "the database refused a write" in provider.last_sync_error
