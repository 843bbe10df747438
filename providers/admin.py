"""Admin for providers: the API key is write-only (only its last 4 characters are shown back);
actions test the connection, queue a catalog sync (run by a worker, shown as CatalogSyncRun rows
on the provider's page) and check the balance."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from accounts.audit import (
    AuditedAdminMixin,
    audit_diff_get,
    audit_diff_set,
    audit_record,
    staff_user,
)
from accounts.models import AdminAuditLog
from catalog.models import CatalogSyncRun, Service
from catalog.pricing import format_money
from catalog.services import CatalogError, catalog_reprice_services, catalog_sync_request
from providers.client import ErrorKind, ProviderError
from providers.models import Provider, ProviderCall
from providers.services import provider_check_balance, provider_test_connection

PRICING_FIELDS = {"markup_percent", "exchange_rate"}
# What the actions below may change, written to the audit log before and after. Never the key.
CAPABILITY_FIELDS = ("supports_cancel", "supports_multi_refill", "supports_refill_status",
                     "supports_cancel_status", "supports_dripfeed", "supports_multi_status",
                     "supports_multi_refill_status", "supports_multi_cancel")  # fmt: skip
BALANCE_FIELDS = ("balance", "balance_checked_at")
RECENT_SYNC_RUNS = 5


def _fields(provider: Provider, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(provider, name) for name in names}


def _audit(
    request: HttpRequest,
    action: str,
    provider: Provider,
    summary: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    audit_record(
        actor=staff_user(request),
        action=action,
        obj=provider,
        summary=f"{provider.name}: {summary}"[:2000],
        before=before,
        after=after,
        area=AdminAuditLog.Area.PROVIDER,
    )


def _run_url(run: CatalogSyncRun) -> str:
    return reverse("admin:catalog_catalogsyncrun_change", args=[run.pk])


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
        # An API URL typed without a scheme means https (Django 6's default, chosen now).
        formfield_callback = staticmethod(
            lambda field, **kwargs: field.formfield(
                **({"assume_scheme": "https"} if isinstance(field, models.URLField) else {}),
                **kwargs,
            )
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
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
class ProviderAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = ProviderAdminForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
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
        "recent_sync_runs",
        "capabilities_learned_at",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "api_url", "api_key", "api_key_hint", "is_enabled")}),
        ("Money", {"fields": ("currency", "exchange_rate", "markup_percent", "balance",
                              "balance_checked_at", "low_balance_threshold",
                              "low_balance_alerted_at", "out_of_funds_since")}),
        ("Connection", {"fields": ("connect_timeout", "read_timeout", "status_batch_size")}),
        ("Supports (set by hand, detected by the connection test, or learned when the "
         "provider refuses a call as unknown)", {"fields": (
            "supports_cancel", "supports_multi_status", "supports_multi_refill",
            "supports_refill_status", "supports_multi_refill_status", "supports_multi_cancel",
            "supports_cancel_status", "supports_dripfeed", "capabilities_learned_at",
            "capabilities_note")}),
        ("Catalog sync", {"fields": ("last_sync_at", "last_sync_error", "recent_sync_runs",
                                      "created_at")}),
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
        if change and "api_key" in form.changed_data:
            # The audit row says that the key was replaced, never what it was or is.
            before, after = audit_diff_get(request)
            audit_diff_set(
                request,
                (
                    {**(before or {}), "api_key": "(previous key)"},
                    {**(after or {}), "api_key": "(replaced)"},
                ),
            )
        if change and PRICING_FIELDS.intersection(form.changed_data):
            count = catalog_reprice_services(
                services=Service.objects.filter(upstream__provider=obj),
                changed_by=staff_user(request),
            )
            self.message_user(request, f"{count} services re-priced.")

    @admin.action(description="Test the connection (balance + services)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            before = _fields(provider, CAPABILITY_FIELDS + BALANCE_FIELDS)
            report = provider_test_connection(provider=provider)
            lines = "; ".join(report.lines())
            level = messages.SUCCESS if report.ok else messages.ERROR
            self.message_user(request, f"{provider.name}: {lines}", level)
            after = {"ok": report.ok, **_fields(provider, CAPABILITY_FIELDS + BALANCE_FIELDS)}
            _audit(request, "test_connection", provider, lines, before, after)

    @admin.display(description="recent syncs from admin")
    def recent_sync_runs(self, obj: Provider) -> SafeString | str:
        runs = (
            list(CatalogSyncRun.objects.filter(provider=obj)[:RECENT_SYNC_RUNS]) if obj.pk else []
        )
        if not runs:
            return "none yet"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">#{}</a> {} {}: {}</li>',
                (
                    (_run_url(r), r.pk, f"{r.created_at:%Y-%m-%d %H:%M}", r.status, r.outcome)
                    for r in runs
                ),
            ),
        )

    @admin.action(description="Sync the catalog now")
    def sync_now(
        self, request: HttpRequest, queryset: QuerySet[Provider], allow_mass_removal: bool = False
    ) -> None:
        """Queue one CatalogSyncRun per provider; a worker runs it (the sync can take minutes)."""
        action = "sync_allow_mass_removal" if allow_mass_removal else "sync"
        for provider in queryset:
            try:
                run = catalog_sync_request(
                    provider=provider,
                    requested_by=staff_user(request),
                    allow_mass_removal=allow_mass_removal,
                )
            except CatalogError as exc:
                self.message_user(request, f"Not queued: {exc}", messages.WARNING)
                _audit(request, action, provider, str(exc), None, {"ok": False, "error": str(exc)})
                continue
            self.message_user(
                request,
                format_html(
                    'Catalog sync of {} queued: <a href="{}">run #{}</a> shows its progress '
                    "and result.",
                    provider.name,
                    _run_url(run),
                    run.pk,
                ),
                messages.SUCCESS,
            )
            after = {"ok": True, "queued": True, "run": run.pk}
            _audit(request, action, provider, f"catalog sync queued (run #{run.pk})", None, after)

    @admin.action(description="Sync now, accepting that most services disappeared upstream")
    def sync_now_allow_mass_removal(
        self, request: HttpRequest, queryset: QuerySet[Provider]
    ) -> None:
        self.sync_now(request, queryset, allow_mass_removal=True)

    @admin.action(description="Check the balance")
    def check_balance(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            before = _fields(provider, BALANCE_FIELDS)
            try:
                amount = provider_check_balance(provider=provider)
            except ProviderError as exc:
                self.message_user(request, f"{provider.name}: {exc.message}", messages.ERROR)
                after = {"ok": False, "error": exc.message}
                _audit(request, "check_balance", provider, exc.message, before, after)
                continue
            after = {"ok": True, **_fields(provider, BALANCE_FIELDS)}
            _audit(request, "check_balance", provider, f"balance {amount}", before, after)
            low = " — LOW (admins e-mailed)" if provider.is_low_on_balance else ""
            level = messages.WARNING if low else messages.SUCCESS
            self.message_user(
                request, f"{provider.name}: {format_money(amount)} {provider.currency}{low}", level
            )


class _FixedChoicesFilter(admin.SimpleListFilter):
    # The default filter of a plain CharField runs SELECT DISTINCT over the whole table to find
    # its choices; provider calls grow with every order and poll, so the choices are fixed here.
    values: tuple[str, ...] = ()
    parameter_name: str  # set by each subclass

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(value, value) for value in self.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class CallActionFilter(_FixedChoicesFilter):
    title = parameter_name = "action"
    values = ("add", "status", "refill", "refill_status", "cancel", "cancel_status", "services",
              "balance")  # fmt: skip


class CallErrorKindFilter(_FixedChoicesFilter):
    title = parameter_name = "error_kind"
    values = tuple(kind.value for kind in ErrorKind)


@admin.register(ProviderCall)
class ProviderCallAdmin(admin.ModelAdmin):
    list_display = ("created_at", "provider", "action", "order_ref", "ok", "error_kind",
                    "duration_ms")  # fmt: skip
    # No date_hierarchy: its year list is a MIN/MAX and a DISTINCT over every call ever made.
    list_filter = ("ok", CallActionFilter, CallErrorKindFilter, "provider", "created_at")
    search_fields = ("=order_ref", "error_message")
    list_select_related = ("provider",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
