"""support.services: opening tickets (own orders and payments only, the cap, the rate limit),
the thread's states, internal notes, closing, assignment, the order requests staff make from a
ticket, and the after-commit hooks where notifications are wired."""

from decimal import Decimal

import pytest
from django.db import transaction

from accounts.models import Payment
from orders.models import CancelRequest, Order, Refill
from support import services
from support.models import Ticket, TicketMessage
from support.selectors import (
    ticket_count_answered,
    ticket_messages_for_customer,
    ticket_messages_for_staff,
)
from support.services import (
    TicketError,
    TicketSubject,
    ticket_assign,
    ticket_close,
    ticket_close_many,
    ticket_create,
    ticket_order_request,
    ticket_reply,
)
from tests.orders.factories import make_provider, make_service
from tests.support.helpers import make_order, open_ticket

pytestmark = pytest.mark.django_db
T = Ticket.Status


def _payment(user, **fields) -> Payment:
    values = dict(user=user, method="manual", amount=Decimal("10"), currency="USD")
    values.update(fields)
    return Payment.objects.create(**values)


# --- opening ------------------------------------------------------------------------------------


def test_order_ticket_links_the_customers_own_orders(alice):
    first, second = make_order(alice), make_order(alice)
    ticket = open_ticket(
        alice, kind="order", order_ids=(second.pk, first.pk, second.pk), request="refill"
    )
    assert set(ticket.orders.all()) == {first, second}
    assert (ticket.status, ticket.request, ticket.kind) == (T.OPEN, "refill", "order")
    (message,) = ticket.messages.all()
    assert (message.author, message.body, message.from_staff) == (alice, "Hello", False)


def test_order_ticket_refuses_another_customers_order_and_writes_nothing(alice, bob):
    mine, theirs = make_order(alice), make_order(bob)
    with pytest.raises(TicketError) as caught:
        open_ticket(alice, kind="order", order_ids=(mine.pk, theirs.pk), request="cancel")
    assert caught.value.field == "orders"
    assert str(theirs.pk) in caught.value.message and str(mine.pk) not in caught.value.message
    assert not Ticket.objects.exists()


@pytest.mark.parametrize(
    ("about", "field"),
    [
        ({"kind": "order", "request": "refill"}, "orders"),
        ({"kind": "order", "request": ""}, "request"),
        ({"kind": "payment"}, "payment"),
        ({"kind": "complaint"}, "kind"),
    ],
)
def test_missing_parts_are_refused_at_their_field(alice, about, field):
    if about["kind"] == "order" and about["request"] == "":
        about["order_ids"] = (make_order(alice).pk,)
    with pytest.raises(TicketError) as caught:
        ticket_create(customer=alice, about=TicketSubject(**about), subject="S", body="B")
    assert caught.value.field == field
    assert not Ticket.objects.exists()


@pytest.mark.parametrize(
    ("subject", "body", "field"), [("  ", "B", "subject"), ("S", "", "message")]
)
def test_empty_subject_or_message_is_refused(alice, subject, body, field):
    with pytest.raises(TicketError) as caught:
        open_ticket(alice, subject=subject, body=body)
    assert caught.value.field == field


def test_payment_ticket_by_pick_or_by_reference(alice, bob):
    picked = _payment(alice)
    by_reference = _payment(alice, gateway_id="pi_123", status="paid")
    theirs = _payment(bob, customer_reference="BANK-77")

    ticket = open_ticket(alice, kind="payment", payment_id=picked.pk)
    assert ticket.payment == picked
    ticket = open_ticket(alice, kind="payment", payment_reference=" pi_123 ")
    assert (ticket.payment, ticket.payment_reference) == (by_reference, "pi_123")
    # Another customer's transfer reference is kept as typed, never linked.
    ticket = open_ticket(alice, kind="payment", payment_reference="BANK-77")
    assert (ticket.payment, ticket.payment_reference) == (None, "BANK-77")
    with pytest.raises(TicketError) as caught:
        open_ticket(alice, kind="payment", payment_id=theirs.pk)
    assert caught.value.field == "payment"


def test_other_kinds_keep_no_orders_or_request(alice):
    order = make_order(alice)
    ticket = open_ticket(alice, kind="api", order_ids=(order.pk,), request="refill")
    assert (list(ticket.orders.all()), ticket.request) == ([], "")


def test_open_tickets_are_capped_and_closing_one_frees_a_place(alice, bob, settings):
    settings.SUPPORT_MAX_OPEN_TICKETS = 2
    first = open_ticket(alice)
    open_ticket(alice)
    with pytest.raises(TicketError) as caught:
        open_ticket(alice)
    assert caught.value.field is None and "2 open tickets" in caught.value.message
    open_ticket(bob)  # a cap per customer
    ticket_close(ticket=first, by=alice)
    open_ticket(alice)
    assert Ticket.objects.filter(customer=alice).count() == 3


