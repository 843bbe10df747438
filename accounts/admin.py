from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.forms import BalanceChangeForm
from accounts.models import ApiKey, LedgerEntry, User
from accounts.services import InsufficientFunds, InvalidAmount, balance_adjust


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fk_name = "user"
    fields = ("created_at", "kind", "amount", "balance_after", "order_ref", "memo", "created_by")
    readonly_fields = fields
    ordering = ("-id",)
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "ledger (newest first)"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "balance_display", "is_active", "is_staff", "date_joined")
    list_select_related = ("wallet",)
    readonly_fields = ("balance_display", "change_balance_link", "last_login", "date_joined")
    inlines = [LedgerEntryInline]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Balance", {"fields": ("balance_display", "change_balance_link")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email", "timezone")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )

    @admin.display(description="balance", ordering="wallet__balance")
    def balance_display(self, obj: User):
        wallet = getattr(obj, "wallet", None)
        return wallet.balance if wallet else "—"

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

    def balance_view(self, request, user_id: int):
        if not request.user.has_perm("accounts.add_ledgerentry"):
            raise PermissionDenied
        customer = get_object_or_404(User.objects.select_related("wallet"), pk=user_id)
        form = BalanceChangeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = balance_adjust(
                    user=customer,
                    amount=form.signed_amount(),
                    created_by=request.user,
                    reason=form.cleaned_data["reason"],
                    payment_ref=form.cleaned_data["payment_ref"],
                )
            except (InsufficientFunds, InvalidAmount) as exc:
                form.add_error("amount", str(exc))
            else:
                self.message_user(
                    request,
                    f"{entry.amount:+} written to the ledger; the balance is {entry.balance_after}.",
                    messages.SUCCESS,
                )
                return redirect("admin:accounts_user_change", customer.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change the balance of {customer}",
            "customer": customer,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/accounts/balance_change.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "user", "kind", "amount", "balance_after", "order_ref", "memo")
    list_filter = ("kind", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "=order_ref", "payment_ref", "memo")
    raw_id_fields = ("user", "created_by")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # through the customer's "Credit or debit" page, which uses the ledger

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "is_active", "created_at", "last_used_at", "last_used_ip")
    list_filter = ("is_active",)
    list_select_related = ("user",)
    search_fields = ("user__username", "prefix")
    fields = ("user", "prefix", "is_active", "created_at", "last_used_at", "last_used_ip")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at", "last_used_ip")

    def has_add_permission(self, request):
        return False  # keys are issued by the customer or `create_customer --api-key`
