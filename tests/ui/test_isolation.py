"""A customer never sees or acts on another customer's orders, refills or statement."""

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.models import CancelRequest, Refill

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_order(default_service, place):
    return place(default_service, status="completed", link="https://instagram.com/p/alice-only")


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.mark.parametrize("name", ["order_detail", "order_row"])
def test_another_customers_order_is_not_found(bob_client, alices_order, name):
    assert bob_client.get(reverse(name, args=[alices_order.pk])).status_code == 404
    # Exactly like an id that does not exist.
    assert bob_client.get(reverse(name, args=[alices_order.pk + 1000])).status_code == 404


def test_refill_and_cancel_of_another_customers_order_are_refused(
    bob_client, alices_order, default_service, place
):
    running = place(default_service, status="in_progress")
    assert bob_client.post(reverse("order_refill", args=[alices_order.pk])).status_code == 404
    assert bob_client.post(reverse("order_cancel", args=[running.pk])).status_code == 404
    assert not Refill.objects.exists() and not CancelRequest.objects.exists()


def test_lists_and_statement_show_only_ones_own(bob_client, bob, alices_order):
    orders = bob_client.get(reverse("orders")).content.decode()
    assert "alice-only" not in orders
    assert bob_client.get(reverse("orders"), {"q": str(alices_order.pk)}).context["orders"] == []
    funds = bob_client.get(reverse("funds")).content.decode()
    assert "Order charge" not in funds and "50.00" not in funds
    csv_body = b"".join(bob_client.get(reverse("funds_csv")).streaming_content).decode()
    assert csv_body.count("\n") == 1  # the header only
    assert bob_client.get(reverse("home")).context["order_count"] == 0
    assert bob.wallet.balance == Decimal(0)
