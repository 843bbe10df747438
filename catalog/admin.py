"""Admin for the catalog. Upstream text (names, descriptions, categories) is untrusted: it is
only ever shown through Django's escaping, never through mark_safe."""

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import DecimalField, ExpressionWrapper, F, QuerySet
from django.db.models.functions import NullIf
from django.http import HttpRequest

from accounts.audit import PER_OBJECT_LIMIT, AuditedAdminMixin, audit_record, staff_user
from accounts.models import AdminAuditLog
from accounts.templatetags.panel_ui import money_column
from catalog.models import (
    CatalogChange,
    CatalogSettings,
    CatalogSyncRun,
    Category,
    CustomerDiscount,
    CustomerRate,
    PriceChange,
    Service,
    ServiceBackup,
    UpstreamService,
)
from catalog.pricing import RATE_DIGITS, RATE_PLACES, money_text
from catalog.services import (
    CatalogError,
    catalog_import_services,
    catalog_reprice_services,
    service_approve_held_price,
    service_cost,
    service_create_by_staff,
    service_disable,
    service_enable,
    service_enable_refusal,
    service_update_by_staff,
)
from providers.models import Provider

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

RATE_OUTPUT = DecimalField(max_digits=RATE_DIGITS + 8, decimal_places=RATE_PLACES)
# What the service actions may change: written to the audit log before and after.
AUDITED_SERVICE_FIELDS = ("rate", "priced_cost", "held_rate", "held_cost", "pricing",
                          "markup_percent", "is_enabled", "disabled_cause", "disabled_reason")  # fmt: skip


class _Margins(TypedDict):
    """What ServiceAdmin.get_queryset annotates: None where the service has no upstream cost."""

    cost: Decimal | None
    margin: Decimal | None
    margin_pct: Decimal | None


def _service_fields(service: Service) -> dict[str, Any]:
    return {name: getattr(service, name) for name in AUDITED_SERVICE_FIELDS}


def _audit_services(
    request: HttpRequest,
    action: str,
    label: str,
    before: dict[int, dict[str, Any]],
    service_ids: Iterable[int],
) -> None:
    """One audit row per service in `service_ids` (before: pk -> fields), or one summary row for
    a selection larger than the audit log's per-object limit."""
    staff = staff_user(request)
    ids = list(service_ids)
    if len(ids) > PER_OBJECT_LIMIT:
        audit_record(actor=staff, action=action, area=AdminAuditLog.Area.PRICE,
                     summary=f"{label}: {len(ids)} services.", after={"services": len(ids)})  # fmt: skip
        return
    for service in Service.objects.filter(pk__in=ids).order_by("pk"):
        audit_record(actor=staff, action=action, obj=service, summary=f"{label}.",
                     before=before.get(service.pk), after=_service_fields(service),
                     area=AdminAuditLog.Area.PRICE)  # fmt: skip


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# --- upstream catalog ---------------------------------------------------------------------------


class ImportActionForm(helpers.ActionForm):
    markup = forms.DecimalField(
        required=False, label="markup %", help_text="Empty: the category/provider/global markup."
    )
    category = forms.CharField(
        required=False, max_length=200, label="category",
        help_text="Empty: a category named like the upstream one (created when missing).",
    )  # fmt: skip


def _rate_text(value: Decimal, *, signed: bool = False) -> str:
    """A rate per 1000 (cost, margin) in the money format, up to the rate's 8 places."""
    return money_text(value, settings.PANEL_CURRENCY, signed=signed, places=RATE_PLACES)


