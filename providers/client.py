"""HTTP client for the upstream SMM "API v2" that every provider we resell speaks.

One POST endpoint, form fields ``key`` + ``action`` (+ the action's parameters), JSON answers.
The specification is the five providers' API pages kept in ``shared/seeds/`` (README.md there
lists what each one does differently):

- helposmm        https://helposmm.com/api/v2       shared/seeds/000_48afffba5a269cd2.txt
- hmsocialmedia   https://hmsocialmedia.com/api/v2  shared/seeds/001_529ddc0b4915f7a2.txt
- heysmmprovider  https://heysmmprovider.com/api/v2 shared/seeds/002_5d09852270b15e79.txt
- smmsend         https://smmsend.com/api/v2        shared/seeds/003_b36a0800bc461123.txt
- smmcloud        https://smmcloud.uk/api/v2        shared/seeds/004_75016425f7f62ead.txt

The client does HTTP only and never touches the ORM. Replies are parsed by ``providers.schemas``.
Every failure is a ``ProviderError`` whose ``kind``, ``permanent`` and ``sent`` tell the caller
what to do; for ``add`` (not idempotent upstream) resend only when ``sent is False``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from providers.schemas import (
    BadAnswer,
    Balance,
    CancelResult,
    CancelStatus,
    ItemError,
    OrderStatus,
    RefillStatus,
    ServiceList,
    SkippedService,
    UpstreamService,
    clean_json,
    clean_text,
    error_text,
    is_funds_error,
    is_permanent_error,
    parse_balance,
    parse_cancel_item,
    parse_cancel_status,
    parse_multi,
    parse_order_id,
    parse_order_status,
    parse_refill_id,
    parse_refill_item,
    parse_refill_status,
    parse_services,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_IDS = 100  # the providers' documented limit for comma-separated ids
_CHUNK = 64 * 1024
_RESERVED_PARAMS = frozenset({"key", "action", "service"})


class ErrorKind(StrEnum):
    CONNECT = "connect"  # no connection was made (refused, DNS, connect timeout): never sent
    TIMEOUT = "timeout"  # sent, but no complete answer (read timeout, connection dropped)
    HTTP_ERROR = "http_error"  # a 3xx, 4xx (not 429) or 5xx answer
    RATE_LIMITED = "rate_limited"  # HTTP 429
    HTML = "html"  # a 2xx HTML page instead of JSON (Cloudflare, a maintenance page)
    INVALID_JSON = "invalid_json"
    TOO_LARGE = "too_large"  # the answer is longer than max_bytes
    API_ERROR = "api_error"  # {"error": "..."}
    INSUFFICIENT_FUNDS = "insufficient_funds"  # {"error": "Not enough funds on balance"}
    BAD_ANSWER = "bad_answer"  # valid JSON of a shape the action does not promise


# Kinds after which the provider has certainly not acted on the request, though it received it.
_REFUSED = frozenset({ErrorKind.API_ERROR, ErrorKind.INSUFFICIENT_FUNDS, ErrorKind.RATE_LIMITED})


class ProviderError(Exception):
    """A failed upstream call.

    - ``kind``: what went wrong (ErrorKind).
    - ``permanent``: retrying the same request cannot help (a PERMANENT upstream message, a 4xx).
    - ``sent``: False = the request certainly never left (safe to resend even an ``add``);
      True = the provider received it and answered; None = unknown (timeout, dropped connection).
    - ``retry_after``: seconds to wait, from the Retry-After header of a 429.
    - ``status_code``: the HTTP status when there was an answer; ``action``: the API action.
    - ``insufficient_funds``: our upstream balance is too low (not permanent: a top-up helps).
    - ``outcome_unknown``: the provider may have acted on it; an ``add`` goes to review.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        permanent: bool = False,
        sent: bool | None = True,
        retry_after: float | None = None,
        status_code: int | None = None,
        action: str | None = None,
    ) -> None:
        # Cleaned here, once for every error: the message is stored (ProviderCall, the order's
        # note) and PostgreSQL refuses NUL and lone surrogates (schemas.clean_text).
        message = clean_text(message)
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.permanent = permanent
        self.sent = sent
        self.retry_after = retry_after
        self.status_code = status_code
        self.action = action

    @property
    def insufficient_funds(self) -> bool:
        return self.kind is ErrorKind.INSUFFICIENT_FUNDS

    @property
    def outcome_unknown(self) -> bool:
        """True when the provider may have acted on the request: an ``add`` must not be resent."""
        if self.sent is False or self.kind in _REFUSED:
            return False
        # A 3xx/4xx is answered before the request is acted on; a 5xx may come after.
        return not (
            self.kind is ErrorKind.HTTP_ERROR
            and self.status_code is not None
            and self.status_code < 500
        )

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.message!r}, kind={self.kind.value}, permanent={self.permanent},"
            f" sent={self.sent}, status_code={self.status_code}, action={self.action!r})"
        )


