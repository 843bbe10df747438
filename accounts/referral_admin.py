"""The referrals admin (docs/growth.md): the programme's rate, referrers and their own rates,
who referred whom (changed by staff only, through accounts.referrals, audited), commissions by
state, and payout requests with Approve / Reject actions. Registered from accounts/admin.py."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.audit import AuditedAdminMixin, staff_user
from accounts.models import (
    AdminAuditLog,
    Commission,
    PayoutRequest,
    Referral,
    ReferralProgram,
    ReferrerAccount,
)
from accounts.referrals import (
    ReferralError,
    commission_attention_handle,
    payout_approve,
    payout_reject,
    referral_program,
    referral_refusal,
    referral_set_referrer,
)
from accounts.templatetags.panel_ui import money_column


@admin.register(ReferralProgram)
class ReferralProgramAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "commission_percent", "is_active")
    audit_area = AdminAuditLog.Area.MONEY

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row, made by the migration (and by referral_program() if missing)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        referral_program()  # the row to edit is always there
        return super().changelist_view(request, extra_context)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReferrerAccount)
class ReferrerAccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """A referrer's code and own rate (editable, audited); the money is read-only."""

    list_display = (
        "user",
        "code",
        "commission_percent",
        money_column("available", "available"),
        money_column("paid_out", "paid out"),
        "created_at",
    )
    list_select_related = ("user",)
    search_fields = ("=code", "user__username", "user__email")
    fields = ("user", "code", "commission_percent", "available", "paid_out", "created_at")
    readonly_fields = ("user", "code", "available", "paid_out", "created_at")
    show_full_result_count = False
    audit_area = AdminAuditLog.Area.MONEY

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made when the customer first opens their referral page

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReferralForm(forms.ModelForm):
    class Meta:
        model = Referral
        fields = ("referred", "referrer")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        referred, referrer = data.get("referred"), data.get("referrer")
        if referred is not None and referrer is not None:
            reason = referral_refusal(
                referrer=referrer, referred=referred, ip=None, heuristics=False
            )
            if reason:
                self.add_error("referrer", f"Refused: {reason}.")
        return data


@admin.register(Referral)
class ReferralAdmin(admin.ModelAdmin):
    """Who referred whom. Adding, changing and removing go through referral_set_referrer, which
    refuses self-referral and loops and writes the audit row."""

    form = ReferralForm
    list_display = ("referred", "referrer", "created_at", "signup_ip")
    list_select_related = ("referred", "referrer")
    search_fields = ("referred__username", "referrer__username", "=signup_ip")
    raw_id_fields = ("referred", "referrer")
    readonly_fields = ("created_at", "signup_ip", "visit")
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fixed = self.readonly_fields
        return (*fixed, "referred") if obj is not None else fixed

    def save_model(self, request: HttpRequest, obj: Referral, form: Any, change: bool) -> None:
        referral_set_referrer(
            referred=obj.referred, referrer=obj.referrer, actor=staff_user(request)
        )
        saved = Referral.objects.get(referred=obj.referred)
        obj.pk, obj.created_at = saved.pk, saved.created_at

    def delete_model(self, request: HttpRequest, obj: Referral) -> None:
        referral_set_referrer(referred=obj.referred, referrer=None, actor=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Referral]) -> None:
        actor = staff_user(request)
        for referral in queryset.select_related("referred"):
            referral_set_referrer(referred=referral.referred, referrer=None, actor=actor)


@admin.register(Commission)
class CommissionAdmin(admin.ModelAdmin):
    """Read-only: commissions change only through payments, the release sweep and the flag."""

    list_display = (
        "id",
        "created_at",
        "referrer",
        "referred",
        money_column("base_amount", "base amount"),
        "percent",
        money_column("amount", "amount"),
        "state",
        "release_at",
        "attention",
    )
    list_filter = ("state", "needs_attention", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("referrer", "referred")
    search_fields = ("=referrer__username", "=referred__username")
    raw_id_fields = ("referrer", "referred", "payment", "charge_entry")
    show_full_result_count = False
    actions = ["mark_attention_handled"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Commission._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="needs attention", ordering="needs_attention")
    def attention(self, obj: Commission) -> str:
        return "⚠ Check" if obj.needs_attention else "—"

    @admin.action(description="Mark the selected commissions' attention as handled")
    def mark_attention_handled(self, request: HttpRequest, queryset: QuerySet[Commission]) -> None:
        actor = staff_user(request)
        done = sum(commission_attention_handle(commission=c, actor=actor) for c in queryset)
        self.message_user(request, f"{done} commissions no longer flagged.", messages.SUCCESS)


class PayoutRejectForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Shown to the customer on their referral page and kept in the audit log.",
        error_messages={"required": "Say why the payout is rejected."},
    )


@admin.register(PayoutRequest)
class PayoutRequestAdmin(admin.ModelAdmin):
    """Read-only requests; Approve (you paid it) and Reject (it returns to available) act once
    each, whoever clicks at the same moment (accounts.referrals, audited)."""

    list_display = (
        "id",
        "created_at",
        "referrer",
        money_column("amount", "amount"),
        "details",
        "state",
        "decided_by",
    )
    list_filter = ("state", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("referrer", "decided_by")
    search_fields = ("=referrer__username",)
    show_full_result_count = False
    actions = ["approve_payouts", "reject_payouts"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in PayoutRequest._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Approve the selected payouts (you have paid them)")
    def approve_payouts(self, request: HttpRequest, queryset: QuerySet[PayoutRequest]) -> None:
        actor = staff_user(request)
        done = [payout_approve(payout=p, actor=actor) for p in queryset.order_by("id")]
        self._report(request, done, "approved")

    @admin.action(description="Reject the selected payouts…")
    def reject_payouts(self, request: HttpRequest, queryset: QuerySet[PayoutRequest]) -> Any:
        form = PayoutRejectForm(request.POST if request.POST.get("confirm") == "1" else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Reject payout requests",
                "opts": self.model._meta,
                "payouts": list(queryset.select_related("referrer").order_by("id")),
                "form": form,
                "changelist_url": reverse("admin:accounts_payoutrequest_changelist"),
            }
            return TemplateResponse(request, "admin/accounts/payout_reject.html", context)
        actor, reason = staff_user(request), form.cleaned_data["reason"]
        try:
            done = [
                payout_reject(payout=p, actor=actor, reason=reason) for p in queryset.order_by("id")
            ]
        except ReferralError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        self._report(request, done, "rejected")
        return None

    def _report(self, request: HttpRequest, done: list[PayoutRequest | None], what: str) -> None:
        changed = sum(1 for d in done if d is not None)
        if changed:
            self.message_user(request, f"{changed} payouts {what}.", messages.SUCCESS)
        if len(done) > changed:
            self.message_user(
                request,
                f"{len(done) - changed} were not waiting any more and were left as they were.",
                messages.WARNING,
            )
