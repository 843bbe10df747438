"""The cockpit's payments: deposits per day and method beside revenue, and the payments needing
staff in its attention area, each linked to the filtered payments admin."""

import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse

from accounts.models import Payment
from accounts.selectors import deposits_by_day

from .core_helpers import start_manual

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 5, 15, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _paid(user, method, amount, paid_at, *, status=Payment.Status.PAID, bonus="0"):
    return Payment.objects.create(
        user=user,
        method=method,
        amount=Decimal(amount),
        bonus=Decimal(bonus),
        currency="USD",
        status=status,
        gateway_id=f"{method}-{amount}-{paid_at:%j%H%M}",
        paid_at=paid_at,
        created_at=paid_at - datetime.timedelta(minutes=5),
    )


@pytest.fixture
def deposits(alice, bob):
    _paid(alice, "stripe", "10", NOW - datetime.timedelta(hours=1), bonus="0.50")
    _paid(bob, "manual", "25", NOW - datetime.timedelta(hours=2))
    _paid(bob, "stripe", "4", NOW.replace(hour=0) - datetime.timedelta(minutes=1))  # yesterday
    _paid(alice, "cryptomus", "7", NOW - 3 * DAY, status=Payment.Status.DISPUTED)
    _paid(alice, "stripe", "99", NOW - 3 * DAY, status=Payment.Status.REFUNDED)  # money went back
    _paid(alice, "paypal", "50", NOW - 40 * DAY)  # outside the 30 days
    Payment.objects.create(  # waiting: not a deposit
        user=alice, method="stripe", amount=Decimal("3"), currency="USD", status="pending"
    )


def test_deposits_per_day_and_method(deposits, settings):
    settings.COCKPIT_CACHE_SECONDS = 0
    found = deposits_by_day(now=NOW, days=30)
    assert len(found.days) == 30 and found.days[-1].day == NOW.date()
    today, yesterday = found.days[-1], found.days[-2]
    assert today.amount == Decimal("35") and today.payments == 2
    assert today.by_method == {"stripe": Decimal("10"), "manual": Decimal("25")}
    assert today.bonus == Decimal("0.50")
    assert yesterday.by_method == {"stripe": Decimal("4")}
    assert found.days[-4].by_method == {"cryptomus": Decimal("7")}
    assert found.by_method == {
        "manual": Decimal("25"),
        "stripe": Decimal("14"),
        "cryptomus": Decimal("7"),
    }
    assert found.methods == ["manual", "stripe", "cryptomus"]
    assert found.amount == Decimal("46") and found.payments == 4
    assert found.since(NOW.date()) == Decimal("35")
    assert found.method_row(today) == [Decimal("25"), Decimal("10"), Decimal("0")]
    assert found.method_totals == [Decimal("25"), Decimal("14"), Decimal("7")]


def test_past_days_are_cached_and_today_read_live(alice, settings, django_assert_num_queries):
    settings.COCKPIT_CACHE_SECONDS = 300
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pay"}
    }
    cache.clear()
    _paid(alice, "stripe", "5", NOW - 2 * DAY)
    first = deposits_by_day(now=NOW)
    _paid(alice, "stripe", "6", NOW - datetime.timedelta(hours=1))  # today: seen at once
    _paid(alice, "manual", "7", NOW - 3 * DAY)  # a past day: seen when the cache expires
    with django_assert_num_queries(1):
        second = deposits_by_day(now=NOW)
    assert (first.amount, second.amount) == (Decimal("5"), Decimal("11"))
    cache.clear()
    assert deposits_by_day(now=NOW).amount == Decimal("18")


def test_the_cockpit_shows_deposits_and_payments_needing_staff(client, staff, alice, settings):
    settings.COCKPIT_CACHE_SECONDS = 0
    settings.PAYMENT_METHODS = ["manual"]
    start_manual(alice, "12.00")
    start_manual(alice, "13.00")
    _paid(alice, "stripe", "8", datetime.datetime.now(datetime.UTC))
    Payment.objects.create(
        user=alice,
        method="stripe",
        amount=Decimal("2"),
        currency="USD",
        status=Payment.Status.REFUNDED,
        needs_attention=True,
        gateway_id="cs_refunded",
    )
    client.force_login(staff)
    page = client.get(reverse("admin:index"))
    html = page.content.decode()
    cards = {g.key: (g.count, url) for g, url in page.context["payment_attention_cards"]}
    changelist = reverse("admin:accounts_payment_changelist")
    assert cards["manual"] == (2, f"{changelist}?attention=manual")
    assert cards["refunded"] == (1, f"{changelist}?attention=refunded")
    assert cards["disputed"][0] == 0 and cards["mismatch"][0] == 0
    assert f'href="{changelist}?attention=manual"' in html
    assert "Payments to check (amount or currency differs)" in html
    assert "not credited" not in html
    assert "Manual transfers waiting for approval" in html
    assert 'id="cockpit-deposits"' in html
    assert '<dd class="deposits">$8.00</dd>' in html  # today's card, beside revenue
    # One row per day with deposits or revenue (only today here), the methods' totals below.
    today = datetime.datetime.now(datetime.UTC).date()
    assert [row[0].day for row in page.context["deposit_rows"]] == [today]
    assert f'data-day="{today:%Y-%m-%d}"' in html
    listed = client.get(cards["manual"][1]).context["cl"].result_list
    assert {p.amount for p in listed} == {Decimal("12.00000"), Decimal("13.00000")}
