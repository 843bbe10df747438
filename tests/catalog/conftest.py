from decimal import Decimal

import pytest

from catalog.models import CatalogSettings
from providers.sandbox.testing import SandboxServer
from providers.services import provider_create
from tests.catalog.upstream import CatalogServer, item


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox provider over real HTTP, shared by the tests of a run (faults are cleared
    after each test that sets them)."""
    with SandboxServer(speed=1) as server:
        yield server


@pytest.fixture
def clean_sandbox(sandbox):
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()


@pytest.fixture
def sandbox_provider(db, clean_sandbox):
    return provider_create(name="sandbox", api_url=clean_sandbox.url, api_key=clean_sandbox.key)


@pytest.fixture
def upstream():
    """A loopback upstream with a catalog the test controls: ids 1..5 at rates 1..5."""
    with CatalogServer([item(i, rate=f"{i}.00") for i in range(1, 6)]) as server:
        yield server


@pytest.fixture
def provider(db, upstream):
    return provider_create(name="acme", api_url=upstream.url, api_key=upstream.key)


@pytest.fixture
def catalog_settings(db):
    settings = CatalogSettings.load()
    settings.default_markup_percent = Decimal("50")
    settings.price_rise_hold_percent = Decimal("20")
    settings.save()
    return settings
