"""Prices and availability set by hand: a fixed retail rate, approving a held upstream rise,
disabling or enabling a service (with the reasons a service must not go on sale), and saving a
service created or changed in admin."""

import logging
from collections.abc import Collection
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from catalog.models import PriceChange, Service
from catalog.pricing import quantize_rate
from catalog.selectors import service_cost
from catalog.services.common import (
    CatalogError,
    Cause,
    _disable,
    _enable,
    _enable_after_price_pause,
)
from catalog.services.repricing import catalog_reprice_services

logger = logging.getLogger(__name__)


def service_approve_held_price(*, service: Service, approved_by: User | None = None) -> Service:
    """Accept the held upstream rise: sell at held_rate from now on and re-enable the service if
    the hold paused it. CatalogError when nothing is held."""
    with transaction.atomic():
        service = Service.objects.select_for_update().get(pk=service.pk)
        if service.held_rate is None:
            raise CatalogError(f"Service {service.pk} has no held price to approve.")
        PriceChange.objects.create(
            service=service,
            old_rate=service.rate,
            new_rate=service.held_rate,
            reason="held upstream rise approved",
            changed_by=approved_by,
        )
        service.rate, service.priced_cost = service.held_rate, service.held_cost
        service.held_rate = service.held_cost = None
        _enable_after_price_pause(service)
        service.save()
    logger.info("service %s: held price %s approved by %s", service.pk, service.rate, approved_by)
    return service


def service_set_price(
    *, service: Service, rate: Decimal, changed_by: User | None = None, reason: str = "set by hand"
) -> Service:
    """Set a fixed retail rate by hand (Service.pricing becomes FIXED: syncs never change it).

    Raises ValidationError for a negative rate, or one below cost unless the service allows it.
    """
    rate = quantize_rate(Decimal(rate))
    if not rate.is_finite() or rate < 0:
        raise ValidationError({"rate": "The rate must be a positive amount."})
    with transaction.atomic():
        service = (
            Service.objects.select_for_update(of=("self",))
            .select_related("upstream__provider")
            .get(pk=service.pk)
        )
        cost = service_cost(service)
        if cost is not None and rate < cost and not service.allow_below_cost:
            raise ValidationError(
                {
                    "rate": f"{rate.normalize():f} is below the cost {cost.normalize():f}; allow "
                    "selling below cost for this service first."
                }
            )
        if rate != service.rate:
            PriceChange.objects.create(
                service=service,
                old_rate=service.rate,
                new_rate=rate,
                reason=reason[:300],
                changed_by=changed_by,
            )
        service.rate, service.pricing = rate, Service.Pricing.FIXED
        service.held_rate = service.held_cost = None
        _enable_after_price_pause(service)
        service.save()
    return service


def service_disable(*, service: Service, reason: str, cause: str = Cause.MANUAL) -> Service:
    """Disable a service, saying why (shown in admin). A sync re-enables only what a sync
    disabled; with the default cause (an admin, or the orders app after an upstream "service
    disabled") it stays off until someone enables it."""
    _disable(service, cause, reason or "Disabled by an admin.")
    service.save(update_fields=["is_enabled", "disabled_cause", "disabled_reason", "updated_at"])
    return service


def service_enable_refusal(service: Service) -> str | None:
    """Why `service` must not go on sale now, or None: orders could not be served (its upstream
    service is gone, its provider disabled) or would lose money (below cost without
    `allow_below_cost`)."""
    upstream = service.upstream
    if upstream is None:
        return None
    if upstream.removed_at is not None:
        return f"{service}: its upstream service was removed at the provider."
    if not upstream.provider.is_enabled:
        return f"{service}: its provider {upstream.provider} is disabled."
    cost = service_cost(service)
    if cost is not None and service.rate < cost and not service.allow_below_cost:
        return (
            f"{service}: the rate {service.rate} is below the cost {cost}; raise the price "
            "or allow selling below cost first."
        )
    return None


def service_enable(*, service: Service) -> Service:
    """Enable a service by hand (clears why it was disabled). Raises CatalogError, changing
    nothing, when service_enable_refusal() gives a reason."""
    if refusal := service_enable_refusal(service):
        raise CatalogError(refusal)
    _enable(service)
    service.save(update_fields=["is_enabled", "disabled_cause", "disabled_reason", "updated_at"])
    return service


# What a change made in admin must re-price a markup-priced service for (the rate aside).
MARKUP_INPUTS = frozenset({"pricing", "markup_percent", "allow_below_cost", "upstream", "category"})


def service_create_by_staff(*, service: Service, staff: User) -> Service:
    """Save a service created in admin (its fields validated by the admin form), record its first
    rate as a PriceChange, and price it by the markup rules at once when it follows an upstream
    service. Returns `service` as saved; a re-price is in the database (refresh_from_db)."""
    with transaction.atomic():
        service.save()
        PriceChange.objects.create(
            service=service,
            old_rate=None,
            new_rate=service.rate,
            reason="created in admin",
            changed_by=staff,
        )
        if service.upstream_id and service.pricing == Service.Pricing.MARKUP:
            catalog_reprice_services(services=[service], changed_by=staff)
    return service


def service_update_by_staff(
    *, service: Service, changed_fields: Collection[str], staff: User
) -> Service:
    """Save a service changed in admin (`changed_fields`: the form's changed_data).

    A new rate goes through service_set_price (a fixed price, with its PriceChange and the
    below-cost check); a switch of `is_enabled` sets or clears the manual disable cause; a
    changed markup input re-prices a markup-priced service. When the new rate is refused, the
    other changes are saved and the ValidationError is raised. Returns `service` as saved; a
    new rate or a re-price is in the database (refresh_from_db).
    """
    new_rate = service.rate
    rate_changed = "rate" in changed_fields
    with transaction.atomic():
        if rate_changed:  # the rate is written by service_set_price below, or not at all
            service.rate = Service.objects.values_list("rate", flat=True).get(pk=service.pk)
        if "is_enabled" in changed_fields:
            if service.is_enabled:
                _enable(service)
            else:
                _disable(service, Cause.MANUAL, service.disabled_reason or "Disabled by an admin.")
        service.save()
        follows_markup = service.pricing == Service.Pricing.MARKUP
        if not rate_changed and follows_markup and MARKUP_INPUTS.intersection(changed_fields):
            catalog_reprice_services(services=[service], changed_by=staff)
    if rate_changed:
        service_set_price(service=service, rate=new_rate, changed_by=staff)
    return service
