"""Every admin action on orders, prices and providers lands in the audit log (issue 7): who,
which area and object, the values before and after — and never any API key material."""

# ruff: noqa: F811  (the fixtures imported from tests.catalog.conftest are test arguments)

import json
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import AdminAuditLog
from catalog.models import (
    CatalogSettings,
    CatalogSyncRun,
    Category,
    CustomerDiscount,
    CustomerRate,
    Service,
)
from catalog.services import catalog_import_services, catalog_sync_provider
from orders.models import Order
from orders.services import order_create
from providers.models import Provider

# The catalog tests' fixtures: a loopback upstream whose catalog and balance a test sets.
from tests.catalog.conftest import catalog_settings, provider, upstream  # noqa: F401
from tests.catalog.upstream import KEY, item
from tests.orders.factories import make_provider, make_service

pytestmark = pytest.mark.django_db
S = Order.Status
A = AdminAuditLog.Area
INLINES = ("status_changes", "refills", "cancel_requests")


@pytest.fixture
def admin(client, staff):
    client.force_login(staff)
    return client


def _rows(**filters) -> list[AdminAuditLog]:
    return list(AdminAuditLog.objects.filter(**filters).order_by("id"))


def _one(**filters) -> AdminAuditLog:
    rows = _rows(**filters)
    assert len(rows) == 1, [(r.action, r.object_type, r.object_id) for r in rows]
    return rows[0]


def _form_data(client, url: str, **changes) -> dict:
    """What the admin's change form would post back unchanged, with `changes` applied."""
    context = client.get(url).context
    form = context["adminform"].form
    data: dict = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else getattr(value, "pk", value)
    for formset in context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name in ("TOTAL_FORMS", "INITIAL_FORMS"):
            data[f"{management.prefix}-{name}"] = management.initial.get(name, 0)
        data[f"{management.prefix}-TOTAL_FORMS"] = data[f"{management.prefix}-INITIAL_FORMS"]
        for index, inline_form in enumerate(formset.formset.forms):
            for name in inline_form.fields:
                value = inline_form.initial.get(name)
                if value not in (None, False):
                    data[f"{inline_form.prefix}-{name}"] = getattr(value, "pk", value)
            data[f"{formset.formset.prefix}-{index}-id"] = inline_form.instance.pk
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def _action(client, model: str, action: str, ids, **extra):
    url = reverse(f"admin:{model}_changelist")
    response = client.post(url, {"action": action, "_selected_action": list(ids), **extra})
    assert response.status_code == 302, response.content.decode()[:1000]
    return response


def _no_key_material(*secrets: str) -> None:
    everything = json.dumps(
        list(AdminAuditLog.objects.values("summary", "object_repr", "before", "after"))
    )
    for each in Provider.objects.all():
        secrets += (each.api_key_encrypted, each.api_key)
    for secret in secrets:
        assert secret and secret not in everything
    assert "api_key_encrypted" not in everything or '"api_key_encrypted": "(hidden)"' in everything


# --- orders ---------------------------------------------------------------------------------


def _order(user, service, status=None) -> Order:
    order = order_create(
        user=user, service=service, data={"link": "https://instagram.com/p/a", "quantity": "100"}
    )
    if status is not None:
        Order.objects.filter(pk=order.pk).update(status=status)
        order.refresh_from_db()
    return order


def test_order_change_form_set_status_and_upstream_id_are_audited(admin, staff, alice):
    manual = _order(alice, make_service(order_type="Default", rate="2"))
    url = reverse("admin:orders_order_change", args=[manual.pk])
    management = {f"{p}-{n}": "0" for p in INLINES for n in ("TOTAL_FORMS", "INITIAL_FORMS")}
    response = admin.post(
        url, {"new_status": "partial", "new_remains": "25", "admin_note": "half", **management}
    )
    assert response.status_code == 302
    row = _one(action="set_status", object_id=str(manual.pk))
    assert (row.actor, row.actor_name, row.area) == (staff, "staff", A.ORDER)
    assert row.object_type == "orders.order"
    assert row.before["status"] == manual.status and row.after["status"] == "partial"
    assert (row.before["refunded"], row.after["refunded"]) == ("0.00000", "0.05000")
    assert row.after["remains"] == 25 and "half" in row.summary

    placed = _order(alice, make_service(provider=make_provider(), sandbox_id=1))
    assert placed.status == S.QUEUED
    url = reverse("admin:orders_order_change", args=[placed.pk])
    assert admin.post(url, {"new_upstream_order_id": "U-77", **management}).status_code == 302
    row = _one(action="set_upstream_id", object_id=str(placed.pk))
    assert row.before["status"] == "queued" and row.before["upstream_order_id"] == ""
    assert row.after["status"] == "pending" and row.after["upstream_order_id"] == "U-77"

    # A refused change (the status table forbids it) writes nothing.
    url = reverse("admin:orders_order_change", args=[manual.pk])
    admin.post(url, {"new_status": "queued", **management})
    assert _rows(object_id=str(manual.pk)).__len__() == 1


