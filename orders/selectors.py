"""Reads for orders, refills and cancel requests, with their joins chosen; what needs
attention (one definition for the cockpit and the orders admin); the cockpit's profit figures."""

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypedDict, cast

import orjson
from django.conf import settings
from django.db import connection
from django.db.models import DecimalField, F, Field, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import User
from accounts.selectors import KeyExtra
from accounts.sql import prepared
from catalog.models import Category, Service
from catalog.order_types import OrderType
from catalog.pricing import MONEY_PLACES, format_money, quantize_money
from catalog.selectors import service_list_enabled
from orders.models import (
    POLLED_STATUSES,
    CancelRequest,
    Order,
    OrderDaySummary,
    Refill,
    WebhookEvent,
)
from providers.models import Provider


class ServiceTypeAnnotation(TypedDict):
    service_type: str


# An order as order_request_many_for_user loads it: its service's type annotated on it
# (django-stubs-ext, a dev dependency, is only there for the type check).
if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    OrderForRequest: TypeAlias = WithAnnotations[Order, ServiceTypeAnnotation]
else:
    OrderForRequest = Order

S = Order.Status


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    """The customer's orders, newest first."""
    return (
        Order.objects.filter(user=user)
        .select_related("service", "service__category")
        .order_by("-id")
    )


def order_list_drip_feed_for_user(*, user: User) -> QuerySet[Order]:
    """The customer's drip-feed orders (those sent with `runs`), newest first."""
    return order_list_for_user(user=user).filter(params__has_key="runs")


def order_list_subscriptions_for_user(*, user: User) -> QuerySet[Order]:
    """The customer's subscriptions (orders of a Subscriptions service), newest first."""
    return order_list_for_user(user=user).filter(service__type=OrderType.SUBSCRIPTIONS)


def order_last_service_for_user(*, user: User) -> Service | None:
    """The service of the customer's latest order if it is still on sale (the new-order page
    opens with it), in one query through the index on (user, -id)."""
    last = Order.objects.filter(user=user).order_by("-id").values("service_id")[:1]
    return service_list_enabled().filter(pk=Subquery(last)).first()


WEBHOOK_LOG_SHOWN = 50


def webhook_event_list_for_user(*, user: User) -> QuerySet[WebhookEvent]:
    """The customer's webhook events and their deliveries, newest first (the API page shows
    the last WEBHOOK_LOG_SHOWN)."""
    return WebhookEvent.objects.filter(user=user).order_by("-id")


def order_get_for_user(*, user: User, order_id: int) -> Order | None:
    """The customer's order; another customer's id is None, exactly like a missing one."""
    try:
        order_id = int(order_id)
    except (TypeError, ValueError):
        return None
    return order_list_for_user(user=user).filter(pk=order_id).first()


def _ids(values: Sequence[int]) -> list[int]:
    ids = []
    for value in values:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return ids


# What an order's status answer (API v2 `status`) shows. Loading only these, with no join, builds
# one model object per id instead of three (order, service, category): docs/api.md, Performance.
ORDER_STATUS_FIELDS = ("id", "user_id", "status", "charge", "start_count", "remains", "quantity")


def order_status_many_for_user(*, user: User, order_ids: Sequence[int]) -> dict[int, Order]:
    """The customer's orders among `order_ids` with only ORDER_STATUS_FIELDS loaded, in one
    query; others' ids are left out. Reading another field costs a query per order."""
    ids = _ids(order_ids)
    if not ids:
        return {}
    rows = Order.objects.filter(user=user, pk__in=ids).only(*ORDER_STATUS_FIELDS)
    return {o.pk: o for o in rows}


class OrderStatusRow(NamedTuple):
    """What the API's `status` answer shows of an order (order_status_rows_many_for_user)."""

    status: str
    charge: str  # as the API writes it: the panel's 5 places (catalog.pricing.format_money)
    start_count: int | None
    remains: int | None
    quantity: int


