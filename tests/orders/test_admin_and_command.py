"""The orders admin (list, search, change page, actions) and the poll_orders command."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from orders.models import Order
from orders.services import order_create, order_submit
from tests.orders.factories import make_service

pytestmark = pytest.mark.django_db
S = Order.Status


def _placed(alice, service, link):
    order = order_create(user=alice, service=service, data={"link": link, "quantity": "300"})
    return order_submit(order_id=order.pk)


def test_changelist_search_and_change_page(client, staff, alice, sandbox, provider):
    client.force_login(staff)
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/findme")
    url = reverse("admin:orders_order_changelist")
    for query in (
        "",
        f"?q={order.pk}",
        "?q=https://instagram.com/p/find",
        f"?q={order.upstream_order_id}",
        "?q=alice",
        "?attention=review",
        "?status__exact=pending",
    ):
        response = client.get(url + query)
        assert response.status_code == 200, query
    # Links are found by their start (an index), not by any part of them.
    found = client.get(url + "?q=https://instagram.com/p/find").context["cl"].result_list
    assert [o.pk for o in found] == [order.pk]
    assert client.get(url + "?q=findme").context["cl"].result_count == 0
    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert "status history" in page.lower() and "calls to the provider" in page.lower()
    assert "add" in page  # the recorded `add` call


def test_change_form_sets_status_through_the_service(client, staff, alice, ledger_clean):
    client.force_login(staff)
    service = make_service(order_type="Default", rate="2")
    order = order_create(
        user=alice,
        service=service,
        data={"link": "https://instagram.com/p/manual", "quantity": "100"},
    )
    url = reverse("admin:orders_order_change", args=[order.pk])
    form = {
        "new_status": "partial",
        "new_remains": "25",
        "admin_note": "half done",
        "status_changes-TOTAL_FORMS": "0",
        "status_changes-INITIAL_FORMS": "0",
        "refills-TOTAL_FORMS": "0",
        "refills-INITIAL_FORMS": "0",
        "cancel_requests-TOTAL_FORMS": "0",
        "cancel_requests-INITIAL_FORMS": "0",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    order.refresh_from_db()
    assert order.status == S.PARTIAL and order.refunded == order.charge / 4
    change = order.status_changes.last()
    assert change.changed_by == staff and change.note == "half done"
    ledger_clean()


def test_admin_actions(client, staff, alice, sandbox, provider):
    client.force_login(staff)
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(
        user=alice, service=service, data={"link": "https://instagram.com/p/act", "quantity": "100"}
    )
    sandbox.fault("http500")
    assert order_submit(order_id=order.pk).status == S.NEEDS_REVIEW
    url = reverse("admin:orders_order_changelist")
    client.post(url, {"action": "resend_orders", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert order.status == S.QUEUED  # placement is enqueued on commit
    assert order.status_changes.last().changed_by == staff
    assert order_submit(order_id=order.pk).status == S.PENDING
    client.post(url, {"action": "cancel_orders_with_refund", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert order.status == S.CANCELED and order.refunded == order.charge


def test_poll_orders_command(alice, sandbox, provider):
    sandbox.config(speed=1)
    service = make_service(provider=provider, sandbox_id=1)
    order = _placed(alice, service, "https://instagram.com/p/cmd-partial")
    sandbox.advance(1.2)
    out = StringIO()
    call_command("poll_orders", "--provider", provider.name, "--all-due", stdout=out)
    text = out.getvalue()
    assert f"order {order.pk}: pending -> partial" in text
    assert "1 order(s) changed." in text
    with pytest.raises(CommandError):
        call_command("poll_orders", "--provider", "nope")
