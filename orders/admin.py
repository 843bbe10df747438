"""Orders in the admin: find them fast, see their whole history, act through the services.

Every field of an order is read-only here; the change form has a small "Admin action" section
whose fields (a new status with remains, or the upstream id found by hand) go through
orders.services, so each change is recorded with who made it and refunds follow the rules.
"""

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.functions import Collate, Left
from django.db.models.lookups import StartsWith
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from accounts.admin import QuickCheckboxMixin
from accounts.audit import audit_record, staff_user
from accounts.models import AdminAuditLog, User
from accounts.templatetags.panel_ui import money_column
from orders.models import (
    CancelRequest,
    Order,
    OrderStatusChange,
    Refill,
    WebhookEndpoint,
    WebhookEvent,
)
from orders.selectors import order_attention_kind_get, order_attention_kinds
from orders.services import (
    OrderError,
    order_cancel_with_refund,
    order_resend,
    order_set_status_by_admin,
    order_set_upstream_id,
    webhook_event_retry,
)
from providers.models import ProviderCall

S = Order.Status
CALLS_SHOWN = 50
# What an admin action can change on an order: written to the audit log before and after.
AUDITED_FIELDS = ("status", "upstream_order_id", "remains", "start_count", "refunded")


def _snapshot(order: Order) -> dict:
    return {name: getattr(order, name) for name in AUDITED_FIELDS}


def _audit(request: HttpRequest, action: str, before: dict, order: Order, note: str = "") -> None:
    """One audit row for an admin action that changed `order` (before: its snapshot)."""
    after = _snapshot(order)
    summary = f"Order {order.pk}: {before['status']} → {after['status']}"
    audit_record(
        actor=staff_user(request),
        action=action,
        obj=order,
        summary=f"{summary}. {note}".strip() if note else f"{summary}.",
        before=before,
        after=after,
        area=AdminAuditLog.Area.ORDER,
    )


# The order list never counts more than this many matching orders (see CappedCountPaginator).
COUNT_CAP = 10_000
# Link searches compare this many leading characters through the `order_link_prefix` index.
LINK_PREFIX = 255


class CappedCountPaginator(Paginator):
    """The order list's paginator: no COUNT(*) over a million orders on every page.

    Unfiltered, the number of orders is PostgreSQL's own estimate (pg_class.reltuples, kept
    fresh by autovacuum); filtered or searched, matching orders are counted up to COUNT_CAP + 1
    (a COUNT over a LIMIT subquery), so the list offers at most COUNT_CAP / per_page pages and
    says "more than 10000". `capped` and `estimated` tell the template which case it is.
    """

    object_list: QuerySet[Order]  # OrderAdmin's changelist: always a queryset
    capped = False
    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where and connection.vendor == "postgresql":
            estimate = _table_estimate(queryset.model._meta.db_table)
            if estimate > COUNT_CAP:
                self.estimated = True
                return estimate
        count = queryset.order_by()[: COUNT_CAP + 1].count()
        if count > COUNT_CAP:
            self.capped = True
            return COUNT_CAP
        return count


