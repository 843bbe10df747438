"""The `services` answer is cached per price list (catalog.price_lists) and never shows a price,
a service or a category that changed since: each way the catalog or a customer's terms can
change is tried after the answer was cached, through the service, a model save or a queryset
write that bypasses save()."""

import gzip
import json
from decimal import Decimal as D

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import LedgerEntry, Tier
from accounts.services import balance_debit
from catalog.models import Category, CustomerDiscount, CustomerRate, Service, UpstreamService
from catalog.price_lists import local_answers
from providers.models import Provider
from tests.api.conftest import API_URL
from tests.api.factories import CategoryFactory, ProviderFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def _rates(client, key) -> dict[int, str]:
    response = client.post(API_URL, {"key": key, "action": "services"})
    return {row["service"]: row["rate"] for row in json.loads(response.content)}


def _cached_call_queries(client, key) -> int:
    with CaptureQueriesContext(connection) as ctx:
        client.post(API_URL, {"key": key, "action": "services"})
    return len(ctx.captured_queries)


@pytest.fixture
def priced(alice, alice_key, client):
    """Two services on sale, the answer cached (a second call reads no service row)."""
    category = CategoryFactory(name="Cached")
    one = ServiceFactory(category=category, rate=D("1.00000000"))
    two = ServiceFactory(category=category, rate=D("2.00000000"))
    assert _rates(client, alice_key) == {one.pk: "1.00", two.pk: "2.00"}
    assert _served_from_cache(client, alice_key)
    return one, two


def _served_from_cache(client, key) -> bool:
    with CaptureQueriesContext(connection) as ctx:
        client.post(API_URL, {"key": key, "action": "services"})
    return not any("catalog_service" in q["sql"] for q in ctx.captured_queries)


def test_cached_answer_is_the_built_one_byte_for_byte(client, alice_key, priced):
    built = client.post(API_URL, {"key": alice_key, "action": "services"}).content
    local_answers.clear()  # from the shared cache now, gzipped
    plain = client.post(API_URL, {"key": alice_key, "action": "services"})
    gzipped = client.post(
        API_URL, {"key": alice_key, "action": "services"}, HTTP_ACCEPT_ENCODING="gzip"
    )
    assert plain.content == built and "Content-Encoding" not in plain
    assert gzipped["Content-Encoding"] == "gzip" and gzip.decompress(gzipped.content) == built
    for response in (plain, gzipped):
        assert response["Content-Type"] == "application/json"
        assert "Accept-Encoding" in response["Vary"]
        assert "no-cache" in response["Cache-Control"]
    assert _cached_call_queries(client, alice_key) < 4  # no service row read


def test_a_price_saved_through_the_model_shows_at_once(client, alice_key, priced):
    one, _ = priced
    one.rate = D("1.50000000")
    one.save()
    assert _rates(client, alice_key)[one.pk] == "1.50"


def test_queryset_updates_and_bulk_writes_show_at_once(client, alice_key, priced):
    one, two = priced
    Service.objects.filter(pk=one.pk).update(rate=D("3.00000000"))
    assert _rates(client, alice_key)[one.pk] == "3.00"
    two.rate = D("4.00000000")
    Service.objects.bulk_update([two], ["rate"])
    assert _rates(client, alice_key)[two.pk] == "4.00"
    new = Service.objects.bulk_create(
        [Service(name="Bulk", category=one.category, rate=D("5"), min=1, max=10)]
    )[0]
    assert _rates(client, alice_key)[new.pk] == "5.00"


def test_a_disabled_service_or_category_leaves_the_list(client, alice_key, priced):
    one, two = priced
    Service.objects.filter(pk=one.pk).update(is_enabled=False)
    assert list(_rates(client, alice_key)) == [two.pk]
    Category.objects.filter(pk=two.category_id).update(is_enabled=False)
    assert _rates(client, alice_key) == {}
    category = Category.objects.get(pk=two.category_id)
    category.is_enabled = True
    category.save()
    assert list(_rates(client, alice_key)) == [two.pk]
    two.delete()
    assert _rates(client, alice_key) == {}