@admin.register(UpstreamService)
class UpstreamServiceAdmin(ReadOnlyAdmin):
    list_display = ("service_id", "provider", "name", "category", "type", "rate", "min", "max",
                    "refill", "cancel", "dripfeed", "last_seen_at", "removed_at")  # fmt: skip
    list_filter = ("provider", ("removed_at", admin.EmptyFieldListFilter), "type", "refill",
                   "cancel", "dripfeed")  # fmt: skip
    search_fields = ("=service_id", "name", "category")
    list_select_related = ("provider",)
    action_form = ImportActionForm
    actions = ("import_into_panel",)

    @admin.action(description="Import into the panel (markup and category from the fields)")
    def import_into_panel(self, request: HttpRequest, queryset: QuerySet[UpstreamService]) -> None:
        try:
            markup = Decimal(request.POST["markup"]) if request.POST.get("markup") else None
        except InvalidOperation:
            self.message_user(request, "The markup must be a number.", messages.ERROR)
            return
        category = request.POST.get("category", "").strip() or None
        staff = staff_user(request)
        by_provider: dict[int, list[str]] = {}
        for provider_id, service_id in queryset.values_list("provider_id", "service_id"):
            by_provider.setdefault(provider_id, []).append(service_id)
        for provider in Provider.objects.filter(pk__in=by_provider):
            try:
                services = catalog_import_services(
                    provider=provider, upstream_ids=by_provider[provider.pk],
                    markup_percent=markup, category_name=category,
                )  # fmt: skip
            except CatalogError as exc:
                self.message_user(request, f"{provider.name}: {exc}", messages.ERROR)
                continue
            ids = ", ".join(str(s.pk) for s in services)
            self.message_user(request, f"{provider.name}: panel services {ids}.", messages.SUCCESS)
            for service in services:
                audit_record(
                    actor=staff, action="import", obj=service,
                    summary=f"Imported from {provider.name} #{service.upstream.service_id}."
                    if service.upstream is not None else "Imported.",
                    after={"upstream": service.upstream_id, "category": service.category_id,
                           **_service_fields(service)},
                    area=AdminAuditLog.Area.PRICE,
                )  # fmt: skip


@admin.register(CatalogChange)
class CatalogChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "provider", "kind", "upstream_service", "old", "new")
    list_filter = ("kind", "provider")
    search_fields = ("=upstream_service__service_id", "upstream_service__name")
    list_select_related = ("provider", "upstream_service", "upstream_service__provider")
    raw_id_fields = ("upstream_service",)
    date_hierarchy = "created_at"


@admin.register(CatalogSyncRun)
class CatalogSyncRunAdmin(ReadOnlyAdmin):
    """The "Sync now" runs asked for on the provider admin: read-only, written by the worker."""

    list_display = ("id", "created_at", "provider", "status", "requested_by", "allow_mass_removal",
                    "started_at", "finished_at", "outcome")  # fmt: skip
    list_filter = ("status", "provider")
    list_select_related = ("provider", "requested_by")
    fields = ("provider", "requested_by", "allow_mass_removal", "status", "outcome", "progress",
              "summary", "error", "created_at", "started_at", "finished_at")  # fmt: skip
    readonly_fields = fields
    date_hierarchy = "created_at"


# --- panel catalog -------------------------------------------------------------------------------


