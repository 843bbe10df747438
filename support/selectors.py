"""Reads for support tickets, joins chosen. What a customer reads is filtered to their own
tickets and never includes staff's internal notes: another customer's ticket or attachment is
"does not exist", exactly like one that does not exist."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, QuerySet

from accounts.models import Payment, User
from accounts.selectors import payment_list_for_user
from orders.models import Order
from support.models import SavedReply, Ticket, TicketAttachment, TicketMessage

RECENT = 10


def ticket_list_for_user(*, user: User, status: str | None = None) -> QuerySet[Ticket]:
    """The customer's tickets, latest activity first (optionally of one status)."""
    tickets = Ticket.objects.filter(customer=user).prefetch_related("orders")
    return tickets.filter(status=status) if status else tickets


def ticket_get_for_user(*, user: User, ticket_id: int) -> Ticket:
    """The customer's ticket; Ticket.DoesNotExist for anyone else's."""
    return (
        Ticket.objects.filter(customer=user)
        .select_related("payment")
        .prefetch_related("orders")
        .get(pk=ticket_id)
    )


def ticket_messages_for_customer(*, ticket: Ticket) -> QuerySet[TicketMessage]:
    """The thread as the customer sees it: no internal notes."""
    return (
        TicketMessage.objects.filter(ticket=ticket, internal=False)
        .select_related("author")
        .prefetch_related("attachments")
    )


def ticket_messages_for_staff(*, ticket: Ticket) -> QuerySet[TicketMessage]:
    """The whole thread, internal notes included."""
    return (
        TicketMessage.objects.filter(ticket=ticket)
        .select_related("author")
        .prefetch_related("attachments")
    )


def ticket_count_answered(*, user: User) -> int:
    """How many of the customer's tickets wait for them to read staff's answer."""
    return Ticket.objects.filter(customer=user, status=Ticket.Status.ANSWERED).count()


def ticket_count_open(*, user: User) -> int:
    """The customer's tickets not closed (what SUPPORT_MAX_OPEN_TICKETS caps)."""
    return Ticket.objects.filter(customer=user).exclude(status=Ticket.Status.CLOSED).count()


def attachment_get_for_user(*, user: User, attachment_id: int) -> TicketAttachment:
    """An attachment on a message of the customer's own ticket that is not an internal note;
    TicketAttachment.DoesNotExist otherwise, for staff too: the customer's URL is outside the
    admin, where staff's second factor and permissions are asked (attachment_get_for_staff)."""
    return TicketAttachment.objects.select_related("message__ticket").get(
        pk=attachment_id, message__ticket__customer=user, message__internal=False
    )


def attachment_get_for_staff(*, attachment_id: int) -> TicketAttachment:
    """Any attachment, internal notes' included (the admin's download, which checks who may)."""
    return TicketAttachment.objects.select_related("message__ticket").get(pk=attachment_id)


def payment_list_for_ticket_form(*, user: User) -> QuerySet[Payment]:
    """The customer's recent payments to pick from on a Payment ticket: those the Funds page
    lists (drafts a gateway never saw left out)."""
    return payment_list_for_user(user=user).order_by("-id")[:20]


def saved_reply_list_active() -> QuerySet[SavedReply]:
    return SavedReply.objects.filter(is_active=True)


def staff_list_for_assignment() -> QuerySet[User]:
    return User.objects.filter(is_staff=True, is_active=True).order_by("username")


@dataclass(frozen=True)
class CustomerSummary:
    """What staff see beside a thread: the customer's balance, recent orders and payments."""

    customer: User
    balance: Decimal
    orders: list[Order]
    payments: list[Payment]
    open_tickets: int


def ticket_customer_summary(*, ticket: Ticket) -> CustomerSummary:
    customer = User.objects.select_related("wallet").get(pk=ticket.customer_id)
    orders = list(
        Order.objects.filter(user=customer).select_related("service").order_by("-id")[:RECENT]
    )
    payments = list(Payment.objects.filter(user=customer).order_by("-id")[:RECENT])
    return CustomerSummary(
        customer=customer,
        balance=customer.balance,
        orders=orders,
        payments=payments,
        open_tickets=ticket_count_open(user=customer),
    )


def ticket_get_for_staff(*, ticket_id: int) -> Ticket:
    return (
        Ticket.objects.select_related("customer", "payment", "assigned_to")
        .prefetch_related(Prefetch("orders", queryset=Order.objects.select_related("service")))
        .get(pk=ticket_id)
    )
