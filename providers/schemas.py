"""Typed replies of the upstream "API v2" and the functions that parse them.

Every SMM provider we resell speaks the same de-facto protocol (one POST endpoint, form fields
``key`` + ``action``, JSON answers), each with its own small differences. The specification is
the five providers' own API pages, kept in ``shared/seeds/`` (see its README.md):

- helposmm        https://helposmm.com/api/v2       shared/seeds/000_48afffba5a269cd2.txt
- hmsocialmedia   https://hmsocialmedia.com/api/v2  shared/seeds/001_529ddc0b4915f7a2.txt
- heysmmprovider  https://heysmmprovider.com/api/v2 shared/seeds/002_5d09852270b15e79.txt
- smmsend         https://smmsend.com/api/v2        shared/seeds/003_b36a0800bc461123.txt
- smmcloud        https://smmcloud.uk/api/v2        shared/seeds/004_75016425f7f62ead.txt

The parsers here are pure: JSON in, frozen dataclasses out. They tolerate what real providers
send (numbers as strings, ids as numbers, keys in other cases, fields missing) and raise
``BadAnswer`` when an answer has a shape they cannot read. An upstream ``{"error": ...}`` for one
item of a multi answer becomes an ``ItemError`` in the result instead of failing the whole call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BadAnswer(ValueError):
    """The upstream JSON does not have the shape the action promises."""


# --- error texts --------------------------------------------------------------------------------

# Upstream error texts after which sending the same request again cannot succeed. Matched
# case-insensitively as substrings, because providers decorate them ("Incorrect link format").
PERMANENT_ERRORS: tuple[str, ...] = (
    "incorrect service id",
    "incorrect link",
    "invalid link",
    "link duplicate",
    "quantity less than minimal",
    "quantity more than maximal",
    "incorrect quantity",
    "invalid api key",
    "incorrect api key",
    "incorrect request",
    "service disabled",
    "incorrect order id",
    "incorrect refill id",
    "incorrect cancel id",
    "refill not found",
    "cancel not found",
    "refill is disabled",
    "refill disabled",
    "cancellation request was sent earlier",
    "refill request was sent earlier",
    "not eligible for refill",
    "cancel is disabled",
    "can't be canceled",
    "cannot be canceled",
    "drip-feed is not available",
    "incorrect runs",
    "incorrect interval",
    "quantity must equal",
    "too many ids",
)

# "Not enough funds on balance" and its cousins. Not permanent: topping up the upstream account
# makes the same request succeed.
FUNDS_ERRORS: tuple[str, ...] = (
    "not enough funds",
    "not enough balance",
    "not enough money",
    "insufficient funds",
    "insufficient balance",
    "insufficient fund",
    "low balance",
    "balance is too low",
    "balance is not enough",
)


def is_funds_error(message: str) -> bool:
    """True when an upstream error text says our account there has too little money."""
    text = message.casefold()
    return any(needle in text for needle in FUNDS_ERRORS)


def is_permanent_error(message: str) -> bool:
    """True when an upstream error text is in the PERMANENT table (retrying cannot help)."""
    text = message.casefold()
    return any(needle in text for needle in PERMANENT_ERRORS)


# --- statuses -----------------------------------------------------------------------------------


class UpstreamStatus(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    CANCELED = "Canceled"
    UNKNOWN = "Unknown"


class RequestStatus(StrEnum):
    """Normalised status of a refill or a cancel request."""

    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    REJECTED = "Rejected"
    CANCELED = "Canceled"
    UNKNOWN = "Unknown"


# Keys are status texts lower-cased with spaces, "_" and "-" removed ("In Progress",
# "in_progress" and "inprogress" all become "inprogress"). Anything else is UNKNOWN, never guessed.
_ORDER_STATUSES: dict[str, UpstreamStatus] = {
    "pending": UpstreamStatus.PENDING,
    "inprogress": UpstreamStatus.IN_PROGRESS,
    "processing": UpstreamStatus.PROCESSING,
    "completed": UpstreamStatus.COMPLETED,
    "complete": UpstreamStatus.COMPLETED,
    "partial": UpstreamStatus.PARTIAL,
    "canceled": UpstreamStatus.CANCELED,
    "cancelled": UpstreamStatus.CANCELED,
    # Providers that refund a failed order report it under these names; money-wise it is a cancel.
    "refunded": UpstreamStatus.CANCELED,
    "fail": UpstreamStatus.CANCELED,
    "failed": UpstreamStatus.CANCELED,
    "error": UpstreamStatus.CANCELED,
}

_REQUEST_STATUSES: dict[str, RequestStatus] = {
    "pending": RequestStatus.PENDING,
    "inprogress": RequestStatus.IN_PROGRESS,
    "processing": RequestStatus.IN_PROGRESS,
    "completed": RequestStatus.COMPLETED,
    "complete": RequestStatus.COMPLETED,
    "rejected": RequestStatus.REJECTED,
    "canceled": RequestStatus.CANCELED,
    "cancelled": RequestStatus.CANCELED,
}

_STATUS_NOISE = re.compile(r"[\s_\-]+")


def _status_key(raw: str) -> str:
    return _STATUS_NOISE.sub("", raw).casefold()


def normalise_order_status(raw: str) -> UpstreamStatus:
    """Map an upstream order status text to UpstreamStatus; UNKNOWN when not recognised."""
    return _ORDER_STATUSES.get(_status_key(raw), UpstreamStatus.UNKNOWN)


def normalise_request_status(raw: str) -> RequestStatus:
    """Map an upstream refill/cancel status text to RequestStatus; UNKNOWN when not recognised."""
    return _REQUEST_STATUSES.get(_status_key(raw), RequestStatus.UNKNOWN)


# --- reply models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamService:
    service_id: str
    name: str
    type: str
    category: str
    rate: Decimal  # per 1000 units, in the upstream account's currency
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool
    description: str
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class SkippedService:
    """One item of a `services` answer that could not be read, and why."""

    raw: object
    reason: str


class ServiceList(list[UpstreamService]):
    """The readable services of a `services` answer; `skipped` holds the unreadable ones."""

    def __init__(
        self, services: Iterable[UpstreamService] = (), skipped: Iterable[SkippedService] = ()
    ) -> None:
        super().__init__(services)
        self.skipped: list[SkippedService] = list(skipped)


@dataclass(frozen=True)
class OrderStatus:
    status: UpstreamStatus
    raw_status: str
    charge: Decimal | None
    start_count: int | None
    # Can be negative when the provider over-delivered: kept as sent, callers clamp.
    remains: int | None
    currency: str | None


@dataclass(frozen=True)
class ItemError:
    """An upstream `{"error": ...}` for one id of a multi answer (or a shape we could not read)."""

    message: str

    @property
    def permanent(self) -> bool:
        return is_permanent_error(self.message)

    @property
    def insufficient_funds(self) -> bool:
        return is_funds_error(self.message)


@dataclass(frozen=True)
class RefillStatus:
    status: RequestStatus  # a str: "Pending", "In progress", "Completed", "Rejected", ...
    raw_status: str


@dataclass(frozen=True)
class CancelResult:
    cancel_id: str
    type: str | None  # smmsend says what was canceled: "order", "dripfeed" or "subscription"


@dataclass(frozen=True)
class CancelStatus:
    status: RequestStatus
    raw_status: str


@dataclass(frozen=True)
class Balance:
    amount: Decimal
    currency: str  # "" when the provider does not say


# --- value helpers ------------------------------------------------------------------------------

# PostgreSQL refuses NUL in text and jsonb, and psycopg cannot encode a lone surrogate (JSON's
# "\ud800" decodes to one), so one such character in one upstream string would make the whole
# write that carries it fail: a catalog sync, a status poll, the record of a call.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable_char(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def clean_text(text: str) -> str:
    """`text` without NUL characters and with each lone surrogate replaced by U+FFFD, so that
    PostgreSQL can store it; the same object when there was nothing to clean."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(_storable_char, text)