@admin.register(Category)
class CategoryAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "sort_order", "markup_percent", "is_enabled")
    list_editable = ("sort_order", "is_enabled")
    search_fields = ("name",)

    def save_model(
        self, request: HttpRequest, obj: Category, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        if change and "markup_percent" in form.changed_data:
            count = catalog_reprice_services(
                services=obj.services.all(), changed_by=staff_user(request)
            )
            self.message_user(request, f"{count} services re-priced.")


class ServiceBackupInline(admin.TabularInline):
    model = ServiceBackup
    extra = 0
    raw_id_fields = ("upstream",)
    ordering = ("priority",)
    fields = ("priority", "upstream")


class MarginFilter(admin.SimpleListFilter):
    title = "margin"
    parameter_name = "margin"

    def lookups(self, request, model_admin):
        return (("loss", "below cost"), ("thin", "under 10%"), ("ok", "10% or more"),
                ("held", "price rise held"))  # fmt: skip

    def queryset(self, request, queryset):
        value = self.value()
        if value == "loss":
            return queryset.filter(margin__lt=0)
        if value == "thin":
            return queryset.filter(margin__gte=0, rate__lt=F("cost") * Decimal("1.1"))
        if value == "ok":
            return queryset.filter(rate__gte=F("cost") * Decimal("1.1"))
        if value == "held":
            return queryset.filter(held_rate__isnull=False)
        return queryset


class ServiceAdminForm(forms.ModelForm):
    class Meta:
        model = Service
        fields = "__all__"  # noqa: DJ007 - the ModelAdmin fieldsets choose the fields

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.instance.pk and "rate" in self.changed_data and data.get("rate") is not None:
            current = Service.objects.select_related("upstream__provider").get(pk=self.instance.pk)
            cost = service_cost(current)
            allowed = data.get("allow_below_cost", current.allow_below_cost)
            if cost is not None and data["rate"] < cost and not allowed:
                self.add_error("rate", f"Below the cost {cost.normalize():f}; tick "
                               "'allow below cost' to sell at a loss.")  # fmt: skip
        switched_on = "is_enabled" in self.changed_data and data.get("is_enabled")
        if self.instance.pk and switched_on and not self.errors:
            # The same checks as the Enable action, on the values about to be saved.
            candidate = Service(
                pk=self.instance.pk,
                name=data.get("name", self.instance.name),
                upstream=data.get("upstream", self.instance.upstream),
                rate=data.get("rate", self.instance.rate),
                allow_below_cost=data.get("allow_below_cost", self.instance.allow_below_cost),
            )
            if refusal := service_enable_refusal(candidate):
                self.add_error("is_enabled", refusal)
        return data


@admin.register(Service)
class ServiceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = ServiceAdminForm
    list_display = ("id", "name", "category", "type", money_column("rate", "rate", places=RATE_PLACES),
                    "cost_display", "margin_display",
                    "margin_pct_display", "pricing", "held_rate", "is_enabled", "disabled_reason",
                    "provider_display")  # fmt: skip
    list_filter = (MarginFilter, "is_enabled", "disabled_cause", "pricing", "type",
                   "upstream__provider", "category")  # fmt: skip
    search_fields = ("=id", "name", "=upstream__service_id")
    list_select_related = ("category", "upstream", "upstream__provider")
    raw_id_fields = ("upstream",)
    readonly_fields = ("priced_cost", "held_rate", "held_cost", "disabled_cause", "created_at",
                       "updated_at")  # fmt: skip
    inlines = (ServiceBackupInline,)
    actions = ("approve_held_price", "reprice", "enable_services", "disable_services")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Service]:
        cost = ExpressionWrapper(
            F("upstream__rate") * F("upstream__provider__exchange_rate"), output_field=RATE_OUTPUT
        )
        return (
            super()
            .get_queryset(request)
            .annotate(cost=cost)
            .annotate(
                margin=ExpressionWrapper(F("rate") - F("cost"), output_field=RATE_OUTPUT),
                margin_pct=ExpressionWrapper(
                    (F("rate") - F("cost")) * 100 / NullIf(F("cost"), 0), output_field=RATE_OUTPUT
                ),
            )
        )

    @admin.display(description="cost", ordering="cost")
    def cost_display(self, obj: "WithAnnotations[Service, _Margins]") -> str | None:
        return None if obj.cost is None else _rate_text(obj.cost)

    @admin.display(description="margin", ordering="margin")
    def margin_display(self, obj: "WithAnnotations[Service, _Margins]") -> str | None:
        return None if obj.margin is None else _rate_text(obj.margin, signed=True)

    @admin.display(description="margin %", ordering="margin_pct")
    def margin_pct_display(self, obj: "WithAnnotations[Service, _Margins]") -> Decimal | None:
        return None if obj.margin_pct is None else obj.margin_pct.quantize(Decimal("0.1"))

    @admin.display(description="provider", ordering="upstream__provider__name")
    def provider_display(self, obj: Service) -> str:
        return f"{obj.upstream.provider.name} #{obj.upstream.service_id}" if obj.upstream else "—"

    def save_model(
        self, request: HttpRequest, obj: Service, form: forms.ModelForm, change: bool
    ) -> None:
        """Saved through the catalog services (catalog/services/prices.py): a new rate is a
        hand-set price, a markup change re-prices."""
        staff = staff_user(request)
        self.audit_remember_form(request, form, change)
        if not change:
            service_create_by_staff(service=obj, staff=staff)
            return
        try:
            service_update_by_staff(service=obj, changed_fields=form.changed_data, staff=staff)
        except ValidationError as exc:  # the new rate was refused; the rest is saved
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)

    # Each action below writes one audit row per service it touched, with the rate, the held
    # price and the enabled state before and after.

    @admin.action(description="Approve the held upstream price")
    def approve_held_price(self, request: HttpRequest, queryset: QuerySet[Service]) -> None:
        before = {}
        for service in queryset.filter(held_rate__isnull=False):
            fields = _service_fields(service)
            try:
                service_approve_held_price(service=service, approved_by=staff_user(request))
            except CatalogError:
                continue  # approved meanwhile (by another admin): nothing changed here
            before[service.pk] = fields
        _audit_services(request, "approve_held_price", "Held price approved", before, before)
        self.message_user(request, f"{len(before)} held prices approved.")

    @admin.action(description="Re-price by the markup rules")
    def reprice(self, request: HttpRequest, queryset: QuerySet[Service]) -> None:
        services = list(queryset)
        before = {s.pk: _service_fields(s) for s in services}
        count = catalog_reprice_services(services=services, changed_by=staff_user(request))
        _audit_services(request, "reprice", "Re-priced by the markup rules", before, before)
        self.message_user(request, f"{count} services changed.")

    @admin.action(description="Enable the selected services")
    def enable_services(self, request: HttpRequest, queryset: QuerySet[Service]) -> None:
        before = {}
        refused = []
        disabled = queryset.filter(is_enabled=False).select_related("upstream__provider")
        for service in disabled:
            fields = _service_fields(service)
            try:
                service_enable(service=service)
            except CatalogError as exc:
                refused.append(str(exc))
                continue
            before[service.pk] = fields
        _audit_services(request, "enable", "Enabled by an admin", before, before)
        self.message_user(request, f"{len(before)} services enabled.")
        for reason in refused:
            self.message_user(request, f"Not enabled: {reason}", messages.WARNING)

    @admin.action(description="Disable the selected services")
    def disable_services(self, request: HttpRequest, queryset: QuerySet[Service]) -> None:
        staff = staff_user(request)
        before = {}
        for service in queryset.filter(is_enabled=True):
            before[service.pk] = _service_fields(service)
            service_disable(service=service, reason=f"Disabled by {staff.get_username()}.")
        _audit_services(request, "disable", "Disabled by an admin", before, before)
        self.message_user(request, f"{len(before)} services disabled.")


