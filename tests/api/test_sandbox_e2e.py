"""A reseller's order through /api/v2 all the way to a provider: the live panel places it at the
sandbox provider over real HTTP (Celery eager), and the API then reports it and cancels it."""

from decimal import Decimal

import pytest
import requests

from catalog.models import UpstreamService
from orders.models import Order
from providers.models import Provider
from providers.sandbox.testing import SandboxServer
from tests.api.factories import ServiceFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


@pytest.fixture
def sandbox():
    with SandboxServer(speed=60) as server:
        yield server


def test_api_order_is_placed_upstream_once_and_reported(live_server, sandbox, alice, alice_key):
    provider = Provider(name="sandbox", api_url=sandbox.url)
    provider.set_api_key(sandbox.key)
    provider.save()
    upstream = UpstreamService.objects.create(
        provider=provider,
        service_id="1",
        name="Sandbox #1",
        rate=Decimal("0.90"),
        min=50,
        max=10000,
        refill=True,
        cancel=True,
    )
    service = ServiceFactory(
        upstream=upstream, rate=Decimal("2.00"), min=50, max=10000, cancel=True, dripfeed=False
    )
    url = live_server.url + "/api/v2"

    def call(**params):
        response = requests.post(url, data={"key": alice_key, **params}, timeout=30)
        assert response.status_code == 200
        return response.json()

    link = "https://instagram.com/p/api-e2e"
    answer = call(action="add", service=service.pk, link=link, quantity="1000")
    order = Order.objects.get(pk=answer["order"])
    assert order.source == Order.Source.API and order.upstream_order_id
    assert len(sandbox.orders(link=link)) == 1
    status = call(action="status", order=order.pk)
    assert status["status"] in ("Pending", "In progress") and status["charge"] == "2.00000"
    assert status["remains"].isdigit() and status["start_count"].isdigit()
    cancel = call(action="cancel", orders=str(order.pk))
    assert cancel[0]["order"] == order.pk and cancel[0]["type"] == "order"
    assert isinstance(cancel[0]["cancel"], int), cancel
    assert call(action="cancel", cancels=str(cancel[0]["cancel"]))[0]["status"] in (
        "Pending",
        "In progress",
        "Completed",
    )