def order_status_rows_many_for_user(
    *, user: User, order_ids: Sequence[int]
) -> dict[int, OrderStatusRow]:
    """The API's `status` read: the customer's orders among `order_ids` as plain rows of the
    fields the answer shows, in one query (none when the API's key lookup read them already:
    order_status_rows_key_extra); others' ids are left out. Tuples, not Order objects:
    building 100 model instances cost more than the query (docs/api.md, Performance)."""
    ids = _ids(order_ids)
    if not ids:
        return {}
    if connection.vendor != "postgresql":
        rows = Order.objects.filter(user=user, pk__in=ids).values_list(
            "pk", "status", "charge", "start_count", "remains", "quantity"
        )
        return {
            pk: OrderStatusRow(status, format_money(charge), start_count, remains, quantity)
            for pk, status, charge, start_count, remains, quantity in rows
        }
    array = _id_array(ids)
    read = user.__dict__.pop(_STATUS_ROWS_MEMO, None)
    if read is not None and read[0] == array:  # the same ids, read with the key
        return read[1]
    with connection.cursor() as cursor:
        # The user's id as text, cast in SQL as the array is: psycopg gives a Python int the
        # smallest type it fits, and each type would be one more prepared statement.
        cursor.execute(_status_rows_statement(), [str(user.pk), array])
        (text,) = cursor.fetchone()
    return _status_rows(text)


def order_status_rows_key_extra(order_ids: Sequence[int]) -> KeyExtra | None:
    """What the API's dispatcher asks its key lookup to read for `status` (PostgreSQL): these
    orders' rows, which order_status_rows_many_for_user then finds read, one round trip
    fewer. None for no id, or elsewhere than on PostgreSQL. (The lookup reads on the key's
    database, router.db_for_read(ApiKey): the panel routes no model elsewhere.)"""
    ids = _ids(order_ids)
    if not ids or connection.vendor != "postgresql":
        return None
    array = _id_array(ids)
    return KeyExtra(
        columns=_status_rows_key_columns(),
        receive=functools.partial(_receive_status_rows, array),
        args=(array,),
    )


def _id_array(ids: list[int]) -> str:
    # The ids as one array parameter, written as its text: an IN list of 100 placeholders cost
    # more CPU to build (the ORM) and to bind (psycopg splits the query text again for each
    # length), and psycopg's dumper of a list of ints more (320 µs for 100 ids), than the rest
    # of the read (docs/api.md, Performance).
    return "{" + ",".join(map(str, ids)) + "}"


# The rows read with the API key, on that request's User: (the ids' array, the rows).
_STATUS_ROWS_MEMO = "_panel_status_rows_at_key_lookup"


def _status_rows(text: str) -> dict[int, OrderStatusRow]:
    return {row[0]: OrderStatusRow(*row[1:]) for row in orjson.loads(text)}


def _receive_status_rows(array: str, user: User, values: tuple[Any, ...]) -> None:
    (text,) = values
    user.__dict__[_STATUS_ROWS_MEMO] = (array, _status_rows(text))


def _status_rows_json(user: str) -> str:
    """The status read on PostgreSQL as one JSON array of [id, status, charge, start_count,
    remains, quantity] rows, written from the model's columns; `user` is the SQL of the
    customer's id, and the ids' array its one parameter. The charge comes as text: a numeric
    column of the panel's 5 places prints with exactly those (what format_money writes),
    without a Decimal made per order.

    The statement is prepared (planned once per connection), so it may run a generic plan,
    made without knowing the ids. The orders are found by their ids alone, a join on the
    ids' array (usually one primary-key probe each), and the customer's kept by the
    aggregate's FILTER: no plan can walk the customer's orders instead. With `user_id = %s AND id =
    ANY(%s)`, a generic plan on the user's index read all 100,000 orders of a big reseller to
    answer 10 ids (98 ms), and a plan that scans the table compares each row with every id
    (docs/api.md, Performance)."""
    meta, q = Order._meta, connection.ops.quote_name

    def col(name: str) -> str:
        return "o." + q(cast(str, cast(Field, meta.get_field(name)).column))

    assert cast(DecimalField, meta.get_field("charge")).decimal_places == MONEY_PLACES
    columns = ", ".join(
        f"{col(name)}::text" if name == "charge" else col(name)
        for name in ("id", *OrderStatusRow._fields)
    )
    return (
        f"SELECT COALESCE(json_agg(json_build_array({columns}))"  # noqa: S608 - model names
        f" FILTER (WHERE {col('user')} = {user}), '[]')::text"
        f" FROM unnest(%s::bigint[]) AS i(id) JOIN {q(meta.db_table)} o ON {col('id')} = i.id"
    )


