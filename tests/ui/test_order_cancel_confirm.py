"""Issue 17, orders: the question before a cancel (with and without JavaScript), the
"requested" labels on the row, and the Cancel button exactly where order_cancel_request
accepts it."""

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.models import CancelRequest, Order, Refill
from providers.models import Provider

pytestmark = pytest.mark.django_db


def balance(user) -> Decimal:
    user.wallet.refresh_from_db()
    return user.wallet.balance


def test_the_list_button_carries_the_question_and_an_empty_confirmed_field(
    alice_client, default_service, place
):
    order = place(default_service, status="in_progress")
    body = alice_client.get(reverse("orders")).content.decode()
    assert f'data-confirm="Cancel order {order.pk}?' in body
    assert 'name="confirmed" value="" data-confirmed' in body


def test_get_asks_and_changes_nothing(alice_client, default_service, place):
    order = place(default_service, status="in_progress")
    response = alice_client.get(reverse("order_cancel", args=[order.pk]), {"next": "/orders/"})
    body = response.content.decode()
    assert response.status_code == 200
    assert f"Cancel order {order.pk}?" in body and 'name="confirmed" value="yes"' in body
    assert 'href="/orders/"' in body  # "No, keep it" goes back where the customer was
    assert not CancelRequest.objects.exists()


def test_a_post_without_confirmation_asks_instead_of_cancelling(
    alice_client, alice, default_service, place
):
    # What a browser without JavaScript sends from the list (or a click before panel.js ran).
    order = place(default_service, status="queued")
    response = alice_client.post(reverse("order_cancel", args=[order.pk]), {"next": "/orders/"})
    assert response.status_code == 200 and "Yes, cancel order" in response.content.decode()
    order.refresh_from_db()
    assert order.status == Order.Status.QUEUED and not CancelRequest.objects.exists()
    assert balance(alice) == Decimal("49.80000")


def test_the_confirmed_post_of_an_unsent_order_cancels_and_refunds_once(
    alice_client, alice, default_service, place
):
    order = place(default_service, status="queued")
    url = reverse("order_cancel", args=[order.pk])
    response = alice_client.post(url, {"confirmed": "yes", "next": "/orders/"})
    assert response.status_code == 302 and response["Location"] == "/orders/"
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELED and balance(alice) == Decimal("50.00000")
    again = alice_client.post(url, {"confirmed": "yes"}, follow=True)
    assert "already finished" in again.content.decode()
    assert balance(alice) == Decimal("50.00000") and CancelRequest.objects.count() == 1


def test_the_confirm_page_of_a_finished_order_offers_no_cancel(
    alice_client, default_service, place
):
    order = place(default_service, status="completed")
    body = alice_client.get(reverse("order_cancel", args=[order.pk])).content.decode()
    assert "it is finished" in body and 'value="yes"' not in body


def test_another_customers_order_is_404_on_get_too(client, bob, default_service, place):
    order = place(default_service, status="in_progress")
    client.force_login(bob)
    assert client.get(reverse("order_cancel", args=[order.pk])).status_code == 404


def test_requested_labels_on_the_row_and_the_detail(alice_client, default_service, place):
    running = place(default_service, status="in_progress")
    done = place(default_service, status="completed")
    plain = place(default_service, status="in_progress")
    alice_client.post(reverse("order_cancel", args=[running.pk]), {"confirmed": "yes"})
    alice_client.post(reverse("order_refill", args=[done.pk]))
    assert CancelRequest.objects.filter(order=running).exists()
    assert Refill.objects.filter(order=done).exists()
    body = alice_client.get(reverse("orders")).content.decode()
    assert body.count('data-testid="cancel-requested"') == 1
    assert body.count('data-testid="refill-requested"') == 1
    row = alice_client.get(reverse("order_row", args=[running.pk])).content.decode()
    assert "Cancel requested" in row and reverse("order_cancel", args=[running.pk]) not in row
    row = alice_client.get(reverse("order_row", args=[plain.pk])).content.decode()
    assert "requested" not in row
    detail = alice_client.get(reverse("order_detail", args=[done.pk])).content.decode()
    assert "Refill requested" in detail
    # Answered requests are no longer "requested".
    CancelRequest.objects.update(status=CancelRequest.Status.REJECTED)
    Refill.objects.update(status=Refill.Status.COMPLETED)
    body = alice_client.get(reverse("orders")).content.decode()
    assert "Cancel requested" not in body and "Refill requested" not in body
    assert (
        reverse("order_cancel", args=[running.pk]) in body
    )  # a rejected cancel may be asked again


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ("queued", True),  # not sent yet: canceled at once with a full refund
        ("waiting_funds", True),
        ("submitting", False),  # being sent: the service answers "try again"
        ("needs_review", False),  # an admin decides
        ("pending", True),
        ("in_progress", True),
        ("processing", True),
        ("completed", False),
        ("partial", False),
        ("canceled", False),
    ],
)
def test_cancel_button_mirrors_the_service_for_every_status(
    alice_client, default_service, place, status, shown
):
    order = place(default_service, status=status)
    url = reverse("order_cancel", args=[order.pk])
    assert (url in alice_client.get(reverse("orders")).content.decode()) is shown
    response = alice_client.post(url, {"confirmed": "yes"}, follow=True)
    asked = CancelRequest.objects.filter(order=order).exists()
    assert asked is shown, response.content.decode()[:2000]


def test_no_cancel_where_the_provider_cannot(alice_client, default_service, place):
    order = place(default_service, status="in_progress")
    Provider.objects.filter(pk=order.provider_id).update(supports_cancel=False)
    assert reverse("order_cancel", args=[order.pk]) not in (
        alice_client.get(reverse("orders")).content.decode()
    )


def test_detail_page_polls_its_buttons_with_the_status(alice_client, default_service, place):
    # The order page's buttons sat outside the polled part: an order placed while the page was
    # open never showed its Cancel button until a reload.
    order = place(default_service, status="in_progress")
    response = alice_client.get(reverse("order_detail", args=[order.pk]))
    body = response.content.decode()
    start = body.index('id="order-progress"')
    end = body.index("</dl>", start)
    assert reverse("order_cancel", args=[order.pk]) in body[start:end]
    assert f'name="next" value="{reverse("order_detail", args=[order.pk])}"' in body[start:end]
