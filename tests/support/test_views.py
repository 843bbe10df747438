"""The customer's support pages: open a ticket (errors at the field, nothing typed lost), the
list and the thread (plain text, escaped; no internal notes), reply, close, downloads; another
customer gets 404 on each."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Payment
from support.models import Ticket, TicketAttachment
from support.services import ticket_reply
from tests.support.helpers import image_bytes, make_order, open_ticket, png, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _new(client, **fields):
    data = {
        "kind": "order",
        "subject": "Followers dropped",
        "orders": "",
        "request": "refill",
        "message": "Half of them are gone <b>since Monday</b>.",
        **fields,
    }
    return client.post(reverse("ticket_new"), data)


def test_open_an_order_ticket_with_a_screenshot(alice_client, alice):
    order = make_order(alice)
    response = _new(alice_client, orders=f"#{order.pk}", attachment=png("proof.png"))
    ticket = Ticket.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("ticket_detail", args=[ticket.pk])
    assert list(ticket.orders.all()) == [order]
    page = alice_client.get(response["Location"]).content.decode()
    assert "Half of them are gone &lt;b&gt;since Monday&lt;/b&gt;." in page  # plain text
    assert "<b>since Monday</b>" not in page
    attachment = TicketAttachment.objects.get()
    assert reverse("ticket_attachment", args=[attachment.pk]) in page
    assert "proof.png" in page


def test_the_form_is_filled_from_an_orders_link(alice_client, alice):
    order = make_order(alice)
    page = alice_client.get(reverse("ticket_new") + f"?orders={order.pk}").content.decode()
    assert f'value="{order.pk}"' in page and f'value="Order {order.pk}"' in page


def test_another_customers_order_is_refused_at_its_field_keeping_what_was_typed(alice_client, bob):
    theirs = make_order(bob)
    response = _new(alice_client, orders=f"{theirs.pk}")
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors == {"orders": [f"You have no order with the id {theirs.pk}."]}
    page = response.content.decode()
    assert 'value="Followers dropped"' in page
    assert "Half of them are gone &lt;b&gt;since Monday&lt;/b&gt;.</textarea>" in page
    assert f'value="{theirs.pk}"' in page
    assert not Ticket.objects.exists()


def test_not_an_order_id_is_refused_at_its_field(alice_client):
    response = _new(alice_client, orders="12, abc")
    assert response.context["form"].errors == {"orders": ["“abc” is not an order ID."]}


def test_a_refused_attachment_keeps_the_rest_and_says_to_choose_it_again(alice_client, alice):
    order = make_order(alice)
    gif = upload("cat.png", image_bytes("GIF"), "image/png")
    response = _new(alice_client, orders=str(order.pk), attachment=gif)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["attachment"] and "Only PNG and JPEG" in errors["attachment"][0]
    page = response.content.decode()
    assert 'value="Followers dropped"' in page and f'value="{order.pk}"' in page
    assert 'id="file-lost"' in page
    assert not Ticket.objects.exists()


def test_the_cap_says_why_above_the_form(alice_client, alice, settings):
    settings.SUPPORT_MAX_OPEN_TICKETS = 1
    open_ticket(alice)
    response = _new(alice_client, kind="other", request="")
    assert response.status_code == 400
    assert "You have 1 open tickets" in response.context["form"].non_field_errors()[0]
    assert 'value="Followers dropped"' in response.content.decode()


def test_the_rate_limit_says_why_above_the_form(alice_client, settings):
    settings.SUPPORT_TICKETS_PER_HOUR = 1
    assert _new(alice_client, kind="other", request="").status_code == 302
    response = _new(alice_client, kind="api", request="")
    assert response.status_code == 400
    assert "try again in" in response.context["form"].non_field_errors()[0]
    assert Ticket.objects.count() == 1


def test_list_with_states_and_the_answered_count_in_the_navigation(alice_client, alice, staff):
    answered, waiting = open_ticket(alice, subject="One"), open_ticket(alice, subject="Two")
    ticket_reply(ticket=answered, author=staff, body="Done")
    page = alice_client.get(reverse("tickets")).content.decode()
    assert "One" in page and "Two" in page and "Answered" in page and "Open" in page
    assert 'data-testid="answered-tickets">1<' in page
    page = alice_client.get(reverse("tickets") + "?status=open").content.decode()
    assert "Two" in page and ">One<" not in page
    ticket_reply(ticket=answered, author=alice, body="Thanks")
    page = alice_client.get(reverse("tickets")).content.decode()
    assert "Customer reply" in page and "answered-tickets" not in page
    assert waiting.status == Ticket.Status.OPEN


def test_reply_and_close(alice_client, alice):
    ticket = open_ticket(alice)
    url = reverse("ticket_detail", args=[ticket.pk])
    response = alice_client.post(url, {"message": "Any news?", "attachment": png()})
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CUSTOMER_REPLY
    assert ticket.messages.last().attachments.count() == 1
    response = alice_client.post(url, {"message": "   "})
    assert response.status_code == 400 and "message" in response.context["form"].errors
    alice_client.post(reverse("ticket_close", args=[ticket.pk]))
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED
    page = alice_client.get(url).content.decode()
    assert "This ticket is closed" in page and "Send reply" not in page
    response = alice_client.post(url, {"message": "Reopen?"})
    assert response.status_code == 400 and ticket.messages.count() == 2


def test_internal_notes_and_their_files_never_reach_the_customer(alice_client, alice, staff):
    ticket = open_ticket(alice)
    note = ticket_reply(
        ticket=ticket, author=staff, body="Secret: refund abuse", internal=True, attachment=png()
    )
    page = alice_client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert "Secret: refund abuse" not in page
    attachment = note.attachments.get()
    url = reverse("ticket_attachment", args=[attachment.pk])
    assert alice_client.get(url).status_code == 404


def test_the_owner_downloads_an_attachment_as_a_file(alice_client, alice):
    data = image_bytes("PNG")
    ticket = open_ticket(alice, attachment=upload("shot.png", data))
    attachment = TicketAttachment.objects.get(message__ticket=ticket)
    response = alice_client.get(reverse("ticket_attachment", args=[attachment.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="shot.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_another_customer_gets_404_on_every_page_of_a_ticket(client, alice, bob):
    ticket = open_ticket(alice, attachment=png())
    attachment = TicketAttachment.objects.get()
    client.force_login(bob)
    detail = reverse("ticket_detail", args=[ticket.pk])
    assert client.get(detail).status_code == 404
    assert client.post(detail, {"message": "mine now"}).status_code == 404
    assert client.post(reverse("ticket_close", args=[ticket.pk])).status_code == 404
    assert client.get(reverse("ticket_attachment", args=[attachment.pk])).status_code == 404
    assert client.get(reverse("ticket_attachment", args=[attachment.pk + 1000])).status_code == 404
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN and ticket.messages.count() == 1
    assert "Help" not in client.get(reverse("tickets")).content.decode()


def test_logged_out_visitors_are_sent_to_log_in(client, alice):
    ticket = open_ticket(alice, attachment=png())
    attachment = TicketAttachment.objects.get()
    for url in (
        reverse("tickets"),
        reverse("ticket_detail", args=[ticket.pk]),
        reverse("ticket_attachment", args=[attachment.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_payment_list_offers_only_ones_own_payments(alice_client, alice, bob):
    def pay(user, status):
        return Payment.objects.create(
            user=user, method="manual", amount=Decimal("7"), currency="USD", status=status
        )

    mine = pay(alice, "pending")
    pay(alice, "created")  # a draft the gateway never saw
    pay(bob, "paid")
    choices = alice_client.get(reverse("ticket_new")).context["form"].fields["payment"].choices
    assert [value for value, _ in choices] == ["", mine.pk]
