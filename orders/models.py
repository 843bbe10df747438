from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Collate, Left
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from catalog.models import DecimalSize
from catalog.pricing import MONEY_DIGITS, MONEY_PLACES, RATE_DIGITS, RATE_PLACES

MONEY: DecimalSize = {"max_digits": MONEY_DIGITS, "decimal_places": MONEY_PLACES}
RATE: DecimalSize = {"max_digits": RATE_DIGITS, "decimal_places": RATE_PLACES}


class Order(models.Model):
    class Status(models.TextChoices):
        # The panel's own states before and around placement; customers see them as Pending.
        QUEUED = "queued", _("Waiting to be sent")
        SUBMITTING = "submitting", _("Being sent upstream")
        NEEDS_REVIEW = "needs_review", _("Needs review (upstream outcome unknown)")
        WAITING_FUNDS = "waiting_funds", _("Waiting: provider out of funds")
        MANUAL = "manual", _("Waiting for the admin (manual service)")
        # The documented API v2 statuses.
        PENDING = "pending", _("Pending")
        IN_PROGRESS = "in_progress", _("In progress")
        PROCESSING = "processing", _("Processing")
        COMPLETED = "completed", _("Completed")
        PARTIAL = "partial", _("Partial")
        CANCELED = "canceled", _("Canceled")

    class Source(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"
        MASS = "mass", "Mass order"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    service = models.ForeignKey("catalog.Service", on_delete=models.PROTECT, related_name="orders")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.WEB)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)

    # What the customer asked for. `params` holds the type's other API parameters exactly as
    # they are sent upstream (comments, usernames, runs, interval, answer_number, ...).
    link = models.CharField(max_length=2000, blank=True)
    quantity = models.PositiveIntegerField()
    params = models.JSONField(default=dict, blank=True)

    # The price snapshot: later price changes never touch an order.
    rate = models.DecimalField(**RATE, help_text="Retail rate per 1000 when ordered.")
    charge = models.DecimalField(**MONEY)
    cost = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text="What the provider charges, in the panel's currency.",
    )
    refunded = models.DecimalField(**MONEY, default=0, help_text="Copy of the ledger's refund.")

    # Upstream placement.
    provider = models.ForeignKey(
        "providers.Provider", on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    upstream_service = models.ForeignKey(
        "catalog.UpstreamService", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    failed_over = models.BooleanField(default=False, help_text="Placed at a backup mapping.")
    upstream_order_id = models.CharField(max_length=64, blank=True, db_index=True)
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    submitted_at = models.DateTimeField(null=True, blank=True)
    attention_reason = models.TextField(blank=True)

    # Progress as the provider reports it.
    start_count = models.BigIntegerField(null=True, blank=True)
    remains = models.BigIntegerField(null=True, blank=True)
    upstream_status = models.CharField(max_length=64, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_errors = models.PositiveIntegerField(default=0)

    # NULL, not "", so that the partial unique constraint skips orders without a key.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"], name="order_user_recent"),
            models.Index(fields=["status", "-id"], name="order_status_recent"),
            models.Index(fields=["provider", "status"], name="order_provider_status"),
            # The poll sweep: active orders whose next poll is due.
            models.Index(
                fields=["next_poll_at"],
                name="order_due_for_poll",
                condition=Q(status__in=["pending", "in_progress", "processing"]),
            ),
            # The same, per provider: what provider_poll_orders reads.
            models.Index(
                fields=["provider", "next_poll_at"],
                name="order_provider_due_for_poll",
                condition=Q(status__in=["pending", "in_progress", "processing"]),
            ),
            # The requeue sweep: orders waiting to be sent.
            models.Index(
                fields=["status", "created_at"],
                name="order_waiting_to_send",
                condition=Q(status__in=["queued", "waiting_funds"]),
            ),
            # The admin order list's filters, newest first (its ordering).
            models.Index(fields=["source", "-id"], name="order_source_recent"),
            models.Index(
                fields=["-id"], name="order_failed_over_recent", condition=Q(failed_over=True)
            ),
            # The order list's link search: the link's first 255 characters in the "C" collation,
            # so that LIKE 'prefix%' can use it whatever the database's collation.
            models.Index(Collate(Left("link", 255), "C"), name="order_link_prefix"),
            # One customer's orders summed from the index alone (the customer list read it
            # until the wallet kept the total spent and the order count).
            models.Index(fields=["user"], include=["charge", "refunded"], name="order_user_totals"),
            # The services' average times (orders.services.averages): each service's last
            # completed orders, and the services with an order completed lately.
            models.Index(
                fields=["service", "-finished_at"],
                name="order_completed_by_service",
                condition=Q(status="completed"),
            ),
            models.Index(
                fields=["finished_at"],
                name="order_completed_recent",
                condition=Q(status="completed"),
            ),
            # The cockpit's "stuck" count: not finished long after it was created.
            models.Index(
                fields=["created_at"],
                name="order_stuck",
                condition=Q(status__in=["queued", "pending", "in_progress"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_idempotency_key_per_user",
            ),
            models.CheckConstraint(condition=Q(charge__gte=0), name="order_charge_not_negative"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"Order {self.pk}"

    @property
    def public_status(self) -> str:
        """The status as API v2 names it; internal states show as Pending."""
        return PUBLIC_STATUS[self.status]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


S = Order.Status
# What customers and resellers see: the six documented statuses, nothing else.
PUBLIC_STATUS: dict[str, str] = {
    S.QUEUED: "Pending",
    S.SUBMITTING: "Pending",
    S.NEEDS_REVIEW: "Pending",
    S.WAITING_FUNDS: "Pending",
    S.MANUAL: "Pending",
    S.PENDING: "Pending",
    S.IN_PROGRESS: "In progress",
    S.PROCESSING: "Processing",
    S.COMPLETED: "Completed",
    S.PARTIAL: "Partial",
    S.CANCELED: "Canceled",
}
# Orders the status poll follows (they have an upstream id and are not settled).
POLLED_STATUSES = frozenset({S.PENDING, S.IN_PROGRESS, S.PROCESSING})
FINAL_STATUSES = frozenset({S.COMPLETED, S.PARTIAL, S.CANCELED})
# Where a status may go next; order_set_status refuses anything else. Final statuses go nowhere:
# their money is settled. CANCELED is reachable from every open state because an admin can
# always cancel with a refund.
_ACTIVE = {S.PENDING, S.IN_PROGRESS, S.PROCESSING}
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.SUBMITTING, S.MANUAL, S.CANCELED, S.NEEDS_REVIEW} | _ACTIVE),
    # Placement's outcomes: placed, back to the queue (never sent), out of funds, unknown
    # outcome, refused for good.
    S.SUBMITTING: frozenset({S.QUEUED, S.WAITING_FUNDS, S.NEEDS_REVIEW, S.CANCELED} | _ACTIVE),
    S.WAITING_FUNDS: frozenset({S.SUBMITTING, S.QUEUED, S.NEEDS_REVIEW, S.CANCELED}),
    # The admin resends (QUEUED), types the upstream id in (active), or settles it by hand.
    S.NEEDS_REVIEW: frozenset({S.QUEUED, S.COMPLETED, S.PARTIAL, S.CANCELED} | _ACTIVE),
    S.MANUAL: frozenset({S.COMPLETED, S.PARTIAL, S.CANCELED} | _ACTIVE),
    S.PENDING: frozenset({S.NEEDS_REVIEW, S.COMPLETED, S.PARTIAL, S.CANCELED} | _ACTIVE),
    S.IN_PROGRESS: frozenset({S.NEEDS_REVIEW, S.COMPLETED, S.PARTIAL, S.CANCELED} | _ACTIVE),
    S.PROCESSING: frozenset({S.NEEDS_REVIEW, S.COMPLETED, S.PARTIAL, S.CANCELED} | _ACTIVE),
    S.COMPLETED: frozenset(),
    S.PARTIAL: frozenset(),
    S.CANCELED: frozenset(),
}


def status_change_allowed(old: str, new: str) -> bool:
    return new in ORDER_TRANSITIONS.get(old, frozenset())


class OrderStatusChange(models.Model):
    class Source(models.TextChoices):
        CREATE = "create", "Created"
        SUBMIT = "submit", "Placement"
        POLL = "poll", "Status poll"
        ADMIN = "admin", "Admin"
        CUSTOMER = "customer", "Customer"
        SYSTEM = "system", "System"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=16, blank=True)
    new_status = models.CharField(max_length=16)
    start_count = models.BigIntegerField(null=True, blank=True)
    remains = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    note = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.old_status} → {self.new_status}"


class Refill(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting to be sent")
        PENDING = "pending", _("Pending")
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")
        REJECTED = "rejected", _("Rejected")
        ERROR = "error", _("Error")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refills")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    upstream_refill_id = models.CharField(max_length=64, blank=True)
    upstream_status = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    # Set by the conditional UPDATE that claims a QUEUED refill for sending, so two sweeps
    # never send the same refill.
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_poll_at"], name="refill_status_due")]

    def __str__(self) -> str:
        return f"Refill {self.pk} of order {self.order_id}"

    @property
    def public_status(self) -> str:
        """Pending / In progress / Completed / Rejected, as the API v2 documents them."""
        return REQUEST_PUBLIC_STATUS.get(self.status, "Pending")


OPEN_REFILL_STATUSES = frozenset(
    {Refill.Status.QUEUED, Refill.Status.PENDING, Refill.Status.IN_PROGRESS}
)


class CancelRequest(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting to be sent")
        SENT = "sent", _("Sent")
        COMPLETED = "completed", _("Completed")
        REJECTED = "rejected", _("Rejected")
        ERROR = "error", _("Error")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="cancel_requests")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    upstream_cancel_id = models.CharField(max_length=64, blank=True)
    upstream_status = models.CharField(max_length=64, blank=True)
    # smmsend says what the cancel applied to: "order", "dripfeed" or "subscription".
    upstream_type = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status"], name="cancel_status")]

    def __str__(self) -> str:
        return f"Cancel {self.pk} of order {self.order_id}"

    @property
    def public_status(self) -> str:
        """Pending / In progress / Completed / Rejected for customers."""
        return REQUEST_PUBLIC_STATUS.get(self.status, "Pending")


OPEN_CANCEL_STATUSES = frozenset({CancelRequest.Status.QUEUED, CancelRequest.Status.SENT})
# Refill and cancel statuses as customers see them: the panel's own QUEUED is Pending, an
# ERROR (the provider refused or the request failed) is Rejected.
REQUEST_PUBLIC_STATUS: dict[str, str] = {
    "queued": "Pending",
    "pending": "Pending",
    "sent": "In progress",
    "in_progress": "In progress",
    "completed": "Completed",
    "rejected": "Rejected",
    "error": "Rejected",
}
# The public statuses above are the API's words and stay English there; the panel's pages show
# them through the catalog ({% translate order.public_status %}), and these marks keep every
# one of them in it.
PUBLIC_STATUS_MSGIDS = (
    gettext_noop("Pending"),
    gettext_noop("In progress"),
    gettext_noop("Processing"),
    gettext_noop("Completed"),
    gettext_noop("Partial"),
    gettext_noop("Canceled"),
    gettext_noop("Rejected"),
)


class WebhookEndpoint(models.Model):
    """Where a reseller's order, refill and cancel events are POSTed (docs/webhooks.md)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoint"
    )
    url = models.URLField(max_length=500)
    # The signing secret, encrypted with providers.crypto (as provider API keys are): the panel
    # must sign every delivery with it, so a one-way hash (as for API keys) cannot work. The
    # customer sees it once, when it is made or rotated.
    secret_encrypted = models.TextField()
    secret_hint = models.CharField(max_length=16, help_text="The secret's first characters.")
    is_active = models.BooleanField(default=True)
    secret_rotated_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Webhook of {self.user_id}: {self.url}"


class WebhookEvent(models.Model):
    """One event for one customer's webhook and its delivery: the body is fixed when the event
    is written (in the transaction that made the change) and POSTed as is on every attempt."""

    class Type(models.TextChoices):
        ORDER = "order.status", "Order status"
        REFILL = "refill.status", "Refill status"
        CANCEL = "cancel.status", "Cancel status"
        TEST = "test", "Test event"

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to be delivered")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed (gave up)")

    event_id = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_events"
    )
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, null=True, blank=True, related_name="webhook_events"
    )
    type = models.CharField(max_length=16, choices=Type.choices)
    payload = models.TextField(help_text="The JSON body, exactly as it is sent.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=200, blank=True)
    url = models.URLField(max_length=500, blank=True, help_text="Where the last attempt went.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set by the conditional UPDATE that claims the event for one attempt: a second worker
    # skips it; a worker that died mid-attempt leaves it to the sweep once this has passed.
    locked_until = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"], name="webhook_event_user_recent"),
            # The retry sweep: pending events whose next attempt is due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_event_due",
                condition=Q(status="pending"),
            ),
            # In order per order: the pending events of one order, oldest first.
            models.Index(
                fields=["order", "id"],
                name="webhook_event_order_pending",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.type})"


# Sums of many orders: wider than one amount.
SUM: DecimalSize = {"max_digits": MONEY_DIGITS + 6, "decimal_places": MONEY_PLACES}


class OrderDaySummary(models.Model):
    """What the orders created on one day (in the panel's TIME_ZONE), for one service and one
    provider, add up to: the cockpit reads these rows instead of scanning the orders.

    Kept exact by orders.services.summary: every write that changes an order's day, service,
    provider, charge, cost, refund or final status adds its difference here in the same
    transaction (INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x, so concurrent
    writers never lose an update). `manage.py order_summary --check` compares the table with a
    fresh scan of the orders, `--rebuild` rewrites it from them (docs/admin.md)."""

    day = models.DateField()
    # Plain ids, not foreign keys: "not placed" is provider_id 0 rather than NULL, so that
    # (day, service_id, provider_id) is one unique key on PostgreSQL and SQLite alike (NULLs
    # are distinct in a unique index) and ON CONFLICT can name it.
    service_id = models.BigIntegerField()
    provider_id = models.BigIntegerField(default=0, help_text="0: not placed at a provider.")
    orders = models.IntegerField(default=0)
    completed = models.IntegerField(default=0)
    partial = models.IntegerField(default=0)
    canceled = models.IntegerField(default=0)
    charged = models.DecimalField(**SUM, default=0, help_text="Sum of the orders' charges.")
    refunded = models.DecimalField(**SUM, default=0, help_text="Sum of their refunds.")
    cost = models.DecimalField(
        **SUM,
        default=0,
        help_text="Sum of each order's provider cost share, rounded to 5 places per order.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "service_id", "provider_id"], name="order_day_summary_cell"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} service {self.service_id} provider {self.provider_id}"
