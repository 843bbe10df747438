"""Writes for support tickets (docs/support.md): open, reply, close, assign, and the order
requests staff make from a ticket through orders.services.

Every change that someone must hear about runs one function after commit, at the end of this
module (`ticket_created_after_commit`, `ticket_answered_after_commit`,
`ticket_customer_replied_after_commit`): the mails and notices are wired there, and a
transaction that rolls back sends nothing.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from accounts.models import Notification, Payment, User
from accounts.notifications import notify, notify_staff
from accounts.ratelimit import rate_limit_hit
from orders.models import Order
from orders.services import OrderError, order_cancel_request, order_refill_request
from support.models import Ticket, TicketAttachment, TicketMessage

logger = logging.getLogger("support")

T = Ticket.Status
SUBJECT_MAX = 150
BODY_MAX = 10_000
ORDERS_MAX = 20
# Attachments: PNG and JPEG only, judged by their bytes; at most 2 MB, and not so many pixels
# that decoding it to check it would take the memory of a large photo several times over.
ATTACHMENT_MAX_BYTES = 2 * 1024 * 1024
ATTACHMENT_MAX_PIXELS = 25_000_000
ATTACHMENT_FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", ".png"),
    "JPEG": ("image/jpeg", ".jpg"),
}
NOT_AN_IMAGE = "Only PNG and JPEG images can be attached, and this file is not one."


class TicketError(Exception):
    """Bad input or a refused action; nothing was written.

    `field` is the form field at fault ("subject", "orders", "attachment", ...), None when the
    problem is not one field's; `message` is a sentence for the customer (or staff)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --- attachments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    extension: str


def attachment_check(upload: UploadedFile) -> CheckedImage:
    """The upload's real type, read from its bytes by Pillow (never from its name or the
    browser's Content-Type): a PNG or a JPEG that decodes whole. TicketError("attachment")
    otherwise, or when it is larger than 2 MB."""
    size = upload.size or 0
    if size > ATTACHMENT_MAX_BYTES:
        raise TicketError("attachment", "The file is larger than 2 MB: attach a smaller image.")
    if size == 0:
        raise TicketError("attachment", "The file is empty.")
    upload.seek(0)
    try:
        with Image.open(upload, formats=list(ATTACHMENT_FORMATS)) as image:
            width, height = image.size
            if width * height > ATTACHMENT_MAX_PIXELS:
                raise TicketError("attachment", "The image is too large in pixels.")
            image.load()  # a truncated or corrupt file fails here, not only its header
            found = image.format or ""
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        # What Pillow raises for a file it cannot identify or decode (SyntaxError and
        # ValueError from some broken headers).
        raise TicketError("attachment", NOT_AN_IMAGE) from None
    finally:
        upload.seek(0)
    if found not in ATTACHMENT_FORMATS:
        raise TicketError("attachment", NOT_AN_IMAGE)
    content_type, extension = ATTACHMENT_FORMATS[found]
    return CheckedImage(content_type=content_type, extension=extension)


def _display_name(name: str, extension: str) -> str:
    """The customer's file name without any path, kept for display; its extension is the one
    the bytes proved."""
    stem = PurePosixPath(name.replace("\\", "/")).stem.strip()[:100] or "image"
    return f"{stem}{extension}"


def _attach(message: TicketMessage, upload: UploadedFile, checked: CheckedImage) -> None:
    name = _display_name(upload.name or "", checked.extension)
    attachment = TicketAttachment(
        message=message, name=name, content_type=checked.content_type, size=upload.size or 0
    )
    # The stored name is random (models.attachment_path), with the proven extension.
    attachment.file.save(f"upload{checked.extension}", upload, save=False)
    try:
        attachment.save()
    except BaseException:
        attachment.file.delete(save=False)  # no row points at it: do not leave it on disk
        raise


# --- input checks -----------------------------------------------------------------------------


