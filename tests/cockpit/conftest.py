import datetime
from decimal import Decimal

import pytest

from catalog.models import Category, Service, UpstreamService
from orders.models import Order
from orders.services.summary import daily_summary_add_orders, wallet_order_counts_rebuild
from providers.models import Provider


@pytest.fixture(autouse=True)
def _admin_urls(settings):
    # The admin alone, so that these tests do not depend on the customer pages' imports.
    settings.ROOT_URLCONF = "tests.cockpit.urls"
    # Figures computed afresh in every test (test_dashboard_caches_past_days turns caching on).
    settings.COCKPIT_CACHE_SECONDS = 0


def make_provider(name: str, *, exchange_rate: str = "1", **fields) -> Provider:
    provider = Provider(
        name=name,
        api_url=f"http://127.0.0.1:9/{name}",
        exchange_rate=Decimal(exchange_rate),
        **fields,
    )
    provider.set_api_key(f"key-{name}-1234")
    provider.save()
    return provider


def make_service(
    provider: Provider | None, category: Category, *, upstream_rate: str, rate: str, name: str
) -> Service:
    upstream = None
    if provider is not None:
        upstream = UpstreamService.objects.create(
            provider=provider,
            service_id=f"{name}-up",
            name=name,
            rate=Decimal(upstream_rate),
            min=10,
            max=10000,
        )
    return Service.objects.create(
        name=name, category=category, upstream=upstream, rate=Decimal(rate), min=10, max=10000
    )


def make_order(
    user,
    service,
    *,
    charge: str,
    cost: str | None,
    refunded: str = "0",
    status=Order.Status.COMPLETED,
    created_at: datetime.datetime,
    provider=None,
    placed: bool = True,
    quantity: int = 1000,
) -> Order:
    order = Order.objects.create(
        user=user,
        service=service,
        provider=provider if provider is not None or not placed else _provider_of(service),
        status=status,
        quantity=quantity,
        rate=Decimal(charge),
        charge=Decimal(charge),
        cost=None if cost is None else Decimal(cost),
        refunded=Decimal(refunded),
        created_at=created_at,
    )
    # What order_create and the settling services keep: the cockpit's summary, the counter.
    daily_summary_add_orders(order_ids=[order.pk])
    wallet_order_counts_rebuild(user_ids=[user.pk])
    return order


@pytest.fixture
def world(db):
    """Two providers, two categories, three services (one manual)."""
    alpha = make_provider("Alpha", low_balance_threshold=Decimal("50"))
    beta = make_provider("Beta", exchange_rate="2")
    likes = Category.objects.create(name="Likes", sort_order=1)
    views = Category.objects.create(name="Views", sort_order=2)
    return {
        "alpha": alpha,
        "beta": beta,
        "likes": likes,
        "views": views,
        "s_likes": make_service(
            alpha, likes, upstream_rate="1.00000000", rate="1.50000000", name="IG likes"
        ),
        "s_views": make_service(
            beta, views, upstream_rate="0.50000000", rate="1.20000000", name="YT views"
        ),
        "s_manual": make_service(
            None, likes, upstream_rate="0", rate="3.00000000", name="Manual likes"
        ),
    }


def _provider_of(service: Service) -> Provider | None:
    return service.upstream.provider if service.upstream else None
