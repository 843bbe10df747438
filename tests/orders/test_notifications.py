"""The orders' notifications, with the sandbox provider over HTTP: a poll that ends an order
Partial or Canceled tells its customer once (notice + mail after commit) with the refund, a
repeated poll tells nobody again, a refill done is told, an order sent to review tells staff,
and a status change that rolls back tells nobody."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from accounts.models import Notification
from accounts.notifications import notification_preference_set
from orders.models import Order, OrderStatusChange
from orders.services import create as create_module
from orders.services import (
    order_create,
    order_refill_request,
    order_set_status,
    order_submit,
    provider_poll_orders,
    provider_poll_refills,
    provider_send_refills,
)
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
S = Order.Status
E = Notification.Event
SPEED = 1.0


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PANEL_PUBLIC_URL = "https://panel.example.com"
    settings.ADMINS = []


@pytest.fixture
def fast(sandbox):
    sandbox.config(speed=SPEED)
    return sandbox


def _placed(alice, service, link):
    order = order_create(user=alice, service=service, data={"link": link, "quantity": "300"})
    placed = order_submit(order_id=order.pk)
    assert placed.status == S.PENDING, placed.attention_reason
    return placed


def _later(minutes=10):
    return timezone.now() + timedelta(minutes=minutes)


def test_a_poll_tells_partial_and_canceled_once_with_the_refund(
    alice, fast, provider, django_capture_on_commit_callbacks
):
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    partial = _placed(alice, service, "https://instagram.com/p/partial")
    failed = _placed(alice, service, "https://instagram.com/p/fail")
    done = _placed(alice, service, "https://instagram.com/p/done")
    assert done.status == S.PENDING
    fast.advance(SPEED + 0.2)
    with django_capture_on_commit_callbacks(execute=True):
        assert provider_poll_orders(provider=provider, now=_later()).changed == 3
        # The same answers again (a repeated poll, a second worker): nothing more is told.
        Order.objects.filter(pk__in=[partial.pk, failed.pk]).update(next_poll_at=timezone.now())
        provider_poll_orders(provider=provider, now=_later(20))
    notices = {n.context["order_id"]: n for n in Notification.objects.filter(user=alice)}
    assert set(notices) == {partial.pk, failed.pk}  # Completed is no news worth a mail
    assert notices[partial.pk].title == f"Order {partial.pk} Partial: $0.30 refunded"
    assert notices[failed.pk].title == f"Order {failed.pk} Canceled: $0.90 refunded"
    assert notices[partial.pk].url == f"/orders/{partial.pk}/"
    assert sorted(m.subject.split("] ")[-1] for m in mail.outbox) == sorted(
        n.title for n in notices.values()
    )
    body = next(m.body for m in mail.outbox if str(partial.pk) in m.subject)
    assert "100 of 300 were not delivered" in body and "$0.30 of its $0.90" in body
    assert f"https://panel.example.com/orders/{partial.pk}/" in body


def test_a_refund_mail_turned_off_keeps_the_notice(
    alice, fast, provider, django_capture_on_commit_callbacks
):
    notification_preference_set(user=alice, email={E.ORDER_REFUNDED: False})
    service = make_service(provider=provider, sandbox_id=1, rate="3")
    _placed(alice, service, "https://instagram.com/p/fail")
    fast.advance(SPEED + 0.2)
    with django_capture_on_commit_callbacks(execute=True):
        provider_poll_orders(provider=provider, now=_later())
    assert Notification.objects.get(user=alice).event == E.ORDER_REFUNDED
    assert mail.outbox == []


def test_a_refill_done_is_told_once(alice, fast, provider, django_capture_on_commit_callbacks):
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/refillme")
    fast.advance(SPEED + 0.2)
    provider_poll_orders(provider=provider, now=_later())
    refill = order_refill_request(user=alice, order=order)
    provider_send_refills(provider=provider)
    fast.advance(SPEED + 0.2)
    with django_capture_on_commit_callbacks(execute=True):
        provider_poll_refills(provider=provider, now=_later())
        provider_poll_refills(provider=provider, now=_later(30))
    [notice] = Notification.objects.filter(user=alice)
    assert notice.event == E.REFILL_DONE and notice.context["refill_id"] == refill.pk
    [message] = mail.outbox
    assert message.subject.endswith(f"Refill of order {order.pk} done")


def test_an_order_sent_to_review_tells_staff(
    alice, staff, provider, django_capture_on_commit_callbacks
):
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(user=alice, service=service, data={"link": "https://x.com/p/1", "quantity": "100"})  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        order_set_status(
            order=order, new=S.NEEDS_REVIEW, source="admin", note="Read timeout after sending"
        )
    [notice] = Notification.objects.filter(user=staff)
    assert notice.event == E.ORDER_NEEDS_REVIEW
    assert notice.message == f"Order {order.pk} needs review: Read timeout after sending"
    assert notice.url == "/admin/orders/order/?status=needs_review"
    [message] = mail.outbox
    assert message.to == ["staff@example.com"]
    assert not Notification.objects.filter(user=alice).exists()


@pytest.mark.django_db(transaction=True)
def test_a_cancel_that_rolls_back_tells_nobody_and_refunds_nothing(alice, monkeypatch):
    """A real transaction (no test wrapper): the cancel, its refund and its notice roll back
    together, and no mail leaves; the same cancel committed tells the customer once."""
    monkeypatch.setattr(create_module, "enqueue_order_submit", lambda order_id: None)
    service = make_service(sandbox_id=1, rate="3", provider=None)
    order = order_create(user=alice, service=service, data={"link": "https://x.com/p/1", "quantity": "100"})  # fmt: skip
    before = order.status  # Manual: a service with no provider is fulfilled by staff
    mail.outbox.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        order_set_status(order=order, new=S.CANCELED, source="admin")
        assert Notification.objects.filter(user=alice).count() == 1
        raise RuntimeError("something after the cancel fails")
    order.refresh_from_db()
    assert order.status == before and order.refunded == 0
    assert not Notification.objects.exists() and mail.outbox == []
    assert not OrderStatusChange.objects.filter(new_status=S.CANCELED).exists()
    order_set_status(order=order, new=S.CANCELED, source="admin")
    [notice] = Notification.objects.filter(user=alice)
    assert notice.context["refund"] == "$0.30"
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and "$0.30" in message.subject
    assert Decimal(order.charge) == Decimal("0.30000")
