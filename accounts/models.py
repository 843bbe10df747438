import hashlib
import ipaddress
import secrets
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog.pricing import (
    MONEY_DIGITS,
    MONEY_PLACES,
    RATE_DIGITS,
    RATE_PLACES,
    DisplayRate,
    money_text,
)


class User(AbstractUser):
    """A customer, a reseller (a customer with an API key) or a member of staff."""

    email = models.EmailField("email address", blank=True, db_index=True)
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="Times on the customer's pages are shown in it."
    )
    # One of settings.LANGUAGES (checked by the form, not by choices here, so adding a language
    # needs no migration); "" follows the browser (the cookie, then Accept-Language).
    language = models.CharField(
        max_length=16,
        blank=True,
        default="",
        help_text="The panel's language for this customer, and of the mails they get; "
        "empty follows the browser.",
    )
    # A DisplayCurrency code the customer reads prices and the balance in ("" or a code staff
    # no longer offer: the panel's currency). Charges and the ledger stay in the panel's.
    display_currency = models.CharField(max_length=3, blank=True, default="")

    class Theme(models.TextChoices):
        AUTO = "auto", _("Auto (as the device)")
        LIGHT = "light", _("Light")
        DARK = "dark", _("Dark")

    theme = models.CharField(
        max_length=8,
        choices=Theme.choices,
        default=Theme.AUTO,
        help_text="The panel's colours; auto follows the device's light or dark setting.",
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
    # What the customer spent on orders, net of refunds: minus the sum of their ledger's charge
    # and refund entries, kept by accounts.services in the same UPDATE as the balance (so the
    # tier, accounts.tiers, costs one indexed read). check_ledger compares it with the ledger.
    total_spent = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=0, editable=False
    )
    # How many orders the customer placed (any status), counted by orders.services.create in
    # the order's transaction (wallet_count_order); the admin's customer list reads it instead
    # of counting the orders. `manage.py order_summary --check` compares it with a count.
    order_count = models.PositiveIntegerField(default=0, editable=False)
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
        DEPOSIT = "deposit", _("Deposit")
        CHARGE = "charge", _("Order charge")
        REFUND = "refund", _("Order refund")
        ADJUSTMENT = "adjustment", _("Adjustment")
        BONUS = "bonus", _("Deposit bonus")
        COMMISSION = "commission", _("Referral commission")

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
        return f"{self.kind} {money_text(self.amount, settings.PANEL_CURRENCY, signed=True)} for {self.user_id}"

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


MAX_ALLOWED_IPS = 20


def ip_allowlist_clean(entries: object) -> list[str]:
    """The allowlist as stored: each entry an address or a CIDR network in its canonical form
    (203.0.113.0/24, 2001:db8::/32), each once. Raises ValidationError naming the first entry
    that is neither, or when there are more than MAX_ALLOWED_IPS."""
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ValidationError("The allowlist must be a list of addresses.")
    clean: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValidationError(
                f"“{entry[:50]}” is not an IP address or a network such as 203.0.113.0/24."
            ) from None
        text = str(network.network_address) if network.num_addresses == 1 else str(network)
        if text not in clean:
            clean.append(text)
    if len(clean) > MAX_ALLOWED_IPS:
        raise ValidationError(
            f"At most {MAX_ALLOWED_IPS} addresses or networks per key ({len(clean)} were given)."
        )
    return clean


def _validate_ip_allowlist(value: object) -> None:
    ip_allowlist_clean(value)


class ApiKey(models.Model):
    """The key a reseller's client sends as `key`. Only its SHA-256 is stored: keys are long and
    random, so a slow password hash would buy nothing and cost every API call."""

    PREFIX_LENGTH = 8
    STALE_AFTER = timedelta(days=90)

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_key"
    )
    prefix = models.CharField(max_length=PREFIX_LENGTH, help_text="Shown to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    allowed_ips = models.JSONField(
        default=list,
        blank=True,
        validators=[_validate_ip_allowlist],
        verbose_name="allowed addresses",
        help_text="Addresses or CIDR networks the key may be used from; empty: anywhere.",
    )

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def allows_ip(self, ip: str | None) -> bool:
        """Whether a call from `ip` may use the key: always without an allowlist, never from an
        unknown address with one. Reads only this row, so the API's key check costs no query."""
        if not self.allowed_ips:
            return True
        if ip is None:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(e, strict=False) for e in self.allowed_ips)

    def is_stale_at(self, now: datetime) -> bool:
        """Unused (or, never used, created) more than STALE_AFTER before `now`."""
        return (self.last_used_at or self.created_at) < now - self.STALE_AFTER

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


