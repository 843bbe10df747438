"""Placing an order: validation per order type, the charge, and the one transaction that debits
the ledger and saves the order (placement is enqueued after commit)."""

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from accounts.models import LedgerEntry, User
from accounts.services import DRAWN_ID, Alongside, balance_debit, wallet_count_order
from catalog.models import Service
from catalog.order_types import (
    LIST_FIELDS,
    SUBSCRIPTION_DELAYS,
    TYPE_SPECS,
    OrderType,
    QuantityFrom,
)
from catalog.pricing import MONEY_PLACES, ZERO, charge_for, quantize_money
from catalog.selectors import service_rate_for_user
from orders.models import Order, OrderStatusChange
from orders.services.common import OrderError, logger
from orders.services.costs import PACKAGE_TYPES, order_cost
from orders.services.enqueue import enqueue_order_submit
from orders.services.summary import daily_summary_add, daily_summary_add_sql, new_order_share

MAX_LINK_LENGTH = 2000
MAX_FIELD_LENGTH = 20000  # comments of 1,500 lines fit; a megabyte of text does not
MAX_LINES = 10000
MAX_RUNS = 1000
MAX_INTERVAL_MINUTES = 60 * 24 * 30
EXPIRY_FORMAT = "%d/%m/%Y"
_USERNAME = re.compile(r"^@?[\w.\-]{1,64}$")
_HASHTAG = re.compile(r"^#?[^\s#]{1,100}$")
_MAX_INT = 2**31 - 1
# A link or media field is one line of text: control characters (NUL, tab, newline, DEL, C1),
# lone surrogates (PostgreSQL cannot store them) and the Unicode line and paragraph separators
# are refused; everything else is the provider's business.
_NOT_IN_A_LINK = frozenset({"Cc", "Cs", "Zl", "Zp"})

# Three numbers are easy to mix up here; each has its own name:
# - the *typed quantity*: the `quantity` field as the customer sent it (per run for a drip-feed;
#   for line types it must equal the number of lines);
# - the *order quantity*: what Order.quantity stores and refunds are counted against
#   (charge * remains / order quantity): all runs of a drip-feed, the reserve of a
#   subscription, 1 for a package;
# - the *priced units*: the units charged at the rate per 1000 (0 for a package, which is
#   priced per package).


@dataclass(frozen=True)
class Quote:
    order_quantity: int  # what Order.quantity will store (see above)
    rate: Decimal  # this customer's rate per 1000 (per package for packages)
    charge: Decimal


@dataclass
class _Draft:
    """A validated request: what to store, what to send upstream, what to charge."""

    link: str
    order_quantity: int  # Order.quantity: refunds are charge * remains / order_quantity
    params: dict[str, str] = field(default_factory=dict)  # sent upstream as they are, with link
    priced_units: int = 0  # units at the rate per 1000 (0 for a package)


# --- field checks ---------------------------------------------------------------------------


def _text(data: Mapping[str, object], name: str) -> str:
    value = data.get(name)
    text = "" if value is None else str(value).strip()
    # PostgreSQL refuses NUL in text and a lone surrogate cannot be encoded: refuse them here
    # rather than let the INSERT fail after the charge was computed.
    if "\x00" in text or (not text.isascii() and _has_surrogate(text)):
        raise OrderError(name, f'"{name}" holds a character that cannot be stored.')
    return text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _required(data: Mapping[str, object], name: str, label: str | None = None) -> str:
    value = _text(data, name)
    if not value:
        raise OrderError(name, f"{label or name.capitalize()} is required.")
    if len(value) > MAX_FIELD_LENGTH:
        raise OrderError(name, f"{label or name.capitalize()} is too long.")
    return value


def _int(
    data: Mapping[str, object], name: str, *, minimum: int, label: str, required: bool = True
) -> int | None:
    raw = _text(data, name)
    if not raw:
        if required:
            raise OrderError(name, f"{label} is required.")
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _MAX_INT:
        raise OrderError(name, f"{label} must be a whole number.")
    value = int(raw)
    if value < minimum:
        raise OrderError(name, f"{label} must be at least {minimum}.")
    return value


def _lines(data: Mapping[str, object], name: str, label: str) -> list[str]:
    value = _required(data, name, label)
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    if not lines:
        raise OrderError(name, f"{label} must have at least one line.")
    if len(lines) > MAX_LINES:
        raise OrderError(name, f"{label} can have at most {MAX_LINES} lines.")
    return lines


