"""The payments admin (docs/payments.md, docs/admin.md): payments and their callbacks read-only,
staff's decisions on manual transfers as actions (each through accounts.payments, audited), and
the editable bonus rules and method settings. Registered from accounts/admin.py."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.audit import AuditedAdminMixin, staff_user
from accounts.gateways import GATEWAYS
from accounts.models import (
    AdminAuditLog,
    DepositBonusRule,
    LedgerEntry,
    Payment,
    PaymentCallback,
    PaymentMethodSetting,
)
from accounts.payments import (
    MANUAL_APPROVABLE,
    MANUAL_REJECTABLE,
    Applied,
    GatewayError,
    PaymentError,
    payment_approve_manual,
    payment_attention_handle,
    payment_refresh,
    payment_reject_manual,
)
from accounts.selectors import payment_attention_kind_get, payment_attention_kinds
from accounts.templatetags.panel_ui import money_column
from catalog.pricing import money_text

# "Check at the gateway" reads each selected payment over HTTP: a bounded selection.
REFRESH_AT_MOST = 20


def _method_choices() -> list[tuple[str, str]]:
    return [(code, code) for code in GATEWAYS]


class MethodFilter(admin.SimpleListFilter):
    """The gateways the panel knows (no DISTINCT over the whole table to list them)."""

    title = "method"
    parameter_name = "method"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _method_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(method=self.value()) if self.value() else queryset


class AttentionFilter(admin.SimpleListFilter):
    """The cockpit's kinds of payments needing staff (accounts.selectors)."""

    title = "needs staff"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(k.key, k.label) for k in payment_attention_kinds()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        kind = payment_attention_kind_get(key=self.value())
        return queryset.filter(kind.condition) if kind else queryset


class PaymentCallbackInline(admin.TabularInline):
    model = PaymentCallback
    fields = (
        "received_at",
        "source",
        "outcome",
        "reported_status",
        "reported_amount",
        "reported_currency",
        "event_id",
        "reason",
        "remote_addr",
    )
    readonly_fields = fields
    ordering = ("id",)
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _decidable(payment: Payment, decision: str) -> bool:
    """Whether staff may approve (credit) or reject this payment."""
    allowed = MANUAL_APPROVABLE if decision == "approve" else MANUAL_REJECTABLE
    return payment.method == "manual" and payment.status in allowed


class RejectForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Saved on the payment and in the audit log, e.g. “No transfer with this "
        "reference arrived”.",
        error_messages={"required": "Say why the transfer is rejected."},
    )


