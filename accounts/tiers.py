"""Spending tiers: staff define tiers by total spent (Bronze from 0, Silver from 500, Gold from
2,000), each with a discount in percent off the retail rates (docs/growth.md, Tiers).

A customer's total spent is Wallet.total_spent: minus the sum of their ledger's charge and
refund entries, kept by accounts.services in the same locked UPDATE that changes the balance,
so it follows every charge and refund at once and reading it costs nothing more than the
wallet row. The tier is the one with the highest `min_spent` at or below it. The price rule
itself (custom rate first, the better of the customer's own discount and the tier's, never below
cost unless the tier allows it) is catalog.pricing.CustomerPricing, applied by catalog.selectors in
one place for the price list, the order form, new orders and the API.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Expression, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import Tier, User, Wallet
from catalog.pricing import HUNDRED, ZERO

# The customer's pricing terms (own discount and tier, catalog.selectors.PriceTerms) are read
# once per request: memoised on the User object, which lives as long as the request (or the API
# call), and forgotten when a ledger write through that object changes the total spent.
_TERMS_MEMO = "_panel_price_terms"


def price_terms_memo(user: User) -> object | None:
    return getattr(user, _TERMS_MEMO, None)


def price_terms_remember(user: User, terms: object) -> None:
    setattr(user, _TERMS_MEMO, terms)


def price_terms_forget(user: User) -> None:
    if hasattr(user, _TERMS_MEMO):
        delattr(user, _TERMS_MEMO)


def tier_list() -> list[Tier]:
    """Every tier, lowest first."""
    return list(Tier.objects.order_by("min_spent"))


def user_total_spent(*, user: User) -> Decimal:
    """What the customer spent on orders, net of refunds (0 without a wallet)."""
    spent = Wallet.objects.filter(user=user).values_list("total_spent", flat=True).first()
    return spent if spent is not None else ZERO


def tier_for_spent(spent: Decimal, tiers: list[Tier]) -> Tier | None:
    """The tier reached with `spent` among `tiers`: the highest threshold at or below it."""
    reached = [t for t in tiers if t.min_spent <= spent]
    return max(reached, key=lambda t: t.min_spent) if reached else None


def _tiers_reached(spent: Expression | F | OuterRef) -> QuerySet[Tier]:
    return Tier.objects.filter(min_spent__lte=spent).order_by("-min_spent")


def tier_annotations(*, spent: Expression | OuterRef) -> dict[str, Subquery]:
    """The tier's discount and below-cost switch for a query over users, as subqueries on the
    total spent `spent` refers to: catalog.selectors reads them with the customer's own discount
    in one query (no tier: both NULL)."""
    reached = _tiers_reached(spent)
    return {
        "tier_percent": Subquery(reached.values("discount_percent")[:1]),
        "tier_below_cost": Subquery(reached.values("allow_below_cost")[:1]),
    }


def total_spent_expression() -> Coalesce:
    """A user's total spent in a query over users (0 without a wallet)."""
    return Coalesce(F("wallet__total_spent"), Value(ZERO))


@dataclass(frozen=True)
class TierProgress:
    """What the account page says: the tier, the next one and how far it is."""

    spent: Decimal
    tier: Tier | None
    next_tier: Tier | None

    @property
    def remaining(self) -> Decimal | None:
        """Still to spend to reach the next tier (None at the top)."""
        if self.next_tier is None:
            return None
        return max(self.next_tier.min_spent - self.spent, ZERO)

    @property
    def percent(self) -> int:
        """How far from this tier's threshold (or 0) to the next one, 0-100."""
        if self.next_tier is None:
            return 100
        start = self.tier.min_spent if self.tier is not None else ZERO
        span = self.next_tier.min_spent - start
        if span <= 0:
            return 100
        done = (self.spent - start) * HUNDRED / span
        return int(min(max(done, Decimal(0)), HUNDRED))


def tier_progress(*, user: User) -> TierProgress:
    """The customer's tier and the progress to the next one (two small queries)."""
    spent = user_total_spent(user=user)
    tiers = tier_list()
    tier = tier_for_spent(spent, tiers)
    above = [t for t in tiers if t.min_spent > spent]
    return TierProgress(spent=spent, tier=tier, next_tier=above[0] if above else None)


def tier_customer_counts() -> dict[int, int]:
    """How many customers each tier holds now (the admin's list), in one query."""
    tiers = tier_list()
    buckets = {}
    for tier, above in zip(tiers, [*tiers[1:], None], strict=True):
        within = Q(total_spent__gte=tier.min_spent)
        if above is not None:
            within &= Q(total_spent__lt=above.min_spent)
        buckets[f"t{tier.pk}"] = Count("pk", filter=within)
    counts = Wallet.objects.aggregate(**buckets) if buckets else {}
    return {tier.pk: counts[f"t{tier.pk}"] for tier in tiers}
