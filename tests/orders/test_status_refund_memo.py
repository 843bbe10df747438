"""The refund's memo is on the customer's statement: it says what happened in the customer's
words, never the provider's raw error text, which stays for staff (issue 11 #12)."""

import csv
import io

import pytest
from django.urls import reverse

from accounts.models import LedgerEntry
from orders.models import Order
from orders.services import order_create, order_set_status, order_submit
from tests.orders.factories import make_provider, make_service

pytestmark = pytest.mark.django_db
S = Order.Status
RAW = "Incorrect link (upstream-x.example internal code 77)"


def test_a_refusal_upstream_refunds_with_a_customer_memo_and_keeps_the_raw_text_for_staff(
    alice, sandbox, provider, client
):
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(
        user=alice, service=service, data={"link": "https://x.com/p/memo", "quantity": "100"}
    )
    sandbox.fault("error", message=RAW)
    assert order_submit(order_id=order.pk).status == S.CANCELED

    refund = LedgerEntry.objects.get(order_ref=order.pk, kind="refund")
    assert refund.memo == "Refund: the order could not be placed"
    order.refresh_from_db()
    assert RAW in order.attention_reason
    assert RAW in order.status_changes.get(new_status=S.CANCELED).note

    client.force_login(alice)
    page = client.get(reverse("funds")).content.decode()
    assert "Refund: the order could not be placed" in page
    assert RAW not in page and "Refused upstream" not in page
    response = client.get(reverse("funds_csv"))
    body = b"".join(response.streaming_content).decode()
    assert RAW not in body and "Refused upstream" not in body
    memos = [row[6] for row in csv.reader(io.StringIO(body))]
    assert "Refund: the order could not be placed" in memos


@pytest.fixture
def pending(alice):
    service = make_service(provider=make_provider(), sandbox_id=1, rate="3")
    order = order_create(
        user=alice, service=service, data={"link": "https://x.com/p/2", "quantity": "100"}
    )
    Order.objects.filter(pk=order.pk).update(status=S.PENDING, upstream_order_id="9")
    order.refresh_from_db()
    return order


@pytest.mark.parametrize(
    ("new", "source", "remains", "memo"),
    [
        (S.PARTIAL, "poll", 40, "Refund: 40 of 100 not delivered"),
        (S.CANCELED, "poll", None, "Refund: the order was canceled"),
        (S.CANCELED, "admin", None, "Refund: the order was canceled"),
        (S.CANCELED, "customer", None, "Refund: canceled at your request"),
    ],
)
def test_every_refund_memo_is_written_for_the_customer(pending, new, source, remains, memo):
    order_set_status(
        order=pending, new=new, source=source, remains=remains, note=f"Refused upstream: {RAW}"
    )
    entry = LedgerEntry.objects.get(order_ref=pending.pk, kind="refund")
    assert entry.memo == memo
    assert pending.status_changes.get(new_status=new).note == f"Refused upstream: {RAW}"