def _money_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs)


class Payment(models.Model):
    """One attempt of a customer to add funds through one method (a gateway, or a manual
    transfer that staff confirm). When it is paid, the customer is credited `amount` exactly once
    (accounts.payments.payment_report_apply): the ledger's unique idempotency key
    `deposit:<method>:<gateway_id>` is the proof, the row lock on the payment the queue."""

    class Status(models.TextChoices):
        CREATED = "created", _("Created")
        PENDING = "pending", _("Waiting for payment")
        PAID = "paid", _("Paid")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")
        CANCELED = "canceled", _("Canceled")
        DISPUTED = "disputed", _("Disputed")
        REFUNDED = "refunded", _("Refunded by the gateway")

    # The moves a gateway report (or staff) may make. A payment the gateway says was paid after
    # it failed, expired or was canceled is still money received: it is credited.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.CREATED: frozenset({"pending", "paid", "failed", "expired", "canceled"}),
        Status.PENDING: frozenset({"paid", "failed", "expired", "canceled"}),
        Status.FAILED: frozenset({"paid"}),
        Status.EXPIRED: frozenset({"paid"}),
        Status.CANCELED: frozenset({"paid"}),
        Status.PAID: frozenset({"disputed", "refunded"}),
        Status.DISPUTED: frozenset({"paid", "refunded"}),
        Status.REFUNDED: frozenset(),
    }
    OPEN = (Status.CREATED, Status.PENDING)

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments"
    )
    method = models.CharField(max_length=32, help_text="The gateway's code: stripe, cryptomus…")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    amount = _money_field(help_text="Credited to the balance when paid, in the panel currency.")
    fee = _money_field(default=0, help_text="The method's fee, paid on top of the amount.")
    bonus = _money_field(default=0, help_text="Credited with the deposit as a bonus entry.")
    currency = models.CharField(max_length=8, help_text="The panel currency when it was made.")
    charged_amount = _money_field(
        null=True, blank=True, help_text="What the gateway reports it charged."
    )
    charged_currency = models.CharField(max_length=16, blank=True)
    # NULL until the gateway gives one, so that the unique (method, gateway_id) skips drafts.
    gateway_id = models.CharField(  # noqa: DJ001
        max_length=128, null=True, blank=True, help_text="The gateway's id of this payment."
    )
    customer_reference = models.CharField(
        max_length=128, blank=True, help_text="The transfer's reference the customer gave."
    )
    checkout_url = models.URLField(max_length=2000, blank=True)
    details = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True, help_text="Why it failed, was refused or flagged.")
    needs_attention = models.BooleanField(
        default=False, help_text="A dispute, a refund or a mismatch that staff must look at."
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The member of staff who approved or rejected a manual payment.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"], name="payment_user_recent"),
            models.Index(fields=["status", "created_at"], name="payment_status_age"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(fee__gte=0) & Q(bonus__gte=0), name="payment_fee_bonus_not_negative"
            ),
            models.UniqueConstraint(
                fields=["method", "gateway_id"],
                condition=Q(gateway_id__isnull=False),
                name="payment_one_per_gateway_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {money_text(self.amount, self.currency)} ({self.status}) #{self.pk}"

    @property
    def total(self) -> Decimal:
        """What the customer is asked to pay: the amount plus the method's fee."""
        return self.amount + self.fee

    @property
    def ledger_key(self) -> str:
        return f"deposit:{self.method}:{self.gateway_id}"


class PaymentCallback(models.Model):
    """Each word a gateway (or staff) sent about a payment: webhook deliveries, the customer's
    return, a status read, a staff decision, whether it changed anything and why not. Secrets
    are redacted before the payload is stored. Rows are only ever inserted."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        RETURN = "return", "Customer's return"
        POLL = "poll", "Status read"
        STAFF = "staff", "Staff"

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        DUPLICATE = "duplicate", "Already applied"
        IGNORED = "ignored", "Ignored"
        REFUSED = "refused", "Refused"
        ERROR = "error", "Error (the gateway retries)"

    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="callbacks"
    )
    method = models.CharField(max_length=32)
    source = models.CharField(max_length=16, choices=Source.choices)
    event_id = models.CharField(max_length=128, blank=True)
    gateway_id = models.CharField(max_length=128, blank=True)
    reported_status = models.CharField(max_length=32, blank=True)
    reported_amount = _money_field(null=True, blank=True)
    reported_currency = models.CharField(max_length=16, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    payload = models.JSONField(null=True, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "payment callback"

    def __str__(self) -> str:
        return f"{self.method} {self.source} {self.outcome} {self.gateway_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Payment callbacks are append-only.")
        super().save(*args, **kwargs)


class DepositBonusRule(models.Model):
    """ "+5 % on deposits of 100 or more": set in admin. A paid deposit gets the best active rule
    that applies to it (the highest percent), credited as its own ledger entry of kind bonus."""

    name = models.CharField(max_length=100)
    method = models.CharField(
        max_length=32, blank=True, help_text="Only deposits by this method (blank: any method)."
    )
    min_amount = _money_field(default=0, help_text="The smallest deposit it applies to.")
    percent = models.DecimalField(
        max_digits=5, decimal_places=2, help_text="Bonus in percent of the deposit."
    )
    is_active = models.BooleanField(default=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-percent"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__gt=0) & Q(percent__lte=100), name="bonus_percent_range"
            ),
            models.CheckConstraint(condition=Q(min_amount__gte=0), name="bonus_min_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (+{self.percent} % from {self.min_amount})"


class PaymentMethodSetting(models.Model):
    """What staff set for one payment method in admin: shown or not, its name on the Add funds
    page, the smallest and largest amount, a fee in percent and instructions. The gateway's keys
    stay in the settings (environment): a method is offered only when both allow it."""

    method = models.CharField(max_length=32, unique=True)
    is_enabled = models.BooleanField(default=True)
    display_name = models.CharField(max_length=100, blank=True)
    min_amount = _money_field(default=Decimal("1"))
    max_amount = _money_field(default=Decimal("10000"))
    fee_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, help_text="Charged on top of the amount."
    )
    instructions = models.TextField(
        blank=True, help_text="Shown under the method (for a transfer: where to send it)."
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "method"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_amount__gt=0) & Q(max_amount__gte=models.F("min_amount")),
                name="method_limits_ordered",
            ),
            models.CheckConstraint(
                condition=Q(fee_percent__gte=0) & Q(fee_percent__lt=100),
                name="method_fee_range",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.method


class LoginEvent(models.Model):
    """One login attempt, successful or not: the customer's Security page shows their last ones,
    staff see all in admin. Written by the auth signal receivers of accounts/security.py."""

    class SecondFactor(models.TextChoices):
        NONE = "", _("None")
        TOTP = "totp", _("Authenticator app")
        RECOVERY_CODES = "recovery_codes", _("Recovery code")
        WEBAUTHN = "webauthn", _("Security key or passkey")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="login_events",
        help_text="Empty when the name tried belongs to no account.",
    )
    identifier = models.CharField(
        max_length=150, blank=True, help_text="The username or e-mail address typed."
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="IP address")
    user_agent = models.CharField(max_length=255, blank=True)
    success = models.BooleanField()
    second_factor = models.CharField(
        max_length=16, choices=SecondFactor.choices, blank=True, default=""
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # The Security page's "last 20" and the new-address check, both per user.
            models.Index(fields=["user", "-at"], name="loginevent_user_recent"),
        ]

    def __str__(self) -> str:
        outcome = "login" if self.success else "failed login"
        return f"{outcome} {self.identifier} from {self.ip or '?'}"


class UserSession(models.Model):
    """A signed-in session of a user, so that the Security page can list it and end it.

    The raw session key is kept because ending a session means deleting it from the session
    store by that key. It is the same secret django_session (the database backend in use, in
    the same database) already holds, and it is never shown: pages and forms use the row id."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="user_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True)
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="IP address")
    user_agent = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [models.Index(fields=["user", "-last_seen_at"], name="usersession_user_recent")]

    def __str__(self) -> str:
        return f"session of {self.user_id} from {self.ip or '?'}"


