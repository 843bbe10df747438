"""The API v2 actions of the sandbox provider, one small handler each.

Answers follow the seed providers' documented shapes exactly: amounts and counts as strings in
`status`/`balance`, order ids as numbers, ``{"refill": "1"}`` for a single refill but numbers in
list answers, per-item ``{"error": ...}`` objects inside multi answers, and the smmsend-style
``type`` in cancel answers. Where the dialects differ, the sandbox answers the superset, unless
a dialect (providers/sandbox/dialects.py) makes it answer like one provider that lacks some calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from providers.sandbox import dialects
from providers.sandbox.catalog import Catalog
from providers.sandbox.common import (
    CANCEL_NOT_FOUND,
    INCORRECT_ORDER,
    INCORRECT_REQUEST,
    INVALID_KEY,
    REFILL_NOT_FOUND,
    TOO_MANY_IDS,
    ApiError,
    format_money,
)
from providers.sandbox.store import OrderState, Store
from providers.sandbox.validation import is_digits, parse_add

MAX_IDS = 100

V = TypeVar("V")

Params = Mapping[str, str]
Answer = tuple[Any, int | None]  # (JSON answer, id of the order the request created)


@dataclass
class RuntimeSettings:
    """Settings the control API may change while the server runs."""

    speed: float = 60.0  # seconds from Pending to the final status
    partial_percent: int = 0  # share of links (by hash) that end Partial
    currency: str = "USD"
    dialect: str = dialects.FULL  # see providers/sandbox/dialects.py
    refuse: frozenset[str] = frozenset()  # refusal rules on top of the dialect's

    def refuses(self, params: Params) -> bool:
        """True when the dialect (or an extra rule) refuses this request as unknown."""
        rules = dialects.get_dialect(self.dialect).refuses | self.refuse
        return dialects.is_refused(rules, params)


def split_ids(raw: str) -> list[str]:
    """A comma-separated id list, at most 100 items like the providers allow."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if len(items) > MAX_IDS:
        raise ApiError(TOO_MANY_IDS)
    return items


def _as_id(raw: str) -> int | str:
    """Numeric ids become ints (answers echo them as numbers); anything else stays as sent."""
    return int(raw) if is_digits(raw) else raw


def _numeric(items: list[str]) -> list[int]:
    """The numeric ids of a list, each once (a repeated id gets the same answer twice)."""
    return list(dict.fromkeys(int(item) for item in items if is_digits(item)))


def _lookup(results: Mapping[int, V], item: str) -> V | None:
    return results.get(int(item)) if is_digits(item) else None


