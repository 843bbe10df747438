import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from accounts.services import customer_create
from orders import selectors
from orders.admin_views import attention_changelist_url, cockpit_context
from orders.models import Order
from orders.selectors import (
    Periods,
    order_attention_kinds,
    order_attention_summary,
    profit_by_day,
    profit_cells,
)
from providers.models import ProviderCall
from providers.selectors import provider_health

from .conftest import make_order, make_provider

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 5, 15, 12, 0, tzinfo=datetime.UTC)
S = Order.Status


@pytest.fixture
def known_orders(world, alice, bob):
    """Orders with known charges, costs and refunds; expected figures in the tests."""
    likes, views = world["s_likes"], world["s_views"]
    hour = datetime.timedelta(hours=1)
    day = datetime.timedelta(days=1)
    make_order(alice, likes, charge="10", cost="6", created_at=NOW - hour)
    # Partial: 40% undelivered, refunded 4 of 10; the provider gives back 40% of the cost too.
    make_order(
        alice,
        views,
        charge="10",
        cost="6",
        refunded="4",
        status=S.PARTIAL,
        created_at=NOW - 2 * hour,
    )
    # Not placed yet: revenue counts, the cost is not known (0).
    make_order(
        bob, likes, charge="2", cost=None, status=S.QUEUED, placed=False, created_at=NOW - 3 * hour
    )
    # Canceled with a full refund: nothing earned, nothing paid.
    make_order(
        bob, views, charge="5", cost="3", refunded="5", status=S.CANCELED, created_at=NOW - 3 * day
    )
    make_order(alice, likes, charge="20", cost="15", created_at=NOW - 10 * day)
    make_order(alice, likes, charge="100", cost="1", created_at=NOW - 40 * day)  # outside 30 days
    # Yesterday 23:59 UTC is not today.
    make_order(
        bob,
        views,
        charge="1",
        cost="0.5",
        created_at=NOW.replace(hour=0) - datetime.timedelta(minutes=1),
    )


def test_profit_totals_for_today_7_and_30_days(known_orders):
    context = cockpit_context(now=NOW, period="30d")
    totals = context["totals"]
    today, week, month = totals["today"], totals["7d"], totals["30d"]
    assert (today.revenue, today.cost, today.profit, today.orders) == (
        Decimal("18.00000"),
        Decimal("9.60000"),
        Decimal("8.40000"),
        3,
    )
    assert (week.revenue, week.cost, week.profit, week.orders) == (
        Decimal("19.00000"),
        Decimal("10.10000"),
        Decimal("8.90000"),
        5,
    )
    assert (month.revenue, month.cost, month.profit, month.orders) == (
        Decimal("39.00000"),
        Decimal("25.10000"),
        Decimal("13.90000"),
        6,
    )
    assert today.margin_percent == Decimal("46.7")


def test_daily_series_has_30_days_with_zeros(known_orders):
    periods = Periods.at(NOW)
    days = profit_by_day(cells=profit_cells(periods=periods), periods=periods)
    assert len(days) == 30
    assert days[-1].key == NOW.date() and days[-1].profit == Decimal("8.40000")
    assert days[-2].revenue == Decimal("1.00000")
    assert days[-4].orders == 1 and days[-4].revenue == 0 and days[-4].cost == 0  # the canceled one
    assert sum(d.orders for d in days) == 6


def test_breakdowns_per_provider_category_and_service(known_orders, world):
    context = cockpit_context(now=NOW, period="30d")
    by_provider = {row.label: row for row in context["by_provider"]}
    # Alpha: 10-6 today, 20-15 ten days ago, and the queued order has no provider yet.
    assert by_provider["Alpha"].revenue == Decimal("30.00000")
    assert by_provider["Alpha"].profit == Decimal("9.00000")
    assert by_provider["Beta"].revenue == Decimal("7.00000")
    assert by_provider["Beta"].cost == Decimal("4.10000")
    assert by_provider["(not placed yet)"].revenue == Decimal("2.00000")
    by_category = {row.label: row for row in context["by_category"]}
    assert set(by_category) == {"Likes", "Views"}
    assert by_category["Likes"].profit == Decimal("11.00000")
    services = context["by_service"]
    assert [row.key for row in services] == [world["s_likes"].pk, world["s_views"].pk]
    assert services[0].profit >= services[1].profit

    today = cockpit_context(now=NOW, period="today")
    assert {row.label: row.orders for row in today["by_provider"]} == {
        "Alpha": 1,
        "Beta": 1,
        "(not placed yet)": 1,
    }


