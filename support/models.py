"""Support tickets (docs/support.md): a customer's ticket, its thread of messages (staff's
internal notes among them, never shown to the customer), image attachments kept under
MEDIA_ROOT, and the saved replies staff pick from."""

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Ticket(models.Model):
    class Kind(models.TextChoices):
        ORDER = "order", _("Order")
        PAYMENT = "payment", _("Payment")
        API = "api", _("API")
        OTHER = "other", _("Other")

    class Request(models.TextChoices):
        """What an Order ticket asks for."""

        REFILL = "refill", "Refill"
        CANCEL = "cancel", "Cancel"
        SPEED_UP = "speed_up", "Speed up"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open", _("Open")  # new, not answered yet
        ANSWERED = "answered", _("Answered")  # staff wrote last
        CUSTOMER_REPLY = "customer_reply", _("Customer reply")  # the customer wrote after staff
        CLOSED = "closed", _("Closed")

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tickets"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    subject = models.CharField(max_length=150)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # Order tickets: the customer's own orders it is about, and what is asked.
    orders = models.ManyToManyField("orders.Order", blank=True, related_name="tickets")
    request = models.CharField(max_length=16, choices=Request.choices, blank=True)
    # Payment tickets: the payment, when the customer picked one or its reference matched one,
    # and the reference as typed (a transaction id the panel may not know).
    payment = models.ForeignKey(
        "accounts.Payment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tickets",
    )
    payment_reference = models.CharField(max_length=128, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
        limit_choices_to={"is_staff": True},
        help_text="The member of staff handling it.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_message_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        indexes = [
            # The customer's list (newest activity first) and the open-ticket cap's count.
            models.Index(fields=["customer", "-last_message_at"], name="ticket_customer_recent"),
            models.Index(fields=["customer", "status"], name="ticket_customer_status"),
            # Staff's queue: waiting tickets, oldest activity first.
            models.Index(
                fields=["last_message_at"],
                name="ticket_waiting_for_staff",
                condition=Q(status__in=["open", "customer_reply"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(request="") | Q(kind="order"), name="ticket_request_only_for_orders"
            ),
        ]

    def __str__(self) -> str:
        return f"Ticket {self.pk}: {self.subject}"

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED


class TicketMessage(models.Model):
    """One message of a thread. Bodies are plain text, shown escaped. An internal note is staff's
    only: no selector for the customer ever returns one."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    from_staff = models.BooleanField(default=False)
    internal = models.BooleanField(default=False, help_text="A note staff only see.")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(internal=False) | Q(from_staff=True),
                name="ticket_message_internal_only_from_staff",
            ),
        ]

    def __str__(self) -> str:
        return f"Message {self.pk} of ticket {self.ticket_id}"


def attachment_path(instance: "TicketAttachment", filename: str) -> str:
    """A random name under support/: never the customer's file name (only its checked
    extension), so two uploads never collide and no name is guessable."""
    suffix = PurePosixPath(filename).suffix.lower()
    return f"support/{timezone.now():%Y/%m}/{uuid.uuid4().hex}{suffix}"


class TicketAttachment(models.Model):
    """A PNG or JPEG checked by its bytes (support/attachments.py), stored under MEDIA_ROOT and
    served only through support.views.ticket_attachment (its owner) and the admin (staff)."""

    message = models.ForeignKey(TicketMessage, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=200)
    name = models.CharField(max_length=150, help_text="The file name, as the customer sent it.")
    content_type = models.CharField(max_length=32)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class SavedReply(models.Model):
    """A canned answer staff pick in the thread view to fill the reply."""

    title = models.CharField(max_length=100, unique=True)
    body = models.TextField(help_text="Plain text; {username} is replaced by the customer's.")
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "title"]
        verbose_name_plural = "saved replies"

    def __str__(self) -> str:
        return self.title

    def text_for(self, username: str) -> str:
        return self.body.replace("{username}", username)
