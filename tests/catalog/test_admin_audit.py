"""Admin changes to providers, prices and the pricing rules land in the audit log (issue 7)."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from accounts.models import AdminAuditLog
from catalog.models import Service
from catalog.services import catalog_import_services, catalog_sync_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_provider_change_is_audited_without_the_key(admin_client, provider, staff):
    url = reverse("admin:providers_provider_change", args=[provider.pk])
    data = {
        "name": "acme", "api_url": provider.api_url, "api_key": "new-secret-key-4321",
        "currency": "USD", "exchange_rate": "1.25", "is_enabled": "on", "connect_timeout": "5",
        "read_timeout": "30", "status_batch_size": "100", "markup_percent": "",
        "low_balance_threshold": "",
    }  # fmt: skip
    assert admin_client.post(url, data).status_code == 302
    row = AdminAuditLog.objects.get(object_type="providers.provider", action="change")
    assert (row.actor, row.area) == (staff, AdminAuditLog.Area.PROVIDER)
    assert (row.before["exchange_rate"], row.after["exchange_rate"]) == ("1.00000000", "1.25")
    assert row.after.get("api_key", "(replaced)") == "(replaced)"  # that it changed, never what
    assert "new-secret-key-4321" not in str(row.__dict__)


def test_service_rate_change_and_price_actions_are_audited(
    admin_client, provider, upstream, catalog_settings, staff
):
    catalog_sync_provider(provider=provider)
    (service,) = catalog_import_services(provider=provider, upstream_ids=["1"])
    url = reverse("admin:catalog_service_change", args=[service.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"rate": "2.00000000", "backups-TOTAL_FORMS": "0",
                 "backups-INITIAL_FORMS": "0"})  # fmt: skip
    data = {k: v for k, v in data.items() if v is not False}
    assert admin_client.post(url, data).status_code == 302
    assert Service.objects.get(pk=service.pk).rate == D("2")
    row = AdminAuditLog.objects.get(object_type="catalog.service", action="change")
    assert row.area == AdminAuditLog.Area.PRICE and row.after["rate"] == "2.00000000"

    changelist = reverse("admin:catalog_service_changelist")
    admin_client.post(changelist, {"action": "reprice", "_selected_action": [service.pk]})
    assert AdminAuditLog.objects.filter(
        action="reprice", object_id=str(service.pk), actor=staff
    ).exists()
