"""The admin's cockpit: the admin home with revenue, cost and profit, what needs attention and
provider health, plus the bulk pricing page. `install(admin.site)` (called from
accounts/admin.py) puts both into the default admin site.

Definitions (docs/admin.md):
- revenue of an order = charge - refunded (what the customer finally paid);
- cost of an order = cost * (charge - refunded) / charge: the provider refunds the undelivered
  part of a partial or canceled order in the same proportion as we do. An order without a cost
  yet (not placed) counts 0; an order with a zero charge keeps its full cost;
- profit = revenue - cost. Orders count on the UTC day they were created.

Every figure comes from a few aggregate queries over Order.created_at ranges (indexed), never
from loading orders; counts of attention orders are capped (ATTENTION_COUNT_CAP).
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import AdminSite
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from catalog.models import Category, Service
from catalog.pricing import MONEY_DIGITS, MONEY_PLACES, quantize_money
from orders.models import Order
from panel import pricing_tools
from providers.models import Provider, ProviderCall

ATTENTION_COUNT_CAP = 1000
ATTENTION_LIST_SIZE = 15
TOP_SERVICES = 10
S = Order.Status
STUCK_STATUSES = (S.QUEUED, S.PENDING, S.IN_PROGRESS)
PERIODS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days"}

_MONEY = DecimalField(max_digits=MONEY_DIGITS + 10, decimal_places=MONEY_PLACES + 5)
ZERO = Value(Decimal(0), output_field=_MONEY)


# --- money expressions ------------------------------------------------------------------------


def _revenue_expr():
    return ExpressionWrapper(F("charge") - F("refunded"), output_field=_MONEY)


def _cost_expr():
    # cost * (1 - refunded / charge), i.e. cost * (charge - refunded) / charge.
    return Case(
        When(cost__isnull=True, then=ZERO),
        When(charge__gt=0, then=F("cost") * (F("charge") - F("refunded")) / F("charge")),
        default=F("cost"),
        output_field=_MONEY,
    )


def _money_aggregates(condition: Q | None = None) -> dict:
    return {
        "revenue": Coalesce(Sum(_revenue_expr(), filter=condition), ZERO),
        "cost": Coalesce(Sum(_cost_expr(), filter=condition), ZERO),
        "orders": Count("id", filter=condition),
    }


@dataclass
class Figures:
    revenue: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    orders: int = 0
    label: str = ""
    key: object = None

    def __post_init__(self) -> None:
        self.revenue = quantize_money(self.revenue or 0)
        self.cost = quantize_money(self.cost or 0)

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.revenue:
            return None
        return (self.profit * 100 / self.revenue).quantize(Decimal("0.1"))


# --- periods ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Periods:
    now: datetime.datetime
    today: datetime.datetime  # UTC midnight
    start_7d: datetime.datetime
    start_30d: datetime.datetime

    @classmethod
    def at(cls, now: datetime.datetime) -> "Periods":
        today = now.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(
            now, today, today - datetime.timedelta(days=6), today - datetime.timedelta(days=29)
        )

    def start(self, key: str) -> datetime.datetime:
        return {"today": self.today, "7d": self.start_7d, "30d": self.start_30d}[key]


# --- selectors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """Money of the orders of one UTC day, one service and one provider."""

    day: datetime.date
    service_id: int
    provider_id: int | None
    revenue: Decimal
    cost: Decimal
    orders: int


def _cells(since: datetime.datetime, until: datetime.datetime | None = None) -> list[Cell]:
    # One scan of the range, grouped by (day, service, provider): a few thousand rows at most
    # (days x services on sale), from which every figure of the page is summed in Python.
    orders = Order.objects.filter(created_at__gte=since)
    if until is not None:
        orders = orders.filter(created_at__lt=until)
    rows = (
        orders.annotate(day=TruncDate("created_at", tzinfo=datetime.UTC))
        .values_list("day", "service_id", "provider_id")
        .annotate(**_money_aggregates())
        .order_by()
    )
    return [Cell(*row) for row in rows]


def profit_cells(*, periods: Periods) -> list[Cell]:
    """The cells of the last 30 days. Today's are read live; the 29 days before change only
    when a late refund lands, so they are cached for COCKPIT_CACHE_SECONDS (default 300)."""
    seconds = int(getattr(settings, "COCKPIT_CACHE_SECONDS", 300))
    if seconds <= 0:
        return _cells(periods.start_30d)
    key = f"cockpit:cells:{periods.start_30d:%Y%m%d}:{periods.today:%Y%m%d}"
    past = cache.get(key)
    if past is None:
        past = _cells(periods.start_30d, periods.today)
        cache.set(key, past, seconds)
    return past + _cells(periods.today)


def profit_by_day(*, cells: list[Cell], periods: Periods) -> list[Figures]:
    """One row per UTC day of the last 30 (today included), days without orders as zeros."""
    by_day: dict[datetime.date, list[Cell]] = {}
    for cell in cells:
        by_day.setdefault(cell.day, []).append(cell)
    days = []
    for offset in range(30):
        day = (periods.start_30d + datetime.timedelta(days=offset)).date()
        days.append(_sum(by_day.get(day, []), str(day), day))
    return days


def _sum(cells: list[Cell], label: str = "", key: object = None) -> Figures:
    return Figures(
        sum((c.revenue for c in cells), Decimal(0)),
        sum((c.cost for c in cells), Decimal(0)),
        sum(c.orders for c in cells),
        label,
        key,
    )


def profit_totals(*, days: list[Figures], periods: Periods) -> dict[str, Figures]:
    """Today, 7 and 30 days, summed from the daily rows (no extra query)."""
    totals = {}
    for key, label in PERIODS.items():
        start = periods.start(key).date()
        chosen = [d for d in days if d.key >= start]
        totals[key] = Figures(
            sum((d.revenue for d in chosen), Decimal(0)),
            sum((d.cost for d in chosen), Decimal(0)),
            sum(d.orders for d in chosen),
            label,
        )
    return totals


def profit_breakdowns(*, cells: list[Cell], since: datetime.date) -> dict[str, list[Figures]]:
    """Per provider, per category and the top services by profit, for the cells since `since`;
    names in three small queries."""
    cells = [c for c in cells if c.day >= since]
    service_ids = {c.service_id for c in cells}
    services = {
        pk: (category_id, name)
        for pk, category_id, name in Service.objects.filter(pk__in=service_ids).values_list(
            "pk", "category_id", "name"
        )
    }
    groups: dict[str, dict] = {"provider": {}, "category": {}, "service": {}}
    for cell in cells:
        category_id = services.get(cell.service_id, (None, ""))[0]
        for group, key in (
            ("provider", cell.provider_id),
            ("category", category_id),
            ("service", cell.service_id),
        ):
            groups[group].setdefault(key, []).append(cell)
    providers = dict(Provider.objects.filter(pk__in=groups["provider"]).values_list("pk", "name"))
    categories = dict(Category.objects.filter(pk__in=groups["category"]).values_list("pk", "name"))
    labels = {
        "provider": lambda pk: providers.get(pk, "(not placed yet)"),
        "category": lambda pk: categories.get(pk, "—"),
        "service": lambda pk: f"{pk} — {services.get(pk, (None, ''))[1]}",
    }
    result = {}
    for group, by_key in groups.items():
        rows = [_sum(group_cells, labels[group](key), key) for key, group_cells in by_key.items()]
        rows.sort(key=lambda f: (-f.profit, str(f.label)))
        result[group] = rows[:TOP_SERVICES] if group == "service" else rows
    return result


@dataclass
class AttentionGroup:
    key: str
    label: str
    count: int
    capped: bool
    url: str | None


@dataclass
class Attention:
    groups: list[AttentionGroup] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    stuck_hours: int = 24

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)


def _capped_count(queryset: QuerySet) -> tuple[int, bool]:
    # COUNT over a LIMITed subquery: the cost stays bounded however many orders match.
    count = queryset.order_by().values("pk")[: ATTENTION_COUNT_CAP + 1].count()
    return min(count, ATTENTION_COUNT_CAP), count > ATTENTION_COUNT_CAP


def stuck_before(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(hours=stuck_hours())


def stuck_hours() -> int:
    return int(getattr(settings, "ATTENTION_STUCK_HOURS", 24))


def attention_querysets(*, now: datetime.datetime) -> dict[str, tuple[str, Q, dict]]:
    """Each kind of order that needs attention: label, filter and the changelist query."""
    before = stuck_before(now)
    return {
        "needs_review": (
            "Need review (upstream outcome unknown)",
            Q(status=S.NEEDS_REVIEW),
            {"status__exact": S.NEEDS_REVIEW},
        ),
        "waiting_funds": (
            "Waiting: provider out of funds",
            Q(status=S.WAITING_FUNDS),
            {"status__exact": S.WAITING_FUNDS},
        ),
        "stuck": (
            f"Stuck in queued, pending or in progress for over {stuck_hours()} h",
            Q(status__in=STUCK_STATUSES, created_at__lt=before),
            {
                "status__in": ",".join(STUCK_STATUSES),
                "created_at__lt": before.strftime("%Y-%m-%d %H:%M:%S"),
            },
        ),
    }


def orders_needing_attention(*, now: datetime.datetime) -> Attention:
    """Capped counts per kind, links to the order list filtered likewise, and the oldest few."""
    kinds = attention_querysets(now=now)
    attention = Attention(stuck_hours=stuck_hours())
    anything = Q()
    for key, (label, condition, query) in kinds.items():
        count, capped = _capped_count(Order.objects.filter(condition))
        attention.groups.append(AttentionGroup(key, label, count, capped, _order_list_url(query)))
        anything |= condition
    attention.orders = list(
        Order.objects.filter(anything)
        .select_related("user", "service", "provider")
        .only(
            "id",
            "status",
            "created_at",
            "charge",
            "attention_reason",
            "quantity",
            "user__username",
            "service__name",
            "provider__name",
        )
        .order_by("created_at", "id")[:ATTENTION_LIST_SIZE]
    )
    return attention


def _order_list_url(query: dict) -> str | None:
    try:
        return reverse("admin:orders_order_changelist") + "?" + urlencode(query)
    except NoReverseMatch:  # the orders admin is not registered
        return None


def order_change_url(order_id: int) -> str | None:
    try:
        return reverse("admin:orders_order_change", args=[order_id])
    except NoReverseMatch:
        return None


@dataclass
class ProviderHealth:
    provider: Provider
    calls_last_hour: int
    errors_last_hour: int
    last_ok_sync: datetime.datetime | None

    @property
    def error_rate(self) -> Decimal | None:
        if not self.calls_last_hour:
            return None
        return (Decimal(self.errors_last_hour) * 100 / self.calls_last_hour).quantize(
            Decimal("0.1")
        )

    @property
    def low_balance(self) -> bool:
        return self.provider.is_low_on_balance

    @property
    def problems(self) -> list[str]:
        found = []
        if not self.provider.is_enabled:
            found.append("disabled")
        if self.low_balance:
            found.append("balance below threshold")
        if self.provider.out_of_funds_since:
            found.append("out of funds")
        if self.error_rate is not None and self.error_rate >= 20:
            found.append("many failing calls")
        if self.provider.last_sync_error:
            found.append("last sync failed")
        return found


def provider_health(*, now: datetime.datetime) -> list[ProviderHealth]:
    """Every provider with its call counts in the last hour and its last successful catalog
    sync, in one query (the providercall_recent index serves the join)."""
    hour_ago = now - datetime.timedelta(hours=1)
    providers = Provider.objects.annotate(
        calls_last_hour=_recent_calls(hour_ago),
        errors_last_hour=_recent_calls(hour_ago, ok=False),
    ).order_by("name")
    return [
        ProviderHealth(p, p.calls_last_hour, p.errors_last_hour, p.last_sync_at) for p in providers
    ]


def _recent_calls(since: datetime.datetime, **filters) -> Coalesce:
    # A correlated COUNT per provider over (provider, created_at >= since): an index range scan
    # of providercall_recent. A JOIN with Count(filter=...) would read every call ever made.
    calls = (
        ProviderCall.objects.filter(provider=OuterRef("pk"), created_at__gte=since, **filters)
        .order_by()
        .values("provider")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(calls), 0)


# --- the chart --------------------------------------------------------------------------------


def profit_chart_svg(days: list[Figures], *, width: int = 900, height: int = 240) -> SafeString:
    """Revenue bars with a profit line for the last 30 days, as inline SVG (no JavaScript, no
    outside request). Every value is a number we computed, so the markup is safe."""
    pad_left, pad_right, pad_top, pad_bottom = 70, 10, 14, 34
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom
    top = max([d.revenue for d in days] + [d.profit for d in days] + [Decimal(1)])
    bottom = min([d.profit for d in days] + [Decimal(0)])
    span = top - bottom or Decimal(1)

    def y(value: Decimal) -> float:
        return round(pad_top + float((top - value) / span) * plot_h, 1)

    slot = plot_w / max(len(days), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cockpit-chart" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="Revenue and profit per day, last 30 days">'
    ]
    for i in range(5):  # grid lines with their values
        value = bottom + span * i / 4
        parts.append(
            f'<line x1="{pad_left}" x2="{width - pad_right}" y1="{y(value)}" y2="{y(value)}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{pad_left - 6}" y="{y(value) + 4}" text-anchor="end" font-size="11" '
            f'fill="#666">{value:,.0f}</text>'
        )
    zero = y(Decimal(0))
    points = []
    for i, d in enumerate(days):
        x = pad_left + i * slot
        bar_top = y(d.revenue)
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{bar_top}" width="{slot * 0.7:.1f}" '
            f'height="{max(zero - bar_top, 0):.1f}" fill="#79aec8">'
            f"<title>{d.label}: revenue {d.revenue}, cost {d.cost}, profit {d.profit}, "
            f"{d.orders} orders</title></rect>"
        )
        points.append(f"{x + slot / 2:.1f},{y(d.profit)}")
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - pad_bottom + 16}" text-anchor="middle" '
                f'font-size="11" fill="#666">{d.key:%d %b}</text>'
            )
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#2a8f3c" stroke-width="2.5"/>'
    )
    parts.append(
        f'<g font-size="12"><rect x="{pad_left}" y="{height - 14}" width="12" height="10" fill="#79aec8"/>'
        f'<text x="{pad_left + 16}" y="{height - 5}">revenue</text>'
        f'<line x1="{pad_left + 90}" x2="{pad_left + 110}" y1="{height - 9}" y2="{height - 9}" '
        f'stroke="#2a8f3c" stroke-width="2.5"/><text x="{pad_left + 114}" y="{height - 5}">profit</text></g>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - built only from our own numbers and dates


# --- views ----------------------------------------------------------------------------------------


def dashboard_context(*, now: datetime.datetime, period: str) -> dict:
    periods = Periods.at(now)
    cells = profit_cells(periods=periods)
    days = profit_by_day(cells=cells, periods=periods)
    breakdowns = profit_breakdowns(cells=cells, since=periods.start(period).date())
    attention = orders_needing_attention(now=now)
    for order in attention.orders:
        order.admin_url = order_change_url(order.pk)
    health = provider_health(now=now)
    return {
        "cockpit": True,
        "now": now,
        "period": period,
        "period_label": PERIODS[period],
        "periods": PERIODS,
        "totals": profit_totals(days=days, periods=periods),
        "chart": profit_chart_svg(days),
        "by_provider": breakdowns["provider"],
        "by_category": breakdowns["category"],
        "by_service": breakdowns["service"],
        "attention": attention,
        "provider_health": health,
        "bulk_pricing_url": reverse("admin:pricing_bulk"),
        "audit_log_url": _url_or_none("admin:accounts_adminauditlog_changelist"),
        "schedules_url": _url_or_none("admin:django_celery_beat_periodictask_changelist"),
    }


def _url_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def dashboard_view(site: AdminSite):
    def view(request: HttpRequest) -> HttpResponse:
        period = request.GET.get("period", "30d")
        if period not in PERIODS:
            period = "30d"
        extra = dashboard_context(now=timezone.now(), period=period) if _may_see(request) else {}
        return site.index(request, extra_context=extra)

    return view


def _may_see(request: HttpRequest) -> bool:
    return request.user.has_perm("orders.view_order")


# --- bulk pricing ---------------------------------------------------------------------------------


class BulkPricingForm(forms.Form):
    provider = forms.ModelChoiceField(
        Provider.objects.order_by("name"), required=False, empty_label="All providers"
    )
    category = forms.ModelChoiceField(
        Category.objects.order_by("sort_order", "name"),
        required=False,
        empty_label="All categories",
    )
    search = forms.CharField(
        required=False,
        max_length=200,
        help_text="Part of the name, the panel's id or the upstream id.",
    )
    mode = forms.ChoiceField(
        choices=[
            (pricing_tools.MARKUP, "Markup % on the provider's cost"),
            (pricing_tools.FIXED, "Fixed retail rate per 1000"),
        ],
        widget=forms.RadioSelect,
        initial=pricing_tools.MARKUP,
    )
    value = forms.DecimalField(
        max_digits=20, decimal_places=8, help_text="e.g. 35 for +35%, or 1.25 for a rate."
    )
    reason = forms.CharField(
        required=False,
        max_length=250,
        help_text="Kept in the audit log and on each fixed-rate change.",
    )


def bulk_pricing_view(site: AdminSite):
    def view(request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("catalog.change_service"):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else (request.GET or None)
        form = BulkPricingForm(data)
        plan = None
        if form.is_valid():
            plan = _plan_from_form(form)
            if plan is not None and request.method == "POST" and "apply" in request.POST:
                applied = _apply_from_form(request, form, plan)
                if applied:
                    return redirect(reverse("admin:pricing_bulk"))
                plan = _plan_from_form(form)  # show what the prices are now
        context = {
            **site.each_context(request),
            "title": "Bulk pricing",
            "form": form,
            "plan": plan,
            "changing": plan.changing if plan else [],
            "max_services": pricing_tools.MAX_SERVICES,
        }
        return TemplateResponse(request, "admin/pricing/bulk.html", context)

    return view


def _plan_from_form(form: BulkPricingForm) -> pricing_tools.PricingPlan | None:
    data = form.cleaned_data
    services = pricing_tools.service_list_for_bulk_pricing(
        provider_id=data["provider"].pk if data["provider"] else None,
        category_id=data["category"].pk if data["category"] else None,
        search=data["search"],
    )
    try:
        return pricing_tools.pricing_plan_build(
            services=services, mode=data["mode"], value=data["value"]
        )
    except pricing_tools.BulkPricingError as exc:
        form.add_error(None, str(exc))
        return None


def _apply_from_form(request: HttpRequest, form: BulkPricingForm, plan) -> bool:
    try:
        changed = pricing_tools.pricing_plan_apply(
            plan=plan,
            expected_fingerprint=request.POST.get("fingerprint", ""),
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except pricing_tools.BulkPricingError as exc:
        messages.error(request, str(exc))
        return False
    messages.success(
        request,
        f"{len(plan.applying)} services set, {changed} rates changed; every change is in the "
        "price history (Catalog → Price changes) and the audit log.",
    )
    return True


# --- wiring -----------------------------------------------------------------------------------------


def install(site: AdminSite = admin.site) -> None:
    """Make the cockpit the admin home of `site` and add /admin/pricing/bulk/.

    AdminSite has no hook for extra URLs, so this wraps the instance's get_urls; the URLs are
    built when panel/urls.py first reads `admin.site.urls`, after every admin.py has run."""
    if getattr(site, "_cockpit_installed", False):
        return
    site._cockpit_installed = True
    site.index_template = "admin/cockpit_index.html"
    original_get_urls = site.get_urls

    def get_urls():
        return [
            path("", site.admin_view(dashboard_view(site)), name="index"),
            path("pricing/bulk/", site.admin_view(bulk_pricing_view(site)), name="pricing_bulk"),
            *original_get_urls(),
        ]

    site.get_urls = get_urls