class DisplayCurrency(models.Model):
    """A currency customers may read prices and their balance in (their settings page), at a
    rate staff set: `rate` units of it for one unit of the panel's currency. Display only:
    charges, payments and the ledger stay in the panel's currency (docs/money.md)."""

    code = models.CharField(
        max_length=3, unique=True, help_text="ISO 4217 code in capitals, e.g. EUR."
    )
    rate = models.DecimalField(
        max_digits=RATE_DIGITS,
        decimal_places=RATE_PLACES,
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text="Units of this currency for one unit of the panel's currency, e.g. 0.921.",
    )
    enabled = models.BooleanField(default=True, help_text="Offered to customers.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "display currencies"
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0), name="display_currency_rate_positive"),
            models.CheckConstraint(
                condition=Q(code__regex=r"^[A-Z]{3}$"), name="display_currency_code_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        self.code = (self.code or "").strip().upper()
        if len(self.code) != 3 or not self.code.isalpha() or not self.code.isascii():
            raise ValidationError({"code": "Three letters, the ISO 4217 code (e.g. EUR)."})
        if self.code == settings.PANEL_CURRENCY.upper():
            raise ValidationError({"code": "That is the panel's own currency."})

    @property
    def display_rate(self) -> DisplayRate:
        return DisplayRate(self.code, self.rate)


class Tier(models.Model):
    """A spending tier: a customer whose total spent (net of refunds, Wallet.total_spent) is at
    least `min_spent` gets `discount_percent` off the retail rates (accounts.tiers; applied by
    catalog.selectors with the customer's own discount and custom rates)."""

    name = models.CharField(max_length=100, unique=True)
    min_spent = _money_field(
        unique=True, help_text="Total spent (net of refunds) from which it applies."
    )
    discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=0,
        help_text="Off every retail rate, e.g. 5 for 5 %.",
    )
    allow_below_cost = models.BooleanField(
        default=False,
        help_text="Let the discount take a price below the service's cost (normally it stops at "
        "the cost).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["min_spent"]
        constraints = [
            models.CheckConstraint(condition=Q(min_spent__gte=0), name="tier_min_not_negative"),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0) & Q(discount_percent__lt=100),
                name="tier_discount_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (from {self.min_spent.normalize():f}, -{self.discount_percent.normalize():f} %)"


class Coupon(models.Model):
    """A code a customer types: a deposit bonus code (entered at top-up, a bonus credited when
    that payment is paid) or a balance code (a gift card, redeemed on the funds page). Codes
    are compared case-insensitively and stored upper-case. `uses` counts the uses taken
    (reserved or used, accounts.coupons); the database refuses it past `max_uses`."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", _("Deposit bonus code")
        BALANCE = "balance", _("Balance code (gift card)")

    class BonusType(models.TextChoices):
        PERCENT = "percent", "Percent of the deposit"
        FIXED = "fixed", "Fixed amount"

    code = models.CharField(max_length=40, help_text="Letters, digits, - and _; any case.")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DEPOSIT)
    bonus_type = models.CharField(
        max_length=8,
        choices=BonusType.choices,
        default=BonusType.PERCENT,
        help_text="A balance code is always a fixed amount.",
    )
    value = _money_field(help_text="The percent, or the amount credited.")
    min_deposit = _money_field(default=0, help_text="Deposit codes: the smallest deposit.")
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(
        null=True, blank=True, help_text="Uses in total (blank: no limit)."
    )
    max_uses_per_customer = models.PositiveIntegerField(
        null=True, blank=True, default=1, help_text="Uses per customer (blank: no limit)."
    )
    uses = models.PositiveIntegerField(default=0, editable=False)
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, help_text="For staff only.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(Upper("code"), name="coupon_code_unique_any_case"),
            models.CheckConstraint(condition=Q(value__gt=0), name="coupon_value_positive"),
            models.CheckConstraint(condition=Q(min_deposit__gte=0), name="coupon_min_not_negative"),
            # The last guard of the limit: an UPDATE that would pass it fails.
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(uses__lte=F("max_uses")),
                name="coupon_uses_within_limit",
            ),
            models.CheckConstraint(
                condition=~Q(bonus_type="percent") | Q(value__lte=100),
                name="coupon_percent_at_most_100",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class CouponUse(models.Model):
    """One use of a coupon by a customer: a deposit code reserved by a payment (then used when
    it is paid, or released when it fails, expires or is canceled), or a balance code used at
    once. `seq` numbers a customer's live uses of one code: the partial unique constraint makes
    a second live use with the same number (two redemptions at once) impossible."""

    class Status(models.TextChoices):
        RESERVED = "reserved", "Reserved by a waiting payment"
        USED = "used", "Used"
        RELEASED = "released", "Released (the payment did not go through)"

    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="coupon_uses")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="coupon_uses"
    )
    payment = models.OneToOneField(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="coupon_use"
    )
    seq = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RESERVED)
    amount = _money_field(null=True, blank=True, help_text="What was credited.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["coupon", "user", "seq"],
                condition=Q(status__in=["reserved", "used"]),
                name="coupon_use_one_live_per_seq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.coupon} by {self.user_id} ({self.status})"


class Notification(models.Model):
    """One in-panel notice to one user (the bell), and the state of its e-mail. Written by
    accounts.notifications.notify in the transaction of the change it tells about, so a change
    that rolls back leaves no notice and queues no mail."""

    class Event(models.TextChoices):
        # The customer's events.
        PAYMENT_RECEIVED = "payment_received", _("Payment received")
        ORDER_REFUNDED = "order_refunded", _("Order partial or canceled (with its refund)")
        REFILL_DONE = "refill_done", _("Refill done")
        TICKET_ANSWERED = "ticket_answered", _("Ticket answered")
        BALANCE_LOW = "balance_low", _("Balance below my threshold")
        # Staff's events.
        PROVIDER_BALANCE_LOW = "provider_balance_low", "Provider balance low"
        PROVIDER_OUT_OF_FUNDS = "provider_out_of_funds", "Provider out of funds"
        ORDER_NEEDS_REVIEW = "order_needs_review", "Orders needing review"
        PAYMENT_DISPUTED = "payment_disputed", "Payment disputed or needing attention"
        TICKET_NEW = "ticket_new", "New ticket"

    class Mail(models.TextChoices):
        NONE = "none", "Not mailed"  # turned off, or no address
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=32, choices=Event.choices)
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True, help_text="Where the notice links to.")
    context = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # The same change told twice (a repeated poll, a replayed webhook) finds the first notice.
    dedupe_key = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    mail = models.CharField(max_length=8, choices=Mail.choices, default=Mail.NONE)
    mailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"], name="notification_user_recent"),
            # The bell's unread count on every page: a small partial index.
            models.Index(
                fields=["user"], condition=Q(read_at__isnull=True), name="notification_unread"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "dedupe_key"],
                condition=~Q(dedupe_key=""),
                name="notification_once_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.user_id}: {self.title}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class NotificationPreference(models.Model):
    """Which mails one user gets (`email`: event → on/off; a missing event takes its default
    from accounts.notifications.EVENTS) and the balance under which they are told."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_preference",
    )
    email = models.JSONField(default=dict, blank=True)
    low_balance_threshold = _money_field(
        null=True,
        blank=True,
        help_text="Tell me when an order takes my balance below this amount (empty: never).",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(low_balance_threshold__gt=0) | Q(low_balance_threshold__isnull=True),
                name="notification_threshold_positive",
            )
        ]

    def __str__(self) -> str:
        return f"notification preferences of {self.user_id}"


