from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from catalog.order_types import OrderType
from catalog.pricing import RATE_DIGITS, RATE_PLACES, RateRounding, Rounding
from providers.models import WriteSignallingQuerySet

# The rows the API's cached price lists are built from say when they are written (also by
# update() and the bulk writes): catalog.price_lists.
_SignallingManager = models.Manager.from_queryset(WriteSignallingQuerySet)


class DecimalSize(TypedDict):
    """A DecimalField's digits and places, spread into the field: `DecimalField(**RATE)`."""

    max_digits: int
    decimal_places: int


PERCENT: DecimalSize = {"max_digits": 8, "decimal_places": 2}
RATE: DecimalSize = {"max_digits": RATE_DIGITS, "decimal_places": RATE_PLACES}


class CatalogSettings(models.Model):
    """The panel-wide pricing rules; one row (pk=1), edited in admin."""

    default_markup_percent = models.DecimalField(**PERCENT, default=Decimal("50.00"))
    price_rise_hold_percent = models.DecimalField(
        **PERCENT,
        default=Decimal("20.00"),
        help_text="An upstream price rise above this is held for an admin to approve.",
    )
    auto_import_new_services = models.BooleanField(
        default=False, help_text="Import services that appear upstream into the panel at once."
    )
    # How a rate computed from cost + markup is rounded (catalog.pricing.RateRounding); a fixed
    # rate is staff's own and is never rounded. Changing it re-prices the catalog (admin).
    rate_rounding = models.CharField(
        max_length=12,
        choices=[
            (Rounding.NONE.value, "No rounding (up to 8 decimal places)"),
            (Rounding.STEP.value, "To a multiple of the step per 1000"),
            (Rounding.SIGNIFICANT.value, "To a number of significant digits"),
        ],
        default=Rounding.NONE.value,
        help_text="Retail rates from cost + markup are rounded half up; never below the cost "
        "(where selling below it is not allowed): there they round up.",
    )
    rate_rounding_step = models.DecimalField(
        **RATE,
        default=Decimal("0.01"),
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text="For rounding to a step: e.g. 0.01 gives 5.00 instead of 4.99995.",
    )
    rate_rounding_digits = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(12)],
        help_text="For significant digits: e.g. 4 gives 0.004999 and 12.35.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "catalog settings"

    def __str__(self) -> str:
        return "Catalog settings"

    @property
    def rounding(self) -> RateRounding:
        """The rate rounding rule, as catalog.pricing applies it."""
        return RateRounding(
            Rounding(self.rate_rounding), self.rate_rounding_step, self.rate_rounding_digits
        )

    @classmethod
    def load(cls) -> "CatalogSettings":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class UpstreamService(models.Model):
    """A provider's service exactly as its `services` action last described it."""

    provider = models.ForeignKey(
        "providers.Provider", on_delete=models.CASCADE, related_name="upstream_services"
    )
    service_id = models.CharField(max_length=64)
    name = models.TextField()
    type = models.CharField(max_length=64, default=OrderType.DEFAULT)
    category = models.TextField(blank=True)
    description = models.TextField(blank=True)
    rate = models.DecimalField(**RATE, help_text="Per 1000, in the provider's currency.")
    min = models.PositiveIntegerField()
    max = models.PositiveIntegerField()
    refill = models.BooleanField(default=False)
    cancel = models.BooleanField(default=False)
    dripfeed = models.BooleanField(default=False)
    raw = models.JSONField(default=dict, help_text="Every field as received.")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a sync stopped finding it upstream."
    )

    objects = _SignallingManager()

    class Meta:
        ordering = ["provider", "category", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "service_id"], name="upstream_service_unique_per_provider"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} #{self.service_id} {self.name}"