def test_chart_is_a_template_fed_with_plain_numbers(known_orders, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    chart = cockpit_context(now=NOW, period="30d")["chart"]
    assert len(chart.bars) == 30 and chart.bars[-1].day.profit == Decimal("8.40000")
    assert len(chart.profit_points.split()) == 30
    with translation.override("de"):  # a decimal comma would break every coordinate
        svg = render_to_string("admin/orders/cockpit_chart.html", {"chart": chart})
    assert svg.count("<rect") == 31  # 30 days and the legend
    coordinates = re.findall(r' (?:x|y|x1|x2|y1|y2|width|height)="([^"]*)"', svg)
    assert coordinates and all(re.fullmatch(r"-?\d+(\.\d+)?%?", c) for c in coordinates)
    assert f'points="{chart.profit_points}"' in svg
    assert "revenue 18.00000, cost 9.60000, profit 8.40000, 3 orders" in svg


def test_attention_lists_review_funds_and_stuck_orders(world, alice, settings):
    settings.ATTENTION_STUCK_HOURS = 6
    now = timezone.now()
    likes = world["s_likes"]
    review = make_order(alice, likes, charge="1", cost="1", status=S.NEEDS_REVIEW, created_at=now)
    funds = make_order(alice, likes, charge="1", cost="1", status=S.WAITING_FUNDS, created_at=now)
    stuck = make_order(
        alice,
        likes,
        charge="1",
        cost="1",
        status=S.IN_PROGRESS,
        created_at=now - datetime.timedelta(hours=7),
    )
    make_order(
        alice,
        likes,
        charge="1",
        cost="1",
        status=S.IN_PROGRESS,
        created_at=now - datetime.timedelta(hours=5),
    )
    make_order(
        alice,
        likes,
        charge="1",
        cost="1",
        status=S.COMPLETED,
        created_at=now - datetime.timedelta(days=3),
    )

    attention = order_attention_summary(now=now)
    counts = {g.key: g.count for g in attention.groups}
    # One definition of "needs attention" (orders.selectors.order_attention_kinds): the keys are
    # the orders admin filter's values, and manual orders waiting for the admin count too.
    assert counts == {"review": 1, "funds": 1, "stuck": 1, "manual": 0}
    assert [o.pk for o in attention.orders] == [stuck.pk, review.pk, funds.pk]
    assert "6 h" in attention.groups[2].label


def test_attention_links_list_exactly_the_counted_orders(client, staff, world, alice, settings):
    settings.ATTENTION_STUCK_HOURS = 6
    now = timezone.now()
    hours = datetime.timedelta(hours=1)
    for status, age in [
        (S.NEEDS_REVIEW, 0),
        (S.WAITING_FUNDS, 0),
        (S.MANUAL, 0),
        (S.IN_PROGRESS, 7),
        (S.QUEUED, 30),
        (S.PENDING, 5),  # not stuck yet
        (S.SUBMITTING, 30),  # reset by the submitting sweep, not stuck
        (S.COMPLETED, 72),
    ]:
        make_order(
            alice,
            world["s_likes"],
            charge="1",
            cost="1",
            status=status,
            created_at=now - age * hours,
        )
    client.force_login(staff)
    response = client.get(reverse("admin:index"))
    cards = response.context["attention_cards"]
    assert [(g.key, g.count) for g, _url in cards] == [
        ("review", 1),
        ("funds", 1),
        ("stuck", 2),
        ("manual", 1),
    ]
    for group, url in cards:
        listed = client.get(url).context["cl"]
        counted = Order.objects.filter(group.kind.condition)
        assert listed.result_count == group.count, group.key
        assert {o.pk for o in listed.result_list} == {o.pk for o in counted}, group.key
        # The orders admin filter offers the same kinds, with the same labels.
        (attention_filter,) = [f for f in listed.filter_specs if f.title == "needs attention"]
        assert (group.key, group.label) in attention_filter.lookup_choices


def test_stuck_link_keeps_the_cutoff_of_the_count(client, staff, world, alice, settings):
    # Counted an hour ago: an order that became stuck since is not in the count, so the link
    # must not show it either, although the filter alone (?attention=stuck) would.
    settings.ATTENTION_STUCK_HOURS = 6
    counted_at = timezone.now() - datetime.timedelta(hours=1)
    likes = world["s_likes"]
    old = make_order(
        alice,
        likes,
        charge="1",
        cost="1",
        status=S.IN_PROGRESS,
        created_at=counted_at - datetime.timedelta(hours=7),
    )
    make_order(
        alice,
        likes,
        charge="1",
        cost="1",
        status=S.IN_PROGRESS,
        created_at=counted_at - datetime.timedelta(hours=5, minutes=30),
    )
    (stuck,) = [k for k in order_attention_kinds(now=counted_at) if k.key == "stuck"]
    client.force_login(staff)
    listed = client.get(attention_changelist_url(stuck)).context["cl"]
    assert [o.pk for o in listed.result_list] == [old.pk]
    changelist = reverse("admin:orders_order_changelist")
    assert client.get(changelist + "?attention=stuck").context["cl"].result_count == 2


def test_attention_counts_are_capped(world, alice, monkeypatch):
    monkeypatch.setattr(selectors, "ATTENTION_COUNT_CAP", 2)
    for _ in range(3):
        make_order(
            alice,
            world["s_likes"],
            charge="1",
            cost="1",
            status=S.NEEDS_REVIEW,
            created_at=timezone.now(),
        )
    group = order_attention_summary(now=timezone.now()).groups[0]
    assert (group.count, group.capped) == (2, True)


def test_provider_health_balance_sync_and_error_rate(world):
    now = timezone.now()
    alpha, beta = world["alpha"], world["beta"]
    alpha.balance = Decimal("10")
    alpha.last_sync_at = now - datetime.timedelta(minutes=30)
    alpha.save()
    for ok in (True, True, True, False):
        ProviderCall.objects.create(
            provider=alpha, action="status", ok=ok, created_at=now - datetime.timedelta(minutes=5)
        )
    ProviderCall.objects.create(
        provider=alpha, action="status", ok=False, created_at=now - datetime.timedelta(hours=2)
    )
    health = {h.provider.name: h for h in provider_health(now=now)}
    assert (health["Alpha"].calls_last_hour, health["Alpha"].errors_last_hour) == (4, 1)
    assert health["Alpha"].error_rate == Decimal("25.0")
    assert health["Alpha"].low_balance and "balance below threshold" in health["Alpha"].problems
    assert health["Alpha"].last_ok_sync == alpha.last_sync_at
    assert health["Beta"].error_rate is None and health["Beta"].last_ok_sync is None
    assert beta.pk and not health["Beta"].low_balance


def test_provider_health_reads_only_the_last_hour_of_calls(world):
    # Provider calls grow with every order and poll: the health query must not join them all
    # (a LEFT JOIN with Count(filter=...) scans the whole table on every admin home visit).
    with CaptureQueriesContext(connection) as ctx:
        provider_health(now=timezone.now())
    (query,) = ctx.captured_queries
    sql = query["sql"].lower()
    assert "join" not in sql
    assert sql.count('"created_at" >=') == 2


def test_dashboard_page_renders_cockpit_with_attention_and_health(client, staff, world, alice):
    now = timezone.now()
    make_order(alice, world["s_likes"], charge="3", cost="1", created_at=now)
    make_order(alice, world["s_likes"], charge="1", cost="1", status=S.NEEDS_REVIEW, created_at=now)
    client.force_login(staff)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="cockpit"' in body
    assert "<svg" in body and "cockpit-chart" in body
    assert "Need review" in body and "Alpha" in body and "Beta" in body
    assert reverse("admin:pricing_bulk") in body
    totals = response.context["totals"]
    assert totals["today"].profit == Decimal("2.00000")
    # The app list is still there below the cockpit.
    assert reverse("admin:accounts_user_changelist") in body
    assert "http://" not in body.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org/2000/svg", ""
    )


