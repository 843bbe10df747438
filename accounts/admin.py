import re
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from accounts import (
    growth_admin,  # noqa: F401  (registers the tiers and coupons admin)
    payment_admin,  # noqa: F401  (registers the payments admin)
    referral_admin,  # noqa: F401  (registers the referrals admin)
)
from accounts.audit import AuditedAdminMixin, staff_user
from accounts.forms import BalanceChangeForm
from accounts.models import (
    AdminAuditLog,
    ApiKey,
    DisplayCurrency,
    LedgerEntry,
    LoginEvent,
    Notification,
    Referral,
    User,
    UserSession,
)
from accounts.security import user_sessions_end_by_staff
from accounts.selectors import api_key_list_stale
from accounts.services import (
    AdjustmentPreview,
    DisplayRatesError,
    InsufficientFunds,
    InvalidAmount,
    RepeatedAdjustment,
    StaffAdjustment,
    api_key_set_active,
    balance_adjust_by_staff,
    balance_adjust_preview,
    customer_suspend,
    customer_unsuspend,
    display_currency_rates_update,
)
from accounts.templatetags.panel_ui import money_column
from catalog.models import CustomerDiscount, CustomerRate
from catalog.pricing import money_text
from content.admin import terms_acceptance_table

if TYPE_CHECKING:
    pass

RECENT_LEDGER_ROWS = 20
_SUBMISSION_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _money(value: Decimal) -> str:
    """An amount as the admin's customer list shows it: the `money` filter's rule ("$90.9807":
    at least 2 places, never rounded away; catalog.pricing.money_text)."""
    return money_text(value, settings.PANEL_CURRENCY)


