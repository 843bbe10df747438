"""catalog.selectors.service_rates_for_user: custom rate, else discount; the same answer and
the same two queries for a short list (custom rates read by id) and a long one (read by
customer alone)."""

from decimal import Decimal

import pytest

from catalog import selectors
from catalog.models import CustomerDiscount, CustomerRate
from catalog.pricing import quantize_rate
from tests.api.factories import ServiceFactory

pytestmark = pytest.mark.django_db


def expected(services, custom: dict[int, Decimal]) -> dict[int, Decimal]:
    return {s.pk: custom.get(s.pk, quantize_rate(s.rate * Decimal("0.9"))) for s in services}


def test_long_list_reads_custom_rates_by_customer_and_prices_like_a_short_one(
    alice, bob, django_assert_num_queries
):
    services = ServiceFactory.create_batch(selectors.RATES_BY_ID_MAX + 5, rate=Decimal("2.5"))
    CustomerDiscount.objects.create(user=alice, percent=Decimal("10"))
    mine = {services[0].pk: Decimal("1.1"), services[-1].pk: Decimal("0.333")}
    for pk, rate in mine.items():
        CustomerRate.objects.create(user=alice, service_id=pk, rate=rate)
    # Another customer's rate, and alice's rate of a service not in the list, change nothing.
    CustomerRate.objects.create(user=bob, service=services[1], rate=Decimal("0.01"))
    outside = ServiceFactory(rate=Decimal("9"))
    CustomerRate.objects.create(user=alice, service=outside, rate=Decimal("0.02"))

    with django_assert_num_queries(2) as ctx:
        long = selectors.service_rates_for_user(user=alice, services=services)
    assert long == expected(services, mine)
    by_id = {s.pk: s.rate for s in services}
    assert selectors.service_rates_for_user_by_id(user=alice, retail=by_id) == long
    rate_sql = next(q["sql"] for q in ctx.captured_queries if "customerrate" in q["sql"])
    assert " IN (" not in rate_sql  # by customer alone, not a list of ids

    short_list = [services[0], services[1], services[2]]
    # The discount and tier were read once for this user object (once per request): now only
    # the custom rates are read.
    with django_assert_num_queries(1) as ctx:
        short = selectors.service_rates_for_user(user=alice, services=short_list)
    assert short == {s.pk: long[s.pk] for s in short_list}
    rate_sql = next(q["sql"] for q in ctx.captured_queries if "customerrate" in q["sql"])
    assert " IN (" in rate_sql
    assert outside.pk not in long and outside.pk not in short