def _link(data: Mapping[str, object], name: str, label: str) -> str:
    """Any one line of text up to MAX_LINK_LENGTH characters: providers take a full URL, a bare
    `instagram.com/x`, a username or an `@channel`, depending on the service, so the panel
    checks only that the value is one sendable, storable line."""
    value = _required(data, name, label)
    if len(value) > MAX_LINK_LENGTH:
        raise OrderError(name, f"{label} is too long (at most {MAX_LINK_LENGTH} characters).")
    if any(unicodedata.category(ch) in _NOT_IN_A_LINK for ch in value):
        raise OrderError(name, f"{label} must be one line without control characters.")
    return value


def _username(data: Mapping[str, object], name: str = "username") -> str:
    value = _required(data, name, "Username")
    if not _USERNAME.match(value):
        raise OrderError(name, "Username may only hold letters, digits, '.', '_' and '-'.")
    return value


def _range(service: Service, name: str, value: int, label: str = "Quantity") -> None:
    if not service.min <= value <= service.max:
        raise OrderError(name, f"{label} must be between {service.min} and {service.max}.")


def _units_within_limit(units: int, name: str, label: str) -> int:
    # Each factor is within its own limit but the product may not fit the order's quantity
    # column: refuse it here rather than let the INSERT fail.
    if units > _MAX_INT:
        raise OrderError(name, f"{label} is too large (at most {_MAX_INT} units in one order).")
    return units


def _joined(lines: list[str]) -> str:
    return "\n".join(lines)


# --- per type -------------------------------------------------------------------------------


def _draft_default(service: Service, data: Mapping[str, object]) -> _Draft:
    link = _link(data, "link", "Link")
    typed_quantity = _int(data, "quantity", minimum=1, label="Quantity")
    assert typed_quantity is not None
    _range(service, "quantity", typed_quantity)
    runs = _int(data, "runs", minimum=1, label="Runs", required=False)
    interval = _int(data, "interval", minimum=1, label="Interval", required=False)
    if runs is None and interval is None:
        return _Draft(link, typed_quantity, {"quantity": str(typed_quantity)}, typed_quantity)
    if not service.dripfeed:
        field_name = "runs" if runs is not None else "interval"
        raise OrderError(field_name, "This service does not offer drip-feed.")
    if runs is None:
        raise OrderError("runs", "Runs is required with an interval.")
    if interval is None:
        raise OrderError("interval", "Interval (minutes) is required with runs.")
    if runs > MAX_RUNS:
        raise OrderError("runs", f"Runs can be at most {MAX_RUNS}.")
    if interval > MAX_INTERVAL_MINUTES:
        raise OrderError("interval", "Interval can be at most 30 days.")
    total = _units_within_limit(typed_quantity * runs, "runs", "Quantity x runs")
    params = {"quantity": str(typed_quantity), "runs": str(runs), "interval": str(interval)}
    return _Draft(link, total, params, total)


def _draft_lines(service: Service, data: Mapping[str, object], spec_field: str) -> _Draft:
    labels = {"comments": "Comments", "usernames": "Usernames"}
    link = _link(data, "link", "Link")
    lines = _lines(data, spec_field, labels[spec_field])
    if spec_field == "usernames" and not all(_USERNAME.match(line) for line in lines):
        raise OrderError("usernames", "Each line of usernames must be one username.")
    typed_quantity = _int(data, "quantity", minimum=1, label="Quantity", required=False)
    if typed_quantity is not None and typed_quantity != len(lines):
        raise OrderError(
            "quantity", f"Quantity must equal the number of lines in {spec_field} ({len(lines)})."
        )
    _range(service, spec_field, len(lines), f"The number of lines in {spec_field}")
    params = {spec_field: _joined(lines)}
    return _Draft(link, len(lines), params, len(lines))


def _draft_for_type(order_type: str, service: Service, data: Mapping[str, object]) -> _Draft:
    spec = TYPE_SPECS[OrderType(order_type)]
    if order_type == OrderType.DEFAULT:
        return _draft_default(service, data)
    if order_type == OrderType.SUBSCRIPTIONS:
        return _draft_subscription(service, data)
    if order_type in PACKAGE_TYPES:
        link = _link(data, "link", "Link")
        params = {}
        if order_type == OrderType.CUSTOM_COMMENTS_PACKAGE:
            params["comments"] = _joined(_lines(data, "comments", "Comments"))
        return _Draft(link, 1, params, 0)
    if spec.quantity_from == QuantityFrom.LINES:
        assert spec.lines_field is not None
        draft = _draft_lines(service, data, spec.lines_field)
        if order_type == OrderType.COMMENT_REPLIES:
            draft.params["username"] = _username(data)
        return draft
    # Types with a typed quantity and extra fields.
    link = _link(data, "link", "Link")
    typed_quantity = _int(data, "quantity", minimum=1, label="Quantity")
    assert typed_quantity is not None
    _range(service, "quantity", typed_quantity)
    params = {"quantity": str(typed_quantity)}
    params.update(_extra_fields(order_type, data))
    return _Draft(link, typed_quantity, params, typed_quantity)


