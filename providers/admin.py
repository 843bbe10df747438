"""Admin for providers: the API key is write-only (only its last 4 characters are shown back);
actions test the connection, sync the catalog now and check the balance."""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from catalog.models import Service
from catalog.pricing import format_money
from catalog.services import CatalogSyncError, catalog_reprice_services, catalog_sync_provider
from providers.client import ProviderError
from providers.models import Provider, ProviderCall
from providers.services import provider_check_balance, provider_test_connection

PRICING_FIELDS = {"markup_percent", "exchange_rate"}


class ProviderAdminForm(forms.ModelForm):
    # Write-only: the widget never renders the stored value, and an empty field keeps the key.
    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the current key.",
    )

    class Meta:
        model = Provider
        fields = "__all__"  # noqa: DJ007 - the ModelAdmin fieldsets choose the fields

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("api_key"):
            self.add_error("api_key", "A new provider needs its API key.")
        return data

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if key := self.cleaned_data.get("api_key"):
            provider.set_api_key(key)
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderAdminForm
    list_display = (
        "name",
        "api_url",
        "currency",
        "is_enabled",
        "balance",
        "low_balance",
        "out_of_funds_since",
        "last_sync_at",
        "sync_error",
    )
    list_filter = ("is_enabled", "currency")
    search_fields = ("name", "api_url")
    readonly_fields = (
        "api_key_hint",
        "balance",
        "balance_checked_at",
        "low_balance_alerted_at",
        "out_of_funds_since",
        "last_sync_at",
        "last_sync_error",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "api_url", "api_key", "api_key_hint", "is_enabled")}),
        ("Money", {"fields": ("currency", "exchange_rate", "markup_percent", "balance",
                              "balance_checked_at", "low_balance_threshold",
                              "low_balance_alerted_at", "out_of_funds_since")}),
        ("Connection", {"fields": ("connect_timeout", "read_timeout", "status_batch_size")}),
        ("Supports (set by hand or detected by the connection test)", {"fields": (
            "supports_cancel", "supports_multi_refill", "supports_refill_status",
            "supports_cancel_status", "supports_dripfeed")}),
        ("Catalog sync", {"fields": ("last_sync_at", "last_sync_error", "created_at")}),
    )  # fmt: skip
    actions = ("test_connection", "sync_now", "sync_now_allow_mass_removal", "check_balance")

    @admin.display(boolean=True, description="low balance")
    def low_balance(self, obj: Provider) -> bool:
        return obj.is_low_on_balance

    @admin.display(description="last sync error")
    def sync_error(self, obj: Provider) -> str:
        return Truncator(obj.last_sync_error).chars(80)

    def save_model(self, request: HttpRequest, obj: Provider, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and PRICING_FIELDS.intersection(form.changed_data):
            count = catalog_reprice_services(
                services=Service.objects.filter(upstream__provider=obj), changed_by=request.user
            )
            self.message_user(request, f"{count} services re-priced.")

    @admin.action(description="Test the connection (balance + services)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            report = provider_test_connection(provider=provider)
            level = messages.SUCCESS if report.ok else messages.ERROR
            self.message_user(request, f"{provider.name}: " + "; ".join(report.lines()), level)

    @admin.action(description="Sync the catalog now")
    def sync_now(
        self, request: HttpRequest, queryset: QuerySet[Provider], allow_mass_removal: bool = False
    ) -> None:
        for provider in queryset:
            try:
                report = catalog_sync_provider(
                    provider=provider, allow_mass_removal=allow_mass_removal
                )
            except CatalogSyncError as exc:
                self.message_user(request, f"Sync failed, nothing changed: {exc}", messages.ERROR)
            else:
                self.message_user(request, report.summary(), messages.SUCCESS)

    @admin.action(description="Sync now, accepting that most services disappeared upstream")
    def sync_now_allow_mass_removal(self, request: HttpRequest, queryset: QuerySet[Provider]):
        self.sync_now(request, queryset, allow_mass_removal=True)

    @admin.action(description="Check the balance")
    def check_balance(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            try:
                amount = provider_check_balance(provider=provider)
            except ProviderError as exc:
                self.message_user(request, f"{provider.name}: {exc.message}", messages.ERROR)
                continue
            low = " — LOW (admins e-mailed)" if provider.is_low_on_balance else ""
            level = messages.WARNING if low else messages.SUCCESS
            self.message_user(
                request, f"{provider.name}: {format_money(amount)} {provider.currency}{low}", level
            )


@admin.register(ProviderCall)
class ProviderCallAdmin(admin.ModelAdmin):
    list_display = ("created_at", "provider", "action", "order_ref", "ok", "error_kind",
                    "duration_ms")  # fmt: skip
    list_filter = ("ok", "action", "error_kind", "provider")
    search_fields = ("=order_ref", "error_message")
    list_select_related = ("provider",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