def test_order_actions_are_audited_per_order_with_before_and_after(admin, staff, alice):
    service = make_service(provider=make_provider(), sandbox_id=1)
    review = _order(alice, service, status=S.NEEDS_REVIEW)
    queued = _order(alice, service)
    manual = _order(alice, make_service(order_type="Default", rate="2"), status=S.MANUAL)

    _action(admin, "orders_order", "resend_orders", [review.pk, queued.pk])
    row = _one(action="resend")  # the queued one cannot be resent: no row for it
    assert row.object_id == str(review.pk) and row.actor == staff and row.area == A.ORDER
    assert (row.before["status"], row.after["status"]) == ("needs_review", "queued")

    _action(admin, "orders_order", "cancel_orders_with_refund", [queued.pk])
    row = _one(action="cancel_with_refund")
    assert row.object_id == str(queued.pk)
    assert (row.before["status"], row.after["status"]) == ("queued", "canceled")
    assert row.before["refunded"] == "0.00000"
    assert Decimal(row.after["refunded"]) == queued.charge > 0

    _action(admin, "orders_order", "mark_completed", [manual.pk])
    row = _one(action="set_status")
    assert (row.before["status"], row.after["status"]) == ("manual", "completed")

    # Cancelling a finished order again is refused: no second row, no second refund.
    _action(admin, "orders_order", "cancel_orders_with_refund", [queued.pk])
    assert len(_rows(action="cancel_with_refund")) == 1


# --- catalog --------------------------------------------------------------------------------


def test_category_settings_rates_and_discounts_are_audited(admin, staff, alice):
    url = reverse("admin:catalog_category_add")
    data = {"name": "Views", "sort_order": "3", "markup_percent": "10", "is_enabled": "on"}
    assert admin.post(url, data).status_code == 302
    category = Category.objects.get(name="Views")
    row = _one(action="add", object_type="catalog.category")
    assert row.area == A.PRICE and row.actor == staff and Decimal(row.after["markup_percent"]) == 10

    url = reverse("admin:catalog_category_change", args=[category.pk])
    assert admin.post(url, _form_data(admin, url, markup_percent="25")).status_code == 302
    row = _one(action="change", object_type="catalog.category")
    assert list(row.before) == list(row.after) == ["markup_percent"]
    assert (Decimal(row.before["markup_percent"]), Decimal(row.after["markup_percent"])) == (10, 25)

    settings_row = CatalogSettings.load()
    url = reverse("admin:catalog_catalogsettings_change", args=[settings_row.pk])
    data = _form_data(admin, url, price_rise_hold_percent="35")
    assert admin.post(url, data).status_code == 302
    row = _one(action="change", object_type="catalog.catalogsettings")
    assert list(row.after) == ["price_rise_hold_percent"] and row.area == A.PRICE
    assert Decimal(row.after["price_rise_hold_percent"]) == 35

    service = make_service(order_type="Default", rate="2")
    url = reverse("admin:catalog_customerrate_add")
    data = {"user": alice.pk, "service": service.pk, "rate": "1.5"}
    assert admin.post(url, data).status_code == 302
    rate = CustomerRate.objects.get(user=alice)
    row = _one(action="add", object_type="catalog.customerrate")
    assert row.object_id == str(rate.pk) and Decimal(row.after["rate"]) == Decimal("1.5")

    url = reverse("admin:catalog_customerdiscount_add")
    assert admin.post(url, {"user": alice.pk, "percent": "5"}).status_code == 302
    discount = CustomerDiscount.objects.get(user=alice)
    url = reverse("admin:catalog_customerdiscount_delete", args=[discount.pk])
    assert admin.post(url, {"post": "yes"}).status_code == 302
    row = _one(action="delete", object_type="catalog.customerdiscount")
    assert Decimal(row.before["percent"]) == 5 and row.after is None and row.actor == staff


