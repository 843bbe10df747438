"""Prices and availability set by hand: a fixed retail rate, approving a held upstream rise, and
disabling or enabling a service (with the reasons a service must not go on sale)."""

import logging
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
