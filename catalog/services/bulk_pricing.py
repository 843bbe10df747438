"""Bulk pricing (the catalog's side of the admin page /admin/pricing/bulk/, whose form and view
are in catalog/admin_views.py): plan new retail rates for a selection of services, show old and
new prices and margins, then apply the plan.

The plan predicts each rate with catalog.pricing.decide_price (markup, the below-cost floor,
holds of big cost rises) and the apply goes through catalog.services (catalog_apply_markup,
service_set_price), which write one PriceChange (who, when, old, new) per changed rate. This
module adds the preview, the check that nothing moved since it, and one audit-log row per bulk
change.

A plan is computed twice: once for the preview, once when the admin applies it. Its fingerprint
(every service id with its old and new rate) travels with the form, so that a price that moved
between the preview and the click (a sync, another admin) stops the apply instead of writing
rates nobody looked at.
"""

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from accounts.audit import audit_record
from accounts.models import AdminAuditLog, User
from catalog.models import CatalogSettings, Service
from catalog.pricing import (
    decide_price,
    margin,
    margin_percent,
    markup_percent_error,
    quantize_rate,
)
from catalog.selectors import service_cost
from catalog.services.common import CatalogError
from catalog.services.prices import service_set_price
from catalog.services.repricing import catalog_apply_markup

MARKUP = "markup"
FIXED = "fixed"
# A selection larger than this is refused: reprice it in parts (by provider or category).
MAX_SERVICES = 2000


class BulkPricingError(Exception):
    """The plan cannot be applied as shown; nothing was written."""


@dataclass(frozen=True)
class PlannedPrice:
    service: Service
    cost: Decimal | None  # per 1000 in the panel's currency; None for a manual service
    old_rate: Decimal
    new_rate: Decimal | None  # None: this service cannot take the change (see skip_reason)
    skip_reason: str = ""
    note: str = ""  # the catalog's reason for a held rise or a pause

    @property
    def applies(self) -> bool:
        return self.new_rate is not None

    @property
    def changes(self) -> bool:
        return self.new_rate is not None and self.new_rate != self.old_rate

    @property
    def old_margin(self) -> Decimal | None:
        return None if self.cost is None else margin(self.old_rate, self.cost)

    @property
    def new_margin(self) -> Decimal | None:
        if self.cost is None or self.new_rate is None:
            return None
        return margin(self.new_rate, self.cost)

    @property
    def old_margin_percent(self) -> Decimal | None:
        return None if self.cost is None else margin_percent(self.old_rate, self.cost)

    @property
    def new_margin_percent(self) -> Decimal | None:
        if self.cost is None or self.new_rate is None:
            return None
        return margin_percent(self.new_rate, self.cost)

    @property
    def below_cost(self) -> bool:
        return self.new_rate is not None and self.cost is not None and self.new_rate < self.cost


@dataclass(frozen=True)
class PricingPlan:
    mode: str
    value: Decimal
    rows: list[PlannedPrice]

    @property
    def applying(self) -> list[PlannedPrice]:
        """Every service the change is written to (a markup is set even where the rate stays)."""
        return [row for row in self.rows if row.applies]

    @property
    def changing(self) -> list[PlannedPrice]:
        return [row for row in self.rows if row.changes]

    @property
    def fingerprint(self) -> str:
        text = "|".join(
            f"{r.service.pk}:{r.old_rate}:{r.new_rate}:{r.service.pricing}:{r.service.markup_percent}"
            for r in self.applying
        )
        return hashlib.sha256(f"{self.mode}:{self.value}:{text}".encode()).hexdigest()[:32]


def pricing_plan_build(*, services: QuerySet[Service], mode: str, value: Decimal) -> PricingPlan:
    """New rates for `services`: `mode` MARKUP puts `value` percent on each one's cost (the
    catalog's rules: never below cost unless allowed, big cost rises held); FIXED sets the
    retail rate to `value` (refused below cost unless allowed). Writes nothing."""
    if mode not in (MARKUP, FIXED):
        raise BulkPricingError(f"Unknown pricing mode {mode!r}.")
    if mode == MARKUP and (error := markup_percent_error(value)):
        raise BulkPricingError(error)  # the catalog's own rule: it would refuse it at apply time
    if mode == FIXED and (not value.is_finite() or value < 0):
        raise BulkPricingError("A retail rate cannot be negative.")
    selected = list(services[: MAX_SERVICES + 1])
    if len(selected) > MAX_SERVICES:
        raise BulkPricingError(
            f"More than {MAX_SERVICES} services match; narrow the selection by provider or category."
        )
    catalog_settings = CatalogSettings.load()
    plan = _plan_markup if mode == MARKUP else _plan_fixed
    return PricingPlan(mode, value, [plan(s, value, catalog_settings) for s in selected])


