"""Writing one batch of a status poll: a constant number of statements, whatever its size.

Everything a batch changes goes in one transaction: one `UPDATE ... FROM unnest(...)` for
every order of the batch (each guarded by the status that was read), one INSERT of the status
history, one of the webhook events, the refunds through accounts' balance_credit_many (each
wallet locked once) and the customers' notices through notify_many. A crash or a database error
part way leaves nothing of the batch; its orders stay due and the next sweep writes them again.
The money stays exactly-once however often a batch is replayed: a move is written only where the
row is still in the status that was read, and the ledger's unique (order_ref, kind) holds.
"""

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from accounts.models import LedgerEntry, Notification, User
from accounts.notifications import Notice, notify_many
from accounts.services import Credit, balance_credit_many
from catalog.pricing import ZERO
from orders.models import (
    FINAL_STATUSES,
    CancelRequest,
    Order,
    OrderStatusChange,
    WebhookEndpoint,
)
from orders.services.common import logger
from orders.services.events import publish_order_changes
from orders.services.status import (
    refund_amount,
    refund_memo,
    settle_cancel_requests,
    undelivered,
)
from orders.services.summary import daily_summary_tracking

S = Order.Status
SRC = OrderStatusChange.Source


@dataclass
class Written:
    """What the batch UPDATE says of one row it wrote: whether its customer has an active
    webhook and whether it has an open cancel request (None: not asked, look it up)."""

    webhook: bool | None = None
    open_cancel: bool | None = None


def poll_batch_write(
    *, quiet: list[Order], moves: list[tuple[Order, str]], now: datetime
) -> dict[int, str]:
    """Write one poll batch in one transaction: `quiet` orders keep their status (next poll,
    progress), `moves` go from the status they hold (read) to the given one, their fields
    already set on them except status. Returns the moves written: order id -> old status; the
    others found their row moved by someone else first and wrote nothing."""
    for order, new in moves:
        if new in FINAL_STATUSES:
            order.refunded = refund_amount(order=order, status=new, remains=order.remains)
    # The orders reaching a final status change their share of the cockpit's daily summary
    # (orders/services/summary.py): locked and read before the UPDATE, the difference added
    # last in the transaction (three statements whatever their number; none without one).
    settled = [order.pk for order, new in moves if new in FINAL_STATUSES]
    with (
        transaction.atomic(),
        daily_summary_tracking(settled) if settled else contextlib.nullcontext(),
    ):
        written = write_rows(
            [(o, o.status, o.status) for o in quiet] + [(o, o.status, new) for o, new in moves],
            now=now,
        )
        won = [(order, order.status) for order, _ in moves if order.pk in written]
        for order, new in moves:
            if order.pk in written:
                order.status = new
                if new in FINAL_STATUSES:
                    order.finished_at, order.next_poll_at, order.updated_at = now, None, now
        if won:
            _record_moves(won, written, now)
    return {order.pk: old for order, old in won}


def _record_moves(won: list[tuple[Order, str]], written: dict[int, Written], now: datetime) -> None:
    """What follows the rows written: history, refunds, webhook events, cancel requests and
    notices of the orders that moved (each `order` already holds its new status)."""
    OrderStatusChange.objects.bulk_create(
        OrderStatusChange(
            order_id=o.pk,
            old_status=old,
            new_status=o.status,
            start_count=o.start_count,
            remains=o.remains,
            source=SRC.POLL,
            created_at=now,
        )
        for o, old in won
    )
    finals = [o for o, _ in won if o.status in FINAL_STATUSES]
    users = _refund(finals)
    known = {written[o.pk].webhook for o, _ in won}
    publish_order_changes(
        changes=won,
        now=now,
        webhook_users=(
            None if None in known else {o.user_id for o, _ in won if written[o.pk].webhook}
        ),
    )
    for order in finals:
        if written[order.pk].open_cancel is not False:
            settle_cancel_requests(order=order, new=order.status, now=now)
    _tell(finals, users)


def _refund(finals: list[Order]) -> dict[int, User]:
    """The refunds of the orders that reached a final status (order.refunded already holds
    each amount), through the ledger in one batch; returns the customers it loaded, by id."""
    credits = [
        Credit(
            user_id=o.user_id,
            amount=o.refunded,
            order_ref=o.pk,
            memo=refund_memo(order=o, status=o.status, source=SRC.POLL, remains=o.remains),
        )
        for o in finals
        if o.refunded > ZERO
    ]
    entries = balance_credit_many(credits=credits)
    for order in finals:
        entry = entries.get(order.pk)
        if entry is not None and entry.amount != order.refunded:
            # The refund was made before (a replay): the order keeps what the ledger says.
            order.refunded = entry.amount
            Order.objects.filter(pk=order.pk).update(refunded=entry.amount)
        logger.info(
            "order %s: -> %s (poll)%s",
            order.pk,
            order.status,
            f" refund {order.refunded}" if order.refunded else "",
        )
    cached = LedgerEntry._meta.get_field("user").is_cached  # new entries carry their user
    return {e.user_id: e.user for e in entries.values() if cached(e)}