def _text(value: str, field: str, label: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise TicketError(field, f"Write the {label}.")
    if len(value) > limit:
        raise TicketError(
            field, f"The {label} is too long ({len(value)} characters, at most {limit})."
        )
    return value


def _own_orders(customer: User, order_ids: Iterable[int]) -> list[Order]:
    ids = list(dict.fromkeys(order_ids))
    if not ids:
        raise TicketError("orders", "Give the id of the order (or orders) this is about.")
    if len(ids) > ORDERS_MAX:
        raise TicketError("orders", f"At most {ORDERS_MAX} orders per ticket.")
    found = {o.pk: o for o in Order.objects.filter(user=customer, pk__in=ids)}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        noun = "id" if len(missing) == 1 else "ids"
        raise TicketError("orders", f"You have no order with the {noun} {', '.join(missing)}.")
    return [found[i] for i in ids]


def _own_payment(customer: User, payment_id: int | None, reference: str) -> Payment | None:
    """The payment picked (it must be the customer's), else one of theirs whose gateway id or
    transfer reference is the reference typed, else None (the reference alone is kept)."""
    if payment_id is not None:
        payment = Payment.objects.filter(user=customer, pk=payment_id).first()
        if payment is None:
            raise TicketError("payment", "Pick one of your payments.")
        return payment
    if not reference:
        raise TicketError("payment", "Pick the payment, or type its reference.")
    mine = Payment.objects.filter(user=customer)
    return (
        mine.filter(gateway_id=reference).first()
        or mine.filter(customer_reference=reference).first()
    )


def _check_rate(*, key: str, limit: int, what: str) -> None:
    try:
        wait = rate_limit_hit(key=key, limit=limit, period=3600)
    except Exception:  # the cache is down: a brake on spam must not take support down with it
        logger.exception("support rate limit %s unavailable", key)
        return
    if wait:
        minutes = max(1, -(-wait // 60))  # rounded up: never "try again in 0 minutes"
        raise TicketError(
            None,
            f"You {what} too often in the last hour; try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}.",
        )


def _check_open_cap(customer: User) -> None:
    cap = settings.SUPPORT_MAX_OPEN_TICKETS
    if Ticket.objects.filter(customer=customer).exclude(status=T.CLOSED).count() >= cap:
        raise TicketError(
            None,
            f"You have {cap} open tickets, the most allowed: reply in one of them, or close "
            "one that is solved, before opening another.",
        )


# --- the customer's ticket --------------------------------------------------------------------


@dataclass(frozen=True)
class TicketSubject:
    """What a ticket is about: its kind and, by kind, the orders and the request, or the
    payment (picked by id, or its reference)."""

    kind: str
    order_ids: tuple[int, ...] = ()
    request: str = ""
    payment_id: int | None = None
    payment_reference: str = ""


def _about(customer: User, about: TicketSubject) -> tuple[list[Order], str, Payment | None, str]:
    if about.kind not in Ticket.Kind.values:
        raise TicketError("kind", "Pick what the ticket is about.")
    if about.kind == Ticket.Kind.ORDER:
        orders = _own_orders(customer, about.order_ids)
        if about.request not in Ticket.Request.values:
            raise TicketError("request", "Pick what you need: refill, cancel, speed up or other.")
        return orders, about.request, None, ""
    if about.kind == Ticket.Kind.PAYMENT:
        reference = about.payment_reference.strip()[:128]
        return [], "", _own_payment(customer, about.payment_id, reference), reference
    return [], "", None, ""


def ticket_create(
    *,
    customer: User,
    about: TicketSubject,
    subject: str,
    body: str,
    attachment: UploadedFile | None = None,
) -> Ticket:
    """Open a ticket with its first message. TicketError (nothing written) on bad input, at
    SUPPORT_MAX_OPEN_TICKETS tickets not closed, or past SUPPORT_TICKETS_PER_HOUR; only a
    ticket that passes every other check counts towards that limit."""
    subject = _text(subject, "subject", "subject", SUBJECT_MAX)
    body = _text(body, "message", "message", BODY_MAX)
    orders, request, payment, reference = _about(customer, about)
    checked = attachment_check(attachment) if attachment is not None else None
    _check_open_cap(customer)
    limit = settings.SUPPORT_TICKETS_PER_HOUR
    _check_rate(key=f"support-ticket:{customer.pk}", limit=limit, what="opened tickets")
    now = timezone.now()
    with transaction.atomic():
        # One customer's tickets are opened one at a time, so two at once cannot pass the cap.
        # NO KEY: the rows that refer to the customer (ledger entries, orders) are not held up.
        User.objects.select_for_update(no_key=True).filter(pk=customer.pk).first()
        _check_open_cap(customer)
        ticket = Ticket.objects.create(
            customer=customer,
            kind=about.kind,
            subject=subject,
            request=request,
            payment=payment,
            payment_reference=reference,
            created_at=now,
            last_message_at=now,
        )
        ticket.orders.set(orders)
        message = TicketMessage.objects.create(
            ticket=ticket, author=customer, body=body, created_at=now
        )
        if attachment is not None and checked is not None:
            _attach(message, attachment, checked)
        _tell_ticket_new(ticket, body)
        ticket_id = ticket.pk
        transaction.on_commit(lambda: ticket_created_after_commit(ticket_id))
    return ticket


# --- the thread -------------------------------------------------------------------------------


def _reply_status(ticket: Ticket, from_staff: bool, internal: bool) -> str:
    if internal:
        return ticket.status
    return T.ANSWERED if from_staff else T.CUSTOMER_REPLY


def _reply_allowed(ticket: Ticket, author: User, internal: bool) -> bool:
    """Whether `author` writes as staff; TicketError when they may not write here at all."""
    from_staff = author.pk != ticket.customer_id
    if from_staff and not author.is_staff:
        raise TicketError(None, "Ticket not found.")
    if internal and not from_staff:
        raise TicketError(None, "Only staff write internal notes.")
    if ticket.is_closed and not from_staff:
        raise TicketError("message", "This ticket is closed: open a new one if you need more help.")
    return from_staff


def ticket_reply(
    *,
    ticket: Ticket,
    author: User,
    body: str,
    attachment: UploadedFile | None = None,
    internal: bool = False,
) -> TicketMessage:
    """Add a message to the thread: the customer's (the ticket becomes Customer reply), staff's
    answer (Answered, reopening a closed ticket) or staff's internal note (no change the
    customer can see). Customers write at most SUPPORT_REPLIES_PER_HOUR messages."""
    from_staff = _reply_allowed(ticket, author, internal)
    body = _text(body, "message", "message", BODY_MAX)
    checked = attachment_check(attachment) if attachment is not None else None
    if not from_staff:
        limit = settings.SUPPORT_REPLIES_PER_HOUR
        _check_rate(key=f"support-reply:{author.pk}", limit=limit, what="wrote")
    now = timezone.now()
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
        from_staff = _reply_allowed(locked, author, internal)  # it may have closed meanwhile
        message = TicketMessage.objects.create(
            ticket=locked,
            author=author,
            from_staff=from_staff,
            internal=internal,
            body=body,
            created_at=now,
        )
        if attachment is not None and checked is not None:
            _attach(message, attachment, checked)
        if not internal:
            Ticket.objects.filter(pk=locked.pk).update(
                status=_reply_status(locked, from_staff, internal),
                last_message_at=now,
                closed_at=None,
            )
            if from_staff:
                _tell_ticket_answered(locked, message)
            _after_reply(locked.pk, message.pk, from_staff)
    ticket.refresh_from_db()
    return message


def _after_reply(ticket_id: int, message_id: int, from_staff: bool) -> None:
    if from_staff:
        transaction.on_commit(lambda: ticket_answered_after_commit(ticket_id, message_id))
    else:
        transaction.on_commit(lambda: ticket_customer_replied_after_commit(ticket_id, message_id))


def ticket_close(*, ticket: Ticket, by: User) -> Ticket:
    """Close the ticket (its customer or staff). Closing a closed ticket changes nothing."""
    if by.pk != ticket.customer_id and not by.is_staff:
        raise TicketError(None, "Ticket not found.")
    Ticket.objects.filter(pk=ticket.pk).exclude(status=T.CLOSED).update(
        status=T.CLOSED, closed_at=timezone.now()
    )
    ticket.refresh_from_db()
    return ticket


def ticket_close_many(*, tickets: QuerySet[Ticket], by: User) -> int:
    """Staff's bulk close; returns how many were open."""
    if not by.is_staff:
        raise TicketError(None, "Only staff close tickets in bulk.")
    return tickets.exclude(status=T.CLOSED).update(status=T.CLOSED, closed_at=timezone.now())


def ticket_assign(*, ticket: Ticket, to: User | None, by: User) -> Ticket:
    """Hand the ticket to a member of staff (None: to nobody)."""
    if not by.is_staff:
        raise TicketError(None, "Only staff assign tickets.")
    if to is not None and not (to.is_staff and to.is_active):
        raise TicketError("assigned_to", "Tickets are assigned to active staff only.")
    Ticket.objects.filter(pk=ticket.pk).update(assigned_to=to)
    ticket.refresh_from_db()
    return ticket


def ticket_order_request(
    *, ticket: Ticket, order_id: int, action: Literal["refill", "cancel"], by: User
) -> TicketMessage:
    """Staff ask a refill or a cancel of one of the ticket's orders, for its customer, through
    orders.services (the same checks, refunds and upstream calls as the customer's own
    buttons). Recorded as an internal note; TicketError with the orders service's reason."""
    if not by.is_staff:
        raise TicketError(None, "Only staff act on a ticket's orders.")
    order = ticket.orders.filter(pk=order_id).first()
    if order is None:
        raise TicketError(None, f"Order {order_id} is not one of this ticket's orders.")
    customer = User.objects.get(pk=ticket.customer_id)
    try:
        if action == "refill":
            refill = order_refill_request(user=customer, order=order)
            note = f"Refill {refill.pk} of order {order.pk} asked by {by.username}."
        else:
            cancel = order_cancel_request(user=customer, order=order)
            note = f"Cancel of order {order.pk} asked by {by.username} ({cancel.get_status_display()})."
    except OrderError as exc:
        raise TicketError(None, f"Order {order.pk}: {exc.message}") from None
    return TicketMessage.objects.create(
        ticket=ticket, author=by, from_staff=True, internal=True, body=note
    )


# --- who must hear of it ----------------------------------------------------------------------
# The notices (docs/notifications.md) are written in the transaction of the change, so a ticket
# or an answer that rolls back leaves none; their mails leave after the commit (notify queues
# them with transaction.on_commit). The *_after_commit hooks below run only after that commit.


def _tell_ticket_new(ticket: Ticket, body: str) -> None:
    """Staff's "new ticket" notice and mail, once per ticket."""
    notify_staff(
        event=Notification.Event.TICKET_NEW,
        context={
            "ticket_id": ticket.pk,
            "subject": ticket.subject,
            "customer": ticket.customer.username,
            "url": reverse("admin:support_ticket_change", args=[ticket.pk]),
            "body": body[:2000],
        },
        dedupe_key=f"ticket:{ticket.pk}:new",
    )


def _tell_ticket_answered(ticket: Ticket, message: TicketMessage) -> None:
    """The customer's "ticket answered" notice and mail, once per answer (internal notes never
    reach here)."""
    notify(
        user=ticket.customer,
        event=Notification.Event.TICKET_ANSWERED,
        context={
            "ticket_id": ticket.pk,
            "subject": ticket.subject,
            "url": reverse("ticket_detail", args=[ticket.pk]),
            "answer": message.body[:2000],
        },
        dedupe_key=f"ticket:{ticket.pk}:answer:{message.pk}",
    )


def ticket_created_after_commit(ticket_id: int) -> None:
    """A customer opened a ticket (staff's notice was written with it)."""
    logger.info("ticket %s opened", ticket_id)


def ticket_answered_after_commit(ticket_id: int, message_id: int) -> None:
    """Staff answered (not an internal note; the customer's notice was written with it)."""
    logger.info("ticket %s answered (message %s)", ticket_id, message_id)


def ticket_customer_replied_after_commit(ticket_id: int, message_id: int) -> None:
    """The customer wrote again: whoever handles the ticket may hear of it."""
    logger.info("ticket %s: the customer replied (message %s)", ticket_id, message_id)