def test_a_new_discount_custom_rate_or_tier_shows_at_once(client, alice, alice_key, priced):
    one, two = priced
    discount = CustomerDiscount.objects.create(user=alice, percent=D("10"))
    assert _rates(client, alice_key) == {one.pk: "0.90", two.pk: "1.80"}
    CustomerDiscount.objects.filter(pk=discount.pk).update(percent=D("20"))
    assert _rates(client, alice_key) == {one.pk: "0.80", two.pk: "1.60"}
    discount.delete()
    rate = CustomerRate.objects.create(user=alice, service=one, rate=D("0.5"))
    assert _rates(client, alice_key) == {one.pk: "0.50", two.pk: "2.00"}
    second = CustomerRate.objects.create(user=alice, service=two, rate=D("0.75"))
    assert _rates(client, alice_key) == {one.pk: "0.50", two.pk: "0.75"}
    second.delete()
    assert _rates(client, alice_key) == {one.pk: "0.50", two.pk: "2.00"}
    CustomerRate.objects.filter(pk=rate.pk).update(rate=D("0.25"))
    assert _rates(client, alice_key)[one.pk] == "0.25"
    rate.delete()
    assert _rates(client, alice_key)[one.pk] == "1.00"
    tier = Tier.objects.create(name="Silver", min_spent=D("10"), discount_percent=D("50"))
    assert _rates(client, alice_key)[one.pk] == "1.00"  # nothing spent yet
    balance_debit(user=alice, amount=D("10"), kind=LedgerEntry.Kind.CHARGE)  # crosses 10
    assert _rates(client, alice_key) == {one.pk: "0.50", two.pk: "1.00"}
    Tier.objects.filter(pk=tier.pk).update(discount_percent=D("25"))  # staff edit the tier
    assert _rates(client, alice_key) == {one.pk: "0.75", two.pk: "1.50"}


def test_a_cost_change_moves_the_floor_of_a_tier(client, alice, alice_key, priced):
    """A tier's discount stops at the cost: the upstream's rate and the provider's exchange
    rate are part of the price list too."""
    one, _ = priced
    provider = ProviderFactory()
    upstream = UpstreamService.objects.create(
        provider=provider, service_id="1", name="u", rate=D("0.8"), min=1, max=10
    )
    Service.objects.filter(pk=one.pk).update(upstream=upstream)
    Tier.objects.create(name="Gold", min_spent=D("0"), discount_percent=D("50"))
    assert _rates(client, alice_key)[one.pk] == "0.80"  # 0.50 floored at the cost
    UpstreamService.objects.filter(pk=upstream.pk).update(rate=D("0.6"))
    assert _rates(client, alice_key)[one.pk] == "0.60"
    upstream.rate = D("0.7")
    upstream.save(update_fields=["rate"])
    assert _rates(client, alice_key)[one.pk] == "0.70"
    Provider.objects.filter(pk=provider.pk).update(exchange_rate=D("1.2"))
    assert _rates(client, alice_key)[one.pk] == "0.84"
    provider.refresh_from_db()
    provider.exchange_rate = D("1")
    provider.save()
    assert _rates(client, alice_key)[one.pk] == "0.70"


def test_unrelated_writes_keep_the_cache(client, alice_key, priced):
    """A provider's balance check or an upstream row's last-seen time does not change any
    price: the cached answer stays."""
    provider = ProviderFactory()
    upstream = UpstreamService.objects.create(
        provider=provider, service_id="9", name="u", rate=D("0.8"), min=1, max=10
    )
    _rates(client, alice_key)  # rebuilt after the writes above
    Provider.objects.filter(pk=provider.pk).update(balance=D("12"))
    UpstreamService.objects.filter(pk=upstream.pk).update(removed_at=None)
    provider.save(update_fields=["balance"])
    assert _served_from_cache(client, alice_key)


def test_customers_with_other_terms_never_share_an_answer(client, alice_key, bob, bob_key, priced):
    one, _ = priced
    assert _rates(client, bob_key)[one.pk] == "1.00"  # the same terms: alice's cached answer
    CustomerRate.objects.create(user=bob, service=one, rate=D("0.1"))
    assert _rates(client, bob_key)[one.pk] == "0.10"
    assert _rates(client, alice_key)[one.pk] == "1.00"
    assert _served_from_cache(client, alice_key) and _served_from_cache(client, bob_key)


def test_an_answer_is_built_when_the_cache_is_down(client, alice_key, priced, monkeypatch):
    one, _ = priced

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", broken)
    monkeypatch.setattr(cache, "set", broken)
    Service.objects.filter(pk=one.pk).update(rate=D("6"))
    local_answers.clear()
    assert _rates(client, alice_key)[one.pk] == "6.00"
