from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import AdminAuditLog
from catalog.models import PriceChange, Service
from catalog.selectors import service_list_for_bulk_pricing
from catalog.services import bulk_pricing
from tests.totp import give_second_factor

pytestmark = pytest.mark.django_db


def _preview(client, **data):
    return client.post(
        reverse("admin:pricing_bulk"), {"mode": "markup", "value": "40", "preview": "1", **data}
    )


def test_preview_shows_old_and_new_prices_and_changes_nothing(client, staff, world):
    client.force_login(staff)
    response = _preview(client, category=world["likes"].pk)
    assert response.status_code == 200
    plan = response.context["plan"]
    rows = {row.service.pk: row for row in plan.rows}
    likes = rows[world["s_likes"].pk]
    # Cost 1.00 per 1000, +40 % → 1.40; it sold at 1.50 (margin 50 %).
    assert (likes.cost, likes.old_rate, likes.new_rate) == (
        Decimal("1.00000000"),
        Decimal("1.50000000"),
        Decimal("1.40000000"),
    )
    assert likes.old_margin_percent == Decimal("50.00") and likes.new_margin_percent == Decimal(
        "40.00"
    )
    # The manual service has no cost to mark up: listed, skipped.
    assert rows[world["s_manual"].pk].new_rate is None
    assert world["s_views"].pk not in rows  # another category
    body = response.content.decode()
    assert "1.40000000" in body and "Apply to 1 services (1 rates change)" in body
    assert Service.objects.get(pk=world["s_likes"].pk).rate == Decimal("1.50000000")
    assert not PriceChange.objects.exists()
    assert not AdminAuditLog.objects.exists()


def test_apply_writes_rates_price_changes_and_one_audit_row(client, staff, world):
    client.force_login(staff)
    preview = _preview(client, provider=world["beta"].pk, reason="Summer margins")
    fingerprint = preview.context["plan"].fingerprint
    response = client.post(
        reverse("admin:pricing_bulk"),
        {
            "mode": "markup",
            "value": "40",
            "provider": world["beta"].pk,
            "reason": "Summer margins",
            "fingerprint": fingerprint,
            "apply": "1",
        },
    )
    assert response.status_code == 302
    views = Service.objects.get(pk=world["s_views"].pk)
    # Beta's cost 0.50 in its currency x exchange rate 2 = 1.00; +40 % → 1.40.
    assert views.rate == Decimal("1.40000000")
    assert (views.pricing, views.markup_percent) == (Service.Pricing.MARKUP, Decimal("40.00"))
    change = PriceChange.objects.get()
    assert (change.service_id, change.old_rate, change.new_rate, change.changed_by) == (
        views.pk,
        Decimal("1.20000000"),
        Decimal("1.40000000"),
        staff,
    )
    audit = AdminAuditLog.objects.get()
    assert (audit.action, audit.area, audit.actor) == ("bulk_reprice", "price", staff)
    assert audit.before == {str(views.pk): "1.20000000"} and audit.after == {
        str(views.pk): "1.40000000"
    }
    assert Service.objects.get(pk=world["s_likes"].pk).rate == Decimal("1.50000000")  # untouched


def test_fixed_rate_for_a_search(client, staff, world):
    client.force_login(staff)
    data = {"mode": "fixed", "value": "2.5", "search": "manual"}
    preview = client.post(reverse("admin:pricing_bulk"), {**data, "preview": "1"})
    assert [r.service.pk for r in preview.context["plan"].changing] == [world["s_manual"].pk]
    client.post(
        reverse("admin:pricing_bulk"),
        {**data, "apply": "1", "fingerprint": preview.context["plan"].fingerprint},
    )
    manual = Service.objects.get(pk=world["s_manual"].pk)
    assert (manual.rate, manual.pricing) == (Decimal("2.50000000"), Service.Pricing.FIXED)
    assert PriceChange.objects.filter(
        service=manual, old_rate=Decimal("3"), new_rate=Decimal("2.5")
    ).exists()