def test_dashboard_period_switch_and_bad_period(client, staff, world):
    client.force_login(staff)
    assert client.get(reverse("admin:index"), {"period": "today"}).context["period"] == "today"
    assert client.get(reverse("admin:index"), {"period": "bogus"}).context["period"] == "30d"


def test_dashboard_query_count_does_not_grow_with_data(
    client, staff, world, alice, django_assert_max_num_queries
):
    make_order(alice, world["s_likes"], charge="2", cost="1", created_at=timezone.now())
    client.force_login(staff)
    client.get(reverse("admin:index"))  # warm the session and the content types
    with django_assert_max_num_queries(20) as small:
        client.get(reverse("admin:index"))
    now = timezone.now()
    for i in range(5):
        provider = make_provider(f"Extra{i}")
        ProviderCall.objects.create(provider=provider, action="status", ok=False, created_at=now)
    customers = [alice] + [
        customer_create(username=f"c{i}", email=f"c{i}@example.com", password="pw-c-12345")
        for i in range(5)
    ]
    for i in range(40):
        status = [S.NEEDS_REVIEW, S.WAITING_FUNDS, S.COMPLETED, S.PARTIAL][i % 4]
        make_order(
            customers[i % len(customers)],
            world["s_likes" if i % 2 else "s_views"],
            charge="2",
            cost="1",
            status=status,
            created_at=now - datetime.timedelta(days=i % 30),
        )
    with django_assert_max_num_queries(len(small.captured_queries)) as big:
        client.get(reverse("admin:index"))
    assert len(big.captured_queries) == len(small.captured_queries)