def test_opening_is_rate_limited_and_refused_input_does_not_count(alice, settings):
    settings.SUPPORT_TICKETS_PER_HOUR = 2
    for _ in range(3):
        with pytest.raises(TicketError):
            open_ticket(alice, subject="")  # refused before it is counted
    first = open_ticket(alice)
    ticket_close(ticket=first, by=alice)
    open_ticket(alice)
    with pytest.raises(TicketError) as caught:
        open_ticket(alice)
    assert caught.value.field is None and "try again in 60 minutes" in caught.value.message
    assert Ticket.objects.count() == 2


def test_replies_are_rate_limited_for_customers_not_staff(alice, staff, settings):
    settings.SUPPORT_REPLIES_PER_HOUR = 1
    ticket = open_ticket(alice)
    ticket_reply(ticket=ticket, author=alice, body="More")
    with pytest.raises(TicketError):
        ticket_reply(ticket=ticket, author=alice, body="Even more")
    for n in range(3):
        ticket_reply(ticket=ticket, author=staff, body=f"Answer {n}")
    assert ticket.messages.count() == 5


# --- the thread ---------------------------------------------------------------------------------


def test_the_states_of_a_thread(alice, staff):
    ticket = open_ticket(alice)
    assert ticket.status == T.OPEN
    ticket_reply(ticket=ticket, author=staff, body="We look at it")
    assert ticket.status == T.ANSWERED
    assert ticket_count_answered(user=alice) == 1
    ticket_reply(ticket=ticket, author=alice, body="Thanks, still stuck")
    assert ticket.status == T.CUSTOMER_REPLY
    ticket_close(ticket=ticket, by=alice)
    assert ticket.status == T.CLOSED and ticket.closed_at is not None
    with pytest.raises(TicketError) as caught:
        ticket_reply(ticket=ticket, author=alice, body="Again")
    assert caught.value.field == "message"
    # Staff may still answer a closed ticket: it is answered again.
    ticket_reply(ticket=ticket, author=staff, body="One more thing")
    assert (ticket.status, ticket.closed_at) == (T.ANSWERED, None)


def test_internal_notes_change_nothing_the_customer_sees(alice, staff):
    ticket = open_ticket(alice)
    before = ticket.last_message_at
    note = ticket_reply(ticket=ticket, author=staff, body="Looks like fraud", internal=True)
    assert (note.internal, note.from_staff) == (True, True)
    assert (ticket.status, ticket.last_message_at) == (T.OPEN, before)
    assert note not in ticket_messages_for_customer(ticket=ticket)
    assert note in ticket_messages_for_staff(ticket=ticket)


def test_only_staff_write_notes_or_in_other_customers_tickets(alice, bob):
    ticket = open_ticket(alice)
    with pytest.raises(TicketError):
        ticket_reply(ticket=ticket, author=alice, body="x", internal=True)
    with pytest.raises(TicketError):
        ticket_reply(ticket=ticket, author=bob, body="x")
    with pytest.raises(TicketError):
        ticket_close(ticket=ticket, by=bob)
    assert ticket.messages.count() == 1 and ticket.status == T.OPEN


def test_assign_and_bulk_close(alice, bob, staff):
    one, two = open_ticket(alice), open_ticket(bob)
    ticket_assign(ticket=one, to=staff, by=staff)
    assert one.assigned_to == staff
    with pytest.raises(TicketError) as caught:
        ticket_assign(ticket=one, to=bob, by=staff)
    assert caught.value.field == "assigned_to"
    ticket_close(ticket=two, by=staff)
    assert ticket_close_many(tickets=Ticket.objects.all(), by=staff) == 1
    assert set(Ticket.objects.values_list("status", flat=True)) == {T.CLOSED}
    with pytest.raises(TicketError):
        ticket_close_many(tickets=Ticket.objects.all(), by=alice)


# --- orders asked from a ticket -----------------------------------------------------------------


def _refillable_order(user) -> Order:
    service = make_service(provider=make_provider(), sandbox_id=1, refill=True, refill_days=30)
    return make_order(user, service=service, status=Order.Status.COMPLETED)


def test_staff_ask_a_refill_through_the_orders_service(alice, staff):
    order = _refillable_order(alice)
    ticket = open_ticket(alice, kind="order", order_ids=(order.pk,), request="refill")
    note = ticket_order_request(ticket=ticket, order_id=order.pk, action="refill", by=staff)
    refill = Refill.objects.get(order=order)
    assert note.internal and f"Refill {refill.pk} of order {order.pk}" in note.body
    # The orders service's own check: a second refill while one is open is refused.
    with pytest.raises(TicketError) as caught:
        ticket_order_request(ticket=ticket, order_id=order.pk, action="refill", by=staff)
    assert "already in progress" in caught.value.message
    assert Refill.objects.filter(order=order).count() == 1


