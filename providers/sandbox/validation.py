"""Checking an `add` request the way a real provider does, per order type.

``parse_add`` turns the raw form fields into an ``OrderDraft`` (what to store and what to
charge) or raises ``ApiError`` with the message a provider would answer. The order forms are
the union of the seed providers' documented forms; the table ``FORMS`` says which fields each
type needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from providers.sandbox import catalog as cat
from providers.sandbox.common import (
    DRIPFEED_DISABLED,
    INCORRECT_INTERVAL,
    INCORRECT_LINK,
    INCORRECT_QUANTITY,
    INCORRECT_RUNS,
    INCORRECT_SERVICE,
    QUANTITY_ABOVE_MAX,
    QUANTITY_BELOW_MIN,
    QUANTITY_NOT_LINES,
    ApiError,
    quantize_money,
)

# Subscription delays in minutes: the union of smmsend's and smmcloud's documented values.
SUBSCRIPTION_DELAYS = frozenset(
    {0, 5, 10, 15, 20, 30, 40, 50, 60, 90, 120, 150, 180, 210, 240, 270, 300, 360, 420, 480}
    | {540, 600}
)
EXPIRY_FORMAT = "%d/%m/%Y"

_USERNAME = re.compile(r"^@?[\w.\-]{1,64}$")
_HASHTAG = re.compile(r"^#?[^\s#]{1,100}$")


@dataclass(frozen=True)
class OrderDraft:
    """A validated order, ready to be charged and stored."""

    service: cat.Service
    link: str
    quantity: int  # units to deliver in total (per-run quantity x runs for drip-feed)
    charge: Decimal
    target: str  # what the timeline markers are read from: the link, or the username
    runs: int | None = None
    interval: int | None = None
    fields: dict[str, str] = field(default_factory=dict)  # the type-specific fields as sent

    @property
    def kind(self) -> str:
        """The `type` a cancel answer reports (smmsend): order, dripfeed or subscription."""
        if self.service.type == cat.SUBSCRIPTIONS:
            return "subscription"
        return "dripfeed" if self.runs else "order"


# --- field checks -------------------------------------------------------------------------------


def split_lines(value: str) -> list[str]:
    """Lists arrive one item per line, separated by \\r\\n or \\n; blank lines don't count."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def is_link(value: str) -> bool:
    """What the seed providers take as a link: any one line of text (a URL, a username,
    "@channel", "instagram.com/x"), without control characters, up to 2048 characters."""
    return (
        0 < len(value) <= 2048
        and value.isprintable()
        and not any(ch in value for ch in "\u2028\u2029")
    )


def is_username(value: str) -> bool:
    return bool(_USERNAME.match(value))


def is_hashtag(value: str) -> bool:
    return bool(_HASHTAG.match(value))