class Api:
    """Dispatches one API v2 request to its action handler."""

    def __init__(
        self, store: Store, catalog: Catalog, settings: RuntimeSettings, keys: frozenset[str]
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.keys = keys
        self._handlers: dict[str, Callable[[Params], Answer]] = {
            "services": self.services,
            "add": self.add,
            "status": self.status,
            "refill": self.refill,
            "refill_status": self.refill_status,
            "cancel": self.cancel,
            "balance": self.balance,
        }

    def handle(self, params: Params) -> Answer:
        """Answer one request; ApiError carries the message of an ``{"error": ...}`` answer."""
        if params.get("key", "") not in self.keys:
            raise ApiError(INVALID_KEY)
        handler = self._handlers.get(params.get("action", ""))
        if handler is None or self.settings.refuses(params):
            raise ApiError(INCORRECT_REQUEST)
        return handler(params)

    def services(self, params: Params) -> Answer:
        hidden = dialects.get_dialect(self.settings.dialect).hidden_service_keys
        answer = self.catalog.api_answer()
        if hidden:
            answer = [{k: v for k, v in item.items() if k not in hidden} for item in answer]
        return answer, None

    def add(self, params: Params) -> Answer:
        draft = parse_add(params, self.catalog)
        order_id = self.store.create_order(
            draft, duration=self.settings.speed, partial_percent=self.settings.partial_percent
        )
        return {"order": order_id}, order_id

    def balance(self, params: Params) -> Answer:
        amount = format_money(self.store.balance())
        return {"balance": amount, "currency": self.settings.currency}, None

    # --- status ---------------------------------------------------------------------------------

    def _status_item(self, state: OrderState) -> dict[str, str]:
        return {
            "charge": state.charge,
            "start_count": str(state.start_count),
            "status": state.status,
            "remains": str(state.remains),
            "currency": self.settings.currency,
        }

    def status(self, params: Params) -> Answer:
        if params.get("orders", "").strip():
            return self._status_many(split_ids(params["orders"])), None
        raw = params.get("order", "").strip()
        state = self.store.order_states([int(raw)]).get(int(raw)) if is_digits(raw) else None
        if state is None:
            raise ApiError(INCORRECT_ORDER)
        return self._status_item(state), None

    def _status_many(self, items: list[str]) -> dict[str, Any]:
        # Keyed by the ids exactly as sent, like the seed docs' {"1": {...}, "10": {...}}.
        states = self.store.order_states(_numeric(items))
        answer: dict[str, Any] = {}
        for item in items:
            state = _lookup(states, item)
            answer[item] = self._status_item(state) if state else {"error": INCORRECT_ORDER}
        return answer

    # --- refill ---------------------------------------------------------------------------------

    def refill(self, params: Params) -> Answer:
        if params.get("orders", "").strip():
            return self._refill_many(split_ids(params["orders"])), None
        raw = params.get("order", "").strip()
        if not is_digits(raw):
            raise ApiError(INCORRECT_ORDER)
        [(_, outcome)] = self.store.create_refills([int(raw)], duration=self.settings.speed)
        if isinstance(outcome, str):
            raise ApiError(outcome)
        # The single form answers the id as a string, the list form as a number (seed docs).
        return {"refill": str(outcome)}, None

    def _refill_many(self, items: list[str]) -> list[dict[str, Any]]:
        results = dict(self.store.create_refills(_numeric(items), duration=self.settings.speed))
        answer = []
        for item in items:
            outcome = _lookup(results, item) or INCORRECT_ORDER
            refill = outcome if isinstance(outcome, int) else {"error": outcome}
            answer.append({"order": _as_id(item), "refill": refill})
        return answer

    def refill_status(self, params: Params) -> Answer:
        if params.get("refills", "").strip():
            return self._refill_status_many(split_ids(params["refills"])), None
        raw = params.get("refill", "").strip()
        status = self.store.refill_statuses([int(raw)]).get(int(raw)) if is_digits(raw) else None
        if status is None:
            raise ApiError(REFILL_NOT_FOUND)
        return {"status": status}, None

    def _refill_status_many(self, items: list[str]) -> list[dict[str, Any]]:
        statuses = self.store.refill_statuses(_numeric(items))
        return [
            {
                "refill": _as_id(item),
                "status": _lookup(statuses, item) or {"error": REFILL_NOT_FOUND},
            }
            for item in items
        ]

    # --- cancel ---------------------------------------------------------------------------------

    def cancel(self, params: Params) -> Answer:
        if params.get("cancels", "").strip():
            return self._cancel_status(split_ids(params["cancels"])), None
        # `orders` is the documented form; a lone `order` is treated as a one-item list.
        raw = params.get("orders", "").strip() or params.get("order", "").strip()
        if not raw:
            raise ApiError(INCORRECT_ORDER)
        items = split_ids(raw)
        results = {i: (kind, out) for i, kind, out in self.store.cancel_orders(_numeric(items))}
        answer = []
        for item in items:
            kind, outcome = _lookup(results, item) or ("order", INCORRECT_ORDER)
            cancel = outcome if isinstance(outcome, int) else {"error": outcome}
            answer.append({"order": _as_id(item), "type": kind, "cancel": cancel})
        return answer, None

    def _cancel_status(self, items: list[str]) -> list[dict[str, Any]]:
        statuses = self.store.cancel_statuses(_numeric(items))
        return [
            {
                "cancel": _as_id(item),
                "status": _lookup(statuses, item) or {"error": CANCEL_NOT_FOUND},
            }
            for item in items
        ]