def test_staff_cancel_of_an_order_not_sent_refunds_through_the_orders_service(alice, staff):
    service = make_service(provider=make_provider(), sandbox_id=1, cancel=True)
    order = make_order(alice, service=service, status=Order.Status.QUEUED, upstream_order_id="")
    ticket = open_ticket(alice, kind="order", order_ids=(order.pk,), request="cancel")
    ticket_order_request(ticket=ticket, order_id=order.pk, action="cancel", by=staff)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELED and order.refunded == order.charge
    assert CancelRequest.objects.get(order=order).status == CancelRequest.Status.COMPLETED


def test_order_requests_only_for_the_tickets_orders_and_by_staff(alice, staff):
    order, other = _refillable_order(alice), _refillable_order(alice)
    ticket = open_ticket(alice, kind="order", order_ids=(order.pk,), request="refill")
    with pytest.raises(TicketError):
        ticket_order_request(ticket=ticket, order_id=other.pk, action="refill", by=staff)
    with pytest.raises(TicketError):
        ticket_order_request(ticket=ticket, order_id=order.pk, action="refill", by=alice)
    no_refill = make_order(alice)
    ticket = open_ticket(alice, kind="order", order_ids=(no_refill.pk,), request="refill")
    with pytest.raises(TicketError) as caught:
        ticket_order_request(ticket=ticket, order_id=no_refill.pk, action="refill", by=staff)
    assert caught.value.message.startswith(f"Order {no_refill.pk}: ")
    assert not Refill.objects.exists()
    assert not TicketMessage.objects.filter(internal=True).exists()


# --- after commit ---------------------------------------------------------------------------------


@pytest.fixture
def hooks(monkeypatch):
    calls: list[tuple] = []
    for name in (
        "ticket_created_after_commit",
        "ticket_answered_after_commit",
        "ticket_customer_replied_after_commit",
    ):
        monkeypatch.setattr(services, name, lambda *args, _n=name: calls.append((_n, *args)))
    return calls


def test_hooks_run_after_commit_once_per_event(
    alice, staff, hooks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = open_ticket(alice)
    assert hooks == [("ticket_created_after_commit", ticket.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply(ticket=ticket, author=staff, body="note", internal=True)
        answer = ticket_reply(ticket=ticket, author=staff, body="answer")
        again = ticket_reply(ticket=ticket, author=alice, body="reply")
    assert hooks[1:] == [
        ("ticket_answered_after_commit", ticket.pk, answer.pk),
        ("ticket_customer_replied_after_commit", ticket.pk, again.pk),
    ]


def test_no_hook_runs_when_the_transaction_rolls_back(
    alice, staff, hooks, django_capture_on_commit_callbacks
):
    ticket = open_ticket(alice)

    class Boom(Exception):
        pass

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        open_ticket(alice)
        ticket_reply(ticket=ticket, author=staff, body="answer")
        raise Boom
    assert callbacks == [] and hooks == []
    assert Ticket.objects.count() == 1 and ticket.messages.count() == 1


# --- notifications ---------------------------------------------------------------------------------


def test_a_new_ticket_tells_staff_and_an_answer_tells_the_customer_once_each(
    alice, staff, django_capture_on_commit_callbacks, mailoutbox
):
    from accounts.models import Notification

    alice.email = "alice@example.com"
    alice.save()
    with django_capture_on_commit_callbacks(execute=True):
        ticket = open_ticket(alice)
    new = Notification.objects.get(event="ticket_new")
    assert new.user == staff and f"#{ticket.pk}" in new.title
    assert new.url == f"/admin/support/ticket/{ticket.pk}/change/"
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply(ticket=ticket, author=staff, body="only for staff", internal=True)
        ticket_reply(ticket=ticket, author=alice, body="any news?")
    assert not Notification.objects.filter(user=alice).exists()  # a note, her own reply: none
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply(ticket=ticket, author=staff, body="It is refilled.")
    told = Notification.objects.get(user=alice)
    assert (told.event, told.url) == ("ticket_answered", f"/tickets/{ticket.pk}/")
    to_alice = [m for m in mailoutbox if m.to == ["alice@example.com"]]
    assert len(to_alice) == 1 and "It is refilled." in to_alice[0].body
    assert "only for staff" not in to_alice[0].body


def test_a_ticket_rolled_back_leaves_no_notice_and_sends_no_mail(
    alice, staff, django_capture_on_commit_callbacks, mailoutbox
):
    from accounts.models import Notification

    class Boom(Exception):
        pass

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        open_ticket(alice)
        raise Boom
    assert not Notification.objects.exists() and mailoutbox == []