@functools.cache
def _status_rows_statement() -> str:
    return prepared(_status_rows_json("%s::bigint"))


@functools.cache
def _status_rows_key_columns() -> tuple[str, ...]:
    return (f"({_status_rows_json('u.id')})",)  # over the key lookup's user, `u`


def order_request_many_for_user(
    *, user: User, order_ids: Sequence[int]
) -> dict[int, OrderForRequest]:
    """The customer's orders among `order_ids` as a refill or cancel request starts from them,
    in one query: the id, the params and the service's type as `service_type`, nothing joined
    (order_refill_request / order_cancel_request load and lock the order themselves)."""
    ids = _ids(order_ids)
    if not ids:
        return {}
    rows = (
        Order.objects.filter(user=user, pk__in=ids)
        .only("id", "user_id", "params")
        .annotate(service_type=F("service__type"))
    )
    return {o.pk: o for o in rows}


def refill_get_many_for_user(*, user: User, refill_ids: Sequence[int]) -> dict[int, Refill]:
    ids = _ids(refill_ids)
    if not ids:
        return {}
    rows = Refill.objects.filter(pk__in=ids, order__user=user).select_related("order")
    return {r.pk: r for r in rows}


def cancel_get_many_for_user(*, user: User, cancel_ids: Sequence[int]) -> dict[int, CancelRequest]:
    ids = _ids(cancel_ids)
    if not ids:
        return {}
    rows = CancelRequest.objects.filter(pk__in=ids, order__user=user).select_related("order")
    return {c.pk: c for c in rows}


def order_list_due_for_poll(
    *, provider: Provider, now: datetime, limit: int = 5000
) -> QuerySet[Order]:
    """Placed, unsettled orders of `provider` whose next poll has come, oldest due first.
    Served by the partial index order_provider_due_for_poll."""
    return (
        Order.objects.filter(
            provider=provider,
            status__in=POLLED_STATUSES,
            next_poll_at__lte=now,
        )
        .exclude(upstream_order_id="")
        .only(
            "id",
            "user_id",
            "status",
            "quantity",
            "charge",
            "start_count",
            "remains",
            "upstream_order_id",
            "upstream_status",
            "created_at",
            "next_poll_at",
            "poll_errors",
            "provider_id",
            # What a final status's refund, notice and webhook event read: loaded here, not
            # one query per order later.
            "service_id",
            "link",
            "refunded",
        )
        .order_by("next_poll_at")[:limit]
    )


def provider_ids_with_due_orders(*, now: datetime) -> list[int]:
    """Enabled providers that have at least one order, refill or cancel to look at."""
    ids = set(
        Order.objects.filter(status__in=POLLED_STATUSES, next_poll_at__lte=now)
        .values_list("provider_id", flat=True)
        .distinct()
    )
    ids |= set(
        Refill.objects.filter(
            status__in=[Refill.Status.QUEUED, Refill.Status.PENDING, Refill.Status.IN_PROGRESS]
        )
        .values_list("order__provider_id", flat=True)
        .distinct()
    )
    ids |= set(
        CancelRequest.objects.filter(
            status__in=[CancelRequest.Status.QUEUED, CancelRequest.Status.SENT]
        )
        .values_list("order__provider_id", flat=True)
        .distinct()
    )
    ids.discard(None)
    return list(Provider.objects.filter(pk__in=ids, is_enabled=True).values_list("pk", flat=True))


