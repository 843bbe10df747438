"""Repricing: which markup applies, what a service should sell at, and writing that to the panel
services (after a sync, or when an admin changes a markup, an exchange rate or a hold rule)."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from catalog.models import CatalogSettings, PriceChange, Service
from catalog.pricing import PriceDecision, decide_price
from catalog.selectors import service_cost
from catalog.services.common import (
    BATCH,
    Cause,
    _check_markup,
    _disable,
    _enable,
    _enable_after_price_pause,
    _sells_or_price_paused,
)

SERVICE_SYNC_FIELDS = (
    "rate",
    "priced_cost",
    "held_rate",
    "held_cost",
    "is_enabled",
    "disabled_cause",
    "disabled_reason",
    "type",
    "min",
    "max",
    "refill",
    "cancel",
    "dripfeed",
    "updated_at",
)


class UpstreamChanges(Protocol):
    """What a sync tells the repricing about the upstream rows it just wrote (sync's _Diff)."""

    restored: set[str]
    type_changed: set[str]


class RefreshTally(Protocol):
    """Where the repricing counts what it did (sync's SyncReport)."""

    repriced: int
    held: int
    disabled: int
    enabled: int


def _markup(service: Service, settings: CatalogSettings) -> Decimal:
    """Service, then category, then provider, then the global default."""
    for value in (
        service.markup_percent,
        service.category.markup_percent,
        service.upstream.provider.markup_percent if service.upstream else None,
    ):
        if value is not None:
            return value
    return settings.default_markup_percent


def service_price_decision(service: Service, settings: CatalogSettings) -> PriceDecision | None:
    """What the pricing rules say this service should sell at now (None: manual service)."""
    cost = service_cost(service)
    if cost is None:
        return None
    return decide_price(
        fixed=service.pricing == Service.Pricing.FIXED,
        current_rate=service.rate,
        priced_cost=service.priced_cost,
        cost=cost,
        markup_percent=_markup(service, settings),
        hold_percent=settings.price_rise_hold_percent,
        pause_on_hold=service.hold_policy == Service.HoldPolicy.PAUSE,
        allow_below_cost=service.allow_below_cost,
        rounding=settings.rounding,
    )


def _snapshot(service: Service) -> tuple[object, ...]:
    return tuple(getattr(service, f) for f in SERVICE_SYNC_FIELDS if f != "updated_at")


def _follow_upstream(service: Service, now: datetime, diff: UpstreamChanges | None) -> bool:
    """Limits, flags and removal; False when the service cannot sell (removed/type changed)."""
    up = service.upstream
    assert up is not None
    if up.removed_at is not None:
        if _sells_or_price_paused(service):
            _disable(
                service,
                Cause.UPSTREAM_REMOVED,
                f"Upstream service #{up.service_id} disappeared from {up.provider.name} "
                f"(sync of {now:%Y-%m-%d %H:%M} UTC).",
            )
        return False
    if diff and up.service_id in diff.restored and service.disabled_cause == Cause.UPSTREAM_REMOVED:
        _enable(service)
    if diff and up.service_id in diff.type_changed and service.type != up.type:
        _disable(
            service,
            Cause.UPSTREAM_CHANGED,
            f"The upstream type changed to {up.type!r}; check the service and enable it again.",
        )
    # Never accept what upstream refuses: limits narrow into the upstream range, flags the
    # upstream dropped are dropped (flags it adds are left for the admin to switch on).
    lo, hi = max(service.min, up.min, 1), min(service.max, up.max)
    if lo > hi:
        lo, hi = max(up.min, 1), max(up.max, up.min, 1)
    service.min, service.max = lo, hi
    service.refill = service.refill and up.refill
    service.cancel = service.cancel and up.cancel
    service.dripfeed = service.dripfeed and up.dripfeed
    return service.disabled_cause not in (Cause.UPSTREAM_REMOVED, Cause.UPSTREAM_CHANGED)


def _apply_decision(
    service: Service,
    decision: PriceDecision,
    cost: Decimal,
    reason: str,
    prices: list[PriceChange],
    changed_by: User | None = None,
) -> None:
    if decision.rate != service.rate:
        prices.append(
            PriceChange(
                service=service,
                old_rate=service.rate,
                new_rate=decision.rate,
                reason=reason[:300],
                changed_by=changed_by,
            )
        )
        service.rate = decision.rate
    service.held_rate, service.held_cost = decision.held_rate, decision.held_cost
    if not decision.is_held:
        service.priced_cost = cost
    if not decision.pause:
        _enable_after_price_pause(service)
    elif _sells_or_price_paused(service):
        _disable(service, str(decision.pause), decision.reason)


def _refresh_services(
    services: Iterable[Service],
    *,
    settings: CatalogSettings,
    now: datetime,
    diff: UpstreamChanges | None = None,
    report: RefreshTally | None = None,
    changed_by: User | None = None,
    reason: str = "sync",
) -> int:
    """Apply the upstream state and the pricing rules to `services`; write the changed ones with
    one bulk_update and every rate change as a PriceChange. Returns how many changed."""
    changed: list[Service] = []
    prices: list[PriceChange] = []
    for service in services:
        if service.upstream is None:
            continue
        before, was_enabled, rate_before = _snapshot(service), service.is_enabled, service.rate
        if _follow_upstream(service, now, diff):
            decision = service_price_decision(service, settings)
            assert decision is not None
            cost = service_cost(service)
            assert cost is not None
            _apply_decision(
                service,
                decision,
                cost,
                f"{reason}: cost {cost.normalize():f}, markup {_markup(service, settings)}%",
                prices,
                changed_by,
            )
        if _snapshot(service) == before:
            continue
        service.updated_at = now
        changed.append(service)
        if report is not None:
            report.repriced += service.rate != rate_before
            report.held += service.held_rate is not None
            report.disabled += was_enabled and not service.is_enabled
            report.enabled += not was_enabled and service.is_enabled
    Service.objects.bulk_update(changed, list(SERVICE_SYNC_FIELDS), batch_size=500)
    PriceChange.objects.bulk_create(prices, batch_size=BATCH)
    return len(changed)


def catalog_reprice_services(
    *, services: Iterable[Service] | None = None, changed_by: User | None = None
) -> int:
    """Re-apply the markup rules (after a markup, exchange rate or hold threshold changed in
    admin) to `services` (default: every service mapped to an upstream). Returns the number of
    services that changed."""
    qs = Service.objects.filter(upstream__isnull=False).select_related(
        "category", "upstream", "upstream__provider"
    )
    if isinstance(services, QuerySet):
        qs = qs.filter(pk__in=services.values("pk"))
    elif services is not None:
        qs = qs.filter(pk__in=[s.pk for s in services])
    with transaction.atomic():
        return _refresh_services(
            # pk order, like the sync's lock: two lockers of overlapping sets cannot deadlock.
            list(qs.select_for_update(of=("self",)).order_by("pk")),
            settings=CatalogSettings.load(),
            now=timezone.now(),
            changed_by=changed_by,
            reason="markup rules changed",
        )


def catalog_apply_markup(
    *, services: Iterable[Service], markup_percent: Decimal | None, changed_by: User | None = None
) -> int:
    """Bulk: make `services` follow their cost with `markup_percent` (None: inherit from the
    category/provider/global) and re-price them now. Returns how many changed."""
    _check_markup(markup_percent)
    ids = [s.pk for s in services]
    Service.objects.filter(pk__in=ids).update(
        pricing=Service.Pricing.MARKUP, markup_percent=markup_percent
    )
    return catalog_reprice_services(services=[Service(pk=i) for i in ids], changed_by=changed_by)
