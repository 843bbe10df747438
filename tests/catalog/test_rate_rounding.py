"""Staff's retail rate rounding rule (CatalogSettings.rate_rounding) through the catalog's
services and the admin: new imports, the next sync, and a change of the rule re-pricing the
existing rates at once."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from catalog.models import CatalogSettings, PriceChange, Service
from catalog.pricing import Rounding
from catalog.services import catalog_import_services, catalog_sync_provider
from providers.services import provider_create
from tests.catalog.upstream import CatalogServer, item

pytestmark = pytest.mark.django_db


@pytest.fixture
def odd_upstream():
    """Costs whose 50 % markup gives rates like 4.99995 (3.3333 * 1.5)."""
    with CatalogServer([item(1, rate="3.3333"), item(2, rate="0.0021")]) as server:
        yield server


@pytest.fixture
def odd_provider(db, odd_upstream):
    return provider_create(name="odd", api_url=odd_upstream.url, api_key=odd_upstream.key)


def _rule(mode: Rounding, **fields) -> CatalogSettings:
    settings = CatalogSettings.load()
    settings.default_markup_percent = D("50")
    settings.rate_rounding = mode.value
    for name, value in fields.items():
        setattr(settings, name, value)
    settings.save()
    return settings


def _rates() -> list[D]:
    return [s.rate for s in Service.objects.order_by("upstream__service_id")]


def test_import_rounds_to_the_step(odd_provider):
    _rule(Rounding.STEP, rate_rounding_step=D("0.01"))
    catalog_sync_provider(provider=odd_provider)
    catalog_import_services(provider=odd_provider, all=True)
    # 4.99995 → 5.00; 0.00315 rounds up to 0.01, never to zero (nor below its cost 0.0021).
    assert _rates() == [D("5.00"), D("0.01")]


def test_significant_digits_keep_small_rates_readable(odd_provider):
    _rule(Rounding.SIGNIFICANT, rate_rounding_digits=3)
    catalog_sync_provider(provider=odd_provider)
    catalog_import_services(provider=odd_provider, all=True)
    assert _rates() == [D("5.00"), D("0.00315")]


def test_without_a_rule_the_rates_keep_their_digits(odd_provider):
    _rule(Rounding.NONE)
    catalog_sync_provider(provider=odd_provider)
    catalog_import_services(provider=odd_provider, all=True)
    assert _rates() == [D("4.99995"), D("0.00315")]


def test_rounding_never_goes_below_cost_at_zero_markup(odd_provider):
    settings = _rule(Rounding.STEP, rate_rounding_step=D("0.01"))
    settings.default_markup_percent = D("0")
    settings.save()
    catalog_sync_provider(provider=odd_provider)
    catalog_import_services(provider=odd_provider, all=True)
    assert _rates() == [D("3.34"), D("0.01")]  # 3.3333 half up would be 3.33, below the cost


def test_changing_the_rule_in_admin_rerounds_the_existing_rates(client, staff, odd_provider):
    _rule(Rounding.NONE)
    catalog_sync_provider(provider=odd_provider)
    catalog_import_services(provider=odd_provider, all=True)
    assert _rates() == [D("4.99995"), D("0.00315")]
    client.force_login(staff)
    url = reverse("admin:catalog_catalogsettings_change", args=[1])
    data = {
        "default_markup_percent": "50",
        "price_rise_hold_percent": "20",
        "rate_rounding": "step",
        "rate_rounding_step": "0.01",
        "rate_rounding_digits": "4",
    }
    response = client.post(url, data, follow=True)
    assert response.status_code == 200 and "2 services re-priced" in response.content.decode()
    assert _rates() == [D("5.00"), D("0.01")]
    change = PriceChange.objects.filter(new_rate=D("5.00")).get()
    assert change.old_rate == D("4.99995")
    # The next sync keeps the rounded rates (nothing to change).
    catalog_sync_provider(provider=odd_provider)
    assert _rates() == [D("5.00"), D("0.01")]


def test_admin_refuses_a_zero_step(client, staff):
    client.force_login(staff)
    CatalogSettings.load()
    url = reverse("admin:catalog_catalogsettings_change", args=[1])
    data = {
        "default_markup_percent": "50",
        "price_rise_hold_percent": "20",
        "rate_rounding": "step",
        "rate_rounding_step": "0",
        "rate_rounding_digits": "4",
    }
    response = client.post(url, data)
    assert response.status_code == 200 and "errornote" in response.content.decode()
    assert CatalogSettings.load().rate_rounding == "none"
