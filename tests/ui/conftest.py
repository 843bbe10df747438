from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Category, Service, UpstreamService
from orders.models import Order
from orders.services import order_create
from providers.models import Provider


@pytest.fixture(autouse=True)
def _ui_settings(settings):
    settings.PANEL_PUBLIC_URL = "https://panel.example.com"


@pytest.fixture
def category(db):
    return Category.objects.create(name="Instagram", sort_order=1)


@pytest.fixture
def provider(db):
    provider = Provider(name="upstream-a", api_url="http://127.0.0.1:9/api/v2")
    provider.set_api_key("provider-key-123")
    provider.save()
    return provider


@pytest.fixture
def default_service(category, provider):
    upstream = UpstreamService.objects.create(
        provider=provider, service_id="1", name="Followers", rate=Decimal("1.0"), min=10, max=10000
    )
    return Service.objects.create(
        name="Instagram Followers",
        category=category,
        type="Default",
        min=10,
        max=10000,
        rate=Decimal("2.00"),
        refill=True,
        refill_days=30,
        cancel=True,
        upstream=upstream,
        description="Real-looking <b>profiles</b>\nStarts in 1 hour",
    )


@pytest.fixture
def comments_service(category):
    return Service.objects.create(
        name="Instagram Custom Comments",
        category=category,
        type="Custom Comments",
        min=1,
        max=100,
        rate=Decimal("10.00"),
    )


@pytest.fixture
def place(alice):
    """Place an order for a customer through the orders service (placement is not run: the
    test transaction never commits)."""

    def _place(service, user=None, status=None, **data):
        data = {"link": "https://instagram.com/p/abc", "quantity": "100", **data}
        order = order_create(user=user or alice, service=service, data=data)
        if status is not None:
            extra = {}
            if status in ("completed", "partial", "canceled"):
                extra["finished_at"] = timezone.now()
            if status != "queued":
                extra.update(
                    upstream_order_id=f"up-{order.pk}",
                    start_count=120,
                    remains=0 if status == "completed" else 40,
                )
            Order.objects.filter(pk=order.pk).update(status=status, **extra)
            order.refresh_from_db()
        return order

    return _place


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def days_ago(n: int):
    return timezone.now() - timedelta(days=n)