def test_dashboard_reads_the_summary_live_past_days_included(
    world, alice, django_assert_num_queries
):
    """No cache: the summary is kept in the orders' own transactions, so a late order or
    refund on a past day shows at the next visit, in one query."""
    likes = world["s_likes"]
    make_order(alice, likes, charge="4", cost="1", created_at=NOW - datetime.timedelta(days=2))
    make_order(alice, likes, charge="2", cost="1", created_at=NOW - datetime.timedelta(hours=1))
    periods = Periods.at(NOW)
    first = profit_cells(periods=periods)
    make_order(alice, likes, charge="8", cost="1", created_at=NOW - datetime.timedelta(hours=2))
    make_order(alice, likes, charge="16", cost="1", created_at=NOW - datetime.timedelta(days=3))
    with django_assert_num_queries(1):
        second = profit_cells(periods=periods)
    assert sum(c.revenue for c in first) == Decimal("6")
    assert sum(c.revenue for c in second) == Decimal("30")


def test_customers_without_admin_rights_do_not_see_the_cockpit(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302


def test_chart_axis_values_stay_distinct_for_a_panel_earning_cents():
    from orders.admin_views import profit_chart
    from orders.selectors import Figures

    days = [Figures(Decimal("0.08831"), Decimal("0.05887"), 3, "today", None)]
    labels = [tick.text for tick in profit_chart(days).grid]
    assert labels == ["0.00", "0.02", "0.04", "0.07", "0.09"]
    big = [Figures(Decimal("1200"), Decimal("800"), 3, "today", None)]
    assert [tick.text for tick in profit_chart(big).grid] == ["0", "300", "600", "900", "1,200"]


def test_big_figures_have_a_label_and_the_currency(client, staff, known_orders, settings):
    settings.PANEL_CURRENCY = "EUR"
    client.force_login(staff)
    body = client.get(reverse("admin:index")).content.decode()
    card = body.split('data-period="30d"')[1].split("</dl>")[0]
    assert '<div class="figure-label">Profit</div>' in card
    assert re.search(r'class="profit[^"]*">-?€[0-9.,]+</div>', card)  # the money format
    assert "€" in card.split('class="revenue">')[1].split("</dd>")[0]
    assert "Refunded" in card and "completed" in card
