"""The admin's cockpit: the admin home's revenue, cost and profit, what needs attention and
provider health (docs/admin.md). panel.admin.PanelAdminSite.index renders the stock admin home
with `cockpit_view_context(request)` on top (template admin/orders/cockpit_index.html).

The figures come from selectors (orders.selectors: profit and attention; providers.selectors:
health); this module only adds the links and the chart's geometry, which the template
admin/orders/cockpit_chart.html draws as inline SVG (no JavaScript, no outside request).
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode

from accounts.selectors import PaymentAttentionGroup, deposits_by_day, payment_attention_summary
from orders.selectors import (
    PROFIT_PERIODS,
    AttentionKind,
    Figures,
    Periods,
    order_attention_summary,
    profit_breakdowns,
    profit_by_day,
    profit_cells,
    profit_totals,
)
from providers.selectors import provider_health

DEFAULT_PERIOD = "30d"


def cockpit_view_context(request: HttpRequest) -> dict[str, Any]:
    """What the admin home adds for staff who may view orders (nothing for others); the
    breakdown's period comes from ?period= (today, 7d or 30d)."""
    if not request.user.has_perm("orders.view_order"):
        return {}
    period = request.GET.get("period", DEFAULT_PERIOD)
    if period not in PROFIT_PERIODS:
        period = DEFAULT_PERIOD
    return cockpit_context(now=timezone.now(), period=period)


def cockpit_context(*, now: datetime.datetime, period: str) -> dict[str, Any]:
    periods = Periods.at(now)
    cells = profit_cells(periods=periods)
    days = profit_by_day(cells=cells, periods=periods)
    breakdowns = profit_breakdowns(cells=cells, since=periods.start(period).date())
    attention = order_attention_summary(now=now)
    deposits = deposits_by_day(now=now, days=30)
    revenue = {d.key: d.revenue for d in days}
    totals = profit_totals(days=days, periods=periods)
    return {
        "cockpit": True,
        "now": now,
        "currency": settings.PANEL_CURRENCY,
        "time_zone": settings.TIME_ZONE,
        "period": period,
        "period_label": PROFIT_PERIODS[period],
        "periods": PROFIT_PERIODS,
        "totals": totals,
        # Each period's card: its figures and, beside the revenue, what customers deposited.
        "total_cards": [
            (key, t, deposits.since(periods.start(key).date())) for key, t in totals.items()
        ],
        "chart": profit_chart(days),
        "by_provider": breakdowns["provider"],
        "by_category": breakdowns["category"],
        "by_service": breakdowns["service"],
        "attention": attention,
        "attention_cards": [(g, attention_changelist_url(g.kind)) for g in attention.groups],
        "attention_rows": [
            (o, _url_or_none("admin:orders_order_change", o.pk)) for o in attention.orders
        ],
        "payment_attention_cards": payment_attention_cards(),
        "deposits": deposits,
        # Days with neither deposits nor revenue are left out: a quiet month stays short.
        "deposit_rows": [
            (d, deposits.method_row(d), revenue.get(d.day, Decimal(0)))
            for d in reversed(deposits.days)
            if d.payments or revenue.get(d.day)
        ],
        "provider_health": provider_health(now=now),
        "bulk_pricing_url": reverse("admin:pricing_bulk"),
        "audit_log_url": _url_or_none("admin:accounts_adminauditlog_changelist"),
        "schedules_url": _url_or_none("admin:django_celery_beat_periodictask_changelist"),
    }


def payment_attention_cards() -> list[tuple[PaymentAttentionGroup, str | None]]:
    """The payments needing staff, each with its filtered list in the payments admin."""
    url = _url_or_none("admin:accounts_payment_changelist")
    return [
        (group, None if url is None else f"{url}?{urlencode({'attention': group.key})}")
        for group in payment_attention_summary()
    ]


def attention_changelist_query(kind: AttentionKind) -> dict[str, str]:
    """The orders admin's query for `kind`: its filter value and, for "stuck", the cutoff the
    count used (the filter alone would move it to the time of the click), so that the list
    shows exactly the orders counted."""
    query = {"attention": kind.key}
    if kind.created_before is not None:
        query["created_at__lt"] = kind.created_before.isoformat()
    return query


def attention_changelist_url(kind: AttentionKind) -> str | None:
    url = _url_or_none("admin:orders_order_changelist")
    return None if url is None else f"{url}?{urlencode(attention_changelist_query(kind))}"


def _url_or_none(name: str, *args: object) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:  # that admin is not registered
        return None


# --- the chart --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartTick:
    x: float
    y: float
    text: str
    text_y: float


@dataclass(frozen=True)
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    day: Figures


@dataclass(frozen=True)
class ProfitChart:
    width: int
    height: int
    left: int
    right: int
    grid: list[ChartTick]  # horizontal lines with their values
    bars: list[ChartBar]  # revenue per day
    profit_points: str  # the profit line's polyline
    day_labels: list[ChartTick]
    legend_y: int


# A panel's first days may earn cents: the scale shrinks to them, down to this.
CHART_MIN_SPAN = Decimal("0.01")


def _tick_places(step: Decimal) -> int:
    """Decimal places that keep axis values `step` apart distinct: none for steps of 1 or more,
    else down to the step's first significant digit (0.25 -> 1, 0.022 -> 2), at most 5."""
    return 0 if step >= 1 else min(5, -step.adjusted())


def profit_chart(days: list[Figures], *, width: int = 900, height: int = 240) -> ProfitChart:
    """Revenue bars with a profit line for `days`: every coordinate, computed from our own
    numbers, for the template to draw."""
    left, right, pad_top, pad_bottom = 70, width - 10, 14, 34
    plot_h = height - pad_top - pad_bottom
    top = max([d.revenue for d in days] + [d.profit for d in days] + [CHART_MIN_SPAN])
    bottom = min([d.profit for d in days] + [Decimal(0)])
    span = top - bottom

    def y(value: Decimal) -> float:
        return round(pad_top + float((top - value) / span) * plot_h, 1)

    places = _tick_places(span / 4)
    grid = []
    for i in range(5):
        value = bottom + span * i / 4
        grid.append(ChartTick(left - 6, y(value), f"{value:,.{places}f}", round(y(value) + 4, 1)))
    slot = (right - left) / max(len(days), 1)
    zero = y(Decimal(0))
    bars, points, labels = [], [], []
    for i, d in enumerate(days):
        x = left + i * slot
        bar_top = y(d.revenue)
        bar_height = round(max(zero - bar_top, 0), 1)
        bars.append(
            ChartBar(round(x + slot * 0.15, 1), bar_top, round(slot * 0.7, 1), bar_height, d)
        )
        points.append(f"{x + slot / 2:.1f},{y(d.profit)}")
        if i % 5 == 0 or i == len(days) - 1:
            day = d.key if isinstance(d.key, datetime.date) else None
            text = f"{day:%d %b}" if day else d.label
            labels.append(ChartTick(round(x + slot / 2, 1), 0, text, height - pad_bottom + 16))
    return ProfitChart(
        width, height, left, right, grid, bars, " ".join(points), labels, height - 14
    )
