"""The reseller API's order actions: add, status, refill, refill_status, cancel (and the
cancel-status call, `cancel` with `cancels=`). Dispatched by panel/api_v2.py; each handler reads
its parameters, calls one orders service or selector, and shapes the answer exactly as the seed
documents do (amounts and counts as strings, ids as numbers, `{"refill": "1"}` for one refill).

Another customer's id answers exactly like an id that does not exist: the selectors only ever
return the caller's own rows.
"""

from typing import Any

from django.conf import settings

from accounts.models import User
from accounts.selectors import KeyExtra
from accounts.services import InsufficientFunds
from catalog.models import Service
from catalog.order_types import TYPE_SPECS, OrderType
from catalog.selectors import service_get_enabled_for_user
from orders.models import PUBLIC_STATUS, Order
from orders.selectors import (
    OrderForRequest,
    OrderStatusRow,
    cancel_get_many_for_user,
    order_request_many_for_user,
    order_status_rows_key_extra,
    order_status_rows_many_for_user,
    refill_get_many_for_user,
)
from orders.services import (
    OrderError,
    order_cancel_request,
    order_create,
    order_refill_request,
    order_replay,
)
from panel.api_protocol import MAX_IDS, ApiError, ApiParams, IdItem, parse_id

INCORRECT_ORDER = "Incorrect order ID"
REFILL_NOT_FOUND = "Refill not found"
CANCEL_NOT_FOUND = "Cancel not found"
NOT_ENOUGH_FUNDS = "Not enough funds on balance."
IDEMPOTENCY_KEY_MAX = 128

# Every parameter any order type takes (catalog.order_types), handed to order_create as strings.
ORDER_FIELDS = tuple(sorted({f for spec in TYPE_SPECS.values() for f in spec.fields}))


def _idempotency_key(params: ApiParams) -> str | None:
    key = params.headers.get("Idempotency-Key") or params.get("idempotency_key")
    if key is None or not key.strip():
        return None
    key = key.strip()
    if len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise ApiError(
            f"The idempotency key must be printable text of at most {IDEMPOTENCY_KEY_MAX} characters."
        )
    return key


def _service(user: User, params: ApiParams) -> Service:
    service_id = parse_id(params.require("service"))
    # With the customer's price terms for it, in the same query (order_create asks no more).
    service = service_get_enabled_for_user(service_id=service_id, user=user) if service_id else None
    if service is None:
        raise ApiError("Incorrect service ID")
    return service


def add(*, user: User, params: ApiParams) -> dict[str, int]:
    """{"order": 23501}"""
    idempotency_key = _idempotency_key(params)
    data = params.strings(ORDER_FIELDS)
    if idempotency_key and (service_id := parse_id(params.require("service"))):
        # A retry gets its order back first, even if the service changed since.
        try:
            first = order_replay(
                user=user, service_id=service_id, data=data, idempotency_key=idempotency_key
            )
        except OrderError as exc:
            raise ApiError(exc.message) from None
        if first is not None:
            return {"order": first.pk}
    service = _service(user, params)
    try:
        order = order_create(
            user=user,
            service=service,
            data=data,
            source=Order.Source.API,
            idempotency_key=idempotency_key,
        )
    except OrderError as exc:
        raise ApiError(exc.message) from None
    except InsufficientFunds:
        raise ApiError(NOT_ENOUGH_FUNDS) from None
    return {"order": order.pk}


def _order_status(row: OrderStatusRow, currency: str) -> dict[str, str]:
    return {
        "charge": row.charge,
        "start_count": str(row.start_count if row.start_count is not None else 0),
        "status": PUBLIC_STATUS[row.status],
        "remains": str(row.remains if row.remains is not None else row.quantity),
        "currency": currency,
    }


# Longer than MAX_IDS distinct ids written plainly could be (19 digits, a comma and spaces
# each): the key lookup runs before the key check and the rate limits, so what runs for it
# must cost little. status() reads a longer list after them (repeats and padding make some
# valid), in a query of its own.
KEY_EXTRA_MAX_CHARS = MAX_IDS * 24


def status_key_extra(params: ApiParams) -> KeyExtra | None:
    """What `status` has the API key lookup read in the same statement: the orders it asks
    for (order_status_rows_key_extra), which status() then finds read. None when the ids do
    not parse: status() reports that itself, after the key and the rate limits."""
    try:
        if "orders" in params:
            if len(params.require("orders")) > KEY_EXTRA_MAX_CHARS:
                return None
            ids = [i.id for i in params.id_list("orders")]
        else:
            ids = [parse_id(params.get("order") or "")]
    except ApiError:
        return None
    return order_status_rows_key_extra([i for i in ids if i])