def _extra_fields(order_type: str, data: Mapping[str, object]) -> dict[str, str]:
    if order_type == OrderType.MENTIONS_WITH_HASHTAGS:
        usernames = _lines(data, "usernames", "Usernames")
        if not all(_USERNAME.match(u) for u in usernames):
            raise OrderError("usernames", "Each line of usernames must be one username.")
        hashtags = _lines(data, "hashtags", "Hashtags")
        if not all(_HASHTAG.match(h) for h in hashtags):
            raise OrderError("hashtags", "Each line of hashtags must be one hashtag.")
        return {"usernames": _joined(usernames), "hashtags": _joined(hashtags)}
    if order_type == OrderType.MENTIONS_HASHTAG:
        hashtag = _required(data, "hashtag", "Hashtag")
        if not _HASHTAG.match(hashtag):
            raise OrderError("hashtag", "Hashtag must be one hashtag, without spaces.")
        return {"hashtag": hashtag}
    if order_type in (OrderType.MENTIONS_USER_FOLLOWERS, OrderType.COMMENT_LIKES):
        return {"username": _username(data)}
    if order_type == OrderType.MENTIONS_MEDIA_LIKERS:
        return {"media": _link(data, "media", "Media")}
    if order_type == OrderType.POLL:
        answer = _int(data, "answer_number", minimum=1, label="Answer number")
        return {"answer_number": str(answer)}
    if order_type == OrderType.INVITES_FROM_GROUPS:
        return {"groups": _joined(_lines(data, "groups", "Groups"))}
    raise OrderError(None, f"The order type {order_type!r} is not supported.")  # pragma: no cover


def _draft_subscription(service: Service, data: Mapping[str, object]) -> _Draft:
    """Subscriptions: `min`-`max` units on each new post of `username`.

    The charge reserves `max` units for every post the subscription can cover (`posts`, or the
    service's `subscription_reserve_posts` when unlimited, plus `old_posts`) at the rate per
    1000. When the subscription ends, what the provider reports undelivered (`remains`) is
    refunded like a Partial order's.
    """
    username = _username(data)
    low = _int(data, "min", minimum=1, label="Min")
    high = _int(data, "max", minimum=1, label="Max")
    assert low is not None and high is not None
    _range(service, "min", low, "Min")
    _range(service, "max", high, "Max")
    if low > high:
        raise OrderError("max", "Max must be at least min.")
    delay = _int(data, "delay", minimum=0, label="Delay")
    if delay not in SUBSCRIPTION_DELAYS:
        allowed = ", ".join(str(d) for d in SUBSCRIPTION_DELAYS)
        raise OrderError("delay", f"Delay must be one of {allowed} (minutes).")
    posts = _int(data, "posts", minimum=1, label="Posts", required=False)
    old_posts = _int(data, "old_posts", minimum=0, label="Old posts", required=False) or 0
    if old_posts > MAX_RUNS:
        raise OrderError("old_posts", f"Old posts can be at most {MAX_RUNS}.")
    if posts is not None and posts > MAX_RUNS:
        raise OrderError("posts", f"Posts can be at most {MAX_RUNS}.")
    params = {"username": username, "min": str(low), "max": str(high), "delay": str(delay)}
    if posts is None:
        if not service.allow_unlimited_subscriptions or service.subscription_reserve_posts < 1:
            raise OrderError(
                "posts", "Posts is required: this service has no unlimited subscriptions."
            )
        reserved_posts = service.subscription_reserve_posts
    else:
        reserved_posts = posts
        params["posts"] = str(posts)
    if old_posts:
        params["old_posts"] = str(old_posts)
    expiry = _text(data, "expiry")
    if expiry:
        try:
            expires = datetime.strptime(expiry, EXPIRY_FORMAT).date()
        except ValueError:
            raise OrderError(
                "expiry", "Expiry must be a date as day/month/year, e.g. 31/12/2026."
            ) from None
        if expires <= timezone.now().date():
            raise OrderError("expiry", "Expiry must be a date in the future.")
        params["expiry"] = expiry
    units = _units_within_limit(high * (reserved_posts + old_posts), "max", "Max x posts")
    return _Draft("", units, params, units)