class CatalogChange(models.Model):
    """What a sync found changed upstream: new, price, limits, removed, back."""

    class Kind(models.TextChoices):
        NEW = "new", "New"
        PRICE = "price", "Price changed"
        LIMITS = "limits", "Min/max changed"
        DETAILS = "details", "Name, type or flags changed"
        REMOVED = "removed", "Removed upstream"
        RESTORED = "restored", "Back upstream"

    provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE)
    upstream_service = models.ForeignKey(UpstreamService, on_delete=models.CASCADE)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    old = models.JSONField(default=dict, blank=True)
    new = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.upstream_service}"


class Category(models.Model):
    name = models.CharField(max_length=200, unique=True)
    sort_order = models.IntegerField(default=0)
    markup_percent = models.DecimalField(**PERCENT, null=True, blank=True)
    is_enabled = models.BooleanField(default=True)

    objects = _SignallingManager()

    class Meta:
        ordering = ["sort_order", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    """A service the panel sells, with its own id, name and retail rate. It maps to an upstream
    service (or to none: a manual service the admin fulfils by hand)."""

    class Pricing(models.TextChoices):
        MARKUP = "markup", "Follows the upstream rate with the markup rules"
        FIXED = "fixed", "Fixed retail rate, set by hand (sync never changes it)"

    class HoldPolicy(models.TextChoices):
        KEEP = "keep", "Keep selling at the old price"
        PAUSE = "pause", "Pause the service"

    class DisabledCause(models.TextChoices):
        # Who disabled the service decides who may enable it again: a sync re-enables only what
        # a sync disabled (an upstream service back after removal, a held price approved).
        NONE = "", "—"
        MANUAL = "manual", "Disabled by an admin"
        UPSTREAM_REMOVED = "upstream_removed", "Removed upstream"
        UPSTREAM_CHANGED = "upstream_changed", "Changed upstream (type)"
        PRICE_HOLD = "price_hold", "Upstream price rise held"
        BELOW_COST = "below_cost", "Retail rate below cost"

    name = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="services")
    type = models.CharField(
        max_length=64, choices=[(t.value, t.value) for t in OrderType], default=OrderType.DEFAULT
    )
    min = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    max = models.PositiveIntegerField(default=1)
    refill = models.BooleanField(default=False)
    refill_days = models.PositiveIntegerField(
        default=30, help_text="Days after completion during which a refill can be asked."
    )
    cancel = models.BooleanField(default=False)
    dripfeed = models.BooleanField(default=False)
    upstream = models.ForeignKey(
        UpstreamService,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="panel_services",
        help_text="Empty for a manual service.",
    )
    pricing = models.CharField(max_length=8, choices=Pricing.choices, default=Pricing.MARKUP)
    markup_percent = models.DecimalField(
        **PERCENT,
        null=True,
        blank=True,
        help_text="Overrides the category's and provider's markup.",
    )
    rate = models.DecimalField(
        **RATE, help_text="Retail price per 1000 (per package for packages)."
    )
    allow_below_cost = models.BooleanField(default=False)
    allow_unlimited_subscriptions = models.BooleanField(
        default=False,
        help_text="Accept subscriptions without `posts` (the charge is then the "
        "reserve for `subscription_reserve_posts` posts).",
    )
    subscription_reserve_posts = models.PositiveIntegerField(default=0)
    # An upstream rise above the hold threshold waits here for an admin's approval.
    held_rate = models.DecimalField(**RATE, null=True, blank=True, editable=False)
    held_cost = models.DecimalField(**RATE, null=True, blank=True, editable=False)
    hold_policy = models.CharField(
        max_length=8, choices=HoldPolicy.choices, default=HoldPolicy.KEEP
    )
    # The cost (panel currency, per 1000) the current retail rate was computed from: the base a
    # price rise is measured against.
    priced_cost = models.DecimalField(**RATE, null=True, blank=True, editable=False)
    is_enabled = models.BooleanField(default=True)
    disabled_cause = models.CharField(
        max_length=20, choices=DisabledCause.choices, default=DisabledCause.NONE, blank=True
    )
    disabled_reason = models.CharField(max_length=300, blank=True)
    sort_order = models.IntegerField(default=0)
    # The median time from order to completion of the service's last AVERAGE_TIME_LAST completed
    # orders on this panel; None below AVERAGE_TIME_MIN_ORDERS of them. Stored, not computed per
    # page: orders.services.averages refreshes it from a beat task (docs/customer-panel.md).
    average_time = models.DurationField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = _SignallingManager()

    class Meta:
        ordering = ["category__sort_order", "sort_order", "id"]
        indexes = [models.Index(fields=["is_enabled", "category"], name="service_enabled_cat")]
        constraints = [
            models.CheckConstraint(condition=Q(max__gte=F("min")), name="service_max_ge_min"),
            models.CheckConstraint(condition=Q(rate__gte=0), name="service_rate_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.pk} — {self.name}"


class FavouriteService(models.Model):
    """A service a customer starred on the price list (its *Favourites* filter)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourite_services"
    )
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "service"], name="favourite_service_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} ★ {self.service_id}"


class ServiceBackup(models.Model):
    """Another upstream service an order falls over to when the primary definitely refuses."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="backups")
    upstream = models.ForeignKey(UpstreamService, on_delete=models.CASCADE, related_name="+")
    priority = models.PositiveSmallIntegerField(default=1, help_text="Lower is tried first.")

    class Meta:
        ordering = ["service", "priority"]
        constraints = [
            models.UniqueConstraint(fields=["service", "upstream"], name="backup_unique")
        ]

    def __str__(self) -> str:
        return f"{self.service_id} → {self.upstream} (#{self.priority})"


class PriceChange(models.Model):
    """Every change of a retail rate: who (none for a sync), when, old and new."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="price_changes")
    old_rate = models.DecimalField(**RATE, null=True)
    new_rate = models.DecimalField(**RATE)
    reason = models.CharField(max_length=300, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.service_id}: {self.old_rate} → {self.new_rate}"


class CustomerDiscount(models.Model):
    """A percentage off every retail rate for one customer."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="discount"
    )
    percent = models.DecimalField(
        **PERCENT, validators=[MinValueValidator(Decimal(0))], help_text="e.g. 10 for 10% off"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__gte=0, percent__lt=100), name="discount_0_to_100"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.percent}%"