def has_unstorable(value: Any) -> bool:
    """True when a string in `value` (a str, or decoded JSON) holds what clean_text removes."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, Mapping):
        return any(has_unstorable(k) or has_unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_unstorable(item) for item in value)
    return False


def clean_json(value: Any) -> Any:
    """`value` (decoded JSON, or a dict of request parameters) with clean_text applied to every
    string in it, keys included; anything else is kept as it is."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    return value


def ci_keys(obj: Mapping[Any, Any]) -> dict[str, Any]:
    """Lower-case the keys of one JSON object; an exactly lower-case key wins over `Status`."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        lowered = str(key).casefold()
        if lowered not in out or str(key) == lowered:
            out[lowered] = value
    return out


def error_text(value: Any) -> str | None:
    """The text of an `{"error": ...}` object, or None when `value` is not one."""
    if not isinstance(value, Mapping):
        return None
    err = ci_keys(value).get("error")
    if err is None or err is False or err == "":
        return None
    return clean_text(err.strip() if isinstance(err, str) else str(err))


def to_decimal(value: Any) -> Decimal:
    """Parse an amount sent as a JSON number or a string; BadAnswer when not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BadAnswer(f"not a number: {value!r}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadAnswer(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise BadAnswer(f"not a finite number: {value!r}")
    # "1e999999999" is a valid Decimal, but int() of it would eat the worker's memory.
    if result and result.adjusted() > 15:
        raise BadAnswer(f"number out of range: {value!r}")
    return result


def to_int(value: Any) -> int:
    """Parse a count sent as a number or a string ("157", 157, "157.0"); BadAnswer otherwise."""
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise BadAnswer(f"not a whole number: {value!r}")
    return int(number)


def to_bool(value: Any) -> bool:
    """Parse a flag: true/false, 1/0, "1"/"0", "true"/"yes"; absent or unreadable is False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return value == 1
    if isinstance(value, str):
        return value.strip().casefold() in {"1", "true", "yes", "on"}
    return False


# At most 64 characters: the length of every column that stores an upstream id.
_ID_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def to_id(value: Any) -> str:
    """Parse an upstream id sent as a number or a string ("23501", 23501) into a str."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BadAnswer(f"not an id: {value!r}")
    if not isinstance(value, str):
        number = to_int(value)
    elif _ID_TEXT.fullmatch(text := value.strip()):
        # Kept as sent; non-numeric ids are rare, but nothing in the protocol forbids them.
        if text.isdigit() and int(text) == 0:
            raise BadAnswer(f"not an id: {value!r}")
        return text
    else:
        raise BadAnswer(f"not an id: {value!r}")
    if number <= 0:
        raise BadAnswer(f"not an id: {value!r}")
    return str(number)


def _optional(parse: Callable[[Any], T], value: Any, what: str) -> T | None:
    # Informational fields of a status answer: missing, empty or unreadable means "not known".
    if value is None or value == "":
        return None
    try:
        return parse(value)
    except BadAnswer:
        logger.warning("Ignoring unreadable %s in an upstream answer: %r", what, value)
        return None


def _text(value: Any) -> str:
    return "" if value is None else clean_text(str(value).strip())


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise BadAnswer(f"{what}: expected a JSON object, got {type(data).__name__}")
    return ci_keys(data)


# --- services -----------------------------------------------------------------------------------


def parse_service(item: Any) -> UpstreamService:
    """Read one item of a `services` answer; BadAnswer when its id, rate, min or max is invalid."""
    obj = _object(item, "service")
    service_id = to_id(obj.get("service", obj.get("id", obj.get("service_id"))))
    rate = to_decimal(obj.get("rate"))
    if rate < 0:
        raise BadAnswer(f"negative rate: {obj.get('rate')!r}")
    minimum, maximum = to_int(obj.get("min")), to_int(obj.get("max"))
    if minimum < 0 or maximum < 1 or minimum > maximum:
        raise BadAnswer(f"invalid min/max: {obj.get('min')!r}/{obj.get('max')!r}")
    return UpstreamService(
        service_id=service_id,
        name=_text(obj.get("name")),
        # "Default" is the protocol's plain link + quantity form, the one a missing type means.
        type=_text(obj.get("type")) or "Default",
        category=_text(obj.get("category")),
        rate=rate,
        min=minimum,
        max=maximum,
        refill=to_bool(obj.get("refill")),
        cancel=to_bool(obj.get("cancel")),
        dripfeed=to_bool(obj.get("dripfeed")),
        description=_text(obj.get("desc", obj.get("description"))),
        raw=dict(item),
    )


def parse_services(data: Any) -> ServiceList:
    """Read a `services` answer. Unreadable or duplicate items go to `.skipped`, not an error."""
    if isinstance(data, Mapping):
        # A few panels wrap the list: {"services": [...]} or {"data": [...]}.
        obj = ci_keys(data)
        data = obj.get("services", obj.get("data"))
    if not isinstance(data, list):
        raise BadAnswer("services: expected a JSON list")
    result = ServiceList()
    seen: set[str] = set()
    for item in data:
        try:
            service = parse_service(item)
        except BadAnswer as exc:
            result.skipped.append(SkippedService(raw=item, reason=str(exc)))
            continue
        if service.service_id in seen:
            result.skipped.append(SkippedService(raw=item, reason="duplicate service id"))
            continue
        seen.add(service.service_id)
        result.append(service)
    return result


# --- single answers -----------------------------------------------------------------------------

_ORDER_ID_KEYS = ("order", "order_id", "orderid", "id")
_REFILL_ID_KEYS = ("refill", "refill_id", "id")


def _find_id(data: Any, keys: tuple[str, ...], what: str) -> str | ItemError:
    # The id can be the whole body (23501 or "23501"), a field, or a field of a "data" object.
    if not isinstance(data, Mapping | list):
        if isinstance(data, str) and not data.strip().isdigit():
            # A bare text body is an id only when it is a number; "OK" is not an order id.
            raise BadAnswer(f"{what}: unexpected answer {data[:100]!r}")
        return to_id(data)
    obj = _object(data, what)
    for key in keys:
        if key in obj:
            value = obj[key]
            if (message := error_text(value)) is not None:
                return ItemError(message)
            return to_id(value)
    if isinstance(obj.get("data"), Mapping | int | str):
        return _find_id(obj["data"], keys, what)
    raise BadAnswer(f"{what}: no id in the answer")


def parse_order_id(data: Any) -> str | ItemError:
    """Read the new order id of an `add` answer: `order`, `order_id`, `data.order` or a bare id."""
    return _find_id(data, _ORDER_ID_KEYS, "add")


def parse_refill_id(data: Any) -> str | ItemError:
    """Read the refill id of a single `refill` answer (`{"refill": "1"}` or `{"refill": 1}`)."""
    return _find_id(data, _REFILL_ID_KEYS, "refill")


def parse_order_status(data: Any) -> OrderStatus | ItemError:
    """Read one order's status object (single `status` answer or one item of a multi answer)."""
    obj = _object(data, "status")
    if (message := error_text(obj)) is not None:
        return ItemError(message)
    if "status" not in obj:
        raise BadAnswer("status: the answer has no status")
    raw = obj["status"]
    if (message := error_text(raw)) is not None:
        return ItemError(message)
    if isinstance(raw, Mapping | list) or raw is None:
        raise BadAnswer(f"status: unreadable status {raw!r}")
    raw_status = _text(raw)
    currency = _text(obj.get("currency")) or None
    return OrderStatus(
        status=normalise_order_status(raw_status),
        raw_status=raw_status,
        charge=_optional(to_decimal, obj.get("charge"), "charge"),
        start_count=_optional(to_int, obj.get("start_count"), "start_count"),
        remains=_optional(to_int, obj.get("remains"), "remains"),
        currency=currency,
    )


def _request_status(data: Any, what: str) -> tuple[RequestStatus, str] | ItemError:
    obj = _object(data, what)
    if (message := error_text(obj)) is not None:
        return ItemError(message)
    # smmsend's multi refill_status once says "type" where everyone else says "status".
    raw = obj.get("status", obj.get("type"))
    if (message := error_text(raw)) is not None:
        return ItemError(message)
    if raw is None or isinstance(raw, Mapping | list):
        raise BadAnswer(f"{what}: the answer has no status")
    raw_status = _text(raw)
    return normalise_request_status(raw_status), raw_status


def parse_refill_status(data: Any) -> RefillStatus | ItemError:
    """Read one refill's status object (`{"status": "Completed"}`, or `type` for `status`)."""
    result = _request_status(data, "refill_status")
    return result if isinstance(result, ItemError) else RefillStatus(*result)


def parse_cancel_status(data: Any) -> CancelStatus | ItemError:
    """Read one cancel request's status object (smmsend `action=cancel&cancels=...`)."""
    result = _request_status(data, "cancel_status")
    return result if isinstance(result, ItemError) else CancelStatus(*result)


def parse_refill_item(data: Any) -> str | ItemError:
    """Read one item of a multi `refill` answer: `{"order": 1, "refill": 1 | {"error": ...}}`."""
    if isinstance(data, Mapping) and (message := error_text(data)) is not None:
        return ItemError(message)
    return parse_refill_id(data)


def parse_cancel_item(data: Any) -> CancelResult | ItemError:
    """Read one item of a `cancel` answer: `{"order": 2, "cancel": 1, "type": "order"}`."""
    if not isinstance(data, Mapping):
        return CancelResult(cancel_id=to_id(data), type=None)
    obj = ci_keys(data)
    if "cancel" not in obj:
        if (message := error_text(obj)) is not None:
            return ItemError(message)
        raise BadAnswer("cancel: the item has no cancel id")
    if (message := error_text(obj["cancel"])) is not None:
        return ItemError(message)
    return CancelResult(cancel_id=to_id(obj["cancel"]), type=_text(obj.get("type")) or None)


def parse_balance(data: Any) -> Balance:
    """Read a `balance` answer; the currency is "" when the provider does not send one."""
    obj = _object(data, "balance")
    if "balance" not in obj:
        raise BadAnswer("balance: the answer has no balance")
    return Balance(amount=to_decimal(obj["balance"]), currency=_text(obj.get("currency")))


# --- multi answers ------------------------------------------------------------------------------


def parse_multi(
    data: Any,
    ids: list[str],
    id_keys: tuple[str, ...],
    parse_item: Callable[[Any], T | ItemError],
) -> dict[str, T | ItemError]:
    """Map a multi answer onto the requested ids, each to its parsed item or an ItemError.

    Accepts the keyed form `{"1": {...}, "10": {"error": ...}}` (multi status), the list form
    `[{"order": 1, "refill": 1}, ...]` (multi refill, refill_status, cancel) and, for a single
    id, a provider answering in the single form. An id missing from the answer, or an item we
    cannot read, becomes an ItemError so that one bad item does not sink the batch.
    """
    items: dict[str, Any] = {}
    if isinstance(data, list):
        for item in data:
            obj = ci_keys(item) if isinstance(item, Mapping) else {}
            key = next((obj[k] for k in id_keys if k in obj), None)
            try:
                items.setdefault(to_id(key), item)
            except BadAnswer:
                logger.warning("Ignoring an item without an id in a multi answer: %r", item)
    elif isinstance(data, Mapping):
        items = {str(key).strip(): value for key, value in data.items()}
        if len(ids) == 1 and ids[0] not in items:
            items = {ids[0]: data}
    else:
        raise BadAnswer(f"expected a JSON object or list, got {type(data).__name__}")

    result: dict[str, T | ItemError] = {}
    for id_ in ids:
        if id_ not in items:
            result[id_] = ItemError("no answer for this id")
            continue
        try:
            result[id_] = parse_item(items[id_])
        except BadAnswer as exc:
            result[id_] = ItemError(f"unreadable answer: {exc}")
    return result
