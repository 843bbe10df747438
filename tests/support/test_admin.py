"""Tickets in the admin: the thread with the customer beside it, answers, saved replies,
internal notes, assignment, refill and cancel through the orders services, bulk close."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import AdminAuditLog, Payment, User
from orders.models import Order, Refill
from support.models import SavedReply, Ticket, TicketAttachment
from support.services import ticket_reply
from tests.orders.factories import make_provider, make_service
from tests.support.helpers import image_bytes, make_order, open_ticket, png, upload
from tests.totp import give_second_factor

pytestmark = pytest.mark.django_db
T = Ticket.Status


def _url(ticket: Ticket) -> str:
    return reverse("admin:support_ticket_change", args=[ticket.pk])


def test_the_thread_shows_the_customer_beside_it(admin_client, alice, staff):
    order = make_order(alice)
    payment = Payment.objects.create(
        user=alice, method="manual", amount=Decimal("25"), currency="USD", status="pending"
    )
    ticket = open_ticket(alice, body="Where is <my> money?", attachment=png("a.png"))
    ticket_reply(ticket=ticket, author=staff, body="Staff only: checked", internal=True)
    response = admin_client.get(_url(ticket))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Where is &lt;my&gt; money?" in page
    assert "Internal note" in page and "Staff only: checked" in page
    assert "$50.00" in page  # alice's balance
    assert reverse("admin:orders_order_change", args=[order.pk]) in page
    assert reverse("admin:accounts_payment_change", args=[payment.pk]) in page
    attachment = TicketAttachment.objects.get()
    assert reverse("admin:support_ticket_attachment", args=[attachment.pk]) in page


def test_staff_answer_and_the_customer_sees_answered(admin_client, admin_user, alice):
    ticket = open_ticket(alice)
    response = admin_client.post(_url(ticket), {"send": "1", "message": "Refilled for you."})
    assert response.status_code == 302 and response["Location"] == _url(ticket)
    ticket.refresh_from_db()
    assert ticket.status == T.ANSWERED
    answer = ticket.messages.last()
    assert (answer.author, answer.from_staff, answer.internal) == (admin_user, True, False)


def test_an_internal_note_changes_no_state(admin_client, alice):
    ticket = open_ticket(alice)
    admin_client.post(_url(ticket), {"send": "1", "message": "Ask the provider", "internal": "on"})
    ticket.refresh_from_db()
    assert ticket.status == T.OPEN and ticket.messages.last().internal


def test_an_empty_answer_or_a_bad_file_comes_back_with_the_error_and_the_text(admin_client, alice):
    ticket = open_ticket(alice)
    response = admin_client.post(_url(ticket), {"send": "1", "message": ""})
    assert response.status_code == 400 and "message" in response.context["reply"].errors
    bad = upload("x.png", image_bytes("GIF"))
    response = admin_client.post(
        _url(ticket), {"send": "1", "message": "See the picture", "attachment": bad}
    )
    assert response.status_code == 400
    assert "Only PNG and JPEG" in response.context["reply"].errors["attachment"][0]
    assert "See the picture</textarea>" in response.content.decode()
    assert ticket.messages.count() == 1


def test_a_saved_reply_fills_the_answer_without_sending_it(admin_client, alice):
    saved = SavedReply.objects.create(title="Refill done", body="Hi {username}, refilled.")
    SavedReply.objects.create(title="Hidden", body="old", is_active=False)
    ticket = open_ticket(alice)
    page = admin_client.get(_url(ticket)).content.decode()
    assert "Refill done" in page and "Hidden" not in page
    response = admin_client.post(
        _url(ticket), {"use_saved": "1", "saved_reply": saved.pk, "message": "Hello."}
    )
    assert response.status_code == 200
    assert "Hello.\n\nHi alice, refilled.</textarea>" in response.content.decode()
    assert ticket.messages.count() == 1  # nothing sent yet


def test_assign_and_close_from_the_thread(admin_client, admin_user, alice, staff):
    ticket = open_ticket(alice)
    admin_client.post(_url(ticket), {"assign": "1", "assigned_to": staff.pk})
    ticket.refresh_from_db()
    assert ticket.assigned_to == staff
    admin_client.post(_url(ticket), {"assign": "1", "assigned_to": ""})
    ticket.refresh_from_db()
    assert ticket.assigned_to is None
    admin_client.post(_url(ticket), {"close": "1"})
    ticket.refresh_from_db()
    assert ticket.status == T.CLOSED


def test_refill_button_goes_through_the_orders_service(admin_client, alice):
    service = make_service(provider=make_provider(), sandbox_id=1, refill=True, refill_days=30)
    order = make_order(alice, service=service, status=Order.Status.COMPLETED)
    ticket = open_ticket(alice, kind="order", order_ids=(order.pk,), request="refill")
    page = admin_client.get(_url(ticket)).content.decode()
    assert f'value="refill:{order.pk}"' in page and f'value="cancel:{order.pk}"' in page
    response = admin_client.post(_url(ticket), {"order_action": f"refill:{order.pk}"}, follow=True)
    refill = Refill.objects.get(order=order)
    assert f"Refill {refill.pk} of order {order.pk} asked by admin." in response.content.decode()
    assert ticket.messages.filter(internal=True).count() == 1
    assert AdminAuditLog.objects.filter(action="ticket refill").count() == 1
    # Refused by the orders service (not completed): its reason, nothing asked.
    other = make_order(alice, service=service)
    ticket.orders.add(other)
    response = admin_client.post(_url(ticket), {"order_action": f"refill:{other.pk}"}, follow=True)
    assert "Only completed orders can be refilled." in response.content.decode()
    assert not Refill.objects.filter(order=other).exists()


def test_refill_and_cancel_from_a_ticket_need_the_permission_to_change_orders(client, alice):
    service = make_service(provider=make_provider(), sandbox_id=1, refill=True, refill_days=30)
    order = make_order(alice, service=service, status=Order.Status.COMPLETED)
    ticket = open_ticket(alice, kind="order", order_ids=(order.pk,), request="refill")
    clerk = User.objects.create_user("clerk", "c@example.com", "pw", is_staff=True)
    give_second_factor(clerk)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_ticket", "change_ticket"])
    )
    client.force_login(clerk)
    page = client.get(_url(ticket)).content.decode()
    assert f'value="refill:{order.pk}"' not in page  # answering, yes; orders, no
    response = client.post(_url(ticket), {"order_action": f"refill:{order.pk}"}, follow=True)
    assert "Refill and cancel need the permission to change orders." in response.content.decode()
    assert not Refill.objects.exists()
    clerk.user_permissions.add(Permission.objects.get(codename="change_order"))
    client.force_login(User.objects.get(pk=clerk.pk))  # permissions are cached on the object
    assert f'value="refill:{order.pk}"' in client.get(_url(ticket)).content.decode()
    client.post(_url(ticket), {"order_action": f"refill:{order.pk}"})
    assert Refill.objects.filter(order=order).count() == 1


def test_bulk_close_and_assign_to_me(admin_client, admin_user, alice, bob):
    one, two, three = open_ticket(alice), open_ticket(bob), open_ticket(alice)
    changelist = reverse("admin:support_ticket_changelist")
    admin_client.post(
        changelist, {"action": "assign_to_me", "_selected_action": [one.pk, three.pk]}
    )
    assert set(Ticket.objects.filter(assigned_to=admin_user)) == {one, three}
    response = admin_client.post(
        changelist, {"action": "close_tickets", "_selected_action": [one.pk, two.pk]}, follow=True
    )
    assert "2 tickets closed." in response.content.decode()
    assert list(Ticket.objects.filter(status=T.CLOSED).order_by("pk")) == [one, two]


def test_the_queue_filters_tickets_waiting_for_staff(admin_client, alice, staff):
    waiting, answered = (
        open_ticket(alice, subject="Waiting one"),
        open_ticket(alice, subject="Done one"),
    )
    ticket_reply(ticket=answered, author=staff, body="ok")
    page = admin_client.get(reverse("admin:support_ticket_changelist") + "?waiting=yes")
    text = page.content.decode()
    assert "Waiting one" in text and "Done one" not in text
    assert waiting.status == T.OPEN


def test_staff_download_any_attachment_in_the_admin(admin_client, alice):
    data = image_bytes("JPEG")
    open_ticket(alice, attachment=upload("photo.jpg", data, "image/jpeg"))
    attachment = TicketAttachment.objects.get()
    response = admin_client.get(reverse("admin:support_ticket_attachment", args=[attachment.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    assert response["Content-Disposition"] == 'attachment; filename="photo.jpg"'


def test_the_customer_download_url_gives_staff_only_their_own(client, admin_client, alice):
    """The customer's URL is outside /admin/: the admin's second factor and permissions are not
    asked there, so it never serves another customer's file, to staff either."""
    open_ticket(alice, attachment=upload("photo.jpg", image_bytes("JPEG"), "image/jpeg"))
    url = reverse("ticket_attachment", args=[TicketAttachment.objects.get().pk])
    assert admin_client.get(url).status_code == 404
    no_second_factor = User.objects.create_user("helper", "h@example.com", "pw", is_staff=True)
    client.force_login(no_second_factor)
    assert client.get(url).status_code == 404


def test_the_admin_download_needs_the_ticket_view_permission(client, alice):
    open_ticket(alice, attachment=upload("photo.jpg", image_bytes("JPEG"), "image/jpeg"))
    url = reverse("admin:support_ticket_attachment", args=[TicketAttachment.objects.get().pk])
    clerk = User.objects.create_user("clerk", "c@example.com", "pw", is_staff=True)
    give_second_factor(clerk)
    client.force_login(clerk)
    assert client.get(url).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_ticket"))
    clerk = User.objects.get(pk=clerk.pk)  # permissions are cached on the object
    client.force_login(clerk)
    assert client.get(url).status_code == 200


def test_customers_never_reach_the_admin_thread(client, alice):
    ticket = open_ticket(alice)
    client.force_login(alice)
    response = client.get(_url(ticket))
    assert response.status_code == 302 and "/login/" in response["Location"]
