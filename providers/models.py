from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from catalog.pricing import MONEY_DIGITS, MONEY_PLACES, RATE_DIGITS, RATE_PLACES
from providers import crypto

MAX_STATUS_BATCH = 100  # every seed document caps multi calls at 100 ids
# Refills and cancels claimed for sending and still unanswered this long after are unclaimed and
# sent again (orders.services.requests.order_release_stuck_requests). A provider call must end
# well before, or a slow answer would be asked twice: each timeout is at most a quarter of that
# window, so connect + read + the client's limit on reading a body (120 s) stays below it.
REQUEST_RESEND_AFTER = timedelta(minutes=15)
MAX_TIMEOUT_SECONDS = REQUEST_RESEND_AFTER.total_seconds() / 4
MIN_CONNECT_TIMEOUT, MIN_READ_TIMEOUT = 0.5, 1.0

# Sent after a queryset write that bypasses post_save (update, bulk_update, bulk_create) of a
# model whose default manager is WriteSignallingQuerySet's; `fields` is the set of columns
# written, or None for whole rows. The cached price lists of the API listen (catalog.price_lists).
rows_written = Signal()


class WriteSignallingQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes send rows_written, so that a cache of what the rows hold is
    told of every ORM write, not only of Model.save() and delete() (which send Django's own
    post_save and post_delete)."""

    def update(self, **kwargs: object) -> int:
        count = super().update(**kwargs)
        if count:
            rows_written.send(sender=self.model, fields=frozenset(kwargs))
        return count

    def bulk_update(
        self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        fields = tuple(fields)
        count = super().bulk_update(objs, fields, batch_size=batch_size)
        if count:
            rows_written.send(sender=self.model, fields=frozenset(fields))
        return count

    def bulk_create(self, objs: object, *args: object, **kwargs: object) -> list:
        created = super().bulk_create(objs, *args, **kwargs)  # type: ignore[arg-type]
        if created:
            rows_written.send(sender=self.model, fields=None)
        return created


class Provider(models.Model):
    """An upstream that speaks API v2. Its API key is stored encrypted (providers.crypto)."""

    name = models.CharField(max_length=100, unique=True)
    api_url = models.URLField(
        max_length=500, help_text="The API v2 endpoint, e.g. https://x.com/api/v2"
    )
    api_key_encrypted = models.TextField(editable=False)
    api_key_hint = models.CharField(max_length=8, editable=False, help_text="Last 4 characters.")
    currency = models.CharField(max_length=3, default="USD")
    exchange_rate = models.DecimalField(
        max_digits=RATE_DIGITS,
        decimal_places=RATE_PLACES,
        default=Decimal(1),
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text="How much of the panel's currency one unit of this provider's currency costs.",
    )
    is_enabled = models.BooleanField(default=True)
    connect_timeout = models.FloatField(
        default=5.0,
        validators=[MinValueValidator(MIN_CONNECT_TIMEOUT), MaxValueValidator(MAX_TIMEOUT_SECONDS)],
        help_text=f"Seconds, at most {MAX_TIMEOUT_SECONDS:g}.",
    )
    read_timeout = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(MIN_READ_TIMEOUT), MaxValueValidator(MAX_TIMEOUT_SECONDS)],
        help_text=(
            f"Seconds, at most {MAX_TIMEOUT_SECONDS:g}: refills and cancels unanswered after "
            f"{REQUEST_RESEND_AFTER.total_seconds() / 60:g} minutes are sent again."
        ),
    )
    status_batch_size = models.PositiveSmallIntegerField(
        default=MAX_STATUS_BATCH,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STATUS_BATCH)],
        help_text="Ids per multi-status call (at most 100).",
    )
    # What the upstream supports: set by hand, detected by the connection test, or learned when
    # the provider refuses a multi call as unknown (providers.services.provider_learn_capability).
    supports_cancel = models.BooleanField(default=True)
    supports_multi_refill = models.BooleanField(
        default=True, help_text="refill with orders=1,2,3; off: one refill call per order."
    )
    supports_refill_status = models.BooleanField(default=True)
    supports_cancel_status = models.BooleanField(default=False)
    supports_dripfeed = models.BooleanField(default=True)
    supports_multi_status = models.BooleanField(
        default=True, help_text="status with orders=1,2,3; off: one status call per order."
    )
    supports_multi_refill_status = models.BooleanField(
        default=True, help_text="refill_status with refills=1,2,3; off: one call per refill."
    )
    supports_multi_cancel = models.BooleanField(
        default=True, help_text="cancel with orders=1,2,3; off: one cancel call per order."
    )
    capabilities_learned_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the panel last turned a capability off because the provider refused it.",
    )
    capabilities_note = models.TextField(
        blank=True, help_text="What the panel learned, newest first (when, what, the refusal)."
    )
    markup_percent = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Overrides the global default markup for this provider's services.",
    )
    # Balance at the provider, from the periodic balance check.
    balance = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True, editable=False
    )
    balance_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    low_balance_threshold = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True
    )
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)
    out_of_funds_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Set when an order was refused for funds."
    )
    last_sync_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = models.Manager.from_queryset(WriteSignallingQuerySet)()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status_batch_size__gte=1, status_batch_size__lte=MAX_STATUS_BATCH),
                name="provider_batch_size_1_to_100",
            ),
            models.CheckConstraint(condition=Q(exchange_rate__gt=0), name="provider_rate_positive"),
            models.CheckConstraint(
                condition=Q(
                    connect_timeout__gte=MIN_CONNECT_TIMEOUT,
                    connect_timeout__lte=MAX_TIMEOUT_SECONDS,
                    read_timeout__gte=MIN_READ_TIMEOUT,
                    read_timeout__lte=MAX_TIMEOUT_SECONDS,
                ),
                name="provider_timeouts_bounded",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def set_api_key(self, raw: str) -> None:
        raw = raw.strip()
        if not raw:
            raise ValueError("The API key cannot be empty.")
        self.api_key_encrypted = crypto.encrypt(raw)
        self.api_key_hint = raw[-4:]

    @property
    def is_low_on_balance(self) -> bool:
        return (
            self.balance is not None
            and self.low_balance_threshold is not None
            and self.balance < self.low_balance_threshold
        )


class ProviderCall(models.Model):
    """One request to an upstream, for the order's history in admin and the error rate."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="calls")
    action = models.CharField(max_length=32)
    order_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    request = models.JSONField(default=dict, blank=True, help_text="Parameters, without the key.")
    ok = models.BooleanField()
    error_kind = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["provider", "-created_at"], name="providercall_recent")]

    def __str__(self) -> str:
        return f"{self.provider} {self.action} {'ok' if self.ok else self.error_kind}"
