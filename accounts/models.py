import hashlib
import secrets
from decimal import Decimal
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone

from catalog.pricing import MONEY_DIGITS, MONEY_PLACES


class User(AbstractUser):
    """A customer, a reseller (a customer with an API key) or a member of staff."""

    email = models.EmailField("email address", blank=True, db_index=True)
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="Times on the customer's pages are shown in it."
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def balance(self) -> Decimal:
        """The cached balance from the wallet; the ledger is the truth (see check_ledger)."""
        wallet = getattr(self, "wallet", None)  # users made in admin get theirs on first credit
        return wallet.balance if wallet is not None else Decimal("0.00000")


class Wallet(models.Model):
    """The customer's balance, kept apart from User so that saving a user (admin, last_login)
    can never write back a stale balance. It changes only through accounts.services."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, primary_key=True, related_name="wallet"
    )
    balance = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=0, editable=False
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.balance}"


class LedgerEntry(models.Model):
    """One change of one balance. Rows are only ever inserted: a mistake is corrected by a new
    entry, never by editing or deleting an old one."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        CHARGE = "charge", "Order charge"
        REFUND = "refund", "Order refund"
        ADJUSTMENT = "adjustment", "Adjustment"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.DecimalField(
        max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        help_text="Signed: positive adds to the balance, negative takes from it.",
    )
    balance_after = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    # What the money was for: an order id, or a payment's reference at a gateway.
    order_ref = models.BigIntegerField(null=True, blank=True, db_index=True, verbose_name="order")
    payment_ref = models.CharField(max_length=128, blank=True)
    # A retried credit or debit with the same key is answered with the first entry, once.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The member of staff who made a manual entry.",
    )
    memo = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "-id"], name="ledger_user_recent")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_not_zero"),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="ledger_after_not_negative"
            ),
            # An order is charged once and refunded at most once, however often its status is
            # processed.
            models.UniqueConstraint(
                fields=["order_ref", "kind"],
                condition=Q(order_ref__isnull=False, kind__in=["charge", "refund"]),
                name="ledger_one_charge_one_refund_per_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+} for {self.user_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Ledger entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError("Ledger entries are append-only.")

    @property
    def details(self) -> str:
        """The memo as the statement shows it: next to the order link, without the "Order N: "
        the memo often starts with."""
        if self.order_ref:
            return self.memo.removeprefix(f"Order {self.order_ref}: ")
        return self.memo


class ApiKey(models.Model):
    """The key a reseller's client sends as `key`. Only its SHA-256 is stored: keys are long and
    random, so a slow password hash would buy nothing and cost every API call."""

    PREFIX_LENGTH = 8

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_key"
    )
    prefix = models.CharField(max_length=PREFIX_LENGTH, help_text="Shown to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @staticmethod
    def generate() -> str:
        # 32 hex characters is what the providers in the seeds hand out; we give 48.
        return secrets.token_hex(24)


class AdminAuditLog(models.Model):
    """One admin action that touched money, prices, providers, order statuses or a customer's
    access: who, when, what, and the values before and after. Rows are only ever inserted."""

    class Area(models.TextChoices):
        MONEY = "money", "Money"
        PRICE = "price", "Prices"
        PROVIDER = "provider", "Providers"
        ORDER = "order", "Orders"
        ACCESS = "access", "Customer access"
        OTHER = "other", "Other"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(
        max_length=150, blank=True, help_text="Kept when the member of staff is deleted."
    )
    action = models.CharField(max_length=64, help_text="e.g. change, delete, suspend, reprice.")
    area = models.CharField(max_length=16, choices=Area.choices, default=Area.OTHER)
    object_type = models.CharField(max_length=100, blank=True, help_text="app_label.model")
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    summary = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "admin audit log entry"
        verbose_name_plural = "admin audit log"
        indexes = [
            # "What happened to this order / service / customer?"
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Audit log entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError("Audit log entries are append-only.")
