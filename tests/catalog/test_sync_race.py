"""A hand-set price made while a sync is running survives the sync (a real race on PostgreSQL)."""

import threading
import time
from decimal import Decimal as D

import pytest
from django.db import connection

from catalog.models import Service
from catalog.services import catalog_import_services, catalog_sync_provider, service_set_price
from catalog.services import sync as catalog_sync

pytestmark = pytest.mark.django_db(transaction=True)


def test_price_set_by_hand_during_a_sync_is_not_overwritten(
    provider, upstream, catalog_settings, monkeypatch
):
    catalog_sync_provider(provider=provider)
    (service,) = catalog_import_services(provider=provider, upstream_ids=["2"])
    assert service.rate == D("3.00000000")  # cost 2.00 + 50 %
    upstream.set_rate(2, "2.10")  # a small rise: this sync re-prices the service to 3.15
    services_read = threading.Event()
    real_refresh = catalog_sync._refresh_services

    def slow_refresh(services, **kwargs):
        # The sync has read the provider's services; give the admin time to change one.
        services_read.set()
        time.sleep(0.5)
        return real_refresh(services, **kwargs)

    monkeypatch.setattr(catalog_sync, "_refresh_services", slow_refresh)
    errors: list[BaseException] = []

    def in_thread(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connection.close()

        return threading.Thread(target=run)

    sync = in_thread(lambda: catalog_sync_provider(provider=provider))
    admin = in_thread(lambda: service_set_price(service=service, rate=D("9.99")))
    sync.start()
    assert services_read.wait(10)
    admin.start()
    sync.join(20)
    admin.join(20)
    assert not errors
    service = Service.objects.get(pk=service.pk)
    assert (service.rate, service.pricing) == (D("9.99"), Service.Pricing.FIXED)
