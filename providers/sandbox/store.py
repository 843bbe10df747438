"""The sandbox provider's state: orders, refills, cancels, balance and the request log.

Everything lives in one SQLite file (stdlib ``sqlite3``) so state survives a restart and can be
inspected with the ``sqlite3`` shell. The server is threaded; all access goes through one
connection guarded by a lock, and every write runs in ``BEGIN IMMEDIATE`` so that a balance
check and its debit are one atomic step even if another process opens the same file. WAL mode
lets outside readers look at the file while the server runs.

Money is stored as Decimal strings (SQLite has no decimal type and floats would drift).
Partial and failed orders are refunded lazily: every operation first "settles" the orders whose
final status has been reached since the last call (see ``timeline`` for why nothing runs in the
background).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from providers.sandbox import timeline as tl
from providers.sandbox.common import (
    CANCEL_DISABLED,
    CANCEL_NOT_ALLOWED,
    CANCEL_SENT_EARLIER,
    INCORRECT_ORDER,
    NOT_ENOUGH_FUNDS,
    REFILL_DISABLED,
    REFILL_NOT_ALLOWED,
    REFILL_SENT_EARLIER,
    ApiError,
    format_money,
    quantize_money,
)
from providers.sandbox.validation import OrderDraft

DEFAULT_BALANCE = Decimal("1000.00000")
# Order ids start where the seed docs' example does, so they never look like small panel ids.
FIRST_ORDER_ID = 23501
FINAL_STATUSES = frozenset({tl.COMPLETED, tl.PARTIAL, tl.CANCELED})

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service INTEGER NOT NULL,
    type TEXT NOT NULL,
    kind TEXT NOT NULL,               -- order | dripfeed | subscription (cancel answers)
    link TEXT NOT NULL,
    target TEXT NOT NULL,             -- link or username: where timeline markers are read
    quantity INTEGER NOT NULL,        -- total units (per-run quantity x runs)
    runs INTEGER,
    interval INTEGER,
    fields TEXT NOT NULL,             -- JSON: type-specific fields as sent
    charge TEXT NOT NULL,
    can_refill INTEGER NOT NULL,      -- service flags as they were when ordered
    can_cancel INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL NOT NULL,
    finish_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    final_remains INTEGER NOT NULL,
    start_count INTEGER NOT NULL,
    working_label TEXT NOT NULL,
    canceled_at REAL,
    refund TEXT,
    settled INTEGER NOT NULL DEFAULT 0
);
-- Settling looks only at unsettled orders; keep that scan small however many orders exist.
CREATE INDEX IF NOT EXISTS orders_unsettled ON orders (finish_at) WHERE settled = 0;

CREATE TABLE IF NOT EXISTS refills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL NOT NULL,
    finish_at REAL NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refills_order ON refills (order_id);

CREATE TABLE IF NOT EXISTS cancels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cancels_order ON cancels (order_id);

CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL,             -- JSON, without the key
    outcome TEXT NOT NULL,
    http_status INTEGER,
    order_id INTEGER,
    fault TEXT
);
"""


@dataclass(frozen=True)
class OrderState:
    """What `status` reports for one order."""

    order_id: int
    charge: str
    status: str
    remains: int
    start_count: int


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _plan(row: sqlite3.Row) -> tl.OrderPlan:
    return tl.OrderPlan(
        started_at=row["started_at"],
        finish_at=row["finish_at"],
        outcome=row["outcome"],
        final_remains=row["final_remains"],
        start_count=row["start_count"],
        working_label=row["working_label"],
    )


def _progress(row: sqlite3.Row, now: float) -> tl.Progress:
    canceled = row["canceled_at"] is not None
    return tl.order_progress(_plan(row), quantity=row["quantity"], now=now, canceled=canceled)


def _placeholders(ids: list[int]) -> str:
    return ",".join("?" * len(ids))


