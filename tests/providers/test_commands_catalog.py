# ruff: noqa: F811 - the fixtures imported from tests.catalog.conftest are used as arguments
"""add_provider, sync_catalog, import_services and check_provider_balances via call_command."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import Service, UpstreamService
from providers.models import Provider
from tests.catalog.conftest import (  # noqa: F401 - fixtures
    catalog_settings,
    clean_sandbox,
    provider,
    sandbox,
    sandbox_provider,
    upstream,
)
from tests.catalog.upstream import item

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_add_provider_registers_and_tests_the_sandbox(db, clean_sandbox):
    out = run("add_provider", "demo", clean_sandbox.url, clean_sandbox.key, "--currency", "usd")
    assert "Registered provider demo" in out and "Connection OK" in out
    assert "services:" in out and "balance:" in out
    provider = Provider.objects.get(name="demo")
    assert provider.currency == "USD" and provider.api_key == clean_sandbox.key
    assert clean_sandbox.key not in out  # the key is never printed


def test_add_provider_with_a_bad_key_keeps_nothing(db, clean_sandbox):
    with pytest.raises(CommandError, match="connection test failed"):
        run("add_provider", "demo", clean_sandbox.url, "wrong-key")
    assert not Provider.objects.exists()


def test_add_provider_rejects_bad_input(db):
    with pytest.raises(CommandError, match="api_url"):
        run("add_provider", "demo", "ftp://nope", "k", "--no-test")
    with pytest.raises(CommandError, match="--markup"):
        run("add_provider", "demo", "https://x.example/api/v2", "k", "--markup", "lots")
    with pytest.raises(CommandError, match="exchange_rate"):
        run("add_provider", "demo", "https://x.example/api/v2", "k", "--exchange-rate", "0",
            "--no-test")  # fmt: skip
    assert not Provider.objects.exists()


def test_add_provider_duplicate_name(provider):
    with pytest.raises(CommandError, match="name"):
        run("add_provider", "acme", "https://x.example/api/v2", "k", "--no-test")


def test_sync_catalog_prints_progress_and_summary(provider, upstream, catalog_settings):
    out = run("sync_catalog", "--provider", "ACME")
    assert "fetching the catalog" in out and "5 new" in out
    upstream.set_rate(1, "9.00")
    out = run("sync_catalog")
    assert "1 price changes" in out


def test_sync_catalog_failure_exits_non_zero(provider, upstream):
    upstream.catalog.append({"service": 99, "rate": "1", "min": 1, "max": 2})
    upstream.shutdown()
    upstream.server_close()
    Provider.objects.filter(pk=provider.pk).update(connect_timeout=0.5)
    with pytest.raises(CommandError, match="1 of 1 provider syncs failed"):
        run("sync_catalog", "--provider", "acme")
    assert not UpstreamService.objects.exists()


def test_sync_catalog_unknown_provider(db):
    with pytest.raises(CommandError, match="No provider called 'nope'"):
        run("sync_catalog", "--provider", "nope")


def test_import_services_prints_the_panel_ids(provider, catalog_settings):
    run("sync_catalog")
    out = run("import_services", "--provider", "acme", "--service", "2", "--service", "3,1",
              "--markup", "10", "--category", "Cheap")  # fmt: skip
    lines = [line.split("\t") for line in out.splitlines() if "\t" in line]
    assert [line[1] for line in lines] == ["2", "3", "1"]
    services = Service.objects.in_bulk([int(line[0]) for line in lines])
    assert {s.category.name for s in services.values()} == {"Cheap"}
    assert services[int(lines[0][0])].rate == Decimal("2.2")
    again = run("import_services", "--provider", "acme", "--all")
    assert Service.objects.count() == 5 and "5 services in the panel" in again


def test_import_services_errors(provider, catalog_settings):
    run("sync_catalog")
    with pytest.raises(CommandError, match="No active upstream service 42"):
        run("import_services", "--provider", "acme", "--service", "42")
    with pytest.raises(CommandError, match="--markup"):
        run("import_services", "--provider", "acme", "--all", "--markup", "x")
    with pytest.raises(CommandError, match="above -100"):
        run("import_services", "--provider", "acme", "--all", "--markup", "-100")
    # Service.markup_percent holds 2 decimal places and less than 1,000,000: the database would
    # round 12.345 silently and overflow on 999999.999 (a traceback, not a message).
    for markup in ("12.345", "999999.999"):
        with pytest.raises(CommandError, match="2 decimal places"):
            run("import_services", "--provider", "acme", "--all", "--markup", markup)
    with pytest.raises(CommandError):
        run("import_services", "--provider", "acme")  # neither --all nor --service
    assert not Service.objects.exists()


def test_check_provider_balances(provider, upstream):
    out = run("check_provider_balances")
    assert "acme: 100.00000 USD" in out


def test_sync_catalog_allow_mass_removal(provider, upstream, catalog_settings):
    upstream.catalog = [item(i) for i in range(1, 31)]
    run("sync_catalog")
    upstream.catalog = upstream.catalog[:1]
    with pytest.raises(CommandError):
        run("sync_catalog", "--provider", "acme")
    assert not UpstreamService.objects.filter(removed_at__isnull=False).exists()
    assert "29 removed" in run("sync_catalog", "--provider", "acme", "--allow-mass-removal")
