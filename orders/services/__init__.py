"""Every write to orders, refills and cancels (see docs/orders.md).

The package splits by subdomain; callers import the names from here:
`from orders.services import order_create, OrderError`.
"""

from orders.services.admin_actions import (
    order_cancel_with_refund,
    order_resend,
    order_set_status_by_admin,
    order_set_upstream_id,
)
from orders.services.averages import (
    service_average_times_refresh,
    service_average_times_refresh_recent,
)
from orders.services.common import OrderConflict, OrderError
from orders.services.costs import order_cost
from orders.services.create import Quote, order_create, order_quote, order_replay
from orders.services.mass import MassLine, mass_order_split, order_create_many
from orders.services.placement import order_submit, upstream_params
from orders.services.polling import (
    PollResult,
    StatusOutcome,
    next_poll_at,
    order_apply_upstream_status,
    orders_make_due,
    provider_poll_orders,
)
from orders.services.requests import (
    order_cancel_request,
    order_refill_request,
    order_release_stuck_requests,
    provider_poll_cancels,
    provider_poll_refills,
    provider_send_cancels,
    provider_send_refills,
)
from orders.services.status import order_set_status, refund_amount
from orders.services.sweeps import ProviderSweep, orders_requeue, provider_sweep
from orders.services.webhooks import (
    EndpointSaved,
    webhook_endpoint_remove,
    webhook_endpoint_set,
    webhook_event_deliver,
    webhook_event_retry,
    webhook_events_prune,
    webhook_secret_rotate,
    webhook_send_test,
    webhooks_retry_due,
)

__all__ = [
    "EndpointSaved",
    "MassLine",
    "OrderConflict",
    "OrderError",
    "PollResult",
    "ProviderSweep",
    "Quote",
    "StatusOutcome",
    "mass_order_split",
    "next_poll_at",
    "order_apply_upstream_status",
    "order_cancel_request",
    "order_cancel_with_refund",
    "order_cost",
    "order_create",
    "order_create_many",
    "order_quote",
    "order_refill_request",
    "order_release_stuck_requests",
    "order_replay",
    "order_resend",
    "order_set_status",
    "order_set_status_by_admin",
    "order_set_upstream_id",
    "order_submit",
    "orders_make_due",
    "orders_requeue",
    "provider_poll_cancels",
    "provider_poll_orders",
    "provider_poll_refills",
    "provider_send_cancels",
    "provider_send_refills",
    "provider_sweep",
    "refund_amount",
    "service_average_times_refresh",
    "service_average_times_refresh_recent",
    "upstream_params",
    "webhook_endpoint_remove",
    "webhook_endpoint_set",
    "webhook_event_deliver",
    "webhook_event_retry",
    "webhook_events_prune",
    "webhook_secret_rotate",
    "webhook_send_test",
    "webhooks_retry_due",
]
