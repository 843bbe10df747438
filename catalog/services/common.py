"""What every catalog service module shares: the errors, the batch size, and taking a panel
service off sale or putting it back (the one place that knows which causes a price lifts)."""

from decimal import Decimal

from catalog.models import Service
from catalog.pricing import markup_percent_error

BATCH = 1000
Cause = Service.DisabledCause
# Causes the pricing rules set and lift themselves: a new price or an approval ends them.
PRICE_PAUSES = (Cause.PRICE_HOLD, Cause.BELOW_COST)


class CatalogError(Exception):
    """Bad input for a catalog operation; nothing was written. The message says what to fix."""


class CatalogSyncError(Exception):
    """A sync failed; nothing was written and provider.last_sync_error says why."""


def _check_markup(markup_percent: Decimal | None) -> None:
    if markup_percent is not None and (error := markup_percent_error(markup_percent)):
        raise CatalogError(error)


def _disable(service: Service, cause: str, reason: str) -> None:
    service.is_enabled, service.disabled_cause, service.disabled_reason = False, cause, reason[:300]


def _enable(service: Service) -> None:
    service.is_enabled, service.disabled_cause, service.disabled_reason = True, Cause.NONE, ""


def _enable_after_price_pause(service: Service) -> None:
    """Put `service` back on sale if a price hold or a below-cost pause took it off; a service
    disabled for any other reason (an admin, the upstream) stays off. Does not save."""
    if not service.is_enabled and service.disabled_cause in PRICE_PAUSES:
        _enable(service)


def _sells_or_price_paused(service: Service) -> bool:
    # Such a service may be (re-)disabled with a new cause; another cause is left as it is.
    return service.is_enabled or service.disabled_cause in PRICE_PAUSES