def _plan_markup(
    service: Service, value: Decimal, catalog_settings: CatalogSettings
) -> PlannedPrice:
    cost = service_cost(service)
    if cost is None:
        return PlannedPrice(service, None, service.rate, None, "manual service: no cost")
    decision = decide_price(
        fixed=False,
        current_rate=service.rate,
        priced_cost=service.priced_cost,
        cost=cost,
        markup_percent=value,
        hold_percent=catalog_settings.price_rise_hold_percent,
        pause_on_hold=service.hold_policy == Service.HoldPolicy.PAUSE,
        allow_below_cost=service.allow_below_cost,
        rounding=catalog_settings.rounding,
    )
    return PlannedPrice(service, cost, service.rate, decision.rate, note=decision.reason)


def _plan_fixed(
    service: Service, value: Decimal, catalog_settings: CatalogSettings
) -> PlannedPrice:
    cost = service_cost(service)
    rate = quantize_rate(value)
    if cost is not None and rate < cost and not service.allow_below_cost:
        return PlannedPrice(
            service, cost, service.rate, None, "below cost (not allowed for this service)"
        )
    return PlannedPrice(service, cost, service.rate, rate)


def pricing_plan_apply(
    *, plan: PricingPlan, expected_fingerprint: str, actor: User, reason: str = ""
) -> int:
    """Write the plan through the catalog's services, which record every rate change as a
    PriceChange (who, when, old, new); one audit row sums it up. Returns how many rates changed.

    Raises BulkPricingError, writing nothing, when the plan no longer matches the preview the
    admin saw (`expected_fingerprint`), a service's price moved meanwhile, or the catalog
    priced a service otherwise than the preview said.
    """
    if plan.fingerprint != expected_fingerprint:
        raise BulkPricingError("Prices changed since the preview; review the new preview.")
    rows = plan.applying
    reason = reason.strip() or _default_reason(plan)
    with transaction.atomic():
        # pk order, like the catalog sync's lock, so that the two cannot deadlock.
        ids = [r.service.pk for r in rows]
        locked = {
            s.pk: s for s in Service.objects.select_for_update().filter(pk__in=ids).order_by("pk")
        }
        for row in rows:
            service = locked.get(row.service.pk)
            if service is None or service.rate != row.old_rate:
                raise BulkPricingError(
                    f"The rate of service {row.service.pk} changed meanwhile; preview again."
                )
        try:
            _write(plan, rows, actor, reason)
        except (CatalogError, ValidationError) as exc:
            raise BulkPricingError(f"The catalog refused the change: {exc}") from exc
        now_rates = dict(
            Service.objects.filter(pk__in=[r.service.pk for r in rows]).values_list("pk", "rate")
        )
        for row in rows:
            if now_rates[row.service.pk] != row.new_rate:
                raise BulkPricingError(
                    f"Service {row.service.pk} would sell at {now_rates[row.service.pk]}, not "
                    f"{row.new_rate} as previewed; preview again."
                )
        changing = plan.changing
        audit_record(
            actor=actor,
            action="bulk_reprice",
            summary=f"{reason}: {len(rows)} services set, {len(changing)} rates changed.",
            before={str(r.service.pk): r.old_rate for r in changing},
            after={str(r.service.pk): r.new_rate for r in changing},
            area=AdminAuditLog.Area.PRICE,
        )
    return len(changing)


def _write(plan: PricingPlan, rows: list[PlannedPrice], actor: User, reason: str) -> None:
    if plan.mode == MARKUP:
        # The markup is kept on each service, so that the next sync prices it the same way.
        catalog_apply_markup(
            services=[r.service for r in rows], markup_percent=plan.value, changed_by=actor
        )
        return
    for row in rows:
        if row.new_rate is not None:  # always: `rows` are the plan's applying rows
            service_set_price(
                service=row.service, rate=row.new_rate, changed_by=actor, reason=reason
            )


def _default_reason(plan: PricingPlan) -> str:
    if plan.mode == MARKUP:
        return f"Bulk markup {plan.value}%"
    return f"Bulk fixed rate {plan.value}"