def is_digits(value: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²", which int() then rejects."""
    return value.isascii() and value.isdigit()


def is_positive_int(value: str) -> bool:
    return is_digits(value) and int(value) > 0


def _each(check: Callable[[str], bool]) -> Callable[[str], bool]:
    """A check for a one-per-line list: not empty, and every line passes `check`."""
    return lambda value: bool(split_lines(value)) and all(map(check, split_lines(value)))


def _any_text(value: str) -> bool:
    return bool(value.strip())


def _optional_int(params: Mapping[str, str], name: str, error: str, minimum: int) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if not is_digits(raw) or int(raw) < minimum:
        raise ApiError(error)
    return int(raw)


def _required_int(params: Mapping[str, str], name: str, error: str, minimum: int = 0) -> int:
    value = _optional_int(params, name, error, minimum)
    if value is None:
        raise ApiError(error)
    return value


def _check_range(service: cat.Service, quantity: int) -> None:
    if quantity < service.min:
        raise ApiError(QUANTITY_BELOW_MIN.format(min=service.min))
    if quantity > service.max:
        raise ApiError(QUANTITY_ABOVE_MAX.format(max=service.max))


def _per_thousand(service: cat.Service, units: int) -> Decimal:
    return quantize_money(service.rate_decimal * units / 1000)


# --- the forms ----------------------------------------------------------------------------------

Check = tuple[str, Callable[[str], bool], str]  # (field, check, error message)

_COMMENTS: Check = ("comments", _each(_any_text), "Incorrect comments")
_USERNAMES: Check = ("usernames", _each(is_username), "Incorrect usernames")
_USERNAME_FIELD: Check = ("username", is_username, "Incorrect username")


@dataclass(frozen=True)
class Form:
    """Which fields an order type takes.

    quantity: "param" (sent as `quantity`), "lines" (= number of lines of `lines`), or
    "package" (one package, priced at `rate`; `quantity` is ignored).
    """

    quantity: str = "param"
    lines: Check | None = None
    required: tuple[Check, ...] = ()
    dripfeed: bool = False


FORMS: dict[str, Form] = {
    cat.DEFAULT: Form(dripfeed=True),
    cat.PACKAGE: Form(quantity="package"),
    cat.CUSTOM_COMMENTS: Form(quantity="lines", lines=_COMMENTS),
    cat.CUSTOM_COMMENTS_PACKAGE: Form(quantity="package", lines=_COMMENTS),
    cat.MENTIONS_WITH_HASHTAGS: Form(
        required=(_USERNAMES, ("hashtags", _each(is_hashtag), "Incorrect hashtags"))
    ),
    cat.MENTIONS_CUSTOM_LIST: Form(quantity="lines", lines=_USERNAMES),
    cat.MENTIONS_HASHTAG: Form(required=(("hashtag", is_hashtag, "Incorrect hashtag"),)),
    cat.MENTIONS_USER_FOLLOWERS: Form(required=(_USERNAME_FIELD,)),
    cat.MENTIONS_MEDIA_LIKERS: Form(required=(("media", is_link, "Incorrect media"),)),
    cat.COMMENT_LIKES: Form(required=(_USERNAME_FIELD,)),
    cat.COMMENT_REPLIES: Form(quantity="lines", lines=_COMMENTS, required=(_USERNAME_FIELD,)),
    cat.POLL: Form(required=(("answer_number", is_positive_int, "Incorrect answer number"),)),
    cat.INVITES_FROM_GROUPS: Form(required=(("groups", _each(_any_text), "Incorrect groups"),)),
}


def _run_checks(params: Mapping[str, str], checks: tuple[Check, ...]) -> dict[str, str]:
    fields = {}
    for name, check, error in checks:
        value = params.get(name, "")
        if not check(value):
            raise ApiError(error)
        fields[name] = value
    return fields


def _quantity(form: Form, service: cat.Service, params: Mapping[str, str]) -> int:
    if form.quantity == "package":
        return 1
    if form.quantity == "lines":
        assert form.lines is not None
        count = len(split_lines(params.get(form.lines[0], "")))
        # Clients may send `quantity` too; it must then agree with the list.
        sent = _optional_int(params, "quantity", INCORRECT_QUANTITY, 0)
        if sent is not None and sent != count:
            raise ApiError(QUANTITY_NOT_LINES.format(field=form.lines[0]))
        _check_range(service, count)
        return count
    quantity = _required_int(params, "quantity", INCORRECT_QUANTITY)
    _check_range(service, quantity)
    return quantity


def _dripfeed(service: cat.Service, params: Mapping[str, str]) -> tuple[int | None, int | None]:
    runs = _optional_int(params, "runs", INCORRECT_RUNS, 1)
    interval = _optional_int(params, "interval", INCORRECT_INTERVAL, 1)
    if runs is None and interval is None:
        return None, None
    if not service.dripfeed:
        raise ApiError(DRIPFEED_DISABLED)
    if runs is None:
        raise ApiError(INCORRECT_RUNS)
    if interval is None:
        raise ApiError(INCORRECT_INTERVAL)
    return runs, interval


def _parse_link_order(service: cat.Service, params: Mapping[str, str]) -> OrderDraft:
    form = FORMS[service.type]
    link = params.get("link", "").strip()
    if not is_link(link):
        raise ApiError(INCORRECT_LINK)
    checks = ((form.lines,) if form.lines else ()) + form.required
    fields = _run_checks(params, checks)
    quantity = _quantity(form, service, params)
    runs, interval = _dripfeed(service, params) if form.dripfeed else (None, None)
    if service.is_package:
        charge = quantize_money(service.rate_decimal)
    else:
        charge = _per_thousand(service, quantity * (runs or 1))
    return OrderDraft(
        service=service,
        link=link,
        quantity=quantity * (runs or 1),
        charge=charge,
        target=link,
        runs=runs,
        interval=interval,
        fields=fields,
    )


def _parse_subscription(service: cat.Service, params: Mapping[str, str]) -> OrderDraft:
    """Subscriptions have no link and no quantity: username, min/max per post, delay, posts.

    The sandbox charges up front for `max` units per post, for `posts` new posts (1 when
    unlimited) plus `old_posts` existing ones.
    """
    fields = _run_checks(params, (_USERNAME_FIELD,))
    low = _required_int(params, "min", "Incorrect min")
    high = _required_int(params, "max", "Incorrect max")
    _check_range(service, low)
    _check_range(service, high)
    if low > high:
        raise ApiError("Incorrect max")
    delay = _required_int(params, "delay", "Incorrect delay")
    if delay not in SUBSCRIPTION_DELAYS:
        raise ApiError("Incorrect delay")
    posts = _optional_int(params, "posts", "Incorrect posts", 1)
    old_posts = _optional_int(params, "old_posts", "Incorrect old posts", 0)
    expiry = params.get("expiry", "").strip()
    if expiry:
        try:
            datetime.strptime(expiry, EXPIRY_FORMAT)
        except ValueError:
            raise ApiError("Incorrect expiry date") from None
    fields.update(min=str(low), max=str(high), delay=str(delay), expiry=expiry)
    fields.update({k: params[k] for k in ("posts", "old_posts") if params.get(k, "").strip()})
    units = high * ((posts or 1) + (old_posts or 0))
    return OrderDraft(
        service=service,
        link=params.get("link", "").strip(),
        quantity=units,
        charge=_per_thousand(service, units),
        target=fields["username"],
        fields=fields,
    )


def parse_add(params: Mapping[str, str], catalog: cat.Catalog) -> OrderDraft:
    """Validate an `add` request; raise ApiError with the provider's message if it is wrong."""
    raw_service = params.get("service", "").strip()
    service = catalog.get(int(raw_service)) if is_digits(raw_service) else None
    if service is None:
        raise ApiError(INCORRECT_SERVICE)
    if service.type == cat.SUBSCRIPTIONS:
        return _parse_subscription(service, params)
    return _parse_link_order(service, params)