def test_service_actions_enable_disable_approve_and_import_are_audited(
    admin, staff, provider, upstream, catalog_settings
):
    catalog_sync_provider(provider=provider)
    (service,) = catalog_import_services(provider=provider, upstream_ids=["1"])
    rate = service.rate

    _action(admin, "catalog_service", "disable_services", [service.pk])
    row = _one(action="disable")
    assert (row.before["is_enabled"], row.after["is_enabled"]) == (True, False)
    assert row.after["disabled_cause"] == "manual" and row.area == A.PRICE
    _action(admin, "catalog_service", "enable_services", [service.pk])
    row = _one(action="enable")
    assert (row.before["is_enabled"], row.after["is_enabled"]) == (False, True)

    # The upstream price rises 50 % (> the 20 % hold): the rise waits for an admin.
    upstream.catalog = [item(i, rate="1.50" if i == 1 else f"{i}.00") for i in range(1, 6)]
    catalog_sync_provider(provider=provider)
    service.refresh_from_db()
    assert service.held_rate is not None and service.rate == rate
    held = service.held_rate
    _action(admin, "catalog_service", "approve_held_price", [service.pk])
    row = _one(action="approve_held_price")
    assert row.object_id == str(service.pk) and row.actor == staff
    assert (Decimal(row.before["rate"]), Decimal(row.before["held_rate"])) == (rate, held)
    assert (Decimal(row.after["rate"]), row.after["held_rate"]) == (held, None)

    upstream_ids = list(provider.upstream_services.filter(service_id__in=["2", "3"]).values_list(
        "pk", flat=True
    ))  # fmt: skip
    _action(admin, "catalog_upstreamservice", "import_into_panel", upstream_ids,
            markup="40", category="Imported")  # fmt: skip
    rows = _rows(action="import")
    imported = Service.objects.filter(upstream__service_id__in=["2", "3"])
    assert sorted(int(r.object_id) for r in rows) == sorted(s.pk for s in imported)
    assert all(r.actor == staff and r.area == A.PRICE and r.after["rate"] for r in rows)
    _no_key_material(KEY)


# --- providers ------------------------------------------------------------------------------


def _provider_form(**fields) -> dict:
    data = {"name": "zeta", "api_url": "http://127.0.0.1:9/api/v2", "currency": "USD",
            "exchange_rate": "1", "is_enabled": "on", "connect_timeout": "5",
            "read_timeout": "30", "status_batch_size": "100"}  # fmt: skip
    return {**data, **fields}


def test_provider_add_key_change_and_delete_are_audited_without_the_key(admin, staff):
    url = reverse("admin:providers_provider_add")
    response = admin.post(url, _provider_form(api_key="first-secret-key-0001"))
    assert response.status_code == 302, response.content.decode()[:1000]
    zeta = Provider.objects.get(name="zeta")
    row = _one(action="add", object_type="providers.provider")
    assert (row.actor, row.area, row.object_id) == (staff, A.PROVIDER, str(zeta.pk))
    assert row.after["api_key_encrypted"] == "(hidden)" and row.after["name"] == "zeta"

    url = reverse("admin:providers_provider_change", args=[zeta.pk])
    data = _form_data(admin, url, api_key="second-secret-key-0002", read_timeout="45")
    assert admin.post(url, data).status_code == 302
    row = _one(action="change", object_type="providers.provider")
    assert row.before == {"read_timeout": 30, "api_key": "(previous key)"}
    assert row.after == {"read_timeout": 45, "api_key": "(replaced)"}
    assert Provider.objects.get(pk=zeta.pk).api_key == "second-secret-key-0002"

    url = reverse("admin:providers_provider_delete", args=[zeta.pk])
    assert admin.post(url, {"post": "yes"}).status_code == 302
    row = _one(action="delete", object_type="providers.provider")
    assert row.before["name"] == "zeta" and row.before["api_key_encrypted"] == "(hidden)"
    _no_key_material("first-secret-key-0001", "second-secret-key-0002")


def test_provider_actions_are_audited(
    admin, staff, provider, upstream, django_capture_on_commit_callbacks
):
    upstream.balance = Decimal("123.45")
    _action(admin, "providers_provider", "check_balance", [provider.pk])
    row = _one(action="check_balance")
    assert (row.actor, row.area, row.object_id) == (staff, A.PROVIDER, str(provider.pk))
    assert row.before["balance"] is None
    assert row.after["ok"] is True and Decimal(row.after["balance"]) == Decimal("123.45")

    upstream.balance = Decimal("99")
    _action(admin, "providers_provider", "test_connection", [provider.pk])
    row = _one(action="test_connection")
    assert Decimal(row.before["balance"]) == Decimal("123.45")
    assert row.after["ok"] is True and Decimal(row.after["balance"]) == Decimal("99")

    with django_capture_on_commit_callbacks(execute=True):  # the run's task is sent on commit
        _action(admin, "providers_provider", "sync_now", [provider.pk])
    row = _one(action="sync")  # written when the run is queued; the outcome is on the run
    run = CatalogSyncRun.objects.get()
    assert row.after["ok"] is True and row.after["run"] == run.pk
    assert "5 upstream services" in run.summary

    broken = make_provider(key="wrong-key-9999", api_url=upstream.url, name="broken")
    _action(admin, "providers_provider", "check_balance", [broken.pk])
    row = _one(action="check_balance", object_id=str(broken.pk))
    assert row.after["ok"] is False and row.after["error"]
    _no_key_material(KEY, "wrong-key-9999")