# --- quote and create -----------------------------------------------------------------------


def _check_service(service: Service) -> None:
    if not service.is_enabled or not service.category.is_enabled:
        raise OrderError("service", "This service is not available at the moment.")
    if service.type not in {t.value for t in OrderType}:
        raise OrderError("service", "This service cannot be ordered: its type is unknown.")


def _price(*, user: User, service: Service, draft: _Draft) -> Quote:
    rate = service_rate_for_user(user=user, service=service)
    if service.type in PACKAGE_TYPES:
        charge = quantize_money(rate)
    else:
        charge = charge_for(rate, draft.priced_units)
    if charge == ZERO and rate != 0:
        # Placed upstream at the provider's cost while charging nothing. A rate of exactly 0 is
        # an admin's choice (a free service or customer); a charge that rounds to 0 is not.
        raise _charge_rounds_to_zero(service.type, rate)
    return Quote(order_quantity=draft.order_quantity, rate=rate, charge=charge)


_SMALLEST_CHARGE = Decimal(1).scaleb(-MONEY_PLACES) / 2  # what rounds half up to 0.00001


def _charge_rounds_to_zero(order_type: str, rate: Decimal) -> OrderError:
    """The refusal of an order too small to charge, naming the field that sets its size."""
    rate_text = f"{rate.normalize():f}"
    if order_type in PACKAGE_TYPES:
        return OrderError(
            "service",
            f"The price of this package ({rate_text}) rounds to 0.00000: it cannot "
            "be ordered at this price.",
        )
    spec = TYPE_SPECS[OrderType(order_type)]
    field_name = spec.lines_field or (
        "max" if order_type == OrderType.SUBSCRIPTIONS else "quantity"
    )
    minimum = math.ceil(_SMALLEST_CHARGE * 1000 / rate)
    return OrderError(
        field_name,
        f"This order's charge at {rate_text} per 1000 rounds to 0.00000: order at least "
        f"{minimum:,} units.",
    )


def _validate(*, user: User, service: Service, data: Mapping[str, object]) -> tuple[_Draft, Quote]:
    _check_service(service)
    draft = _draft_for_type(service.type, service, data)
    return draft, _price(user=user, service=service, draft=draft)


def order_quote(*, user: User, service: Service, data: Mapping[str, object]) -> Quote:
    """Validate exactly like order_create and return the charge; writes nothing."""
    return _validate(user=user, service=service, data=data)[1]


# Every parameter an order can carry: the fingerprint of a request is taken over these alone.
_REQUEST_FIELDS = sorted({"link", "quantity"}.union(*(spec.fields for spec in TYPE_SPECS.values())))