@admin.register(ServiceBackup)
class ServiceBackupAdmin(admin.ModelAdmin):
    list_display = ("service", "priority", "upstream")
    list_select_related = ("service", "upstream", "upstream__provider")
    raw_id_fields = ("service", "upstream")
    search_fields = ("=service__id", "service__name", "=upstream__service_id")
    ordering = ("service", "priority")


@admin.register(PriceChange)
class PriceChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "service", "old_rate", "new_rate", "reason", "changed_by")
    list_filter = (("changed_by", admin.EmptyFieldListFilter),)
    search_fields = ("=service__id", "service__name", "reason")
    list_select_related = ("service", "changed_by")
    raw_id_fields = ("service", "changed_by")
    date_hierarchy = "created_at"


@admin.register(CatalogSettings)
class CatalogSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "default_markup_percent", "price_rise_hold_percent",
                    "auto_import_new_services")  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not CatalogSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        CatalogSettings.load()  # the one row always exists
        return super().changelist_view(request, extra_context)

    def save_model(
        self, request: HttpRequest, obj: CatalogSettings, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        repricing = {"default_markup_percent", "price_rise_hold_percent", "rate_rounding"}
        repricing |= {"rate_rounding_step", "rate_rounding_digits"}
        if repricing.intersection(form.changed_data):
            count = catalog_reprice_services(changed_by=staff_user(request))
            self.message_user(request, f"{count} services re-priced.")


@admin.register(CustomerRate)
class CustomerRateAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("user", "service", "rate")
    list_select_related = ("user", "service")
    raw_id_fields = ("user", "service")
    search_fields = ("user__username", "user__email", "=service__id", "service__name")


@admin.register(CustomerDiscount)
class CustomerDiscountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("user", "percent")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    search_fields = ("user__username", "user__email")
