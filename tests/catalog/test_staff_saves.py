"""Services saved in admin go through catalog.services (service_create_by_staff,
service_update_by_staff): the same rules whether the admin form or another caller saves."""

from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from catalog.models import Category, PriceChange, Service, UpstreamService
from catalog.services import (
    catalog_sync_provider,
    service_create_by_staff,
    service_update_by_staff,
)

pytestmark = pytest.mark.django_db
Cause = Service.DisabledCause


@pytest.fixture
def synced(provider, catalog_settings):
    catalog_sync_provider(provider=provider)
    return provider


@pytest.fixture
def category(db):
    return Category.objects.create(name="Followers")


def _mapped(provider, category, upstream_id="2", **fields):
    """A panel service mapped to upstream `upstream_id` (cost 2.00 at the fixture's rates)."""
    upstream = UpstreamService.objects.get(provider=provider, service_id=upstream_id)
    return Service(category=category, name="mapped", rate=D("9"), upstream=upstream, **fields)


def test_create_by_staff_records_the_first_rate_and_prices_a_mapped_service(
    synced, category, staff
):
    service = service_create_by_staff(service=_mapped(synced, category), staff=staff)
    first = PriceChange.objects.get(service=service, old_rate=None)
    assert (first.new_rate, first.reason, first.changed_by) == (D("9"), "created in admin", staff)
    service.refresh_from_db()
    assert service.rate == D("3")  # cost 2 + the 50% default markup
    repriced = PriceChange.objects.get(service=service, old_rate=D("9"))
    assert repriced.changed_by == staff and repriced.new_rate == D("3")


def test_create_by_staff_leaves_a_manual_or_fixed_service_at_its_rate(synced, category, staff):
    manual = service_create_by_staff(
        service=Service(category=category, name="by hand", rate=D("4")), staff=staff
    )
    fixed = service_create_by_staff(
        service=_mapped(synced, category, pricing=Service.Pricing.FIXED), staff=staff
    )
    for service, rate in ((manual, D("4")), (fixed, D("9"))):
        service.refresh_from_db()
        assert service.rate == rate
        assert PriceChange.objects.filter(service=service).count() == 1


def test_update_by_staff_sets_a_new_rate_by_hand(synced, category, staff):
    service = service_create_by_staff(service=_mapped(synced, category), staff=staff)
    service.refresh_from_db()
    service.rate, service.name = D("5"), "renamed"
    service_update_by_staff(service=service, changed_fields=["rate", "name"], staff=staff)
    service.refresh_from_db()
    assert (service.rate, service.pricing, service.name) == (
        D("5"),
        Service.Pricing.FIXED,
        "renamed",
    )
    change = PriceChange.objects.filter(service=service).latest("id")
    assert (change.old_rate, change.new_rate, change.changed_by) == (D("3"), D("5"), staff)


def test_update_by_staff_refuses_a_rate_below_cost_and_saves_the_rest(synced, category, staff):
    service = service_create_by_staff(service=_mapped(synced, category), staff=staff)
    service.refresh_from_db()
    service.rate, service.name = D("1"), "renamed"
    with pytest.raises(ValidationError, match="below the cost"):
        service_update_by_staff(service=service, changed_fields=["rate", "name"], staff=staff)
    service.refresh_from_db()
    assert (service.rate, service.pricing, service.name) == (
        D("3"),
        Service.Pricing.MARKUP,
        "renamed",
    )


def test_update_by_staff_switching_off_and_on_sets_and_clears_the_manual_cause(
    synced, category, staff
):
    service = service_create_by_staff(service=_mapped(synced, category), staff=staff)
    service.is_enabled = False
    service_update_by_staff(service=service, changed_fields=["is_enabled"], staff=staff)
    service.refresh_from_db()
    assert (service.disabled_cause, service.disabled_reason) == (
        Cause.MANUAL,
        "Disabled by an admin.",
    )
    service.is_enabled, service.disabled_reason = False, "Waiting for the provider."
    service_update_by_staff(service=service, changed_fields=["is_enabled"], staff=staff)
    service.refresh_from_db()
    assert service.disabled_reason == "Waiting for the provider."  # a reason given is kept
    service.is_enabled = True
    service_update_by_staff(service=service, changed_fields=["is_enabled"], staff=staff)
    service.refresh_from_db()
    assert (service.is_enabled, service.disabled_cause, service.disabled_reason) == (
        True,
        Cause.NONE,
        "",
    )


def test_update_by_staff_re_prices_only_when_a_markup_input_changed(synced, category, staff):
    service = service_create_by_staff(service=_mapped(synced, category), staff=staff)
    service.refresh_from_db()
    service.name = "renamed"
    service_update_by_staff(service=service, changed_fields=["name"], staff=staff)
    service.refresh_from_db()
    assert service.rate == D("3")
    service.markup_percent = D("100")
    service_update_by_staff(service=service, changed_fields=["markup_percent"], staff=staff)
    service.refresh_from_db()
    assert service.rate == D("4")  # cost 2 + its own 100% markup
    assert PriceChange.objects.filter(service=service).latest("id").changed_by == staff


def test_the_admin_add_and_change_forms_save_through_the_services(client, synced, category, staff):
    from django.urls import reverse

    from accounts.models import AdminAuditLog

    client.force_login(staff)
    upstream = UpstreamService.objects.get(provider=synced, service_id="2")
    data = {"name": "added", "category": category.pk, "type": "Default", "upstream": upstream.pk,
            "pricing": "markup", "hold_policy": "keep", "rate": "9", "min": "10", "max": "100",
            "refill_days": "30", "subscription_reserve_posts": "0", "sort_order": "0",
            "is_enabled": "on", "backups-TOTAL_FORMS": "0", "backups-INITIAL_FORMS": "0"}  # fmt: skip
    assert client.post(reverse("admin:catalog_service_add"), data).status_code == 302
    service = Service.objects.get(name="added")
    assert service.rate == D("3")  # priced by the markup rules at once
    first = PriceChange.objects.get(service=service, old_rate=None)
    assert (first.reason, first.changed_by) == ("created in admin", staff)
    assert AdminAuditLog.objects.get(action="add", object_id=str(service.pk)).actor == staff

    data.update({"rate": "3", "is_enabled": ""})
    url = reverse("admin:catalog_service_change", args=[service.pk])
    assert client.post(url, data).status_code == 302
    service.refresh_from_db()
    assert (service.is_enabled, service.disabled_cause) == (False, Cause.MANUAL)
    row = AdminAuditLog.objects.get(action="change", object_id=str(service.pk))
    assert row.before == {"is_enabled": True} and row.after == {"is_enabled": False}