def _fingerprint(service_id: int, data: Mapping[str, object]) -> str:
    """The request as the client sent it (not as validated), so that a retry is recognised
    before validation: a retry must get its order back even if the service was disabled or
    its limits changed since."""
    fields = {
        name: str(data[name]).replace("\r\n", "\n").strip()
        for name in _REQUEST_FIELDS
        if data.get(name) not in (None, "")
    }
    body = json.dumps({"service": service_id, **fields}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def order_replay(
    *, user: User, service_id: int, data: Mapping[str, object], idempotency_key: str | None
) -> Order | None:
    """The order this customer already placed with `idempotency_key`, or None.

    Raises OrderError when the key was used for a different request.
    """
    key = (idempotency_key or "").strip()
    if not key:
        return None
    existing = Order.objects.filter(user=user, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != _fingerprint(service_id, data):
        raise OrderError(
            "idempotency_key", "This idempotency key was already used for a different order."
        )
    return existing


def order_create(
    *,
    user: User,
    service: Service,
    data: Mapping[str, object],
    source: str = Order.Source.WEB,
    idempotency_key: str | None = None,
) -> Order:
    """Validate, charge through the ledger and save the order in one transaction; placement is
    enqueued after commit.

    Raises OrderError (field named) or accounts.services.InsufficientFunds; nothing is written
    then. With an idempotency_key, the same request again returns the first order and charges
    nothing; a different request with the same key raises OrderError("idempotency_key").
    """
    key = (idempotency_key or "").strip() or None
    if key is not None and len(key) > 128:
        raise OrderError("idempotency_key", "The idempotency key is at most 128 characters.")
    if first := order_replay(user=user, service_id=service.pk, data=data, idempotency_key=key):
        return first
    draft, quote = _validate(user=user, service=service, data=data)
    fingerprint = _fingerprint(service.pk, data)
    try:
        order = _save_and_charge(
            user=user,
            service=service,
            draft=draft,
            quote=quote,
            source=source,
            key=key,
            fingerprint=fingerprint,
        )
    except IntegrityError:
        # A concurrent call with the same key committed first (the unique constraint made us
        # wait for it, then refused our row). Answer with its order.
        if key is None:
            raise
        first = order_replay(user=user, service_id=service.pk, data=data, idempotency_key=key)
        if first is None:
            raise
        return first
    return order


def _save_and_charge(
    *,
    user: User,
    service: Service,
    draft: _Draft,
    quote: Quote,
    source: str,
    key: str | None,
    fingerprint: str,
) -> Order:
    upstream = service.upstream
    manual = upstream is None
    order = Order(
        user=user,
        service=service,
        source=source,
        status=Order.Status.MANUAL if manual else Order.Status.QUEUED,
        link=draft.link,
        quantity=draft.order_quantity,
        params=draft.params,
        rate=quote.rate,
        charge=quote.charge,
        cost=order_cost(service=service, upstream=upstream, priced_units=draft.priced_units),
        provider=upstream.provider if upstream is not None else None,
        upstream_service=upstream,
        idempotency_key=key,
        request_fingerprint=fingerprint,
        created_at=timezone.now(),
    )
    changed_by = user if source != Order.Source.ADMIN else None
    if quote.charge > ZERO:
        # The order, its charge and what goes with it in one statement (_charge): in autocommit
        # it is its own transaction. Inside a caller's, a savepoint keeps a refused idempotency
        # key (IntegrityError, answered with the first order) from spoiling it.
        using = router.db_for_write(Order)
        nested = connections[using].in_atomic_block
        with transaction.atomic(using) if nested else nullcontext():
            _charge(order=order, changed_by=changed_by)
    else:
        with transaction.atomic():
            order.save()
            _record_free(order=order, changed_by=changed_by)
    if not manual:
        transaction.on_commit(lambda: enqueue_order_submit(order.pk))
    logger.info(
        "order %s created: %s x%s charge %s", order.pk, service.pk, order.quantity, order.charge
    )
    return order


# The longest memo of an order's charge: "Order <id>: " and the service's name, cut to fit
# whatever the id's length (19 digits at most).
_MEMO_NAME_LENGTH = 500 - len("Order : ") - 19


def _charge(*, order: Order, changed_by: User | None) -> None:
    """The order saved and charged in one statement (accounts.services.balance_debit, which
    pays for it: its id is drawn there): the wallet debited, its order count bumped, and
    alongside, once the debit is written, the order's row, its first status change and its
    share of the daily summary (from its own fields; its row is locked last, after the wallet,
    as refunds lock them). Refused, nothing is written."""
    summary_sql, summary_params = daily_summary_add_sql(new_order_share(order), rows_from="debited")
    balance_debit(
        user=order.user,
        amount=order.charge,
        kind=LedgerEntry.Kind.CHARGE,
        memo=f"Order {DRAWN_ID}: {order.service.name[:_MEMO_NAME_LENGTH]}",
        count_order=True,
        pays_for=order,
        alongside=[
            _created_status_change(order=order, changed_by=changed_by),
            Alongside(summary_sql, tuple(summary_params)),
        ],
    )


def _created_status_change(*, order: Order, changed_by: User | None) -> Alongside:
    """The new order's first OrderStatusChange ("" -> its status), as a write alongside its
    debit (its order's id drawn by the debit's statement)."""
    table = OrderStatusChange._meta.db_table
    return Alongside(
        f"INSERT INTO {table} (order_id, old_status, new_status, source, note, "  # noqa: S608 - names are ours, values bound
        "changed_by_id, created_at) SELECT drawn.id, '', %s, %s, '', %s, %s FROM debited, drawn",
        (
            order.status,
            OrderStatusChange.Source.CREATE,
            changed_by.pk if changed_by is not None else None,
            order.created_at,
        ),
    )


def _record_free(*, order: Order, changed_by: User | None) -> None:
    """What _charge writes alongside the debit, for an order that charges nothing."""
    OrderStatusChange.objects.create(
        order=order,
        old_status="",
        new_status=order.status,
        source=OrderStatusChange.Source.CREATE,
        created_at=order.created_at,
        changed_by=changed_by,
    )
    wallet_count_order(user=order.user)
    daily_summary_add(new_order_share(order))  # last: the summary row is locked until commit


__all__ = ["LIST_FIELDS", "Quote", "order_create", "order_quote", "order_replay"]
