"""Catalog and order rows for the API tests, created directly (no services involved), so that a
test can put an order in any state the API must report."""

from decimal import Decimal

import factory

from catalog.models import Category, Service
from catalog.order_types import OrderType
from orders.models import CancelRequest, Order, Refill
from providers import crypto
from providers.models import Provider


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Category {n}")


class ServiceFactory(factory.django.DjangoModelFactory):
    """A manual service (no upstream): placing its orders never leaves the machine."""

    class Meta:
        model = Service

    name = factory.Sequence(lambda n: f"Service {n}")
    description = "Some description"
    category = factory.SubFactory(CategoryFactory)
    type = OrderType.DEFAULT
    min = 10
    max = 10000
    rate = Decimal("0.90000000")
    refill = True
    cancel = True
    dripfeed = True


class ProviderFactory(factory.django.DjangoModelFactory):
    """A provider at a closed loopback port: a call that slips through fails fast, locally."""

    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"provider-{n}")
    api_url = "http://127.0.0.1:9/api/v2"
    api_key_encrypted = factory.LazyFunction(lambda: crypto.encrypt("upstream-key"))
    api_key_hint = "-key"


class OrderFactory(factory.django.DjangoModelFactory):
    """An order already placed upstream (provider and upstream id set)."""

    class Meta:
        model = Order

    service = factory.SubFactory(ServiceFactory)
    source = Order.Source.API
    status = Order.Status.IN_PROGRESS
    link = "https://example.com/p/1"
    quantity = 1000
    rate = Decimal("0.90000000")
    charge = Decimal("0.90000")
    start_count = 3572
    remains = 157
    provider = factory.SubFactory(ProviderFactory)
    upstream_order_id = factory.Sequence(lambda n: str(90000 + n))


class RefillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refill

    order = factory.SubFactory(OrderFactory)
    status = Refill.Status.COMPLETED


class CancelRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CancelRequest

    order = factory.SubFactory(OrderFactory)
    status = CancelRequest.Status.COMPLETED
