"""Where placement sends an order (catalog.selectors.service_upstream_candidates, one rule),
the cost snapshot of a fail-over (orders.services.costs) and the out-of-funds flag set through
the providers services (one e-mail text)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from catalog.models import UpstreamService
from catalog.selectors import service_upstream_candidates
from orders.models import Order
from orders.services import order_cost, order_create, order_submit
from providers.models import Provider, ProviderCall
from tests.orders.factories import add_backup, make_provider, make_service, make_upstream
from tests.orders.sandbox import KEY

pytestmark = pytest.mark.django_db
S = Order.Status


def _order(alice, service, link="https://instagram.com/p/targets"):
    return order_create(user=alice, service=service, data={"link": link, "quantity": "100"})


def test_a_disabled_primary_provider_is_skipped_for_the_backup(
    alice, sandbox, provider, ledger_clean
):
    service = make_service(provider=provider, sandbox_id=1)
    backup_provider = make_provider(api_url=sandbox.api_url, key=KEY, name="backup")
    backup = make_upstream(provider=backup_provider, sandbox_id=1, rate=Decimal("1.10"))
    add_backup(service=service, upstream=backup)
    order = _order(alice, service)
    Provider.objects.filter(pk=provider.pk).update(is_enabled=False)
    result = order_submit(order_id=order.pk)
    result.refresh_from_db()
    assert (result.status, result.provider, result.upstream_service) == (
        S.PENDING,
        backup_provider,
        backup,
    )
    assert result.failed_over and result.cost == Decimal("0.11000")  # the backup's cost
    assert not ProviderCall.objects.filter(provider=provider).exists()  # never asked
    ledger_clean()


def test_no_usable_mapping_cancels_with_a_full_refund(alice, sandbox, provider, ledger_clean):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    Provider.objects.filter(pk=provider.pk).update(is_enabled=False)
    result = order_submit(order_id=order.pk)
    assert result.status == S.CANCELED and result.refunded == order.charge
    assert "disabled providers" in result.attention_reason
    assert sandbox.log("add") == []
    ledger_clean()


def test_candidates_start_at_the_orders_current_mapping(db):
    primary_provider, other = make_provider(), make_provider()
    service = make_service(provider=primary_provider, sandbox_id=1)
    second = make_upstream(provider=other, sandbox_id=1)
    third = make_upstream(provider=other, sandbox_id=2)
    add_backup(service=service, upstream=third, priority=2)
    add_backup(service=service, upstream=second, priority=1)
    primary = service.upstream
    assert service_upstream_candidates(service=service) == [primary, second, third]
    assert service_upstream_candidates(service=service, start_at=second) == [second, third]
    UpstreamService.objects.filter(pk=second.pk).update(removed_at=timezone.now())
    second.refresh_from_db()
    # Gone itself: the mappings after it, never the primary that already refused the order.
    assert service_upstream_candidates(service=service, start_at=second) == [third]
    # A mapping that is no longer in the chain at all (the service was remapped): all of it.
    stranger = make_upstream(provider=other, sandbox_id=3)
    assert service_upstream_candidates(service=service, start_at=stranger) == [primary, third]


def test_order_cost_prices_units_or_a_package(db):
    provider = make_provider(exchange_rate=Decimal("2"))
    default = make_service(provider=provider, sandbox_id=1)  # 0.90 per 1000 upstream
    package = make_service(provider=provider, sandbox_id=4)  # 2.5 per package upstream
    assert order_cost(service=default, upstream=default.upstream, priced_units=1000) == Decimal(
        "1.80000"
    )
    assert order_cost(service=package, upstream=package.upstream, priced_units=0) == Decimal(
        "5.00000"
    )
    assert order_cost(service=default, upstream=None, priced_units=1000) is None


def test_out_of_funds_mail_names_the_order_and_the_waiting_list(
    alice, sandbox, provider, settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("Admin", "admin@example.com")]
    service = make_service(provider=provider, sandbox_id=1)
    sandbox.control("POST", "balance", balance="0")
    order = _order(alice, service)
    with django_capture_on_commit_callbacks(execute=True):  # staff are told after the commit
        assert order_submit(order_id=order.pk).status == S.WAITING_FUNDS
    [message] = mail.outbox
    assert f"refused order {order.pk} for lack of funds" in message.body
    assert "/admin/orders/order/?status=waiting_funds" in message.body
    assert "fall over to a backup" in message.body
    # The next placement there clears the flag through the providers service.
    sandbox.control("POST", "balance", balance="100")
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert order_submit(order_id=order.pk).status == S.PENDING
    provider.refresh_from_db()
    assert provider.out_of_funds_since is None