# --- Referrals (docs/growth.md) ----------------------------------------------------------------


PERCENT_VALIDATORS = [MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))]


def _referral_code() -> str:
    # 10 characters of an alphabet without look-alikes (0/o, 1/l): about 50 bits, not guessable.
    return "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(10))


class ReferralProgram(models.Model):
    """The referral programme as staff set it in admin: one row (pk 1), made with the defaults
    on first use. A referrer's own rate (ReferrerAccount.commission_percent) wins over it."""

    is_active = models.BooleanField(
        default=True, help_text="Off: new deposits and spend earn no commission."
    )
    commission_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("5"),
        validators=PERCENT_VALIDATORS,
        help_text="Commission in percent of each paid deposit (or spend) of a referred customer.",
    )

    class Meta:
        verbose_name = "referral programme"
        constraints = [
            models.CheckConstraint(
                condition=Q(commission_percent__gte=0) & Q(commission_percent__lte=100),
                name="referral_program_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Referral programme ({self.commission_percent} %)"


class ReferrerAccount(models.Model):
    """A customer as a referrer: their code (/r/<code>), their own rate if staff set one, and the
    commission account. `available` is released commission not yet transferred to the balance
    or asked to be paid out; `paid_out` is what staff approved as paid. Neither is balance: only
    a transfer (a ledger entry of kind commission) moves commission into the balance."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        primary_key=True,
        related_name="referrer_account",
    )
    code = models.CharField(max_length=32, unique=True, default=_referral_code)
    commission_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=PERCENT_VALIDATORS,
        help_text="This referrer's own rate in percent; empty: the programme's rate.",
    )
    available = _money_field(default=0, editable=False)
    paid_out = _money_field(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(available__gte=0) & Q(paid_out__gte=0),
                name="referrer_money_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(commission_percent__isnull=True)
                | (Q(commission_percent__gte=0) & Q(commission_percent__lte=100)),
                name="referrer_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.code})"


class ReferralVisit(models.Model):
    """One visit of a referral link by someone not signed in. Rows are only ever inserted."""

    referrer = models.ForeignKey(ReferrerAccount, on_delete=models.CASCADE, related_name="visits")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="IP address")
    user_agent = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["referrer", "-at"], name="refvisit_referrer_recent")]

    def __str__(self) -> str:
        return f"visit of {self.referrer_id}'s link from {self.ip or '?'}"


class Referral(models.Model):
    """Who referred a customer: set at sign-up from the first-touch cookie, changed by staff
    only (audited). A customer has at most one referrer."""

    referred = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="referral"
    )
    referrer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="referrals_made"
    )
    visit = models.ForeignKey(
        ReferralVisit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    signup_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(referred=models.F("referrer")), name="referral_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.referred} referred by {self.referrer}"


class Commission(models.Model):
    """A referrer's commission on one paid deposit (or one order charge) of a referred customer:
    created exactly once per source (unique), held for REFERRAL_HOLD_DAYS, then released into
    the referrer's available commission, or cancelled when the deposit is disputed or refunded
    (or the order refunded) first."""

    class State(models.TextChoices):
        HELD = "held", _("Held")
        RELEASED = "released", _("Released")
        CANCELLED = "cancelled", _("Cancelled")

    referrer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="commissions"
    )
    referred = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    payment = models.OneToOneField(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="commission"
    )
    charge_entry = models.OneToOneField(
        LedgerEntry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="commission",
        help_text="The order charge it was earned on (commission on spend).",
    )
    base_amount = _money_field(help_text="The deposit or charge it is a percentage of.")
    percent = models.DecimalField(max_digits=5, decimal_places=2)
    amount = _money_field()
    state = models.CharField(max_length=16, choices=State.choices, default=State.HELD)
    release_at = models.DateTimeField(db_index=True)
    released_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    needs_attention = models.BooleanField(
        default=False,
        help_text="Its deposit was disputed or refunded after release: staff decide.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["referrer", "-id"], name="commission_referrer_recent"),
            models.Index(fields=["state", "release_at"], name="commission_state_due"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="commission_not_negative"),
            models.CheckConstraint(
                condition=Q(payment__isnull=False) ^ Q(charge_entry__isnull=False),
                name="commission_one_source",
            ),
        ]

    def __str__(self) -> str:
        return f"commission {self.amount} for {self.referrer_id} ({self.state})"


class PayoutRequest(models.Model):
    """A referrer asks for available commission to be paid out (outside the panel). Asking takes
    the amount from `available`; staff approve (recorded as paid out) or reject (returned)."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for staff")
        PAID = "paid", _("Paid out")
        REJECTED = "rejected", _("Rejected")

    referrer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payout_requests"
    )
    amount = _money_field()
    details = models.TextField(help_text="Where the customer asks to be paid.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    note = models.TextField(blank=True, help_text="Staff's note (why it was rejected).")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"payout {self.amount} to {self.referrer_id} ({self.state})"


class CommissionTransfer(models.Model):
    """Available commission moved into the referrer's balance: one ledger entry of kind
    commission, whose idempotency key is `commission-transfer:<token>` (the form's one-time
    token), so a form sent twice moves the money once."""

    referrer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="commission_transfers"
    )
    amount = _money_field()
    token = models.CharField(max_length=64, unique=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="commission_transfer"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"transfer {self.amount} for {self.referrer_id}"