def test_apply_refuses_when_prices_moved_since_the_preview(client, staff, world):
    client.force_login(staff)
    preview = _preview(client)
    fingerprint = preview.context["plan"].fingerprint
    Service.objects.filter(pk=world["s_likes"].pk).update(rate=Decimal("1.60"))  # a sync meanwhile
    response = client.post(
        reverse("admin:pricing_bulk"),
        {"mode": "markup", "value": "40", "fingerprint": fingerprint, "apply": "1"},
    )
    assert response.status_code == 200
    assert "Prices changed since the preview" in response.content.decode()
    assert not PriceChange.objects.exists()
    assert Service.objects.get(pk=world["s_views"].pk).rate == Decimal("1.20000000")
    # The page now previews the current prices, with a new fingerprint.
    assert response.context["plan"].fingerprint != fingerprint


def test_apply_refuses_a_rate_changed_between_plan_and_lock(world, staff):
    services = service_list_for_bulk_pricing(provider_id=world["alpha"].pk)
    plan = bulk_pricing.pricing_plan_build(services=services, mode="fixed", value=Decimal("9"))
    Service.objects.filter(pk=world["s_likes"].pk).update(rate=Decimal("7"))
    with pytest.raises(bulk_pricing.BulkPricingError, match="changed meanwhile"):
        bulk_pricing.pricing_plan_apply(
            plan=plan, expected_fingerprint=plan.fingerprint, actor=staff
        )
    assert not PriceChange.objects.exists()


@pytest.mark.parametrize(
    ("mode", "value", "message"),
    [
        ("fixed", "-1", "cannot be negative"),
        ("markup", "-100", "above -100%"),
        ("markup", "35.125", "2 decimal places"),  # the markup column would round it
    ],
)
def test_bad_values_are_refused(client, staff, world, mode, value, message):
    client.force_login(staff)
    response = client.post(
        reverse("admin:pricing_bulk"), {"mode": mode, "value": value, "preview": "1"}
    )
    assert message in response.content.decode()
    assert response.context["plan"] is None


def test_below_cost_follows_the_catalog_rules(client, staff, world):
    client.force_login(staff)
    # A negative markup stops at the cost, unless the service may sell below cost.
    response = _preview(client, value="-10", provider=world["alpha"].pk)
    row = next(r for r in response.context["plan"].rows if r.service.pk == world["s_likes"].pk)
    assert row.new_rate == row.cost == Decimal("1.00000000")
    Service.objects.filter(pk=world["s_likes"].pk).update(allow_below_cost=True)
    response = _preview(client, value="-10", provider=world["alpha"].pk)
    row = next(r for r in response.context["plan"].rows if r.service.pk == world["s_likes"].pk)
    assert row.new_rate == Decimal("0.90000000") and row.below_cost
    assert "below cost" in response.content.decode()
    # A fixed rate below cost is refused for a service that may not sell below cost.
    response = client.post(
        reverse("admin:pricing_bulk"), {"mode": "fixed", "value": "0.5", "preview": "1"}
    )
    rows = {r.service.pk: r for r in response.context["plan"].rows}
    assert rows[world["s_views"].pk].new_rate is None
    assert "below cost (not allowed" in rows[world["s_views"].pk].skip_reason
    assert rows[world["s_likes"].pk].new_rate == Decimal("0.50000000")


def test_a_held_cost_rise_is_previewed_and_applied_as_held(client, staff, world):
    # Last priced at a cost of 0.50; the cost is 1.00 now: a 100 % rise waits for approval.
    Service.objects.filter(pk=world["s_likes"].pk).update(priced_cost=Decimal("0.5"))
    client.force_login(staff)
    preview = _preview(client, provider=world["alpha"].pk)
    row = next(r for r in preview.context["plan"].rows if r.service.pk == world["s_likes"].pk)
    assert row.new_rate == Decimal("1.50000000") and "waits for approval" in row.note
    client.post(
        reverse("admin:pricing_bulk"),
        {
            "mode": "markup",
            "value": "40",
            "provider": world["alpha"].pk,
            "apply": "1",
            "fingerprint": preview.context["plan"].fingerprint,
        },
    )
    likes = Service.objects.get(pk=world["s_likes"].pk)
    assert (likes.rate, likes.held_rate, likes.markup_percent) == (
        Decimal("1.50000000"),
        Decimal("1.40000000"),
        Decimal("40.00"),
    )
    assert not PriceChange.objects.exists()


def test_bulk_pricing_needs_the_change_service_permission(client, alice):
    alice.is_staff = True
    alice.save()
    give_second_factor(alice)
    client.force_login(alice)
    assert client.get(reverse("admin:pricing_bulk")).status_code == 403