@admin.register(Payment)
class PaymentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Read-only: a payment changes only through what its gateway reports and staff's actions."""

    list_display = (
        "id",
        "created_at",
        "user",
        "method",
        money_column("amount", "amount", currency_field="currency"),
        money_column("bonus", "bonus", currency_field="currency"),
        "status",
        "attention",
        "customer_reference",
        "gateway_id_short",
    )
    list_display_links = ("id", "created_at")
    list_filter = (
        AttentionFilter,
        MethodFilter,
        "status",
        "needs_attention",
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("user",)
    search_fields = ("=gateway_id", "=public_id", "=user__username", "customer_reference")
    raw_id_fields = ("user", "reviewed_by")
    show_full_result_count = False
    inlines = [PaymentCallbackInline]
    audit_area = AdminAuditLog.Area.MONEY
    actions = ["approve_manual", "reject_manual", "check_at_gateway", "mark_attention_handled"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "decision_links",
                    "public_id",
                    "user",
                    "method",
                    "status",
                    "needs_attention",
                    "note",
                    "reviewed_by",
                )
            },
        ),
        ("Money", {"fields": ("amount", "fee", "bonus", "currency", "ledger_entries")}),
        (
            "At the gateway",
            {
                "fields": (
                    "gateway_id",
                    "customer_reference",
                    "charged_amount",
                    "charged_currency",
                    "checkout_url",
                    "details",
                )
            },
        ),
        ("Dates", {"fields": ("created_at", "updated_at", "paid_at", "expires_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        names = [f.name for f in Payment._meta.concrete_fields if f.name != "id"]
        return [*names, "decision_links", "ledger_entries"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a payment is made by the customer's Add funds

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # money fields are never edited: the actions below change what may change

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_decide_permission(self, request: HttpRequest) -> bool:
        """Approve, reject, check and clear the flag: staff who may change payments."""
        return request.user.has_perm("accounts.change_payment")

    @admin.display(description="gateway id", ordering="gateway_id")
    def gateway_id_short(self, obj: Payment) -> str:
        gateway_id = obj.gateway_id or "—"
        return gateway_id if len(gateway_id) <= 20 else f"{gateway_id[:18]}…"

    @admin.display(description="ledger entries")
    def ledger_entries(self, obj: Payment) -> str:
        if not obj.gateway_id:
            return "—"
        keys = [obj.ledger_key, f"bonus:{obj.method}:{obj.gateway_id}"]
        entries = LedgerEntry.objects.filter(idempotency_key__in=keys).order_by("id")
        if not entries:
            return "None: nothing was credited."
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td class='num'>{}</td>"
            "<td class='num'>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:accounts_ledgerentry_change", args=[e.pk]),
                    e.pk,
                    f"{e.created_at:%Y-%m-%d %H:%M}",
                    e.get_kind_display(),
                    money_text(e.amount, settings.PANEL_CURRENCY, signed=True),
                    money_text(e.balance_after, settings.PANEL_CURRENCY),
                    e.memo,
                )
                for e in entries
            ),
        )
        return format_html(
            "<table><thead><tr><th>Entry</th><th>When</th><th>Kind</th><th>Amount</th>"
            "<th>Balance after</th><th>Memo</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="needs attention", ordering="needs_attention")
    def attention(self, obj: Payment) -> str:
        """A problem in words, not the admin's green tick."""
        return "⚠ Check" if obj.needs_attention else "—"

    @admin.display(description="staff decision")
    def decision_links(self, obj: Payment) -> str:
        links = []
        if _decidable(obj, "approve"):
            url = reverse("admin:accounts_payment_decide", args=[obj.pk, "approve"])
            links.append(
                format_html(
                    '<a class="button" href="{}">Approve (credit {})</a>',
                    url,
                    money_text(obj.amount, obj.currency),
                )
            )
        if _decidable(obj, "reject"):
            url = reverse("admin:accounts_payment_decide", args=[obj.pk, "reject"])
            links.append(format_html('<a class="button" href="{}">Reject…</a>', url))
        return format_html_join(" ", "{}", ((link,) for link in links)) if links else "—"

    def get_urls(self) -> list[Any]:
        urls = [
            path(
                "<int:payment_id>/decide/<slug:decision>/",
                self.admin_site.admin_view(self.decide_view),
                name="accounts_payment_decide",
            )
        ]
        return urls + super().get_urls()

    def decide_view(self, request: HttpRequest, payment_id: int, decision: str) -> HttpResponse:
        """The detail page's Approve / Reject buttons: the action's confirmation page for one
        payment (it posts to the changelist's action, like a selection there)."""
        if decision not in ("approve", "reject") or not self.has_decide_permission(request):
            raise PermissionDenied
        queryset = Payment.objects.filter(pk=get_object_or_404(Payment, pk=payment_id).pk)
        return self._decision_page(request, queryset, decision, RejectForm())

    # --- actions: each calls a service, which audits ---------------------------------------

    @admin.action(
        description="Approve the selected manual transfers (credit them)", permissions=["decide"]
    )
    def approve_manual(self, request: HttpRequest, queryset: QuerySet[Payment]) -> Any:
        if request.POST.get("confirm") != "1":
            return self._decision_page(request, queryset, "approve", RejectForm())
        staff = staff_user(request)
        self._decide_each(
            request, queryset, "approve", lambda p: payment_approve_manual(payment=p, actor=staff)
        )
        return None

    @admin.action(description="Reject the selected manual transfers…", permissions=["decide"])
    def reject_manual(self, request: HttpRequest, queryset: QuerySet[Payment]) -> Any:
        form = RejectForm(request.POST if request.POST.get("confirm") == "1" else None)
        if not form.is_valid():
            return self._decision_page(request, queryset, "reject", form)
        staff, reason = staff_user(request), form.cleaned_data["reason"]
        self._decide_each(
            request,
            queryset,
            "reject",
            lambda p: payment_reject_manual(payment=p, actor=staff, reason=reason),
        )
        return None

    def _decision_page(
        self, request: HttpRequest, queryset: QuerySet[Payment], decision: str, form: RejectForm
    ) -> TemplateResponse:
        payments = list(queryset.select_related("user").order_by("id"))
        waiting = [p for p in payments if _decidable(p, decision)]
        context = {
            **self.admin_site.each_context(request),
            "title": "Approve manual transfers"
            if decision == "approve"
            else "Reject manual transfers",
            "opts": self.model._meta,
            "decision": decision,
            "action": f"{decision}_manual",
            "payments": payments,
            "waiting": waiting,
            "total": money_text(
                sum((p.amount for p in waiting), Decimal(0)),
                waiting[0].currency if waiting else settings.PANEL_CURRENCY,
            ),
            "currency": waiting[0].currency if waiting else "",
            "form": form,
            "changelist_url": reverse("admin:accounts_payment_changelist"),
        }
        return TemplateResponse(request, "admin/accounts/payment_decision.html", context)

    def _decide_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Payment],
        decision: str,
        decide: Callable[[Payment], Applied],
    ) -> None:
        """Only the payments the confirmation page listed (`_decidable`); the others are
        named as left as they were."""
        done, unchanged = 0, []
        for payment in queryset.select_related("user").order_by("id"):
            if not _decidable(payment, decision):
                unchanged.append(_not_decidable(payment, decision))
                continue
            try:
                applied = decide(payment)
            except PaymentError as exc:
                unchanged.append(f"#{payment.pk}: {exc}")
                continue
            if applied.outcome == PaymentCallback.Outcome.APPLIED:
                done += 1
            elif decision == "approve" and applied.payment and applied.payment.status == "paid":
                unchanged.append(_not_decidable(applied.payment, decision))
            else:
                unchanged.append(f"#{payment.pk}: {applied.reason}")
        if done:
            self.message_user(request, f"{done} payments changed.", messages.SUCCESS)
        if unchanged:
            self.message_user(request, " ".join(unchanged), messages.WARNING)

    @admin.action(
        description="Check the selected payments at their gateway", permissions=["decide"]
    )
    def check_at_gateway(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        said = []
        for payment in queryset.order_by("id")[:REFRESH_AT_MOST]:
            try:
                applied = payment_refresh(payment=payment)
            except GatewayError as exc:
                said.append(f"#{payment.pk}: the gateway failed ({exc})")
                continue
            if applied is None:
                said.append(f"#{payment.pk}: this gateway cannot be asked")
            else:
                said.append(f"#{payment.pk}: {applied.outcome}, {applied.reason}")
        level = messages.INFO if said else messages.WARNING
        self.message_user(request, "; ".join(said) or "Nothing selected.", level)

    @admin.action(
        description="Mark the selected payments' attention as handled", permissions=["decide"]
    )
    def mark_attention_handled(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        changed = payment_attention_handle(payments=queryset, actor=staff_user(request))
        self.message_user(request, f"{changed} payments no longer flagged.", messages.SUCCESS)


@admin.register(PaymentCallback)
class PaymentCallbackAdmin(admin.ModelAdmin):
    """Every word a gateway (or staff) said about a payment, as received: read-only."""

    list_display = (
        "id",
        "received_at",
        "method",
        "source",
        "outcome",
        "reported_status",
        "reported_amount",
        "gateway_id",
        "event_id",
        "reason",
        "payment",
    )
    list_filter = (MethodFilter, "outcome", "source", "received_at")
    search_fields = ("=gateway_id", "=event_id")
    list_select_related = ("payment",)
    raw_id_fields = ("payment",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DepositBonusRuleForm(forms.ModelForm):
    method = forms.ChoiceField(
        choices=[("", "Any method"), *_method_choices()],
        required=False,
        help_text="Only deposits by this method (blank: any method).",
    )

    class Meta:
        model = DepositBonusRule
        fields = ("name", "method", "min_amount", "percent", "is_active", "starts_at", "ends_at")

    def clean_percent(self) -> Decimal:
        percent = self.cleaned_data["percent"]
        if percent is not None and not Decimal(0) < percent <= Decimal(100):
            raise forms.ValidationError("A bonus is more than 0 and at most 100 %.")
        return percent

    def clean_min_amount(self) -> Decimal:
        amount = self.cleaned_data["min_amount"]
        if amount is not None and amount < 0:
            raise forms.ValidationError("The smallest deposit cannot be negative.")
        return amount

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The end comes after the start.")
        return data


@admin.register(DepositBonusRule)
class DepositBonusRuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = DepositBonusRuleForm
    list_display = ("name", "method", "min_amount", "percent", "is_active", "starts_at", "ends_at")
    list_filter = ("is_active", MethodFilter)
    audit_area = AdminAuditLog.Area.MONEY


class PaymentMethodSettingForm(forms.ModelForm):
    method = forms.ChoiceField(choices=_method_choices)

    class Meta:
        model = PaymentMethodSetting
        fields = (
            "method",
            "is_enabled",
            "display_name",
            "min_amount",
            "max_amount",
            "fee_percent",
            "instructions",
            "position",
        )

    def clean_min_amount(self) -> Decimal:
        amount = self.cleaned_data["min_amount"]
        if amount is not None and amount <= 0:
            raise forms.ValidationError("The smallest amount is above zero.")
        return amount

    def clean_fee_percent(self) -> Decimal:
        fee = self.cleaned_data["fee_percent"]
        if fee is not None and not Decimal(0) <= fee < Decimal(100):
            raise forms.ValidationError("A fee is from 0 to less than 100 %.")
        return fee

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        low, high = data.get("min_amount"), data.get("max_amount")
        if low is not None and high is not None and high < low:
            self.add_error("max_amount", "The largest amount cannot be below the smallest.")
        return data


@admin.register(PaymentMethodSetting)
class PaymentMethodSettingAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = PaymentMethodSettingForm
    list_display = (
        "method",
        "display_name",
        "is_enabled",
        "min_amount",
        "max_amount",
        "fee_percent",
        "position",
    )
    audit_area = AdminAuditLog.Area.MONEY


def _not_decidable(payment: Payment, decision: str) -> str:
    """Why a selected payment was left as it was, in plain words."""
    if payment.method != "manual":
        return f"#{payment.pk} is not a manual transfer; nothing was changed."
    if decision == "approve" and payment.status == Payment.Status.PAID:
        return f"#{payment.pk} was already approved and credited; nothing was credited again."
    if decision == "approve":
        return f"#{payment.pk} is {payment.get_status_display().lower()}; it was not credited."
    return f"#{payment.pk} is no longer waiting ({payment.get_status_display().lower()}); not rejected."
