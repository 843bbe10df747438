"""catalog.selectors.service_get_enabled_for_user, the API's `add`, reads the service with one SQL
statement written out on PostgreSQL (_ServiceForUser): it must give what the ORM's query gives
(_service_for_user_orm) for every kind of service and of price terms: the same rows, field by
field, the same related objects already loaded, the same custom rate and terms."""

from decimal import Decimal as D

import pytest
from django.db import connection

from accounts.models import Tier, User, Wallet
from catalog import selectors
from catalog.models import Category, CustomerDiscount, CustomerRate, Service, UpstreamService
from catalog.pricing import CustomerPricing
from providers.models import Provider
from tests.api.factories import ProviderFactory, ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the written-out statement is PostgreSQL's; elsewhere the ORM reads")


def fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def read(service: Service, user: User):
    """Both readings, compared; the written-out one, whose related rows cost no query."""
    orm = selectors._service_for_user_orm(service_id=service.pk, user=user)
    sql = selectors._ServiceForUser.get(connection.alias).fetch(
        service_id=service.pk, user_id=user.pk
    )
    if orm is None:
        assert sql is None
        return None
    (orm_service, orm_rate, orm_terms), (found, rate, terms) = orm, sql
    assert (rate, terms) == (orm_rate, orm_terms)
    assert fields(found) == fields(orm_service)
    assert not found._state.adding and found._state.db == "default"
    assert fields(found.category) == fields(orm_service.category)
    if orm_service.upstream is None:
        assert found.upstream is None
    else:
        assert fields(found.upstream) == fields(orm_service.upstream)
        assert fields(found.upstream.provider) == fields(orm_service.upstream.provider)
    return found, rate, terms


@pytest.fixture
def mapped() -> Service:
    provider = ProviderFactory(exchange_rate=D("0.5"))
    upstream = UpstreamService.objects.create(
        provider=provider, service_id="7", name="Up", rate=D("1.2"), min=10, max=500, refill=True
    )
    return ServiceFactory(upstream=upstream, rate=D("3"))


def test_a_mapped_service_comes_with_its_upstream_and_provider(
    alice, mapped, django_assert_num_queries
):
    user = User.objects.get(pk=alice.pk)  # no terms remembered on it
    with django_assert_num_queries(1):
        found = selectors.service_get_enabled_for_user(service_id=mapped.pk, user=user)
        # Loaded with the row: pricing and placement read them without a query.
        assert isinstance(found.upstream.provider, Provider) and found.category.name
        assert selectors.service_cost(found) == D("0.6")
        assert selectors.service_rate_for_user(user=user, service=found) == D("3")
    read(mapped, alice)


def test_a_manual_service_has_no_upstream(alice):
    manual = ServiceFactory()
    found, _, _ = read(manual, alice)
    assert found.upstream_id is None and found.upstream is None


def test_a_service_or_category_off_sale_or_unknown_is_not_found(alice, mapped):
    Service.objects.filter(pk=mapped.pk).update(is_enabled=False)
    assert read(mapped, alice) is None
    Service.objects.filter(pk=mapped.pk).update(is_enabled=True)
    Category.objects.filter(pk=mapped.category_id).update(is_enabled=False)
    assert read(mapped, alice) is None
    assert selectors.service_get_enabled_for_user(service_id=mapped.pk + 999, user=alice) is None


def test_the_custom_rate_is_this_customers_for_this_service(alice, bob, mapped):
    other = ServiceFactory()
    CustomerRate.objects.create(user=alice, service=other, rate=D("0.1"))
    CustomerRate.objects.create(user=bob, service=mapped, rate=D("0.2"))
    assert read(mapped, alice)[1] is None
    CustomerRate.objects.create(user=alice, service=mapped, rate=D("0.3"))
    assert read(mapped, alice)[1] == D("0.3")
    assert read(mapped, bob)[1] == D("0.2")


@pytest.mark.parametrize(
    ("spent", "percent", "below_cost"),
    [("0", None, False), ("99.99", "5", False), ("100", "10", True), ("5000", "20", False)],
)
def test_the_discount_and_the_highest_tier_reached(alice, bob, mapped, spent, percent, below_cost):
    Tier.objects.create(name="Bronze", min_spent=D("1"), discount_percent=D("5"))
    Tier.objects.create(
        name="Silver", min_spent=D("100"), discount_percent=D("10"), allow_below_cost=True
    )
    Tier.objects.create(name="Gold", min_spent=D("1000"), discount_percent=D("20"))
    CustomerDiscount.objects.create(user=alice, percent=D("12.5"))
    Wallet.objects.filter(user=alice).update(total_spent=D(spent))
    _, _, terms = read(mapped, alice)
    assert terms == CustomerPricing(
        own_percent=D("12.5"),
        tier_percent=D(percent) if percent else D(0),
        tier_below_cost=below_cost,
    )
    assert read(mapped, bob)[2] == CustomerPricing()  # bob spent nothing and has no discount


def test_a_customer_without_a_wallet_has_spent_nothing(alice, mapped):
    Tier.objects.create(name="Zero", min_spent=D("0"), discount_percent=D("3"))
    Tier.objects.create(name="Some", min_spent=D("1"), discount_percent=D("7"))
    Wallet.objects.filter(user=alice).delete()
    assert read(mapped, alice)[2] == CustomerPricing(tier_percent=D("3"))


def test_the_terms_and_custom_rate_are_remembered_for_pricing(
    alice, mapped, django_assert_num_queries
):
    CustomerRate.objects.create(user=alice, service=mapped, rate=D("0.7"))
    user = User.objects.get(pk=alice.pk)
    service = selectors.service_get_enabled_for_user(service_id=mapped.pk, user=user)
    with django_assert_num_queries(0):
        assert selectors.service_rate_for_user(user=user, service=service) == D("0.7")
