"""Spending tiers: the discount of the tier a customer's total spent (net of refunds) reaches
applies to their prices everywhere (price list, order form, new orders, the API's `services`
and `add`); a custom rate still wins; the tier's price stops at the cost unless the tier allows
it; the total spent follows charges and refunds; the account page shows the tier."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import LedgerEntry, Tier, User
from accounts.selectors import ledger_find_mismatches
from accounts.services import balance_credit, balance_debit
from accounts.tiers import tier_progress, user_total_spent
from catalog import selectors
from catalog.models import CustomerDiscount, CustomerRate, Service, UpstreamService
from catalog.pricing import customer_rate
from orders.models import Order
from orders.services import order_create, order_set_status
from tests.api.conftest import API_URL, decode
from tests.api.factories import CategoryFactory, ProviderFactory, ServiceFactory

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def tiers(db):
    return [
        Tier.objects.create(name="Bronze", min_spent=D("0"), discount_percent=D("0")),
        Tier.objects.create(name="Silver", min_spent=D("10"), discount_percent=D("10")),
        Tier.objects.create(name="Gold", min_spent=D("40"), discount_percent=D("20")),
    ]


@pytest.fixture
def upstream_service(db):
    """A service that costs 1.00 per 1000 upstream and sells at 1.20 (20 % markup)."""
    provider = ProviderFactory(exchange_rate=D("1"))
    upstream = UpstreamService.objects.create(
        provider=provider, service_id="7", name="Likes", rate=D("1.00"), min=10, max=10000
    )
    return ServiceFactory(rate=D("1.20"), upstream=upstream, dripfeed=False)


def spend(user, amount: str) -> None:
    """A charge as an order writes it (kind charge), without an order row."""
    balance_debit(user=user, amount=D(amount), kind=LedgerEntry.Kind.CHARGE, memo="spent")


# --- the rule itself (catalog.pricing.customer_rate, pure) ---------------------------------------


def test_rule_takes_the_better_discount_and_stops_at_the_cost():
    def rate(**kw):
        base = {"retail": D("2"), "own_percent": D(0), "tier_percent": D(0), "cost": D("1.5")}
        return customer_rate(**{**base, "tier_below_cost": False, **kw})

    assert rate() == D("2")
    assert rate(tier_percent=D("10")) == D("1.8")
    assert rate(tier_percent=D("10"), own_percent=D("15")) == D("1.7")  # the better one
    assert rate(tier_percent=D("50")) == D("1.5")  # stops at the cost
    assert rate(tier_percent=D("50"), tier_below_cost=True) == D("1")
    assert rate(tier_percent=D("50"), cost=None) == D("1")  # a manual service has no cost
    # A retail rate staff set below the cost is never raised by the floor.
    assert rate(retail=D("1.2"), tier_percent=D("10"), cost=D("1.5")) == D("1.2")
    # The customer's own discount is staff's explicit choice: not floored.
    assert rate(own_percent=D("50")) == D("1")


# --- total spent and the tier ----------------------------------------------------------------


def test_total_spent_follows_charges_and_refunds_and_moves_the_tier(alice, tiers):
    assert user_total_spent(user=alice) == 0
    assert tier_progress(user=alice).tier.name == "Bronze"
    spend(alice, "12.50")
    progress = tier_progress(user=alice)
    assert progress.spent == D("12.5") and progress.tier.name == "Silver"
    assert progress.next_tier.name == "Gold" and progress.remaining == D("27.5")
    assert progress.percent == 8  # (12.5 - 10) / (40 - 10)
    balance_credit(user=alice, amount=D("3"), kind=LedgerEntry.Kind.REFUND, memo="refund")
    assert tier_progress(user=alice).tier.name == "Bronze"  # net of refunds: 9.50
    # Deposits and staff adjustments are not spending.
    balance_credit(user=alice, amount=D("100"), memo="deposit")
    balance_debit(user=alice, amount=D("1"), kind=LedgerEntry.Kind.ADJUSTMENT, memo="fix")
    assert user_total_spent(user=alice) == D("9.5")
    assert not ledger_find_mismatches()
    call_command("check_ledger")


def test_check_ledger_reports_a_total_spent_that_does_not_match(alice):
    spend(alice, "5")
    type(alice.wallet).objects.filter(pk=alice.pk).update(total_spent=D("1"))
    (problem,) = ledger_find_mismatches()
    assert "total spent is 1" in problem.problem and "are 5" in problem.problem


def test_order_charge_and_its_refund_move_the_total_spent(alice, tiers):
    service = ServiceFactory(rate=D("10"))
    order = order_create(
        user=alice, service=service, data={"link": "https://x.test/p", "quantity": "1000"}
    )
    assert order.charge == D("10") and user_total_spent(user=alice) == D("10")
    order_set_status(order=Order.objects.get(pk=order.pk), new="canceled", source="admin")
    assert user_total_spent(user=alice) == 0
    assert not ledger_find_mismatches()


# --- prices everywhere ----------------------------------------------------------------------


def test_price_list_and_rates_follow_the_tier_in_the_same_two_queries(
    alice, tiers, django_assert_num_queries
):
    services = ServiceFactory.create_batch(3, rate=D("2"))
    spend(alice, "10")
    with django_assert_num_queries(2):
        rates = selectors.service_rates_for_user(user=alice, services=services)
    assert set(rates.values()) == {D("1.8")}
    with django_assert_num_queries(1):  # the tier is read once per request (per user object)
        selectors.service_rates_for_user(user=alice, services=services)
    spend(alice, "30")  # Gold from 40: a charge through this object reads the tier again
    assert selectors.service_rate_for_user(user=alice, service=services[0]) == D("1.6")


def test_custom_rate_wins_over_the_tier(alice, tiers):
    service = ServiceFactory(rate=D("2"))
    CustomerRate.objects.create(user=alice, service=service, rate=D("1.95"))
    spend(alice, "50")
    assert selectors.service_rate_for_user(user=alice, service=service) == D("1.95")


def test_tier_stops_at_the_cost_unless_the_tier_allows_it(alice, tiers, upstream_service):
    gold = tiers[2]
    gold.discount_percent = D("50")
    gold.save()
    spend(alice, "40")
    plain = Service.objects.get(pk=upstream_service.pk)  # upstream not joined: one more read
    assert selectors.service_rate_for_user(user=alice, service=plain) == D("1")
    listed = selectors.service_get_enabled(service_id=upstream_service.pk)
    assert selectors.service_rate_for_user(user=alice, service=listed) == D("1")
    gold.allow_below_cost = True
    gold.save()
    later = User.objects.get(pk=alice.pk)  # the next request (the terms are read per request)
    assert selectors.service_rate_for_user(user=later, service=listed) == D("0.6")


def test_own_discount_and_tier_do_not_add_up(alice, tiers):
    service = ServiceFactory(rate=D("2"))
    CustomerDiscount.objects.create(user=alice, percent=D("5"))
    spend(alice, "10")  # Silver, 10 %
    assert selectors.service_rate_for_user(user=alice, service=service) == D("1.8")
    CustomerDiscount.objects.filter(user=alice).update(percent=D("15"))
    later = User.objects.get(pk=alice.pk)  # the next request
    assert selectors.service_rate_for_user(user=later, service=service) == D("1.7")


def test_tier_discount_reaches_api_services_and_the_charge_of_add(
    client, alice, alice_key, tiers, upstream_service
):
    manual = ServiceFactory(rate=D("2"), category=CategoryFactory(name="Manual"))
    spend(alice, "40")  # Gold: 20 %
    listed = decode(client.post(API_URL, {"key": alice_key, "action": "services"}))
    rates = {row["service"]: row["rate"] for row in listed}
    assert rates[manual.pk] == "1.60"
    assert rates[upstream_service.pk] == "1.00"  # 1.20 - 20 % = 0.96, stopped at the cost 1.00
    answer = decode(
        client.post(
            API_URL,
            {
                "key": alice_key,
                "action": "add",
                "service": manual.pk,
                "link": "https://x.test/p",
                "quantity": "1000",
            },
        )
    )
    order = Order.objects.get(pk=answer["order"])
    assert order.rate == D("1.6") and order.charge == D("1.6")
    entry = LedgerEntry.objects.get(order_ref=order.pk, kind=LedgerEntry.Kind.CHARGE)
    assert entry.amount == D("-1.6")


def test_api_services_queries_do_not_grow_with_a_tier(client, alice, alice_key, tiers):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ServiceFactory.create_batch(5)
    spend(alice, "40")
    with CaptureQueriesContext(connection) as ctx:
        decode(client.post(API_URL, {"key": alice_key, "action": "services"}))
    assert len(ctx.captured_queries) <= 5  # key, key touch, services, custom rates, terms


def test_price_list_page_and_account_page_show_the_tier(client, alice, tiers):
    service = ServiceFactory(rate=D("2"))
    spend(alice, "15")
    client.force_login(alice)
    body = client.get(reverse("services")).content.decode()
    assert "1.80" in body and str(service.name) in body
    page = client.get(reverse("account_settings")).content.decode()
    assert "Silver" in page and "10 % off" in page
    assert "Gold" in page and "25.00" in page  # still to spend: 40 - 15
    assert 'value="16" max="100"' in page  # (15 - 10) / (40 - 10)
