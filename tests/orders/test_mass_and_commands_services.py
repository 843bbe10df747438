"""Mass orders as a service (order_create_many) and the poll command's --all-due service."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from orders.services import (
    OrderError,
    mass_order_split,
    order_create_many,
    order_quote,
    orders_make_due,
)
from orders.services.mass import MASS_ORDER_MAX_LINES
from tests.orders.factories import make_provider, make_service

pytestmark = pytest.mark.django_db
S = Order.Status


def test_mass_order_split_keeps_line_numbers_and_limits():
    assert mass_order_split(text="\n 1 | a | 2 \n\n3|b|4\n") == [(2, "1 | a | 2"), (4, "3|b|4")]
    with pytest.raises(OrderError, match="at least one") as empty:
        mass_order_split(text=" \n \n")
    assert empty.value.field == "orders"
    too_many = "\n".join(["1 | a | 2"] * (MASS_ORDER_MAX_LINES + 1))
    with pytest.raises(OrderError, match=f"At most {MASS_ORDER_MAX_LINES}"):
        mass_order_split(text=too_many)


def test_order_create_many_places_each_line_on_its_own(alice):
    provider = make_provider()
    default = make_service(provider=provider, sandbox_id=1, rate="3")
    comments = make_service(provider=provider, order_type="Custom Comments")
    dear = make_service(provider=provider, sandbox_id=1, rate="100")
    text = "\n".join(
        [
            f"{default.pk} | https://instagram.com/p/1 | 100",
            f"{default.pk} | https://instagram.com/p/2 | 5",  # under the minimum
            "999999 | https://instagram.com/p/3 | 100",
            f"{comments.pk} | https://instagram.com/p/4 | 10",
            "no pipes here",
            "x1 | https://instagram.com/p/6 | 100",
            f"{dear.pk} | https://instagram.com/p/7 | 10000",  # over the balance
        ]
    )
    lines = mass_order_split(text=text)
    results = order_create_many(user=alice, lines=lines, token="t1")
    assert [r.number for r in results] == [1, 2, 3, 4, 5, 6, 7]
    assert results[0].order is not None and results[0].order.source == Order.Source.MASS
    assert "between" in results[1].error
    assert "does not exist or is not on sale" in results[2].error
    assert "needs more than a link" in results[3].error
    assert "service_id | link | quantity" in results[4].error
    assert "is not a service id" in results[5].error
    assert results[6].error.startswith("Not enough funds")
    assert all(r.order is None for r in results[1:])
    # The same batch again: the first order back, nothing charged twice.
    again = order_create_many(user=alice, lines=lines, token="t1")
    assert again[0].order.pk == results[0].order.pk
    assert Order.objects.filter(user=alice).count() == 1
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("50") - results[0].order.charge


def test_quote_names_the_order_quantity(alice):
    service = make_service(provider=make_provider(), sandbox_id=2, rate="0.70000")
    data = {"link": "https://x.com/p", "quantity": "1000", "runs": "5", "interval": "30"}
    quote = order_quote(user=alice, service=service, data=data)
    assert quote.order_quantity == 5000  # all runs: what Order.quantity stores
    assert quote.charge == Decimal("3.50000")


def test_orders_make_due_touches_only_polled_orders_of_the_providers(alice):
    mine, other = make_provider(), make_provider()
    later = timezone.now() + timedelta(hours=3)
    orders = {}
    for name, provider, status in [
        ("polled", mine, S.IN_PROGRESS),
        ("final", mine, S.COMPLETED),
        ("elsewhere", other, S.PENDING),
    ]:
        service = make_service(provider=provider, sandbox_id=1)
        order = Order.objects.create(
            user=alice,
            service=service,
            provider=provider,
            status=status,
            link="https://x.com/p",
            quantity=100,
            rate=Decimal("1"),
            charge=Decimal("0.1"),
            next_poll_at=later,
        )
        orders[name] = order
    now = timezone.now()
    assert orders_make_due(providers=[mine], now=now) == 1
    due = {name: Order.objects.get(pk=o.pk).next_poll_at for name, o in orders.items()}
    assert due == {"polled": now, "final": later, "elsewhere": later}