class CustomerRate(models.Model):
    """A custom retail rate of one service for one customer; wins over any discount."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="custom_rates"
    )
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="custom_rates")
    rate = models.DecimalField(**RATE, validators=[MinValueValidator(Decimal(0))])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "service"], name="customer_rate_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.service_id}: {self.rate}"


class CatalogSyncRun(models.Model):
    """One "Sync the catalog now" asked for in admin: queued by catalog_sync_request, run by a
    worker (catalog.tasks.catalog_sync_run_task), its progress and outcome kept for the admin."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    provider = models.ForeignKey(
        "providers.Provider", on_delete=models.CASCADE, related_name="catalog_sync_runs"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    allow_mass_removal = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.TextField(blank=True, help_text="What the sync reported so far.")
    summary = models.TextField(blank=True, help_text="What the sync did (when done).")
    error = models.TextField(blank=True, help_text="Why it failed; nothing was changed then.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One run at a time per provider; a stale one is closed before a new one is queued.
            models.UniqueConstraint(
                fields=["provider"],
                condition=Q(status__in=["queued", "running"]),
                name="catalog_sync_run_one_active_per_provider",
            )
        ]

    def __str__(self) -> str:
        return f"catalog sync #{self.pk} of {self.provider} ({self.status})"

    @property
    def outcome(self) -> str:
        """One line for the admin: what the run did, why it failed, or how far it got."""
        if self.status == self.Status.DONE:
            return self.summary
        if self.status == self.Status.FAILED:
            return f"Sync failed, nothing changed: {self.error}"
        last = self.progress.rsplit("\n", 1)[-1]
        return f"{self.get_status_display()}: {last}" if last else self.get_status_display()
