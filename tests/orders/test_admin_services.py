"""What an admin does by hand: resend, set the upstream id, set a status, cancel with refund."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import LedgerEntry
from orders.models import Order
from orders.services import (
    OrderError,
    order_cancel_with_refund,
    order_create,
    order_resend,
    order_set_status,
    order_set_status_by_admin,
    order_set_upstream_id,
    order_submit,
    orders_requeue,
    provider_poll_orders,
)
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
S = Order.Status


def _order(alice, service, link="https://instagram.com/p/admin"):
    return order_create(user=alice, service=service, data={"link": link, "quantity": "200"})


def test_resend_only_from_review_and_recorded(alice, staff, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    with pytest.raises(OrderError, match="need review"):
        order_resend(order=order, who=staff)
    sandbox.fault("http500")
    order = order_submit(order_id=order.pk)
    assert order.status == S.NEEDS_REVIEW
    order = order_resend(order=order, who=staff)
    assert order.status == S.QUEUED
    change = order.status_changes.last()
    assert change.changed_by == staff and change.source == "admin"
    assert order_submit(order_id=order.pk).status == S.PENDING


def test_resend_refuses_an_order_already_placed_upstream(alice, staff, sandbox, provider, settings):
    # Polled past ORDER_MAX_POLL_AGE: in review, but placed for sure. A resend would place it
    # a second time at the provider.
    settings.ORDER_MAX_POLL_AGE = timedelta(days=2)
    service = make_service(provider=provider, sandbox_id=1)
    order = order_submit(order_id=_order(alice, service).pk)
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(days=3))
    provider_poll_orders(provider=provider, now=timezone.now() + timedelta(minutes=10))
    order.refresh_from_db()
    assert order.status == S.NEEDS_REVIEW and order.upstream_order_id
    with pytest.raises(OrderError, match="placed at the provider"):
        order_resend(order=order, who=staff)
    order.refresh_from_db()
    assert order.status == S.NEEDS_REVIEW and order.upstream_order_id
    assert len(sandbox.orders()) == 1


def test_a_status_set_by_hand_never_sends_the_order_again(
    alice, staff, sandbox, provider, settings
):
    # NEEDS_REVIEW -> QUEUED is in the table (for Resend): set by hand it would skip Resend's
    # checks, and the requeue sweep would place the order a second time.
    settings.ORDER_MAX_POLL_AGE = timedelta(days=2)
    service = make_service(provider=provider, sandbox_id=1)
    order = order_submit(order_id=_order(alice, service).pk)
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(days=3))
    provider_poll_orders(provider=provider, now=timezone.now() + timedelta(minutes=10))
    order.refresh_from_db()
    assert order.status == S.NEEDS_REVIEW
    with pytest.raises(OrderError, match="Resend"):
        order_set_status_by_admin(order=order, new=S.QUEUED, who=staff)
    orders_requeue(now=timezone.now() + timedelta(minutes=5))
    order.refresh_from_db()
    assert order.status == S.NEEDS_REVIEW
    assert len(sandbox.orders()) == 1


def test_set_upstream_id_by_hand_then_polled(alice, staff, sandbox, provider):
    service = make_service(provider=provider, sandbox_id=1)
    order = _order(alice, service)
    sandbox.fault("drop_after_accept")
    order = order_submit(order_id=order.pk)
    assert order.status == S.NEEDS_REVIEW
    [upstream] = sandbox.orders()
    with pytest.raises(OrderError):
        order_set_upstream_id(order=order, upstream_order_id="1,2", who=staff)
    order = order_set_upstream_id(order=order, upstream_order_id=str(upstream["order"]), who=staff)
    assert order.status == S.PENDING and order.upstream_order_id == str(upstream["order"])
    assert order.next_poll_at is not None


def test_manual_service_status_by_hand_refunds_partial(alice, staff, ledger_clean):
    service = make_service(order_type="Default", rate="2")
    order = _order(alice, service)
    assert order.status == S.MANUAL and order.charge == Decimal("0.40000")
    order = order_set_status_by_admin(order=order, new=S.IN_PROGRESS, who=staff)
    with pytest.raises(OrderError, match="remains"):
        order_set_status_by_admin(order=order, new=S.PARTIAL, who=staff)
    with pytest.raises(OrderError, match="between"):
        order_set_status_by_admin(order=order, new=S.PARTIAL, who=staff, remains=201)
    order = order_set_status_by_admin(order=order, new=S.PARTIAL, who=staff, remains=50)
    assert order.refunded == Decimal("0.10000")
    with pytest.raises(OrderError, match="cannot go"):
        order_set_status_by_admin(order=order, new=S.CANCELED, who=staff)
    assert LedgerEntry.objects.filter(order_ref=order.pk, kind="refund").count() == 1
    ledger_clean()


def test_cancel_with_refund(alice, staff, ledger_clean):
    service = make_service(order_type="Default", rate="2")
    order = _order(alice, service)
    order = order_cancel_with_refund(order=order, who=staff)
    assert order.status == S.CANCELED and order.refunded == order.charge
    with pytest.raises(OrderError, match="finished"):
        order_cancel_with_refund(order=order, who=staff)
    alice.wallet.refresh_from_db()
    assert alice.wallet.balance == Decimal("50")
    ledger_clean()


def test_transitions_table_is_enforced(alice):
    service = make_service(order_type="Default", rate="2")
    order = _order(alice, service)
    with pytest.raises(OrderError):
        order_set_status(order=order, new=S.QUEUED, source="admin")
    order = order_set_status(order=order, new=S.COMPLETED, source="admin")
    for new in S.values:
        with pytest.raises(OrderError):
            order_set_status(order=order, new=new, source="admin")


def test_admin_cannot_settle_an_order_whose_add_is_in_flight(alice, staff):
    service = make_service(order_type="Default", rate="2")
    order = _order(alice, service)
    Order.objects.filter(pk=order.pk).update(status=S.SUBMITTING)
    order.refresh_from_db()
    with pytest.raises(OrderError, match="being sent"):
        order_cancel_with_refund(order=order, who=staff)
    assert not LedgerEntry.objects.filter(kind="refund").exists()


def test_customer_cancels_a_manual_order_before_the_admin_starts(alice, ledger_clean):
    from orders.services import order_cancel_request

    service = make_service(order_type="Default", rate="2", cancel=True)
    order = _order(alice, service)
    cancel = order_cancel_request(user=alice, order=order)
    order.refresh_from_db()
    assert cancel.public_status == "Completed"
    assert order.status == S.CANCELED and order.refunded == order.charge
    ledger_clean()