class Store:
    """Thread-safe access to the sandbox state file."""

    def __init__(
        self,
        path: str | Path,
        *,
        start_balance: Decimal | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._clock = clock
        # RLock: a public method may call another while already holding the lock.
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)
        self._init_meta(start_balance)

    # --- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _init_meta(self, start_balance: Decimal | None) -> None:
        with self._tx() as conn:
            self._seed_sequences(conn)
            if start_balance is not None:
                # An explicit starting balance also resets the current one.
                self._set_meta(conn, "start_balance", format_money(start_balance))
                self._set_meta(conn, "balance", format_money(start_balance))
            elif self._get_meta(conn, "start_balance") is None:
                self._set_meta(conn, "start_balance", format_money(DEFAULT_BALANCE))
                self._set_meta(conn, "balance", format_money(DEFAULT_BALANCE))

    @staticmethod
    def _seed_sequences(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'orders', ? "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'orders')",
            (FIRST_ORDER_ID - 1,),
        )

    @staticmethod
    def _get_meta(conn: sqlite3.Connection, name: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row["value"]

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def _balance(self, conn: sqlite3.Connection) -> Decimal:
        return Decimal(self._get_meta(conn, "balance") or "0")

    def _credit(self, conn: sqlite3.Connection, amount: Decimal) -> None:
        self._set_meta(conn, "balance", format_money(self._balance(conn) + amount))

    def _settle(self, conn: sqlite3.Connection, now: float) -> None:
        """Refund orders that reached Partial or failed since the last call, exactly once."""
        rows = conn.execute(
            "SELECT id, charge, quantity, outcome, final_remains FROM orders "
            "WHERE settled = 0 AND finish_at <= ?",
            (now,),
        ).fetchall()
        for row in rows:
            refund = Decimal(0)
            if row["outcome"] != tl.COMPLETED:
                refund = quantize_money(
                    Decimal(row["charge"]) * row["final_remains"] / row["quantity"]
                )
                self._credit(conn, refund)
            conn.execute(
                "UPDATE orders SET settled = 1, refund = ? WHERE id = ?",
                (format_money(refund), row["id"]),
            )

    def _order_rows(self, conn: sqlite3.Connection, ids: list[int]) -> dict[int, sqlite3.Row]:
        rows = conn.execute(
            f"SELECT * FROM orders WHERE id IN ({_placeholders(ids)})",  # noqa: S608 - only "?"s
            ids,
        ).fetchall()
        return {row["id"]: row for row in rows}

    # --- balance --------------------------------------------------------------------------------

    def balance(self) -> Decimal:
        with self._tx() as conn:
            self._settle(conn, self._clock())
            return self._balance(conn)

    def set_balance(self, amount: Decimal) -> None:
        with self._tx() as conn:
            self._set_meta(conn, "balance", format_money(amount))

    # --- orders ---------------------------------------------------------------------------------

    def create_order(self, draft: OrderDraft, *, duration: float, partial_percent: int = 0) -> int:
        """Charge the balance and store the order; ApiError if the balance is too low."""
        now = self._clock()
        plan = tl.plan_order(
            target=draft.target,
            quantity=draft.quantity,
            created_at=now,
            duration=duration,
            partial_percent=partial_percent,
        )
        with self._tx() as conn:
            self._settle(conn, now)
            if self._balance(conn) < draft.charge:
                raise ApiError(NOT_ENOUGH_FUNDS)
            self._credit(conn, -draft.charge)
            cursor = conn.execute(
                "INSERT INTO orders (service, type, kind, link, target, quantity, runs, interval,"
                " fields, charge, can_refill, can_cancel, created_at, started_at, finish_at,"
                " outcome, final_remains, start_count, working_label)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    draft.service.service,
                    draft.service.type,
                    draft.kind,
                    draft.link,
                    draft.target,
                    draft.quantity,
                    draft.runs,
                    draft.interval,
                    json.dumps(draft.fields),
                    format_money(draft.charge),
                    draft.service.refill,
                    draft.service.cancel,
                    now,
                    plan.started_at,
                    plan.finish_at,
                    plan.outcome,
                    plan.final_remains,
                    plan.start_count,
                    plan.working_label,
                ),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def order_states(self, ids: list[int]) -> dict[int, OrderState]:
        """Current status of each known id; unknown ids are simply absent."""
        if not ids:
            return {}
        now = self._clock()
        with self._tx() as conn:
            self._settle(conn, now)
            rows = self._order_rows(conn, ids)
        states = {}
        for order_id, row in rows.items():
            progress = _progress(row, now)
            states[order_id] = OrderState(
                order_id, row["charge"], progress.status, progress.remains, progress.start_count
            )
        return states

    def list_orders(self) -> list[dict[str, Any]]:
        """Every order with its plan and current state, for the control API."""
        now = self._clock()
        with self._tx() as conn:
            self._settle(conn, now)
            rows = conn.execute("SELECT * FROM orders ORDER BY id").fetchall()
        return [self._order_dict(row, now) for row in rows]

    @staticmethod
    def _order_dict(row: sqlite3.Row, now: float) -> dict[str, Any]:
        progress = _progress(row, now)
        return {
            "order": row["id"],
            "service": row["service"],
            "type": row["type"],
            "link": row["link"],
            "quantity": row["quantity"],
            "runs": row["runs"],
            "interval": row["interval"],
            "fields": json.loads(row["fields"]),
            "charge": row["charge"],
            "status": progress.status,
            "remains": progress.remains,
            "start_count": progress.start_count,
            "refund": row["refund"],
            "created_at": iso(row["created_at"]),
            "finish_at": iso(row["finish_at"]),
            "canceled_at": iso(row["canceled_at"]),
        }

    # --- cancels --------------------------------------------------------------------------------

    def cancel_orders(self, ids: list[int]) -> list[tuple[int, str, int | str]]:
        """Cancel each order: (order id, kind, cancel id or error message), in request order."""
        now = self._clock()
        results: list[tuple[int, str, int | str]] = []
        with self._tx() as conn:
            self._settle(conn, now)
            rows = self._order_rows(conn, ids)
            for order_id in ids:
                row = rows.get(order_id)
                kind = row["kind"] if row is not None else "order"
                results.append((order_id, kind, self._cancel_one(conn, row, now)))
        return results

    def _cancel_one(
        self, conn: sqlite3.Connection, row: sqlite3.Row | None, now: float
    ) -> int | str:
        if row is None:
            return INCORRECT_ORDER
        earlier = conn.execute("SELECT 1 FROM cancels WHERE order_id = ?", (row["id"],))
        if earlier.fetchone() is not None:
            return CANCEL_SENT_EARLIER
        if not row["can_cancel"]:
            return CANCEL_DISABLED
        if _progress(row, now).status in FINAL_STATUSES:
            return CANCEL_NOT_ALLOWED
        rejected = tl.has_marker(row["target"], tl.MARK_REJECT_CANCEL)
        cursor = conn.execute(
            "INSERT INTO cancels (order_id, created_at, status) VALUES (?, ?, ?)",
            (row["id"], now, tl.REJECTED if rejected else tl.COMPLETED),
        )
        if not rejected:
            # The whole charge goes back: a canceled order reports remains = quantity.
            self._credit(conn, Decimal(row["charge"]))
            conn.execute(
                "UPDATE orders SET canceled_at = ?, settled = 1, refund = charge WHERE id = ?",
                (now, row["id"]),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def cancel_statuses(self, ids: list[int]) -> dict[int, str]:
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT id, status FROM cancels WHERE id IN ({_placeholders(ids)})",  # noqa: S608
                ids,
            ).fetchall()
        return {row["id"]: row["status"] for row in rows}

    # --- refills --------------------------------------------------------------------------------

    def create_refills(self, ids: list[int], *, duration: float) -> list[tuple[int, int | str]]:
        """Ask a refill of each order: (order id, refill id or error message)."""
        now = self._clock()
        with self._tx() as conn:
            self._settle(conn, now)
            rows = self._order_rows(conn, ids)
            return [(i, self._refill_one(conn, rows.get(i), now, duration)) for i in ids]

    def _refill_one(
        self, conn: sqlite3.Connection, row: sqlite3.Row | None, now: float, duration: float
    ) -> int | str:
        if row is None:
            return INCORRECT_ORDER
        if not row["can_refill"]:
            return REFILL_DISABLED
        if _progress(row, now).status != tl.COMPLETED:
            return REFILL_NOT_ALLOWED
        running = conn.execute(
            "SELECT 1 FROM refills WHERE order_id = ? AND finish_at > ?", (row["id"], now)
        )
        if running.fetchone() is not None:
            return REFILL_SENT_EARLIER
        plan = tl.plan_refill(target=row["target"], created_at=now, duration=duration)
        cursor = conn.execute(
            "INSERT INTO refills (order_id, created_at, started_at, finish_at, outcome)"
            " VALUES (?, ?, ?, ?, ?)",
            (row["id"], now, plan.started_at, plan.finish_at, plan.outcome),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def refill_statuses(self, ids: list[int]) -> dict[int, str]:
        now = self._clock()
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT * FROM refills WHERE id IN ({_placeholders(ids)})",  # noqa: S608
                ids,
            ).fetchall()
        return {
            row["id"]: tl.refill_status(
                tl.RefillPlan(row["started_at"], row["finish_at"], row["outcome"]), now=now
            )
            for row in rows
        }

    # --- request log ----------------------------------------------------------------------------

    def log_request(
        self,
        *,
        method: str,
        path: str,
        action: str,
        params: dict[str, str],
        outcome: str,
        http_status: int | None,
        order_id: int | None = None,
        fault: str | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO requests (at, method, path, action, params, outcome, http_status,"
                " order_id, fault) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._clock(),
                    method,
                    path,
                    action,
                    json.dumps(params),
                    outcome,
                    http_status,
                    order_id,
                    fault,
                ),
            )

    def read_log(
        self, *, action: str | None = None, since: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Logged API requests, oldest first, with id > `since`."""
        query = "SELECT * FROM requests WHERE id > ?"
        args: list[Any] = [since]
        if action:
            query += " AND action = ?"
            args.append(action)
        query += " ORDER BY id LIMIT ?"
        args.append(limit)
        with self._tx() as conn:
            rows = conn.execute(query, args).fetchall()
        return [self._log_dict(row) for row in rows]

    @staticmethod
    def _log_dict(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "at": iso(row["at"]),
            "method": row["method"],
            "path": row["path"],
            "action": row["action"],
            "params": json.loads(row["params"]),
            "outcome": row["outcome"],
            "http_status": row["http_status"],
            "order": row["order_id"],
            "fault": row["fault"],
        }

    # --- reset ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every order, refill, cancel and logged request; restore the start balance."""
        with self._tx() as conn:
            for table in ("orders", "refills", "cancels", "requests"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            conn.execute("DELETE FROM sqlite_sequence")
            self._seed_sequences(conn)
            start = self._get_meta(conn, "start_balance") or format_money(DEFAULT_BALANCE)
            self._set_meta(conn, "balance", start)

    def counts(self) -> dict[str, int]:
        with self._tx() as conn:
            return {
                table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("orders", "refills", "cancels", "requests")
            }