class ApiKeyActiveFilter(admin.BooleanFieldListFilter):
    """The filter on api_key__is_active, titled for what it is (not "By is active")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "API key active"


class QuickCheckboxMixin:
    """The change list's selection checkbox written as HTML, not rendered through the form
    widget templates: the same markup, about a third of the time of rendering a page of 100
    rows (the customer and order lists)."""

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> SafeString:
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )


class CustomerRateInline(admin.TabularInline):
    model = CustomerRate
    fk_name = "user"
    fields = ("service", "rate")
    raw_id_fields = ("service",)
    extra = 0
    verbose_name_plural = "custom rates (win over the discount)"


class CustomerDiscountInline(admin.StackedInline):
    model = CustomerDiscount
    fk_name = "user"
    fields = ("percent",)
    extra = 0
    max_num = 1
    can_delete = True


def _signed(amount: Decimal) -> str:
    return money_text(amount, settings.PANEL_CURRENCY, signed=True)


@admin.register(User)
class UserAdmin(QuickCheckboxMixin, AuditedAdminMixin, BaseUserAdmin):
    # Fits a 1366 px screen beside the admin's navigation and the filters (a browser test):
    # the name and address share a column, amounts carry the currency in the header, the date
    # joined is a date; staff status is a filter and a "(staff)" mark.
    list_display = (
        "customer",
        "balance_display",
        "total_spent",
        "order_count",
        "api_key_status",
        "is_active",
        "joined",
    )
    list_select_related = ("wallet", "api_key")
    list_filter = ("is_active", "is_staff", ("api_key__is_active", ApiKeyActiveFilter))
    show_full_result_count = False
    readonly_fields = (
        "balance_display",
        "change_balance_link",
        "total_spent",
        "order_count",
        "api_key_status",
        "api_key_last_use",
        "recent_ledger",
        "referral_info",
        "last_login",
        "date_joined",
        "terms_accepted",
    )
    inlines = [CustomerDiscountInline, CustomerRateInline]
    actions = ["suspend_customers", "unsuspend_customers", "disable_api_keys", "enable_api_keys"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Balance", {"fields": ("balance_display", "change_balance_link", "recent_ledger")}),
        ("Orders", {"fields": ("total_spent", "order_count")}),
        ("API key", {"fields": ("api_key_status", "api_key_last_use")}),
        ("Referral", {"fields": ("referral_info",)}),
        ("Personal info", {"fields": ("first_name", "last_name", "email", "timezone")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined", "terms_accepted")}),
    )

    @admin.display(description="referred by")
    def referral_info(self, obj: User):
        """Who referred the customer (changed on the referral's own page, audited) and how
        many they referred."""
        referral = Referral.objects.filter(referred=obj).select_related("referrer").first()
        made = Referral.objects.filter(referrer=obj).count()
        if referral is None:
            who = format_html(
                'nobody (<a href="{}?referred={}">set…</a>)',
                reverse("admin:accounts_referral_add"),
                obj.pk,
            )
        else:
            who = format_html(
                '<a href="{}">{}</a> (<a href="{}">change…</a>)',
                reverse("admin:accounts_user_change", args=[referral.referrer_id]),
                referral.referrer.username,
                reverse("admin:accounts_referral_change", args=[referral.pk]),
            )
        return format_html(
            '{}; referred <a href="{}?referrer__id__exact={}">{} customer{}</a>',
            who,
            reverse("admin:accounts_referral_changelist"),
            obj.pk,
            made,
            "" if made == 1 else "s",
        )

    @admin.display(description="customer", ordering="username")
    def customer(self, obj: User) -> SafeString:
        staff = " (staff)" if obj.is_staff else ""
        return format_html('{}{}<br><span class="quiet">{}</span>', obj.username, staff, obj.email)

    @admin.display(description="joined", ordering="date_joined")
    def joined(self, obj: User) -> str:
        return f"{timezone.localtime(obj.date_joined):%Y-%m-%d}"

    @admin.display(description="balance", ordering="wallet__balance")
    def balance_display(self, obj: User):
        wallet = getattr(obj, "wallet", None)
        return _money(wallet.balance) if wallet else "—"

    # "total spent" and "orders" are the wallet's own counters (Wallet.total_spent, kept by
    # the ledger; Wallet.order_count, by order_create), read with the page's one join: no
    # aggregate over the orders, however many the customers on the page placed.
    @admin.display(description="total spent", ordering="wallet__total_spent")
    def total_spent(self, obj: User):
        wallet = getattr(obj, "wallet", None)
        return _money(wallet.total_spent) if wallet else "—"

    @admin.display(description="orders", ordering="wallet__order_count")
    def order_count(self, obj: User):
        wallet = getattr(obj, "wallet", None)
        return f"{wallet.order_count:,}" if wallet else "—"

    @admin.display(description="API key")
    def api_key_status(self, obj: User):
        key = _api_key(obj)
        if key is None:
            return "—"
        return f"{key.prefix}… {'active' if key.is_active else 'disabled'}"

    @admin.display(description="API key last used")
    def api_key_last_use(self, obj: User):
        key = _api_key(obj)
        if key is None or key.last_used_at is None:
            return "never"
        return f"{key.last_used_at:%Y-%m-%d %H:%M} UTC from {key.last_used_ip or '?'}"

    @admin.display(description="terms accepted")
    def terms_accepted(self, obj: User) -> str:
        """Which versions of the terms they accepted, when, from where (docs/content.md)."""
        return terms_acceptance_table(user_id=obj.pk)

    @admin.display(description=f"ledger, newest {RECENT_LEDGER_ROWS}")
    def recent_ledger(self, obj: User):
        if not obj.pk:
            return "—"
        entries = LedgerEntry.objects.filter(user=obj).order_by("-id")[:RECENT_LEDGER_ROWS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td class='num'>{}</td>"
            "<td class='num'>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{e.created_at:%Y-%m-%d %H:%M}",
                    e.get_kind_display(),
                    f"{e.amount:+}",
                    e.balance_after,
                    e.order_ref or "",
                    e.memo,
                )
                for e in entries
            ),
        )
        url = reverse("admin:accounts_ledgerentry_changelist") + f"?user__id__exact={obj.pk}"
        return format_html(
            "<table><thead><tr><th>When</th><th>Kind</th><th>Amount</th><th>Balance after</th>"
            "<th>Order</th><th>Memo</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">The whole ledger of this customer</a></p>',
            rows,
            url,
        )

    # The services write the audit rows, in the same transaction as the change.
    @admin.action(description="Suspend the selected customers (no login, no API)")
    def suspend_customers(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        changed = customer_suspend(customers=queryset, actor=staff_user(request))
        self.message_user(request, f"{changed} customers suspended.", messages.SUCCESS)

    @admin.action(description="Unsuspend the selected customers")
    def unsuspend_customers(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        changed = customer_unsuspend(customers=queryset, actor=staff_user(request))
        self.message_user(request, f"{changed} customers unsuspended.", messages.SUCCESS)

    @admin.action(description="Disable the API keys of the selected customers")
    def disable_api_keys(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        changed = api_key_set_active(
            api_keys=ApiKey.objects.filter(user__in=queryset),
            active=False,
            actor=staff_user(request),
            selection=queryset,
        )
        self.message_user(request, f"{changed} API keys disabled.", messages.SUCCESS)

    @admin.action(description="Enable the API keys of the selected customers")
    def enable_api_keys(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        changed = api_key_set_active(
            api_keys=ApiKey.objects.filter(user__in=queryset),
            active=True,
            actor=staff_user(request),
            selection=queryset,
        )
        self.message_user(request, f"{changed} API keys enabled.", messages.SUCCESS)

    @admin.display(description="credit / debit")
    def change_balance_link(self, obj: User):
        if not obj.pk:
            return "—"
        url = reverse("admin:accounts_user_balance", args=[obj.pk])
        return format_html('<a class="button" href="{}">Credit or debit the balance</a>', url)

    def get_urls(self):
        urls = [
            path(
                "<int:user_id>/balance/",
                self.admin_site.admin_view(self.balance_view),
                name="accounts_user_balance",
            )
        ]
        return urls + super().get_urls()

    def balance_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        """Two steps: the form, then "Credit 5.00000 to alice, balance 10.00000 → 15.00000?"
        whose Confirm writes. A change equal to one staff made a moment ago is refused until
        "Yes, again" is ticked (the service's RepeatedAdjustment)."""
        staff = staff_user(request)
        if not staff.has_perm("accounts.add_ledgerentry"):
            raise PermissionDenied
        customer = get_object_or_404(User.objects.select_related("wallet"), pk=user_id)
        form = BalanceChangeForm(request.POST or None)
        # One token per rendered form, carried through the confirmation: a double click or a
        # resent POST replays the first ledger entry instead of crediting (or debiting) twice.
        submission = request.POST.get("submission", "")
        if not _SUBMISSION_TOKEN.fullmatch(submission):
            submission = ""
        context: dict[str, object] = {"preview": None, "repeat_refused": ""}
        if request.method == "POST" and form.is_valid() and "edit" not in request.POST:
            if request.POST.get("confirm") == "1":
                key = f"admin-balance:{customer.pk}:{submission}" if submission else None
                done = self._balance_write(request, customer, form, key, context)
                if done is not None:
                    self._balance_message(request, done)
                    return redirect("admin:accounts_user_change", customer.pk)
            else:
                context["preview"] = _balance_preview(customer, form)
        context.update(
            {
                **self.admin_site.each_context(request),
                "title": f"Change the balance of {customer}",
                "customer": customer,
                "form": form,
                "submission": submission or secrets.token_urlsafe(16),
                "opts": self.model._meta,
            }
        )
        return TemplateResponse(request, "admin/accounts/balance_change.html", context)

    def _balance_write(
        self,
        request: HttpRequest,
        customer: User,
        form: BalanceChangeForm,
        key: str | None,
        context: dict[str, object],
    ) -> StaffAdjustment | None:
        """The confirmed change through the service; None when it was refused (the error is
        on the form, or the repeat refusal and a fresh preview are put in `context`)."""
        try:
            return balance_adjust_by_staff(
                user=customer,
                amount=form.signed_amount(),
                staff=staff_user(request),
                reason=form.cleaned_data["reason"],
                payment_ref=form.cleaned_data["payment_ref"],
                idempotency_key=key,
                allow_repeat=request.POST.get("again") == "1",
            )
        except RepeatedAdjustment as exc:
            context["repeat_refused"] = str(exc)
            context["preview"] = _balance_preview(customer, form)
        except (InsufficientFunds, InvalidAmount) as exc:
            form.add_error("amount", str(exc))
        return None

    def _balance_message(self, request: HttpRequest, done: StaffAdjustment) -> None:
        entry = done.entry
        if done.replayed:
            self.message_user(
                request,
                f"This form was already submitted: {_signed(entry.amount)} is in the ledger once.",
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            f"{_signed(entry.amount)} written to the ledger; the balance is "
            f"{money_text(entry.balance_after, settings.PANEL_CURRENCY)}.",
            messages.SUCCESS,
        )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "kind",
        money_column("amount", "amount", signed=True),
        money_column("balance_after", "balance after"),
        "order_ref",
        "memo",
    )
    list_filter = ("kind", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "=order_ref", "payment_ref", "memo")
    raw_id_fields = ("user", "created_by")
    # No date_hierarchy: its year links cost a MIN/MAX and a DISTINCT over the whole ledger
    # (two entries per order; 0.6 s at 2M rows) on every visit. The created_at filter stays.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # through the customer's "Credit or debit" page, which uses the ledger

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StaleApiKeyFilter(admin.SimpleListFilter):
    title = f"unused for {ApiKey.STALE_AFTER.days} days"
    parameter_name = "stale"

    def lookups(self, request, model_admin):
        return [("yes", "Yes (active keys)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            stale = api_key_list_stale(now=timezone.now())
            return queryset.filter(pk__in=stale.values("pk"))
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "prefix",
        "user",
        "is_active",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "stale",
        "allowlist",
    )
    list_filter = ("is_active", StaleApiKeyFilter)
    list_select_related = ("user",)
    search_fields = ("user__username", "prefix")
    fields = (
        "user",
        "prefix",
        "is_active",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "allowed_ips",
    )
    readonly_fields = (
        "user",
        "prefix",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "allowed_ips",
    )

    audit_area = AdminAuditLog.Area.ACCESS
    actions = ["disable_keys", "enable_keys"]

    def has_add_permission(self, request):
        return False  # keys are issued by the customer or `create_customer --api-key`

    @admin.display(description=f"unused {ApiKey.STALE_AFTER.days}+ days", boolean=True)
    def stale(self, obj: ApiKey) -> bool:
        return obj.is_active and obj.is_stale_at(timezone.now())

    @admin.display(description="allowed addresses")
    def allowlist(self, obj: ApiKey) -> str:
        return ", ".join(obj.allowed_ips) if obj.allowed_ips else "anywhere"

    @admin.action(description="Disable the selected API keys")
    def disable_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        changed = api_key_set_active(api_keys=queryset, active=False, actor=staff_user(request))
        self.message_user(request, f"{changed} API keys disabled.", messages.SUCCESS)

    @admin.action(description="Enable the selected API keys")
    def enable_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        changed = api_key_set_active(api_keys=queryset, active=True, actor=staff_user(request))
        self.message_user(request, f"{changed} API keys enabled.", messages.SUCCESS)


def _balance_preview(customer: User, form: BalanceChangeForm) -> AdjustmentPreview | None:
    """The confirmation's figures, or None with the refusal on the form's amount."""
    try:
        return balance_adjust_preview(user=customer, amount=form.signed_amount())
    except (InsufficientFunds, InvalidAmount) as exc:
        form.add_error("amount", str(exc))
        return None


def _api_key(user: User) -> ApiKey | None:
    try:
        return user.api_key
    except ObjectDoesNotExist:
        return None


@admin.register(AdminAuditLog)
class AdminAuditLogAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the admin actions themselves (accounts/audit.py)."""

    list_display = (
        "created_at",
        "actor_name",
        "area",
        "action",
        "object_type",
        "object_id",
        "summary",
    )
    list_filter = ("area", "action", "created_at")
    search_fields = ("=object_id", "object_repr", "summary", "actor_name")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = (
        "created_at",
        "actor",
        "actor_name",
        "area",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "summary",
        "before",
        "after",
    )
    raw_id_fields = ("actor",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LoginEvent)
class LoginEventAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the auth signal receivers (accounts/security.py)."""

    list_display = ("at", "identifier", "user", "success", "second_factor", "ip", "user_agent")
    list_filter = ("success", "second_factor", "at")
    list_select_related = ("user",)
    search_fields = ("identifier", "user__username", "user__email", "=ip")
    date_hierarchy = "at"
    show_full_result_count = False
    raw_id_fields = ("user",)
    readonly_fields = ("at", "user", "identifier", "success", "second_factor", "ip", "user_agent")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: notices are written by accounts.notifications; here staff see who was told
    what and whether its mail left (a failed one: the mail server refused it five times)."""

    list_display = ("created_at", "user", "event", "title", "read_at", "mail", "mailed_at")
    list_filter = ("event", "mail", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "title")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("user",)
    fields = (
        *("user", "event", "title", "message", "url", "context", "dedupe_key"),
        *("created_at", "read_at", "mail", "mailed_at"),
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    """Signed-in sessions, read-only; the one action ends the selected ones (audited). The
    session key is never shown."""

    list_display = ("user", "ip", "user_agent", "created_at", "last_seen_at")
    list_filter = ("last_seen_at",)
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "=ip")
    date_hierarchy = "last_seen_at"
    show_full_result_count = False
    fields = readonly_fields = ("user", "ip", "user_agent", "created_at", "last_seen_at")
    actions = ("end_sessions",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="End the selected sessions (the customer is logged out there)")
    def end_sessions(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        ended = user_sessions_end_by_staff(who=staff_user(request), session_ids=ids)
        self.message_user(request, f"{ended} session(s) ended.", messages.SUCCESS)


@admin.register(DisplayCurrency)
class DisplayCurrencyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """The currencies customers may read prices and their balance in (docs/money.md)."""

    list_display = ("code", "rate", "enabled", "updated_at")
    list_editable = ("rate", "enabled")
    fields = ("code", "rate", "enabled", "updated_at")
    readonly_fields = ("updated_at",)
    actions = ("update_rates_from_source",)

    @admin.action(description="Update every enabled rate from DISPLAY_CURRENCY_RATES_URL now")
    def update_rates_from_source(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            changed = display_currency_rates_update()
        except DisplayRatesError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"{changed} rates changed.", messages.SUCCESS)

    def save_model(
        self, request: HttpRequest, obj: DisplayCurrency, form: forms.ModelForm, change: bool
    ) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
