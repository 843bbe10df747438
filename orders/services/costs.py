"""What an order costs us upstream: shared by creation (the snapshot) and placement (a
fail-over re-prices the order at the backup's cost)."""

from decimal import Decimal

from catalog.models import Service, UpstreamService
from catalog.order_types import OrderType
from catalog.pricing import charge_for, quantize_money
from catalog.selectors import service_cost

# Types charged per package: `quantity` is 1 and the rate is the price of the whole package.
PACKAGE_TYPES = frozenset({OrderType.PACKAGE, OrderType.CUSTOM_COMMENTS_PACKAGE})


def order_cost(
    *, service: Service, upstream: UpstreamService | None, priced_units: int
) -> Decimal | None:
    """What the provider will charge us for `priced_units` at its rate per 1000 (per package
    for packages, where `priced_units` is ignored), or None for a manual service."""
    cost_rate = service_cost(service, upstream=upstream) if upstream else None
    if cost_rate is None:
        return None
    if service.type in PACKAGE_TYPES:
        return quantize_money(cost_rate)
    return charge_for(cost_rate, priced_units)