def api_error(
    message: str, *, action: str | None = None, status_code: int | None = None
) -> ProviderError:
    """Classify an upstream error text: INSUFFICIENT_FUNDS, or API_ERROR (PERMANENT table)."""
    if is_funds_error(message):
        kind, permanent = ErrorKind.INSUFFICIENT_FUNDS, False
    else:
        kind, permanent = ErrorKind.API_ERROR, is_permanent_error(message)
    return ProviderError(
        message, kind=kind, permanent=permanent, sent=True, status_code=status_code, action=action
    )


# How providers word "I do not know this call or this parameter" (an API v2 panel answers an
# unknown action, or a form it cannot read, with "Incorrect request"). Only these, on an
# {"error": ...} answer, mean the provider lacks the call; any other refusal is about the ids.
UNSUPPORTED_ERRORS: tuple[str, ...] = (
    "incorrect request",
    "incorrect action",
    "invalid action",
    "unknown action",
    "action not found",
    "action not supported",
    "action is not supported",
    "method not supported",
)


def is_unsupported_call(exc: ProviderError) -> bool:
    """True when the provider answered the call with an error saying it does not know it.

    Only an ``{"error": ...}`` answer (HTTP below 500) counts: the provider read the request
    and certainly did nothing. A network error, a timeout, a 5xx or an HTML page never does."""
    if exc.kind is not ErrorKind.API_ERROR or exc.sent is not True:
        return False
    text = exc.message.casefold()
    return any(needle in text for needle in UNSUPPORTED_ERRORS)


def transport_error(exc: requests.RequestException, *, action: str | None = None) -> ProviderError:
    """Classify a requests exception raised before the answer's headers arrived."""
    if _never_connected(exc):
        return ProviderError(
            f"cannot connect: {exc}", kind=ErrorKind.CONNECT, sent=False, action=action
        )
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return ProviderError(
            f"invalid url: {exc}", kind=ErrorKind.CONNECT, permanent=True, sent=False, action=action
        )
    # Read timeout, RemoteDisconnected, reset, a TLS error mid-way: the request may have arrived.
    what = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
    return ProviderError(f"{what}: {exc}", kind=ErrorKind.TIMEOUT, sent=None, action=action)


def _never_connected(exc: BaseException) -> bool:
    # requests wraps urllib3's errors in one or two layers (ConnectionError(MaxRetryError(reason)));
    # walk args/reason/__cause__ to the root. NewConnectionError (refused, DNS: NameResolutionError
    # is a subclass) and ConnectTimeoutError are raised before a byte of the request is written,
    # and so is a certificate verification failure, which happens in the TLS handshake.
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        err = stack.pop()
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, NewConnectionError | ConnectTimeoutError | ssl.SSLCertVerificationError):
            return True
        if isinstance(err, requests.exceptions.ConnectTimeout):
            return True
        stack.extend([*err.args, getattr(err, "reason", None), err.__cause__])
    return False


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _snippet(body: bytes) -> str:
    """A short, single-line excerpt of a body for an error message (an HTML page's title)."""
    match = _TITLE.search(body[:_CHUNK])
    text = (match.group(1) if match else body[:200]).decode("utf-8", "replace")
    return " ".join(text.split())[:200]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON value")


