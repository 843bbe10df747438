"""The daily summary of orders (OrderDaySummary) that the cockpit reads instead of scanning the
orders (docs/admin.md, "The daily summary").

One row per (day, service, provider): the orders created that day (in the panel's TIME_ZONE)
and what they add up to. An order's share of its row:

    orders 1; completed / partial / canceled 1 if it is in that final status;
    charged = charge; refunded = refunded;
    cost = 0 if its cost is not known yet, its whole cost if its charge is 0, else
           ROUND(cost * (charge - refunded) / charge, 5)

Every write that can change one of these (its creation, its status reaching a final one, its
refund, its provider or cost at a fail-over) goes through this module in the same transaction,
so the table never drifts:

- `daily_summary_add_orders(order_ids=...)` adds new orders' shares as they are in the
  database, in one INSERT ... SELECT;
- a new order's share is computed from its own fields (`new_order_share`) and added in the
  statement that charges it (orders.services.create: `daily_summary_add_sql(rows_from=...)`
  alongside the debit, after the wallet is locked), or on its own for a free order;
- `daily_summary_tracking(order_ids)` around an UPDATE of existing orders, one or many, locks
  and reads their shares, lets the caller write, and adds the difference (orders.services.status
  `_write_move`, orders.services.placement `_fail_over` and the late placement). A bulk settle
  in the status sweep wraps its UPDATE in it: three statements whatever the number of orders;
- `daily_summary_add(deltas)` adds differences a writer computed itself.

Every write is one `INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x`: concurrent
writers add to a row instead of overwriting it; rows are written in key order, and last in
their transaction (after the wallet a refund locks, as order_create does), so writers cannot
deadlock. Moves between active statuses (the poll's bulk moves) change no share and need
nothing.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connections, models, router, transaction
from django.db.models import Case, Count, F, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, Round, TruncDate
from django.utils import timezone

from accounts.models import Wallet
from catalog.pricing import MONEY_PLACES, quantize_money
from orders.models import SUM, Order, OrderDaySummary

S = Order.Status
_SUM = models.DecimalField(**SUM)
_ZERO = Value(Decimal(0), output_field=_SUM)
# The summary's columns, in the order the contributions' SELECT gives them.
KEY = ("day", "service_id", "provider_id")
VALUES = ("orders", "completed", "partial", "canceled", "charged", "refunded", "cost")


def cost_share() -> Case:
    """An order's provider cost, reduced in the proportion of its refund, rounded per order to
    the panel's 5 places (so that sums over any set of orders are exact)."""
    share = Round(F("cost") * (F("charge") - F("refunded")) / F("charge"), MONEY_PLACES)
    return Case(
        When(cost__isnull=True, then=_ZERO),
        When(charge__gt=0, then=share),
        default=F("cost"),
        output_field=_SUM,
    )


def contributions(orders: QuerySet[Any]) -> QuerySet[Any]:
    """`orders` grouped by summary row: the KEY columns then the VALUES columns, as the
    summary names them (prefixed `s_`, the model's own field names being taken)."""
    day = TruncDate("created_at", tzinfo=timezone.get_default_timezone())
    return (
        orders.order_by()
        .annotate(s_day=day, s_provider=Coalesce("provider_id", 0))
        .values("s_day", "service_id", "s_provider")
        .annotate(
            s_orders=Count("id"),
            s_completed=Count("id", filter=Q(status=S.COMPLETED)),
            s_partial=Count("id", filter=Q(status=S.PARTIAL)),
            s_canceled=Count("id", filter=Q(status=S.CANCELED)),
            s_charged=Coalesce(Sum("charge"), _ZERO),
            s_refunded=Coalesce(Sum("refunded"), _ZERO),
            s_cost=Coalesce(Sum(cost_share()), _ZERO),
        )
    )


_SELECTED = ("s_day", "service_id", "s_provider", *(f"s_{name}" for name in VALUES))


