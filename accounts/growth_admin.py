"""The admin of spending tiers and coupons (docs/growth.md), imported by accounts/admin.py.
Changes are audited (AuditedAdminMixin); generating codes calls accounts.coupons."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.audit import AuditedAdminMixin, audit_record, staff_user
from accounts.coupons import CouponError, coupon_code_clean, coupon_codes_generate
from accounts.models import AdminAuditLog, Coupon, CouponUse, Tier
from accounts.tiers import tier_customer_counts


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = ("name", "min_spent", "discount_percent", "allow_below_cost")

    def clean_min_spent(self) -> Decimal:
        value = self.cleaned_data["min_spent"]
        if value is not None and value < 0:
            raise forms.ValidationError("A threshold of total spent cannot be negative.")
        return value

    def clean_discount_percent(self) -> Decimal:
        value = self.cleaned_data["discount_percent"]
        if value is not None and not Decimal(0) <= value < Decimal(100):
            raise forms.ValidationError("A discount is from 0 to less than 100 %.")
        return value


@admin.register(Tier)
class TierAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = TierForm
    list_display = ("name", "min_spent", "discount_percent", "allow_below_cost", "customers")
    ordering = ("min_spent",)
    audit_area = AdminAuditLog.Area.PRICE

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        self._counts = tier_customer_counts()  # one query for the whole list
        return super().changelist_view(request, extra_context)

    @admin.display(description="customers in it")
    def customers(self, obj: Tier) -> int:
        return getattr(self, "_counts", {}).get(obj.pk, 0)


class CouponForm(forms.ModelForm):
    class Meta:
        model = Coupon
        fields = (
            "code",
            "kind",
            "bonus_type",
            "value",
            "min_deposit",
            "expires_at",
            "max_uses",
            "max_uses_per_customer",
            "is_active",
            "note",
        )

    def clean_code(self) -> str:
        try:
            code = coupon_code_clean(self.cleaned_data["code"])
        except CouponError as exc:
            raise forms.ValidationError(str(exc)) from None
        taken = Coupon.objects.filter(code=code).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"The code {code} exists already (any case).")
        return code

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, bonus_type, value = data.get("kind"), data.get("bonus_type"), data.get("value")
        if kind == Coupon.Kind.BALANCE and bonus_type != Coupon.BonusType.FIXED:
            self.add_error("bonus_type", "A balance code (gift card) is a fixed amount.")
        if value is not None and value <= 0:
            self.add_error("value", "The value must be more than 0.")
        elif value is not None and bonus_type == Coupon.BonusType.PERCENT and value > 100:
            self.add_error("value", "A percent bonus is at most 100 %.")
        if kind == Coupon.Kind.BALANCE and data.get("min_deposit"):
            self.add_error("min_deposit", "Only deposit codes have a minimum deposit.")
        uses = self.instance.uses if self.instance.pk else 0
        limit = data.get("max_uses")
        if limit is not None and limit < uses:
            self.add_error("max_uses", f"It was used {uses} times already.")
        return data


class CouponUseInline(admin.TabularInline):
    model = CouponUse
    fields = ("user", "status", "amount", "payment", "created_at", "used_at")
    readonly_fields = fields
    raw_id_fields = ("user", "payment")
    extra = 0
    can_delete = False
    show_change_link = False
    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GenerateForm(ActionForm):
    count = forms.IntegerField(min_value=1, max_value=1000, required=False, initial=10)
    code_prefix = forms.CharField(max_length=20, required=False)


@admin.register(Coupon)
class CouponAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = CouponForm
    action_form = GenerateForm
    list_display = (
        "code",
        "kind",
        "worth",
        "min_deposit",
        "usage",
        "max_uses_per_customer",
        "expires_at",
        "is_active",
    )
    list_filter = ("kind", "is_active")
    search_fields = ("code", "note")
    readonly_fields = ("uses", "created_at")
    inlines = [CouponUseInline]
    actions = ["generate_like"]
    audit_area = AdminAuditLog.Area.MONEY

    @admin.display(description="worth")
    def worth(self, obj: Coupon) -> str:
        if obj.bonus_type == Coupon.BonusType.PERCENT:
            return f"+{obj.value.normalize():f} %"
        return f"{obj.value.normalize():f}"

    @admin.display(description="uses (reserved or used)", ordering="uses")
    def usage(self, obj: Coupon) -> str:
        return f"{obj.uses} / {obj.max_uses}" if obj.max_uses is not None else f"{obj.uses}"

    @admin.action(description="Generate codes like the selected one (count and prefix beside)")
    def generate_like(self, request: HttpRequest, queryset: QuerySet[Coupon]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select one coupon as the template.", messages.ERROR)
            return
        raw = str(request.POST.get("count") or "10")
        template = queryset.get()
        try:
            made = coupon_codes_generate(
                template=template,
                count=int(raw) if raw.isdigit() else 0,
                prefix=request.POST.get("code_prefix", ""),
            )
        except CouponError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        first, last = made[0].code, made[-1].code
        audit_record(
            actor=staff_user(request),
            action="generate coupons",
            obj=template,
            summary=f"Generated {len(made)} codes like {template.code}: {first} … {last}.",
            after={"codes": [c.code for c in made]},
            area=AdminAuditLog.Area.MONEY,
        )
        self.message_user(request, f"{len(made)} codes made ({first} … {last}).", messages.SUCCESS)