def order_ids_waiting_to_send(
    *,
    now: datetime,
    queued_for: timedelta = timedelta(minutes=1),
    funds_retry: timedelta = timedelta(minutes=10),
    limit: int = 1000,
) -> list[int]:
    """QUEUED orders untouched for `queued_for` (their task was lost or gave up) and
    WAITING_FUNDS orders untouched for `funds_retry`: the requeue sweep sends them again."""
    queued = (
        Order.objects.filter(status=Order.Status.QUEUED, updated_at__lte=now - queued_for)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    funds = (
        Order.objects.filter(status=Order.Status.WAITING_FUNDS, updated_at__lte=now - funds_retry)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    return [*queued, *funds]


def order_list_stuck_submitting(*, now: datetime, older_than: timedelta) -> QuerySet[Order]:
    """Orders claimed for placement long ago: the worker died mid-call."""
    return Order.objects.filter(
        status=Order.Status.SUBMITTING, submitted_at__lte=now - older_than
    ).order_by("id")


# --- needs attention --------------------------------------------------------------------------
# The one definition of an order that needs a person. The cockpit counts each kind and links to
# the orders admin filtered by it (NeedsAttentionFilter in orders/admin.py uses the same kinds,
# `?attention=<key>`); docs/admin.md says what each kind means.

# The partial index `order_stuck` (orders/models.py) covers exactly these statuses.
ATTENTION_STUCK_STATUSES = (S.QUEUED, S.PENDING, S.IN_PROGRESS)
# Counts of orders needing attention stop here ("1000+"): COUNT over a LIMITed subquery.
ATTENTION_COUNT_CAP = 1000
ATTENTION_LIST_SIZE = 15
# What the cockpit's list of the oldest orders needing attention shows.
_ATTENTION_LIST_FIELDS = (
    "id",
    "status",
    "created_at",
    "charge",
    "attention_reason",
    "quantity",
    "user__username",
    "service__name",
    "provider__name",
)


@dataclass(frozen=True)
class AttentionKind:
    """One reason an order needs a person: `key` is also the orders admin filter's value."""

    key: str
    label: str
    condition: Q
    # Only for "stuck": the cutoff `condition` uses, so that a link can pin it.
    created_before: datetime | None = None


def attention_stuck_hours() -> int:
    return int(getattr(settings, "ATTENTION_STUCK_HOURS", 24))


def order_attention_kinds(*, now: datetime) -> list[AttentionKind]:
    """Every kind of order that needs attention at `now`, in the order the cockpit shows them."""
    hours = attention_stuck_hours()
    before = now - timedelta(hours=hours)
    return [
        AttentionKind("review", "Need review (upstream outcome unknown)", Q(status=S.NEEDS_REVIEW)),
        AttentionKind("funds", "Waiting: provider out of funds", Q(status=S.WAITING_FUNDS)),
        AttentionKind(
            "stuck",
            f"Stuck in queued, pending or in progress for over {hours} h",
            Q(status__in=ATTENTION_STUCK_STATUSES, created_at__lt=before),
            created_before=before,
        ),
        AttentionKind("manual", "Manual: waiting for the admin", Q(status=S.MANUAL)),
    ]


def order_attention_kind_get(*, key: str | None, now: datetime) -> AttentionKind | None:
    return next((k for k in order_attention_kinds(now=now) if k.key == key), None)


def order_list_needing_attention(*, now: datetime | None = None) -> QuerySet[Order]:
    """Orders of any attention kind, oldest first, with what the cockpit's list shows joined."""
    anything = Q()
    for kind in order_attention_kinds(now=now or timezone.now()):
        anything |= kind.condition
    return (
        Order.objects.filter(anything)
        .select_related("user", "service", "provider")
        .only(*_ATTENTION_LIST_FIELDS)
        .order_by("created_at", "id")
    )


@dataclass
class AttentionGroup:
    kind: AttentionKind
    count: int
    capped: bool

    @property
    def key(self) -> str:
        return self.kind.key

    @property
    def label(self) -> str:
        return self.kind.label


@dataclass
class Attention:
    groups: list[AttentionGroup] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)  # the oldest few


def order_count_capped(*, condition: Q, cap: int) -> tuple[int, bool]:
    """How many orders match (at most `cap`) and whether there are more."""
    # COUNT over a LIMITed subquery: the cost stays bounded however many orders match.
    count = Order.objects.filter(condition).order_by().values("pk")[: cap + 1].count()
    return min(count, cap), count > cap


def order_attention_summary(*, now: datetime) -> Attention:
    """A capped count per attention kind and the oldest few orders needing attention."""
    attention = Attention()
    for kind in order_attention_kinds(now=now):
        count, capped = order_count_capped(condition=kind.condition, cap=ATTENTION_COUNT_CAP)
        attention.groups.append(AttentionGroup(kind, count, capped))
    attention.orders = list(order_list_needing_attention(now=now)[:ATTENTION_LIST_SIZE])
    return attention


# --- profit (the cockpit) -----------------------------------------------------------------------
# revenue of an order = charge - refunded (what the customer finally paid);
# cost of an order = cost * (charge - refunded) / charge, rounded to 5 places: the provider
# refunds the undelivered part of a partial or canceled order in the same proportion as we do.
# An order without a cost yet (not placed) counts 0; an order with a zero charge keeps its full
# cost; profit = revenue - cost. Orders count on the day they were created, in the panel's
# TIME_ZONE (docs/admin.md). Every figure is read from the daily summary (OrderDaySummary, kept
# by orders.services.summary in the transactions that change the orders): a few thousand rows
# for 30 days, however many orders there are.

PROFIT_PERIODS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days"}
TOP_SERVICES = 10


@dataclass
class Figures:
    revenue: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    orders: int = 0
    label: str = ""
    key: object = None
    refunded: Decimal = Decimal(0)
    # Orders by outcome: how many of `orders` ended completed, partial, canceled.
    completed: int = 0
    partial: int = 0
    canceled: int = 0

    def __post_init__(self) -> None:
        self.revenue = quantize_money(Decimal(self.revenue or 0))
        self.cost = quantize_money(Decimal(self.cost or 0))
        self.refunded = quantize_money(Decimal(self.refunded or 0))

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def charged(self) -> Decimal:
        return self.revenue + self.refunded

    @property
    def open(self) -> int:
        """Orders not settled yet (any status but the three final ones)."""
        return self.orders - self.completed - self.partial - self.canceled

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.revenue:
            return None
        return (self.profit * 100 / self.revenue).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class Periods:
    now: datetime
    today: datetime  # midnight in the panel's TIME_ZONE
    start_7d: datetime
    start_30d: datetime

    @classmethod
    def at(cls, now: datetime) -> "Periods":
        local = timezone.localtime(now, timezone.get_default_timezone())
        today = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(now, today, today - timedelta(days=6), today - timedelta(days=29))

    def start(self, key: str) -> datetime:
        return {"today": self.today, "7d": self.start_7d, "30d": self.start_30d}[key]


@dataclass(frozen=True)
class Cell:
    """Money of the orders of one day, one service and one provider (a summary row)."""

    day: dt.date
    service_id: int
    provider_id: int | None
    revenue: Decimal
    cost: Decimal
    orders: int
    refunded: Decimal = Decimal(0)
    completed: int = 0
    partial: int = 0
    canceled: int = 0


def profit_cells(*, periods: Periods) -> list[Cell]:
    """The summary rows of the last 30 days, today included, in one query."""
    rows = (
        OrderDaySummary.objects.filter(day__gte=periods.start_30d.date(), orders__gt=0)
        .annotate(revenue=F("charged") - F("refunded"))
        .values_list(
            "day",
            "service_id",
            "provider_id",
            "revenue",
            "cost",
            "orders",
            "refunded",
            "completed",
            "partial",
            "canceled",
        )
    )
    return [
        Cell(day, service, provider or None, *figures) for day, service, provider, *figures in rows
    ]


def _sum(cells: list[Cell], label: str = "", key: object = None) -> Figures:
    return Figures(
        sum((c.revenue for c in cells), Decimal(0)),
        sum((c.cost for c in cells), Decimal(0)),
        sum(c.orders for c in cells),
        label,
        key,
        sum((c.refunded for c in cells), Decimal(0)),
        sum(c.completed for c in cells),
        sum(c.partial for c in cells),
        sum(c.canceled for c in cells),
    )


def profit_by_day(*, cells: list[Cell], periods: Periods) -> list[Figures]:
    """One row per day (panel TIME_ZONE) of the last 30 (today included), days without orders as zeros."""
    by_day: dict[dt.date, list[Cell]] = {}
    for cell in cells:
        by_day.setdefault(cell.day, []).append(cell)
    days = []
    for offset in range(30):
        day = (periods.start_30d + timedelta(days=offset)).date()
        days.append(_sum(by_day.get(day, []), str(day), day))
    return days


def profit_totals(*, days: list[Figures], periods: Periods) -> dict[str, Figures]:
    """Today, 7 and 30 days, summed from the daily rows (no extra query)."""
    totals = {}
    for key, label in PROFIT_PERIODS.items():
        start = periods.start(key).date()
        chosen = [d for d in days if isinstance(d.key, dt.date) and d.key >= start]
        totals[key] = Figures(
            sum((d.revenue for d in chosen), Decimal(0)),
            sum((d.cost for d in chosen), Decimal(0)),
            sum(d.orders for d in chosen),
            label,
            None,
            sum((d.refunded for d in chosen), Decimal(0)),
            sum(d.completed for d in chosen),
            sum(d.partial for d in chosen),
            sum(d.canceled for d in chosen),
        )
    return totals


def profit_breakdowns(*, cells: list[Cell], since: dt.date) -> dict[str, list[Figures]]:
    """Per provider, per category and the top services by profit, for the cells since `since`;
    names in three small queries."""
    cells = [c for c in cells if c.day >= since]
    services = {
        pk: (category_id, name)
        for pk, category_id, name in Service.objects.filter(
            pk__in={c.service_id for c in cells}
        ).values_list("pk", "category_id", "name")
    }
    groups: dict[str, dict[int | None, list[Cell]]] = {
        "provider": {},
        "category": {},
        "service": {},
    }
    for cell in cells:
        category_id = services.get(cell.service_id, (None, ""))[0]
        groups["provider"].setdefault(cell.provider_id, []).append(cell)
        groups["category"].setdefault(category_id, []).append(cell)
        groups["service"].setdefault(cell.service_id, []).append(cell)
    providers = dict(
        Provider.objects.filter(pk__in=_ids_of(groups["provider"])).values_list("pk", "name")
    )
    categories = dict(
        Category.objects.filter(pk__in=_ids_of(groups["category"])).values_list("pk", "name")
    )
    labels = {
        "provider": lambda pk: providers.get(pk, "(not placed yet)"),
        "category": lambda pk: categories.get(pk, "—"),
        "service": lambda pk: f"{pk} — {services.get(pk, (None, ''))[1]}",
    }
    result = {}
    for group, by_key in groups.items():
        rows = [_sum(group_cells, labels[group](key), key) for key, group_cells in by_key.items()]
        rows.sort(key=lambda f: (-f.profit, str(f.label)))
        result[group] = rows[:TOP_SERVICES] if group == "service" else rows
    return result


def _ids_of(keys: Iterable[int | None]) -> list[int]:
    return [key for key in keys if key is not None]