def _tell(finals: list[Order], users: dict[int, User]) -> None:
    """The customers' notices of Partial and Canceled orders and their refunds (as
    order_set_status tells them), written in the batch's transaction."""
    told = [o for o in finals if o.status in (S.PARTIAL, S.CANCELED)]
    missing = {o.user_id for o in told} - users.keys()
    if missing:
        users.update(User.objects.in_bulk(missing))
    notify_many(
        notices=[
            Notice(
                user=users[o.user_id],
                event=Notification.Event.ORDER_REFUNDED,
                context={
                    "order_id": o.pk,
                    "status": S(o.status).label,
                    "refund": o.refunded,
                    "charge": o.charge,
                    "remains": undelivered(order=o, status=o.status, remains=o.remains),
                    "quantity": o.quantity,
                    "target": o.link[:100],
                },
                dedupe_key=f"order:{o.pk}:{o.status}",
            )
            for o in told
        ]
    )


OPEN_CANCEL = (CancelRequest.Status.QUEUED, CancelRequest.Status.SENT)
# The poll's columns, with their casts in the VALUES list; the last three are kept (COALESCE)
# where the row's value is NULL, so an unchanged order leaves them as they are.
_ROW_FIELDS = (
    ("next_poll_at", "timestamptz"),
    ("last_polled_at", "timestamptz"),
    ("poll_errors", "integer"),
    ("remains", "bigint"),
    ("start_count", "bigint"),
    ("upstream_status", "varchar"),
    ("status", "varchar"),
    ("finished_at", "timestamptz"),
    ("refunded", "numeric"),
    ("updated_at", "timestamptz"),
)
_KEPT = ("finished_at", "refunded", "updated_at")


def _row_values(order: Order, new: str, now: datetime) -> list[Any]:
    """One row's values, in _ROW_FIELDS order (status `new`; the kept fields only on a move)."""
    moved = new != order.status
    final = moved and new in FINAL_STATUSES
    return [
        order.next_poll_at if not final else None,
        order.last_polled_at,
        order.poll_errors,
        order.remains,
        order.start_count,
        order.upstream_status,
        new,
        now if final else None,
        order.refunded if final else None,
        now if moved else None,
    ]


def write_rows(rows: list[tuple[Order, str, str]], *, now: datetime) -> dict[int, Written]:
    """Write the poll fields of many orders in one statement: each row is (order, expected,
    new), written only where the order's status is still `expected` (the one we read), with
    status `new`. Returns the ids written, each with what the statement found out about it.

    On PostgreSQL: one UPDATE ... FROM a list of rows, RETURNING; the rows that moved also
    return whether their customer has an active webhook and whether they have an open cancel
    request, so neither costs a query of its own. The rows are sent as one array per column
    (`unnest(%s::bigint[], ...)`, a VALUES list by another name): with a VALUES list of
    `%s` per cell, psycopg's client-side binding re-parsed the ~1,300 placeholders of each
    batch (too long for its cache), ~15 ms of CPU per batch; twelve arrays parse at once.
    Django's bulk_update would spend ~4 ms per row on its CASE WHEN expressions.
    Elsewhere (the SQLite of embedded mode) one UPDATE per order, and the two flags are looked
    up by the caller."""
    if not rows:
        return {}
    if connection.vendor != "postgresql":
        return _write_rows_one_by_one(rows, now)
    names = [name for name, _ in _ROW_FIELDS]
    arrays = ", ".join(f"%s::{cast}[]" for _, cast in _ROW_FIELDS)
    columns: list[list[Any]] = [[o.pk for o, _, _ in rows], [e for _, e, _ in rows]]
    columns += [
        list(c) for c in zip(*(_row_values(o, new, now) for o, _, new in rows), strict=True)
    ]
    assignments = ", ".join(
        f"{name} = COALESCE(v.{name}, o.{name})" if name in _KEPT else f"{name} = v.{name}"
        for name in names
    )
    sql = (
        f"UPDATE {_table(Order)} AS o SET {assignments} "  # noqa: S608 - names are ours, values bound
        f"FROM unnest(%s::bigint[], %s::varchar[], {arrays}) AS v(id, expected, {', '.join(names)}) "
        f"WHERE o.id = v.id AND o.status = v.expected RETURNING o.id, {_returned_flags()}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*columns, *FINAL_STATUSES, *OPEN_CANCEL])
        return {pk: Written(webhook, cancel) for pk, webhook, cancel in cursor.fetchall()}


def _table(model: type[Order] | type[WebhookEndpoint] | type[CancelRequest]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _returned_flags() -> str:
    """RETURNING's two flags (NULL for a row that kept its status): its customer has an active
    webhook; it reached a final status and has an open cancel request. Read in the statement
    that moved the row, under its lock, as the separate reads they replace would have been."""
    finals = ", ".join(["%s"] * len(FINAL_STATUSES))
    open_ = ", ".join(["%s"] * len(OPEN_CANCEL))
    webhooks, cancels = _table(WebhookEndpoint), _table(CancelRequest)
    return (
        "CASE WHEN o.status <> v.expected THEN EXISTS (SELECT 1 FROM "  # noqa: S608 - names are ours
        f"{webhooks} "
        "w WHERE w.user_id = o.user_id AND w.is_active) END, "
        f"CASE WHEN o.status <> v.expected AND o.status IN ({finals}) THEN EXISTS (SELECT 1 "
        f"FROM {cancels} c WHERE c.order_id = o.id AND c.status IN ({open_})) END"
    )


def _write_rows_one_by_one(rows: list[tuple[Order, str, str]], now: datetime) -> dict[int, Written]:
    written = {}
    names = [name for name, _ in _ROW_FIELDS]
    for order, expected, new in rows:
        values = dict(zip(names, _row_values(order, new, now), strict=True))
        for name in _KEPT:
            if values[name] is None:
                del values[name]
        if Order.objects.filter(pk=order.pk, status=expected).update(**values):
            written[order.pk] = Written()
    return written