def _insert(orders: QuerySet[Any], *, table: str, upsert: bool, using: str) -> None:
    """One INSERT ... SELECT of the shares of `orders` into `table` (added to its rows when
    `upsert`)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    inner, params = contributions(orders).query.sql_with_params()
    selected = [f"s.{quote(c)}" for c in _SELECTED]
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in KEY + VALUES)}) "  # noqa: S608 - names are ours, values bound
        f"SELECT {', '.join(selected)} FROM ({inner}) s WHERE true ORDER BY 1, 2, 3"
    )
    if upsert:
        added = ", ".join(
            f"{quote(c)} = {quote(table)}.{quote(c)} + excluded.{quote(c)}" for c in VALUES
        )
        sql += f" ON CONFLICT ({', '.join(quote(c) for c in KEY)}) DO UPDATE SET {added}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def daily_summary_add_orders(*, order_ids: Iterable[int]) -> None:
    """Add the shares of new orders, as they are in the database, to the summary in one
    INSERT ... SELECT; call it last in the transaction that inserted them."""
    ids = sorted(set(order_ids))
    if not ids:
        return
    using = router.db_for_write(OrderDaySummary)
    orders = Order.objects.using(using).filter(pk__in=ids)
    _insert(orders, table=OrderDaySummary._meta.db_table, upsert=True, using=using)


Key = tuple[Any, int, int]  # (day, service_id, provider_id)
Shares = dict[Key, list[Any]]  # the VALUES columns of each row


def _order_shares(ids: list[int], *, lock: bool) -> Shares:
    """The shares of these orders summed per row, read (and locked, in id order) in one query."""
    day = TruncDate("created_at", tzinfo=timezone.get_default_timezone())
    orders = Order.objects.filter(pk__in=ids).order_by("pk")
    if lock:
        orders = orders.select_for_update()
    ones = {
        f"s_{name}": Case(When(status=status, then=1), default=0)
        for name, status in (
            ("completed", S.COMPLETED),
            ("partial", S.PARTIAL),
            ("canceled", S.CANCELED),
        )
    }
    rows = orders.annotate(
        s_day=day, s_provider=Coalesce("provider_id", 0), s_cost=cost_share(), **ones
    ).values_list(
        "s_day", "service_id", "s_provider", "s_completed", "s_partial", "s_canceled",
        "charge", "refunded", "s_cost",
    )  # fmt: skip
    shares: Shares = {}
    for row_day, service_id, provider_id, *values in rows:
        total = shares.setdefault((row_day, service_id, provider_id), [0] * len(VALUES))
        for index, value in enumerate([1, *values]):
            total[index] += value
    return shares


def daily_summary_add(deltas: Shares) -> None:
    """Add `deltas` ({(day, service_id, provider_id): [orders, completed, partial, canceled,
    charged, refunded, cost]}, negative to take away) to the summary in one upsert, rows in
    key order; rows of zeros are skipped. For a writer that knows its differences itself."""
    sql, params = daily_summary_add_sql(deltas)
    if not sql:
        return
    with connections[router.db_for_write(OrderDaySummary)].cursor() as cursor:
        cursor.execute(sql, params)


def daily_summary_add_sql(deltas: Shares, *, rows_from: str = "") -> tuple[str, list[Any]]:
    """The upsert of daily_summary_add, to run as it is or inside a larger statement: with
    `rows_from` (a CTE's name; one delta only) the row is written once per row of that CTE, so
    not at all when it is empty (the debit alongside which a new order's share is written:
    accounts.services.Alongside). ("", []) when there is nothing to add."""
    rows = sorted((key, values) for key, values in deltas.items() if any(values))
    if not rows:
        return "", []
    if rows_from and len(rows) > 1:
        raise ValueError("A summary upsert from a CTE writes one row.")
    quote = connections[router.db_for_write(OrderDaySummary)].ops.quote_name
    table = quote(OrderDaySummary._meta.db_table)
    columns = KEY + VALUES
    one = ", ".join(["%s"] * len(columns))
    if rows_from:
        # `WHERE true`: SQLite reads ON CONFLICT after a bare FROM as a join's constraint.
        source = f"SELECT {one} FROM {quote(rows_from)} WHERE true"  # noqa: S608 - a CTE's name
    else:
        source = "VALUES " + ", ".join([f"({one})"] * len(rows))
    added = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in VALUES)
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) {source} "
        f"ON CONFLICT ({', '.join(quote(c) for c in KEY)}) DO UPDATE SET {added}"
    )
    return sql, [value for key, values in rows for value in (*key, *values)]


def new_order_share(order: Order) -> Shares:
    """A new order's share of its summary row, from its own fields (no read): what
    `contributions` would read once it is saved (its status is never final yet)."""
    day = timezone.localtime(order.created_at, timezone.get_default_timezone()).date()
    if order.cost is None:
        cost = Decimal(0)
    elif order.charge > 0:
        cost = quantize_money(order.cost * (order.charge - order.refunded) / order.charge)
    else:
        cost = order.cost
    finals = [int(order.status == status) for status in (S.COMPLETED, S.PARTIAL, S.CANCELED)]
    key = (day, order.service_id, order.provider_id or 0)
    return {key: [1, *finals, order.charge, order.refunded, cost]}


@contextmanager
def daily_summary_tracking(order_ids: Iterable[int]) -> Iterator[None]:
    """Around an UPDATE of existing orders (one or many): lock them (in id order) and read
    their shares, run the caller's writes, then add the difference (new shares - old) in one
    upsert, in one transaction. The summary rows are locked last, after whatever the caller
    locked (the wallet of a refund), as order_create does, so the two cannot deadlock. A write
    that changes nothing (a conditional UPDATE that lost) writes nothing here.

    Inside a caller's transaction it adds no savepoint (two statements a batch): the summary
    must never commit apart from the writes it follows, so an error in here leaves the whole
    transaction to roll back rather than letting the caller go on without it. A caller that
    wants to recover from such an error wraps the block in an atomic() of its own (as
    poll_batch_write and status._write_move do), never catches it inside its transaction."""
    ids = sorted(set(order_ids))
    with transaction.atomic(savepoint=False):
        before = _order_shares(ids, lock=True)
        yield
        after = _order_shares(ids, lock=False)
        for key, values in before.items():
            total = after.setdefault(key, [0] * len(VALUES))
            for index, value in enumerate(values):
                total[index] -= value
        daily_summary_add(after)


def daily_summary_rebuild(
    *,
    order_model: type[models.Model] = Order,
    summary_model: type[models.Model] = OrderDaySummary,
    using: str = "default",
) -> int:
    """Rewrite the whole summary from the orders (the migration passes its historical
    models); returns the number of rows. On PostgreSQL the table is locked against writers
    until the commit: a concurrent settle waits, then adds its difference to the new rows."""
    connection = connections[using]
    table = summary_model._meta.db_table
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                quoted = connection.ops.quote_name(table)
                cursor.execute(f"LOCK TABLE {quoted} IN SHARE ROW EXCLUSIVE MODE")
        summary_model._default_manager.using(using).all().delete()
        orders = order_model._default_manager.using(using).all()
        _insert(orders, table=table, upsert=False, using=using)
        return summary_model._default_manager.using(using).count()


@dataclass(frozen=True)
class SummaryMismatch:
    key: tuple[Any, ...]  # (day, service_id, provider_id)
    stored: dict[str, Any]
    scanned: dict[str, Any]

    def __str__(self) -> str:
        diff = [
            f"{name} {self.stored.get(name, 0)} (scan {self.scanned.get(name, 0)})"
            for name in VALUES
            if self.stored.get(name, 0) != self.scanned.get(name, 0)
        ]
        day, service_id, provider_id = self.key
        return f"{day} service {service_id} provider {provider_id}: " + ", ".join(diff)


def daily_summary_mismatches() -> list[SummaryMismatch]:
    """Rows where the summary differs from a fresh scan of every order (rows of zeros are
    equal to no row). On PostgreSQL both are read in one REPEATABLE READ snapshot (when
    called outside a transaction, as the command does), so a settle committing meanwhile is
    not reported as a mismatch."""
    connection = connections[router.db_for_read(OrderDaySummary)]
    # Only a transaction of our own can choose its isolation (not one a caller opened).
    own = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and own:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        stored = {
            tuple(row[k] for k in KEY): {k: row[k] for k in VALUES}
            for row in OrderDaySummary.objects.values(*KEY, *VALUES)
        }
        scanned = {
            (row["s_day"], row["service_id"], row["s_provider"]): {k: row[f"s_{k}"] for k in VALUES}
            for row in contributions(Order.objects.all())
        }
    found = []
    for key in sorted(stored.keys() | scanned.keys()):
        have, want = stored.get(key, {}), scanned.get(key, {})
        if any(have.get(name, 0) != want.get(name, 0) for name in VALUES):
            found.append(SummaryMismatch(key, have, want))
    return found


def _order_count() -> Coalesce:
    counts = (
        Order.objects.filter(user=OuterRef("user"))
        .order_by()
        .values("user")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counts), 0)


def wallet_order_counts_rebuild(*, user_ids: Iterable[int] | None = None) -> int:
    """Set Wallet.order_count from the orders (of `user_ids`, or of every wallet), in one
    UPDATE; returns the number of wallets. The counters of orders written past order_create
    (seed_orders) are set this way."""
    wallets = (
        Wallet.objects.all() if user_ids is None else Wallet.objects.filter(user_id__in=user_ids)
    )
    return wallets.update(order_count=_order_count())


def wallet_order_count_mismatches() -> list[tuple[int, int, int]]:
    """(user id, Wallet.order_count, orders counted) for every wallet whose counter is off."""
    rows = (
        Wallet.objects.annotate(counted=_order_count())
        .exclude(order_count=F("counted"))
        .order_by("user_id")
        .values_list("user_id", "order_count", "counted")
    )
    return list(rows)
