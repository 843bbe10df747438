"""catalog.selectors.customer_price_list_terms reads the price terms of the API's `services` with
one SQL statement written out (PostgreSQL): it must give what the ORM's reading gives
(_price_terms_read and customer_custom_rates), for every kind of terms, and only the asking
customer's."""

from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Tier, User, Wallet
from accounts.selectors import api_key_get_user
from accounts.services import api_key_issue
from accounts.tiers import price_terms_forget
from catalog import selectors
from catalog.models import CustomerDiscount, CustomerRate
from catalog.pricing import CustomerPricing
from tests.api.factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the written-out statement is PostgreSQL's; elsewhere the ORM reads")


def read(user: User) -> tuple[CustomerPricing, dict[int, D]]:
    fresh = User.objects.get(pk=user.pk)  # no terms remembered on it
    sql = selectors.customer_price_list_terms(user=fresh)
    assert sql == (selectors._price_terms_read(user), selectors.customer_custom_rates(user=user))
    # The same columns read by the API key lookup, as `services` has them read: then asked for,
    # they cost no query.
    raw = api_key_issue(user=user).raw
    keyed = api_key_get_user(raw_key=raw, extra=selectors.price_list_terms_key_extra())
    with CaptureQueriesContext(connection) as queries:
        assert selectors.customer_price_list_terms(user=keyed) == sql
    assert not queries.captured_queries
    return sql


def spend(user: User, amount: str) -> None:
    Wallet.objects.filter(user=user).update(total_spent=D(amount))


def test_no_terms_at_all(alice):
    assert read(alice) == (CustomerPricing(), {})


def test_own_discount_and_custom_rates_are_the_customers_own(alice, bob):
    one, two, three = ServiceFactory.create_batch(3)
    CustomerDiscount.objects.create(user=alice, percent=D("12.5"))
    CustomerDiscount.objects.create(user=bob, percent=D("40"))
    CustomerRate.objects.create(user=alice, service=three, rate=D("0.3"))
    CustomerRate.objects.create(user=alice, service=one, rate=D("0.1"))
    CustomerRate.objects.create(user=bob, service=two, rate=D("0.2"))
    terms, custom = read(alice)
    assert terms == CustomerPricing(own_percent=D("12.5"))
    assert custom == {one.pk: D("0.1"), three.pk: D("0.3")}
    assert read(bob)[1] == {two.pk: D("0.2")}


@pytest.mark.parametrize(
    ("spent", "percent", "below_cost"),
    [("0", None, False), ("99.99", "5", False), ("100", "10", True), ("5000", "20", False)],
)
def test_the_tier_is_the_highest_threshold_reached(alice, spent, percent, below_cost):
    Tier.objects.create(name="Bronze", min_spent=D("1"), discount_percent=D("5"))
    Tier.objects.create(
        name="Silver", min_spent=D("100"), discount_percent=D("10"), allow_below_cost=True
    )
    Tier.objects.create(name="Gold", min_spent=D("1000"), discount_percent=D("20"))
    spend(alice, spent)
    terms, _ = read(alice)
    assert terms.tier_percent == (D(percent) if percent else 0)
    assert terms.tier_below_cost is below_cost


def test_a_customer_without_a_wallet_has_spent_nothing(alice):
    Tier.objects.create(name="Zero", min_spent=D("0"), discount_percent=D("3"))
    Tier.objects.create(name="Some", min_spent=D("1"), discount_percent=D("7"))
    Wallet.objects.filter(user=alice).delete()
    assert read(alice)[0] == CustomerPricing(tier_percent=D("3"))


def test_a_write_that_forgets_the_terms_makes_the_keyed_read_stale(alice):
    CustomerDiscount.objects.create(user=alice, percent=D("5"))
    keyed = api_key_get_user(
        raw_key=api_key_issue(user=alice).raw, extra=selectors.price_list_terms_key_extra()
    )
    CustomerDiscount.objects.filter(user=alice).update(percent=D("9"))
    price_terms_forget(keyed)  # as accounts.services does when the tier may have moved
    assert selectors.customer_price_list_terms(user=keyed)[0].own_percent == D("9")


def test_an_unknown_customer_has_no_terms(alice):
    ghost = User(pk=alice.pk + 1000)
    assert selectors.customer_price_list_terms(user=ghost) == (CustomerPricing(), {})
