"""The services' average times: the median time from order to completion of each service's
last AVERAGE_TIME_LAST completed orders, stored on Service.average_time so that the price list
and the order page read a column instead of aggregating orders per view (docs/customer-panel.md).

A beat task refreshes the services with an order completed lately every few minutes, and every
service once a night (an order completed while the workers were down is counted then)."""

import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from catalog.models import Service
from orders.models import Order

AVERAGE_TIME_LAST = 100  # the last this many completed orders of a service count
AVERAGE_TIME_MIN_ORDERS = 10  # fewer says more about luck than about the service: "—"
RECENT_WINDOW = timedelta(hours=1)  # the sweep runs every 10 minutes: runs overlap on purpose

# One UPDATE: per service, its last completed orders through the partial index
# order_completed_by_service (service, finished_at DESC), their median (percentile_cont
# interpolates between the two middle values of an even count), NULL below the minimum.
_REFRESH_SQL = """
UPDATE {service} AS s SET average_time = (
    SELECT CASE WHEN count(*) >= %(min_orders)s
                THEN percentile_cont(0.5) WITHIN GROUP (ORDER BY took) END
    FROM (
        SELECT o.finished_at - o.created_at AS took
        FROM {order} AS o
        WHERE o.service_id = s.id AND o.status = %(completed)s AND o.finished_at IS NOT NULL
        ORDER BY o.finished_at DESC
        LIMIT %(last)s
    ) AS recent
)
WHERE s.id = ANY(%(ids)s)
"""


def service_average_times_refresh(*, service_ids: Sequence[int] | None = None) -> int:
    """Recompute Service.average_time for `service_ids` (None: every service); returns how many
    services were written."""
    ids = (
        list(service_ids)
        if service_ids is not None
        else list(Service.objects.values_list("pk", flat=True))
    )
    if not ids:
        return 0
    if connection.vendor != "postgresql":
        return _refresh_one_by_one(ids)
    sql = _REFRESH_SQL.format(
        service=connection.ops.quote_name(Service._meta.db_table),
        order=connection.ops.quote_name(Order._meta.db_table),
    )
    params: dict[str, int | str | list[int]] = {
        "min_orders": AVERAGE_TIME_MIN_ORDERS,
        "completed": Order.Status.COMPLETED.value,
        "last": AVERAGE_TIME_LAST,
        "ids": ids,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def service_average_times_refresh_recent(*, now: datetime | None = None) -> int:
    """Refresh the services with an order completed within RECENT_WINDOW before `now`."""
    since = (now or timezone.now()) - RECENT_WINDOW
    ids = (
        Order.objects.filter(status=Order.Status.COMPLETED, finished_at__gte=since)
        .values_list("service_id", flat=True)
        .distinct()
        .order_by()
    )
    return service_average_times_refresh(service_ids=list(ids))


def _refresh_one_by_one(ids: list[int]) -> int:
    """The same per service in Python, for the embedded SQLite mode of `make run` (no
    percentile_cont there): a query per service, fine for a demo catalog."""
    for pk in ids:
        finished = (
            Order.objects.filter(
                service_id=pk, status=Order.Status.COMPLETED, finished_at__isnull=False
            )
            .order_by("-finished_at")
            .values_list("created_at", "finished_at")[:AVERAGE_TIME_LAST]
        )
        seconds = [(end - start).total_seconds() for start, end in finished if end is not None]
        median = (
            timedelta(seconds=statistics.median(seconds))
            if len(seconds) >= AVERAGE_TIME_MIN_ORDERS
            else None
        )
        Service.objects.filter(pk=pk).update(average_time=median)
    return len(ids)