def status(*, user: User, params: ApiParams) -> dict[str, Any]:
    """`order` → one status object; `orders` → {"<id>": status or {"error": ...}}."""
    currency = settings.PANEL_CURRENCY
    if "orders" in params:
        items = params.id_list("orders")
        found = order_status_rows_many_for_user(user=user, order_ids=[i.id for i in items if i.id])
        return {
            item.raw: _order_status(found[item.id], currency)
            if item.id in found
            else {"error": INCORRECT_ORDER}
            for item in items
        }
    order_id = parse_id(_single(params, "order", "orders"))
    found = order_status_rows_many_for_user(user=user, order_ids=[order_id]) if order_id else {}
    if order_id not in found:
        raise ApiError(INCORRECT_ORDER)
    return _order_status(found[order_id], currency)


def _single(params: ApiParams, name: str, multi: str) -> str:
    value = params.get(name)
    if value is None:
        raise ApiError(f'Missing parameter "{name}" (or "{multi}" for several).')
    return value


def _orders_by_item(user: User, items: list[IdItem]) -> list[tuple[IdItem, OrderForRequest | None]]:
    """Each item with the order it names, as a refill or cancel starts from it (id, params and
    `service_type` only); None for an invalid id or another customer's order."""
    found = order_request_many_for_user(user=user, order_ids=[i.id for i in items if i.id])
    return [(i, found.get(i.id) if i.id is not None else None) for i in items]


def refill(*, user: User, params: ApiParams) -> Any:
    """`order` → {"refill": "1"}; `orders` → [{"order": 1, "refill": 1}, {"order": 3,
    "refill": {"error": ...}}]."""
    if "orders" in params:
        pairs = _orders_by_item(user, params.id_list("orders"))
        return [{"order": i.echo, "refill": _refill_one(user, order)} for i, order in pairs]
    order_id = parse_id(_single(params, "order", "orders"))
    order = (
        order_request_many_for_user(user=user, order_ids=[order_id]).get(order_id)
        if order_id
        else None
    )
    result = _refill_one(user, order)
    if isinstance(result, dict):
        raise ApiError(result["error"])
    return {"refill": str(result)}  # a string here, as every document shows it


def _refill_one(user: User, order: Order | None) -> int | dict[str, str]:
    if order is None:
        return {"error": INCORRECT_ORDER}
    try:
        return order_refill_request(user=user, order=order).pk
    except OrderError as exc:
        return {"error": exc.message}


def refill_status(*, user: User, params: ApiParams) -> Any:
    """`refill` → {"status": "Completed"}; `refills` → [{"refill": 1, "status": ...}]."""
    if "refills" in params:
        items = params.id_list("refills")
        found = refill_get_many_for_user(user=user, refill_ids=[i.id for i in items if i.id])
        return [
            {
                "refill": i.echo,
                "status": found[i.id].public_status
                if i.id in found
                else {"error": REFILL_NOT_FOUND},
            }
            for i in items
        ]
    refill_id = parse_id(_single(params, "refill", "refills"))
    found = refill_get_many_for_user(user=user, refill_ids=[refill_id]) if refill_id else {}
    if refill_id not in found:
        raise ApiError(REFILL_NOT_FOUND)
    return {"status": found[refill_id].public_status}


def _cancel_type(order: OrderForRequest) -> str:
    """What smmsend calls the thing being canceled: order, dripfeed or subscription. `order`
    comes from order_request_many_for_user (its service's type annotated as service_type)."""
    if order.service_type == OrderType.SUBSCRIPTIONS:
        return "subscription"
    if (order.params or {}).get("runs"):
        return "dripfeed"
    return "order"


def cancel(*, user: User, params: ApiParams) -> list[dict[str, Any]]:
    """`orders` (or `order`) → ask to cancel each: [{"order": 2, "type": "order", "cancel": 1},
    {"order": 9, "cancel": {"error": ...}}]. `cancels` → the status of earlier requests."""
    if "orders" in params or "order" in params:
        items = params.id_list("orders" if "orders" in params else "order")
        return [_cancel_one(user, i, order) for i, order in _orders_by_item(user, items)]
    if "cancels" in params:
        return _cancel_status(user, params.id_list("cancels"))
    raise ApiError('Missing parameter "orders" (or "cancels" for the status of cancels).')


def _cancel_one(user: User, item: IdItem, order: OrderForRequest | None) -> dict[str, Any]:
    if order is None:
        return {"order": item.echo, "cancel": {"error": INCORRECT_ORDER}}
    answer: dict[str, Any] = {"order": item.echo, "type": _cancel_type(order)}
    try:
        answer["cancel"] = order_cancel_request(user=user, order=order).pk
    except OrderError as exc:
        answer["cancel"] = {"error": exc.message}
    return answer


def _cancel_status(user: User, items: list[IdItem]) -> list[dict[str, Any]]:
    found = cancel_get_many_for_user(user=user, cancel_ids=[i.id for i in items if i.id])
    return [
        {
            "cancel": i.echo,
            "status": found[i.id].public_status if i.id in found else {"error": CANCEL_NOT_FOUND},
        }
        for i in items
    ]