def _table_estimate(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1


def order_search_filter(term: str) -> Q:
    """What one search term matches, each part through an index (docs/orders.md):
    a number is an order id; any term is an upstream order id (exact), a customer's username or
    e-mail (exact, any case) or the start of a link (case-sensitive)."""
    term = term.strip()
    if not term:
        return Q(pk__in=[])
    query = Q(upstream_order_id=term)
    if term.isdigit() and int(term) < 2**63:
        query |= Q(pk=int(term))
    users = list(
        User.objects.filter(Q(username__iexact=term) | Q(email__iexact=term)).values_list(
            "pk", flat=True
        )[:50]
    )
    if users:
        query |= Q(user_id__in=users)
    if not term.isdigit():
        if connection.vendor != "postgresql":  # SQLite (embedded mode) has no "C" collation
            return query | Q(link__startswith=term)
        link = StartsWith(Collate(Left("link", LINK_PREFIX), "C"), term[:LINK_PREFIX])
        query |= Q(link, link__startswith=term) if len(term) > LINK_PREFIX else Q(link)
    return query


class NeedsAttentionFilter(admin.SimpleListFilter):
    """The kinds of orders.selectors.order_attention_kinds, the ones the cockpit counts."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(kind.key, kind.label) for kind in order_attention_kinds(now=timezone.now())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        kind = order_attention_kind_get(key=self.value(), now=timezone.now())
        return queryset.filter(kind.condition) if kind else queryset


class ReadOnlyInline(admin.TabularInline):
    """History rows: shown, never added, edited or deleted from the order page."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class StatusChangeInline(ReadOnlyInline):
    model = OrderStatusChange
    fields = (
        "created_at",
        "old_status",
        "new_status",
        "start_count",
        "remains",
        "source",
        "changed_by",
        "note",
    )
    verbose_name_plural = "status history"


class RefillInline(ReadOnlyInline):
    model = Refill
    fields = (
        "id",
        "created_at",
        "status",
        "upstream_refill_id",
        "upstream_status",
        "error",
        "finished_at",
    )


class CancelInline(ReadOnlyInline):
    model = CancelRequest
    fields = (
        "id",
        "created_at",
        "status",
        "upstream_cancel_id",
        "upstream_type",
        "upstream_status",
        "error",
        "finished_at",
    )


class OrderAdminForm(forms.ModelForm):
    new_status = forms.ChoiceField(
        choices=[("", "— keep —"), *S.choices],
        required=False,
        help_text="Moves allowed by the status table only. Partial refunds charge x remains / "
        "quantity, Canceled refunds the whole charge (once).",
    )
    new_remains = forms.IntegerField(required=False, min_value=0, label="Remains")
    new_start_count = forms.IntegerField(required=False, min_value=0, label="Start count")
    new_upstream_order_id = forms.CharField(
        required=False,
        max_length=64,
        label="Upstream order id",
        help_text="For an order that needs review and that you found at the provider: the "
        "order becomes Pending and is polled.",
    )
    admin_note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = Order
        fields: list[str] = []


@admin.register(Order)
class OrderAdmin(QuickCheckboxMixin, admin.ModelAdmin):
    form = OrderAdminForm
    list_display = (
        "id",
        "created_at",
        "user",
        "service_name",
        "status",
        "public_status",
        money_column("charge", "charge"),
        money_column("refunded", "refunded"),
        "provider",
        "upstream_order_id",
        "source",
    )
    list_filter = (
        NeedsAttentionFilter,
        "status",
        "provider",
        "source",
        "failed_over",
        ("created_at", admin.DateFieldListFilter),
    )
    # Only shows the search box: get_search_results below decides what a term matches.
    search_fields = ("=id", "=upstream_order_id", "=user__username", "=user__email", "^link")
    search_help_text = (
        "An order id, an upstream order id, a customer's username or e-mail (exact), "
        "or the start of a link (https://…)."
    )
    list_select_related = ("user", "service", "provider")
    show_full_result_count = False
    paginator = CappedCountPaginator
    date_hierarchy = None
    raw_id_fields = ("user", "service")
    list_per_page = 100
    actions = ("resend_orders", "cancel_orders_with_refund", "mark_completed")
    inlines = (StatusChangeInline, RefillInline, CancelInline)
    readonly_fields = (
        "user",
        "service",
        "source",
        "status",
        "public_status",
        "link",
        "quantity",
        "params",
        "rate",
        "charge",
        "cost",
        "refunded",
        "provider",
        "upstream_service",
        "failed_over_display",
        "upstream_order_id",
        "submit_attempts",
        "submitted_at",
        "attention_reason",
        "start_count",
        "remains",
        "upstream_status",
        "last_polled_at",
        "next_poll_at",
        "poll_errors",
        "idempotency_key",
        "created_at",
        "updated_at",
        "finished_at",
        "ledger_link",
        "provider_calls",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "user",
                    "service",
                    "source",
                    "status",
                    "public_status",
                    "attention_reason",
                    "created_at",
                    "finished_at",
                )
            },
        ),
        ("Request", {"fields": ("link", "quantity", "params", "idempotency_key")}),
        ("Money", {"fields": ("rate", "charge", "cost", "refunded", "ledger_link")}),
        (
            "Upstream",
            {
                "fields": (
                    "provider",
                    "upstream_service",
                    "failed_over_display",
                    "upstream_order_id",
                    "submit_attempts",
                    "submitted_at",
                    "upstream_status",
                    "start_count",
                    "remains",
                    "last_polled_at",
                    "next_poll_at",
                    "poll_errors",
                )
            },
        ),
        (
            "Admin action",
            {
                "fields": (
                    "new_status",
                    "new_remains",
                    "new_start_count",
                    "new_upstream_order_id",
                    "admin_note",
                )
            },
        ),
        ("Upstream calls", {"fields": ("provider_calls",), "classes": ("collapse",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders are made by customers, the API and mass orders

    def get_search_results(self, request, queryset, search_term):
        # Django's own search ORs every field (across the user join), which no index can answer
        # on a million orders; here every part of the OR has an index (a bitmap OR).
        if not search_term.strip():
            return queryset, False
        return queryset.filter(order_search_filter(search_term)), False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the ledger refers to them

    @admin.display(description="service", ordering="service__name")
    def service_name(self, order: Order) -> str:
        return f"{order.service_id} — {order.service.name}"[:80]

    @admin.display(description="failed over")
    def failed_over_display(self, order: Order) -> str:
        # A sentence rather than the model's ✓/✗ with its help text, which read "Failed over
        # ✗ Placed at a backup mapping" on an order that was not.
        if order.failed_over:
            return "Yes: placed at a backup mapping (the service's first one failed)"
        return "No: placed at the service's own mapping"

    @admin.display(description="customer sees")
    def public_status(self, order: Order) -> str:
        return order.public_status

    @admin.display(description="ledger")
    def ledger_link(self, order: Order) -> str:
        url = reverse("admin:accounts_ledgerentry_changelist")
        return format_html(
            '<a href="{}?order_ref={}">Ledger entries of this order</a>', url, order.pk
        )

    @admin.display(description="calls to the provider")
    def provider_calls(self, order: Order) -> str:
        calls = ProviderCall.objects.filter(order_ref=order.pk).select_related("provider")[
            :CALLS_SHOWN
        ]
        if not calls:
            return "None recorded."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
            (
                (
                    c.created_at,
                    c.provider,
                    c.action,
                    "ok" if c.ok else c.error_kind,
                    c.duration_ms,
                    c.error_message or c.response_excerpt[:200],
                )
                for c in calls
            ),
        )
        return format_html(
            "<table><tr><th>when</th><th>provider</th><th>action</th><th>outcome</th>"
            "<th>took</th><th>detail</th></tr>{}</table>",
            rows,
        )

    def save_model(
        self, request: HttpRequest, obj: Order, form: OrderAdminForm, change: bool
    ) -> None:
        """Nothing is saved directly: the admin-action fields call the services."""
        staff = staff_user(request)
        data = form.cleaned_data
        order = Order.objects.get(pk=obj.pk)
        before = _snapshot(order)
        note = data.get("admin_note") or ""
        try:
            if data.get("new_upstream_order_id"):
                order = order_set_upstream_id(
                    order=order,
                    upstream_order_id=data["new_upstream_order_id"],
                    who=staff,
                    note=note,
                )
                _audit(request, "set_upstream_id", before, order, note)
            elif data.get("new_status") and data["new_status"] != order.status:
                order = order_set_status_by_admin(
                    order=order,
                    new=data["new_status"],
                    who=staff,
                    remains=data.get("new_remains"),
                    start_count=data.get("new_start_count"),
                    note=note,
                )
                _audit(request, "set_status", before, order, note)
        except OrderError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    # --- bulk actions, each through a service ---------------------------------------------

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Order],
        work: Callable[[Order], Order],
        done: str,
        action: str,
    ) -> None:
        """Run `work` on each selected order; every order it changed gets an audit row."""
        ok, failed = 0, []
        for order in queryset.select_related("user"):
            before = _snapshot(order)
            try:
                changed = work(order)
            except OrderError as exc:
                failed.append(f"{order.pk}: {exc.message}")
                continue
            ok += 1
            _audit(request, action, before, changed)
        if ok:
            self.message_user(request, f"{ok} order(s) {done}.", messages.SUCCESS)
        if failed:
            self.message_user(request, "Not done: " + "; ".join(failed[:20]), messages.WARNING)

    @admin.action(description="Resend upstream (needs review only; check the provider first)")
    def resend_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        staff = staff_user(request)
        self._each(
            request, queryset, lambda o: order_resend(order=o, who=staff), "resent", "resend"
        )

    @admin.action(description="Cancel with full refund (the provider is not asked)")
    def cancel_orders_with_refund(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        staff = staff_user(request)
        self._each(
            request,
            queryset,
            lambda o: order_cancel_with_refund(order=o, who=staff),
            "canceled and refunded",
            "cancel_with_refund",
        )

    @admin.action(description="Mark completed (manual or reviewed orders)")
    def mark_completed(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        staff = staff_user(request)
        self._each(
            request,
            queryset,
            lambda o: order_set_status_by_admin(order=o, new=S.COMPLETED, who=staff),
            "marked completed",
            "set_status",
        )


class UpstreamRequestAdmin(admin.ModelAdmin):
    """Refills and cancels: read-only records of requests sent upstream, found by their own,
    their order's or the provider's id."""

    list_filter = ("status",)
    list_select_related = ("order",)
    raw_id_fields = ("order",)
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Refill)
class RefillAdmin(UpstreamRequestAdmin):
    list_display = (
        "id",
        "order",
        "status",
        "upstream_refill_id",
        "upstream_status",
        "created_at",
        "finished_at",
    )
    search_fields = ("=id", "=order__id", "=upstream_refill_id")


@admin.register(CancelRequest)
class CancelRequestAdmin(UpstreamRequestAdmin):
    list_display = (
        "id",
        "order",
        "status",
        "upstream_cancel_id",
        "upstream_type",
        "created_at",
        "finished_at",
    )
    search_fields = ("=id", "=order__id", "=upstream_cancel_id")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field read-only; nothing added or deleted by hand."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    """Resellers' webhooks (docs/webhooks.md); the secret is never shown, only its start."""

    list_display = ("user", "url", "is_active", "secret_hint", "secret_rotated_at", "updated_at")
    list_filter = ("is_active",)
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "url")
    exclude = ("secret_encrypted",)

    def get_readonly_fields(self, request, obj=None):
        return [f for f in super().get_readonly_fields(request, obj) if f != "secret_encrypted"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    """Webhook events and their deliveries; "Retry now" gives the chosen ones an attempt now."""

    list_display = (
        "event_id",
        "user",
        "type",
        "order",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "type")
    list_select_related = ("user",)
    raw_id_fields = ("user", "order")
    search_fields = ("=event_id", "=order__id", "user__username")
    show_full_result_count = False
    actions = ("retry_now",)

    @admin.action(description="Retry now (one more attempt for failed ones)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        retried = 0
        for event in queryset.exclude(status=WebhookEvent.Status.DELIVERED):
            webhook_event_retry(event=event)
            retried += 1
        self.message_user(
            request, f"{retried} event(s) queued for an attempt now.", messages.SUCCESS
        )