def _loads(body: bytes) -> Any:
    # Floats become Decimal so that a rate sent as a JSON number keeps all its digits.
    data = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    return _storable(data, body)


# A string of a decoded body can hold NUL or a lone surrogate only through a `\u` escape, a
# UTF-8-encoded surrogate (json decodes with "surrogatepass"; its lead byte is 0xED) or a body
# in UTF-16/32 (which has 0x00 bytes). A body with none of these is left as it is (fast path).
_MAYBE_UNSTORABLE = (b"\\u", b"\xed", b"\x00")


def _storable(data: Any, body: bytes) -> Any:
    """Every string of a decoded answer made storable (schemas.clean_text): one NUL in one
    service name would otherwise fail the write of a whole catalog."""
    if any(marker in body for marker in _MAYBE_UNSTORABLE):
        return clean_json(data)
    return data


class ApiV2Client:
    """One upstream provider speaking API v2, built from plain values; never touches the ORM.

    ``services()`` returns a ``ServiceList`` (a list of UpstreamService): items with an invalid
    id, rate, min or max are left out, logged and collected in its ``.skipped`` (also kept as
    ``client.last_skipped``) so that one bad item does not fail a whole catalog sync.
    Multi methods take up to 100 ids and return one entry per requested id: the parsed item, or
    an ItemError for an upstream per-item error, an unreadable item, or an id left unanswered.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: tuple[float, float] = (5.0, 30.0),
        user_agent: str = "smm-panel/1.0",
        max_bytes: int = 20 * 1024 * 1024,
        session: requests.Session | None = None,
        total_timeout: float | None = 120.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not api_key:
            raise ValueError("api_key is empty")
        self.base_url = base_url
        self.timeout = timeout
        self.user_agent = user_agent
        self.max_bytes = max_bytes
        # A read timeout bounds each recv(); this bounds a server dripping a byte at a time.
        self.total_timeout = total_timeout
        self.last_skipped: list[SkippedService] = []
        self._api_key = api_key
        self._own_session = session is None
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"ApiV2Client(base_url={self.base_url!r})"  # never the key

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> ApiV2Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- actions --------------------------------------------------------------------------------

    def services(self) -> ServiceList:
        """Fetch the provider's catalog (`action=services`); unreadable items go to `.skipped`."""
        result = self._parse("services", parse_services, self._post("services"))
        self.last_skipped = result.skipped
        if result.skipped:
            logger.warning(
                "%s: skipped %d unreadable upstream services, e.g. %r: %s",
                self.base_url,
                len(result.skipped),
                result.skipped[0].raw,
                result.skipped[0].reason,
            )
        return result

    def add_order(self, *, service: str | int, params: Mapping[str, str | int]) -> str:
        """Place an order (`action=add`) and return the upstream order id; NOT idempotent."""
        if reserved := _RESERVED_PARAMS.intersection(params):
            raise ValueError(f"params must not contain {sorted(reserved)}")
        form = {"service": _one_id(service)}
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(f"param {name!r} must be str or int, got {value!r}")
            form[name] = str(value)
        return self._single("add", parse_order_id, self._post("add", **form))

    def status(self, order_id: str) -> OrderStatus:
        """Fetch one order's status (`action=status&order=`)."""
        order_id = _one_id(order_id)
        data = self._post("status", order=order_id)
        return self._single("status", parse_order_status, _unwrap(data, order_id))

    def statuses(self, order_ids: Sequence[str]) -> dict[str, OrderStatus | ItemError]:
        """Fetch up to 100 orders' statuses (`action=status&orders=`)."""
        return self._multi("status", "orders", order_ids, ("order", "id"), parse_order_status)

    def refill(self, order_id: str) -> str:
        """Ask for a refill of one order (`action=refill&order=`) and return the refill id."""
        data = self._post("refill", order=_one_id(order_id))
        return self._single("refill", parse_refill_id, data)

    def refills(self, order_ids: Sequence[str]) -> dict[str, str | ItemError]:
        """Ask for refills of up to 100 orders (`action=refill&orders=`): order id -> refill id."""
        return self._multi("refill", "orders", order_ids, ("order",), parse_refill_item)

    def refill_status(self, refill_id: str) -> RefillStatus:
        """Fetch one refill's status (`action=refill_status&refill=`)."""
        refill_id = _one_id(refill_id)
        data = self._post("refill_status", refill=refill_id)
        return self._single("refill_status", parse_refill_status, _unwrap(data, refill_id))

    def refill_statuses(self, refill_ids: Sequence[str]) -> dict[str, RefillStatus | ItemError]:
        """Fetch up to 100 refills' statuses (`action=refill_status&refills=`)."""
        return self._multi(
            "refill_status", "refills", refill_ids, ("refill", "id"), parse_refill_status
        )

    def cancel(self, order_ids: Sequence[str]) -> dict[str, CancelResult | ItemError]:
        """Ask to cancel up to 100 orders (`action=cancel&orders=`): order id -> cancel request."""
        return self._multi("cancel", "orders", order_ids, ("order",), parse_cancel_item)

    def cancel_one(self, order_id: str) -> CancelResult:
        """Ask to cancel one order (`action=cancel&order=`), for providers without the list form."""
        order_id = _one_id(order_id)
        data = self._post("cancel", order=order_id)
        answers = self._parse(
            "cancel", lambda d: parse_multi(d, [order_id], ("order",), parse_cancel_item), data
        )
        answer = answers[order_id]
        if isinstance(answer, ItemError):
            raise api_error(answer.message, action="cancel")
        return answer

    def cancel_statuses(self, cancel_ids: Sequence[str]) -> dict[str, CancelStatus | ItemError]:
        """Fetch up to 100 cancel requests' statuses (smmsend's `action=cancel&cancels=`)."""
        return self._multi("cancel", "cancels", cancel_ids, ("cancel", "id"), parse_cancel_status)

    def balance(self) -> Balance:
        """Fetch our balance at the provider (`action=balance`)."""
        return self._parse("balance", parse_balance, self._post("balance"))

    # --- plumbing -------------------------------------------------------------------------------

    def _multi(
        self,
        action: str,
        field: str,
        ids: Sequence[str],
        id_keys: tuple[str, ...],
        parse_item: Callable[[Any], T | ItemError],
    ) -> dict[str, T | ItemError]:
        wanted = _many_ids(ids)
        if not wanted:
            return {}
        data = self._post(action, **{field: ",".join(wanted)})
        return self._parse(action, lambda d: parse_multi(d, wanted, id_keys, parse_item), data)

    def _single(self, action: str, parse: Callable[[Any], T | ItemError], data: Any) -> T:
        result = self._parse(action, parse, data)
        if isinstance(result, ItemError):  # {"refill": {"error": ...}}, {"status": {"error": ...}}
            raise api_error(result.message, action=action)
        return result

    def _parse(self, action: str, parse: Callable[[Any], T], data: Any) -> T:
        try:
            return parse(data)
        except BadAnswer as exc:
            raise ProviderError(
                f"unexpected answer: {exc}", kind=ErrorKind.BAD_ANSWER, sent=True, action=action
            ) from exc

    def _post(self, action: str, **params: str) -> Any:
        """POST one action; return the decoded JSON, or raise ProviderError for any failure."""
        form = {"key": self._api_key, "action": action, **params}
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        try:
            # No redirects: requests would turn a 301/302 POST into a GET (the order lost) or
            # resend the key to wherever a 307 points. A redirect means base_url is wrong.
            response = self._session.post(
                self.base_url,
                data=form,
                headers=headers,
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(exc, action=action) from exc
        with response:
            body = self._read(action, response)
        return self._decode(action, response, body)

    def _read(self, action: str, response: requests.Response) -> bytes:
        """Read the body, giving up past max_bytes (and past total_timeout)."""
        too_large = ProviderError(
            f"answer larger than {self.max_bytes} bytes",
            kind=ErrorKind.TOO_LARGE,
            status_code=response.status_code,
            action=action,
        )
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise too_large
        deadline = None if self.total_timeout is None else time.monotonic() + self.total_timeout
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_large
                chunks.append(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    raise ProviderError(
                        f"answer not complete after {self.total_timeout}s",
                        kind=ErrorKind.TIMEOUT,
                        sent=None,
                        status_code=response.status_code,
                        action=action,
                    )
        except requests.exceptions.ContentDecodingError as exc:
            raise ProviderError(
                f"cannot decode the answer: {exc}",
                kind=ErrorKind.INVALID_JSON,
                status_code=response.status_code,
                action=action,
            ) from exc
        except requests.RequestException as exc:
            # ChunkedEncodingError, a read timeout or a reset mid-body: the headers came, so the
            # request arrived; whether the provider acted on it is unknown.
            raise ProviderError(
                f"answer cut short: {exc}",
                kind=ErrorKind.TIMEOUT,
                sent=None,
                status_code=response.status_code,
                action=action,
            ) from exc
        return b"".join(chunks)

    def _decode(self, action: str, response: requests.Response, body: bytes) -> Any:
        """Turn status code + body into JSON, or the matching ProviderError."""
        status = response.status_code
        if status == 429:
            raise ProviderError(
                "rate limited (HTTP 429)",
                kind=ErrorKind.RATE_LIMITED,
                retry_after=_retry_after(response.headers.get("Retry-After")),
                status_code=status,
                action=action,
            )
        try:
            data, parsed = _loads(body), True
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
            data, parsed = None, False
        message = error_text(data) if parsed else None
        # A 5xx is an error even with an {"error": ...} body: the provider may have failed after
        # acting on the request, so it stays an HTTP_ERROR with an unknown outcome.
        if message is not None and status < 500:
            raise api_error(message, action=action, status_code=status)
        if not 200 <= status < 300:
            where = f" to {response.headers.get('Location')}" if 300 <= status < 400 else ""
            raise ProviderError(
                f"HTTP {status}{where}: {_snippet(body)}",
                kind=ErrorKind.HTTP_ERROR,
                # A redirect or a client error repeats itself; a 5xx or 408/425 may not.
                permanent=300 <= status < 500 and status not in (408, 425),
                status_code=status,
                action=action,
            )
        if parsed:
            return data
        stripped = body.lstrip()[:64].lower()
        content_type = response.headers.get("Content-Type", "").lower()
        if stripped.startswith(b"<") or "html" in content_type:
            raise ProviderError(
                f"HTML page instead of JSON: {_snippet(body)}",
                kind=ErrorKind.HTML,
                status_code=status,
                action=action,
            )
        raise ProviderError(
            f"invalid JSON: {_snippet(body)!r}" if body.strip() else "empty answer",
            kind=ErrorKind.INVALID_JSON,
            status_code=status,
            action=action,
        )


def _unwrap(data: Any, id_: str) -> Any:
    # Some panels answer a single-id call in the multi form: {"23501": {"status": ...}}.
    if isinstance(data, Mapping) and len(data) == 1 and str(next(iter(data))).strip() == id_:
        return next(iter(data.values()))
    return data


def _one_id(value: str | int) -> str:
    text = str(value).strip()
    if isinstance(value, bool) or not text or "," in text:
        raise ValueError(f"invalid id: {value!r}")
    return text


def _many_ids(values: Sequence[str]) -> list[str]:
    if isinstance(values, str | bytes):
        raise TypeError("pass a sequence of ids, not one string")
    ids = list(dict.fromkeys(_one_id(value) for value in values))
    if len(ids) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} ids per call, got {len(ids)}")
    return ids


__all__ = [
    "MAX_IDS",
    "ApiV2Client",
    "Balance",
    "CancelResult",
    "CancelStatus",
    "ErrorKind",
    "ItemError",
    "OrderStatus",
    "ProviderError",
    "RefillStatus",
    "ServiceList",
    "SkippedService",
    "UpstreamService",
    "api_error",
    "is_unsupported_call",
    "transport_error",
]
