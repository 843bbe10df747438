"""Admin pages and actions of providers and the catalog."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from catalog.models import CatalogSyncRun, PriceChange, Service, UpstreamService
from catalog.services import catalog_import_services, catalog_sync_provider
from providers.models import Provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def synced(provider, upstream, catalog_settings):
    upstream.catalog[0].update(name='<script>alert("x")</script>', category="<b>Cat</b>")
    catalog_sync_provider(provider=provider)
    return provider


def test_provider_key_is_write_only(admin_client, provider):
    url = reverse("admin:providers_provider_change", args=[provider.pk])
    page = admin_client.get(url).content.decode()
    assert provider.api_key not in page and provider.api_key_encrypted not in page
    assert provider.api_key_hint in page
    data = {
        "name": "acme", "api_url": provider.api_url, "api_key": "", "currency": "USD",
        "exchange_rate": "1", "is_enabled": "on", "connect_timeout": "5", "read_timeout": "30",
        "status_batch_size": "100", "markup_percent": "", "low_balance_threshold": "",
    }  # fmt: skip
    assert admin_client.post(url, data).status_code == 302
    provider.refresh_from_db()
    assert provider.api_key == "test-upstream-key"  # an empty field keeps the key
    admin_client.post(url, {**data, "api_key": "new-key-9876"})
    provider.refresh_from_db()
    assert provider.api_key == "new-key-9876" and provider.api_key_hint == "9876"


def test_provider_add_requires_a_key(admin_client, db):
    response = admin_client.post(reverse("admin:providers_provider_add"), {
        "name": "n", "api_url": "https://x.example/api/v2", "api_key": "", "currency": "USD",
        "exchange_rate": "1", "connect_timeout": "5", "read_timeout": "30",
        "status_batch_size": "100"})  # fmt: skip
    assert response.status_code == 200 and "needs its API key" in response.content.decode()
    assert not Provider.objects.exists()


def test_provider_actions(
    admin_client, provider, upstream, catalog_settings, django_capture_on_commit_callbacks
):
    url = reverse("admin:providers_provider_changelist")
    for action in ("test_connection", "sync_now", "sync_now_allow_mass_removal", "check_balance"):
        # The sync actions queue a run whose task is sent on commit (eager Celery in tests).
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                url, {"action": action, "_selected_action": [provider.pk]}, follow=True
            )
        assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["acme: 100.00000 USD"]
    assert UpstreamService.objects.count() == 5
    provider.refresh_from_db()
    assert provider.balance == D("100") and provider.last_sync_at is not None
    runs = list(CatalogSyncRun.objects.order_by("pk"))
    assert [(r.status, r.allow_mass_removal) for r in runs] == [("done", False), ("done", True)]


def test_sync_now_failure_is_shown(
    admin_client, provider, upstream, django_capture_on_commit_callbacks
):
    upstream.catalog = "not a list"
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:providers_provider_changelist"),
            {"action": "sync_now", "_selected_action": [provider.pk]}, follow=True,
        )  # fmt: skip
    run = CatalogSyncRun.objects.get()
    assert run.status == CatalogSyncRun.Status.FAILED and run.error and not run.summary
    page = admin_client.get(reverse("admin:catalog_catalogsyncrun_change", args=[run.pk]))
    assert "Sync failed, nothing changed" in page.content.decode()
    page = admin_client.get(reverse("admin:providers_provider_change", args=[provider.pk]))
    assert "Sync failed, nothing changed" in page.content.decode()


def test_upstream_text_is_escaped_everywhere(admin_client, synced):
    catalog_import_services(provider=synced, upstream_ids=["1"])
    for name in ("catalog_upstreamservice", "catalog_service", "catalog_catalogchange"):
        page = admin_client.get(reverse(f"admin:{name}_changelist")).content.decode()
        assert '<script>alert("x")</script>' not in page
        assert "&lt;script&gt;" in page


def test_import_action_with_markup_and_category(admin_client, synced):
    ids = list(
        UpstreamService.objects.filter(service_id__in=["2", "3"]).values_list("pk", flat=True)
    )
    response = admin_client.post(
        reverse("admin:catalog_upstreamservice_changelist"),
        {"action": "import_into_panel", "_selected_action": ids, "markup": "20",
         "category": "Imported"}, follow=True,
    )  # fmt: skip
    assert "panel services" in response.content.decode()
    services = Service.objects.order_by("upstream__service_id")
    assert [s.rate for s in services] == [D("2.4"), D("3.6")]
    assert {s.category.name for s in services} == {"Imported"}


def test_service_list_by_margin_and_filters(admin_client, synced):
    catalog_import_services(provider=synced, all=True)
    url = reverse("admin:catalog_service_changelist")
    for query in ("?o=7", "?margin=loss", "?margin=thin", "?margin=ok", "?margin=held",
                  "?is_enabled__exact=0", "?q=Followers"):  # fmt: skip
        assert admin_client.get(url + query).status_code == 200
    page = admin_client.get(url).content.decode()
    assert "50.0" in page  # the margin % column


def test_service_change_page_has_backups_inline(admin_client, synced):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["1"])
    page = admin_client.get(reverse("admin:catalog_service_change", args=[service.pk]))
    assert page.status_code == 200 and "backups-TOTAL_FORMS" in page.content.decode()


def test_editing_the_rate_in_admin_fixes_it_and_records_who(admin_client, synced, staff):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["2"])
    url = reverse("admin:catalog_service_change", args=[service.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items()
            if k not in ("held_rate", "held_cost", "priced_cost", "disabled_cause", "created_at",
                         "updated_at")}  # fmt: skip
    data = {k: v for k, v in data.items() if not isinstance(v, bool) or v}
    data.update({"rate": "1.00", "backups-TOTAL_FORMS": "0", "backups-INITIAL_FORMS": "0"})
    response = admin_client.post(url, data)
    assert response.status_code == 200 and "Below the cost" in response.content.decode()
    data["rate"] = "5.5"
    assert admin_client.post(url, data).status_code == 302
    service.refresh_from_db()
    assert service.rate == D("5.5") and service.pricing == Service.Pricing.FIXED
    change = PriceChange.objects.filter(service=service).first()
    assert change.changed_by == staff and change.old_rate == D("3")


def test_approve_held_price_action(admin_client, synced, upstream):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["2"])
    upstream.set_rate(2, "3.00")
    catalog_sync_provider(provider=synced)
    admin_client.post(
        reverse("admin:catalog_service_changelist"),
        {"action": "approve_held_price", "_selected_action": [service.pk]},
    )
    service.refresh_from_db()
    assert service.rate == D("4.5") and service.held_rate is None and service.is_enabled


def test_read_only_and_other_pages_load(admin_client, synced):
    for name in ("catalog_pricechange", "catalog_catalogsettings", "catalog_category",
                 "catalog_customerrate", "catalog_customerdiscount", "catalog_servicebackup",
                 "providers_providercall", "providers_provider"):  # fmt: skip
        assert admin_client.get(reverse(f"admin:{name}_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:catalog_catalogchange_add")).status_code == 403


def test_category_markup_change_reprices(admin_client, synced):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["2"])
    category = service.category
    admin_client.post(
        reverse("admin:catalog_category_change", args=[category.pk]),
        {"name": category.name, "sort_order": "0", "markup_percent": "10", "is_enabled": "on"},
    )
    service.refresh_from_db()
    assert service.rate == D("2.2")


def test_ticking_enabled_on_the_change_form_runs_the_enable_checks(admin_client, synced):
    (service,) = catalog_import_services(provider=synced, upstream_ids=["2"])
    Service.objects.filter(pk=service.pk).update(is_enabled=False, disabled_reason="gone")
    UpstreamService.objects.filter(pk=service.upstream_id).update(removed_at="2026-01-01T00:00Z")
    url = reverse("admin:catalog_service_change", args=[service.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items()
            if k not in ("held_rate", "held_cost", "priced_cost", "disabled_cause", "created_at",
                         "updated_at")}  # fmt: skip
    data = {k: v for k, v in data.items() if not isinstance(v, bool) or v}
    data.update({"is_enabled": "on", "backups-TOTAL_FORMS": "0", "backups-INITIAL_FORMS": "0"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "upstream service was removed" in response.content.decode()
    service.refresh_from_db()
    assert not service.is_enabled
