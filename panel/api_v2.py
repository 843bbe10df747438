"""The reseller API v2: one action-style endpoint at /api/v2 that speaks the protocol of the
providers in ../shared/seeds/, so that any client written for them works against the panel.

This module is only the dispatcher: it reads the parameters (form POST, JSON POST or GET query
string), checks the rate limits and the key, picks the action's handler and wraps whatever
happens in the protocol's envelope. Each action lives next to the app that owns it
(accounts/api.py, catalog/api.py, orders/api.py) and gets the customer and an ApiParams. The
protocol's types (ApiError, ApiParams, IdItem, parse_id) live in panel/api_protocol.py, which
imports no app: the handlers import it, and this module imports the handlers at the top.

Every answer is HTTP 200 and JSON, errors included ({"error": "..."}), because the common
clients drop the body of any other status. Nothing a client sends can produce a 500 or HTML: an
unexpected exception is logged and answered with a JSON error.
"""

import gzip
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParser
from django.http.request import HttpHeaders
from django.middleware.gzip import re_accepts_gzip
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.gzip import gzip_page

from accounts import api as accounts_api
from accounts.models import ApiKey, User
from accounts.ratelimit import client_ip, rate_limit_hit_all
from accounts.selectors import KeyExtra, api_key_get_user
from accounts.services import api_key_touch
from catalog import api as catalog_api
from orders import api as orders_api
from panel.api_protocol import ApiError, ApiParams, RenderedJson
from panel.ratelimits import parse_rate_limit

logger = logging.getLogger(__name__)

_ECHO_LIMIT = 40

# Rate limits: "<count>/<period>", the period a number (default 1) and a unit s/m/h/d, e.g.
# "60/10s" or "1000/h". None or "" turns a limit off.
DEFAULT_RATE_LIMIT_PER_KEY = "60/10s"
DEFAULT_RATE_LIMIT_PER_IP = "120/10s"


def _echo(value: str) -> str:
    """A client's value quoted back in an error message, cut short."""
    return value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "…"


Handler = Callable[..., Any]

# Each action's handler, next to the app that owns it; they import only panel.api_protocol.
ACTIONS: dict[str, Handler] = {
    "services": catalog_api.services,
    "add": orders_api.add,
    "status": orders_api.status,
    "refill": orders_api.refill,
    "refill_status": orders_api.refill_status,
    "cancel": orders_api.cancel,
    "balance": accounts_api.balance,
}


# --- Rate limits ---------------------------------------------------------------------------------


def _check_rates(ip: str | None, api_key: ApiKey | None) -> None:
    """Count this call in the sliding windows of accounts.ratelimit, kept in the shared cache
    (Redis in production, so every worker process counts together): the address's, then (with
    a valid key) the key's, both in one round trip; refuse it when `count` calls passed in the
    last `period` seconds of either. A call the address's window refuses is not counted for
    the key."""
    scopes = [
        (
            f"apiv2:rl:ip:{ip or 'unknown'}",
            getattr(settings, "API_RATE_LIMIT_PER_IP", DEFAULT_RATE_LIMIT_PER_IP),
            "from this address",
        )
    ]
    if api_key is not None:
        spec = getattr(settings, "API_RATE_LIMIT_PER_KEY", DEFAULT_RATE_LIMIT_PER_KEY)
        scopes.append((f"apiv2:rl:key:{api_key.pk}", spec, "for this API key"))
    checks = []
    for key, spec, who in scopes:
        limit = parse_rate_limit(spec)  # a malformed spec raises: the internal error, logged
        if limit is not None:
            checks.append((key, limit[0], limit[1], who))
    try:
        refused, retry_after = rate_limit_hit_all([(k, n, p) for k, n, p, _ in checks])
    except Exception:
        # A cache outage must not take the API down with it: let the call through, loudly.
        logger.exception("api_v2: rate limit check failed; allowing the call")
        return
    if refused >= 0:
        _, count, period, who = checks[refused]
        raise ApiError(
            f"Too many requests: at most {count} per {period} seconds {who}. "
            f"Retry after {retry_after} seconds.",
            retry_after=retry_after,
        )


# --- Reading the request ---------------------------------------------------------------------------


FILE_PART_REFUSED = "File uploads are not accepted: send the parameters as form fields or JSON."
BODY_TOO_LARGE = "The request body is too large."
BODY_TOO_LARGE_OR_MANY = "The request body is too large or has too many fields."
BODY_NOT_JSON = "The request body is not valid JSON."
BODY_UNREADABLE = "The request body could not be read."
JSON_NOT_OBJECT = "The JSON body must be an object of parameters."


class _RefuseFileParts(FileUploadHandler):
    """The only upload handler of the API: a multipart part with a filename is refused as soon
    as its headers are read, before a byte of it is read, so nothing is spooled to memory or
    disk ahead of the key check (Django's default handlers write a large file to a temporary
    file, and DATA_UPLOAD_MAX_MEMORY_SIZE does not count files)."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        raise ApiError(FILE_PART_REFUSED)


def _strict_constant(name: str) -> None:
    # NaN and Infinity are not JSON (Python's json module reads them unless told not to).
    raise ValueError(f"{name} is not valid JSON")


def _json_object(text: str | bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(text, parse_constant=_strict_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(BODY_NOT_JSON) from None
    if not isinstance(data, dict):
        raise ApiError(JSON_NOT_OBJECT)
    return data


def _guess_body(body: bytes) -> Mapping[str, Any]:
    """A body sent without a usable Content-Type: JSON if it looks like it, else form-encoded."""
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        return _json_object(text)
    return QueryDict(text)


def _raw_body(request: HttpRequest, too_large: str = BODY_TOO_LARGE) -> bytes:
    try:
        return request.body
    except SuspiciousOperation:  # larger than DATA_UPLOAD_MAX_MEMORY_SIZE
        raise ApiError(too_large) from None


def _multipart_fields(request: HttpRequest, encoding: str) -> QueryDict:
    """multipart/form-data with fields only (what the Django test client and many HTTP libraries
    send for a plain form): a file part is refused (_RefuseFileParts)."""
    try:
        parser = MultiPartParser(request.META, request, [_RefuseFileParts()], encoding)
        data, _files = parser.parse()
    except ApiError:  # a file part (_RefuseFileParts)
        raise
    except SuspiciousOperation:  # too large, too many fields or files
        raise ApiError(BODY_TOO_LARGE_OR_MANY) from None
    except Exception:  # MultiPartParserError: a malformed body or boundary
        raise ApiError(BODY_UNREADABLE) from None
    return data


def _body_params(request: HttpRequest) -> Mapping[str, Any]:
    """The body's parameters by its Content-Type: JSON, form-encoded or multipart fields; a body
    of any other type (or none) is guessed (_guess_body). An empty body has none."""
    media_type = (request.content_type or "").lower()
    if media_type == "multipart/form-data":
        if _content_length(request) == 0:
            return {}
        return _multipart_fields(request, request.encoding or settings.DEFAULT_CHARSET)
    body = _raw_body(request, BODY_TOO_LARGE_OR_MANY if _is_form(media_type) else BODY_TOO_LARGE)
    if not body:
        return {}
    encoding = request.encoding or settings.DEFAULT_CHARSET
    if media_type == "application/json":
        try:
            text = body.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ApiError(BODY_NOT_JSON) from None
        return _json_object(text)
    if media_type == "application/x-www-form-urlencoded":
        try:
            return QueryDict(body, encoding=encoding)
        except SuspiciousOperation:  # more than DATA_UPLOAD_MAX_NUMBER_FIELDS
            raise ApiError(BODY_TOO_LARGE_OR_MANY) from None
    return _guess_body(body)


def _is_form(media_type: str) -> bool:
    return media_type == "application/x-www-form-urlencoded"


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class _Headers(Mapping[str, str]):
    """request.headers for the one or two names an action reads, read from the WSGI environ
    when asked: Django's HttpHeaders parses every header of the request when it is made."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self._meta = meta

    def __getitem__(self, name: str) -> str:
        return self._meta[HttpHeaders.to_wsgi_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(HttpHeaders(self._meta))

    def __len__(self) -> int:
        return len(HttpHeaders(self._meta))


def read_params(request: HttpRequest) -> ApiParams:
    """The query string and the body together; a value in the body wins over the same name in
    the query string (some clients put `key` in the URL and the rest in the body). A GET (or
    HEAD) has only the query string."""
    values: dict[str, Any] = {name: request.GET.get(name) for name in request.GET}
    if request.method not in ("GET", "HEAD"):
        source = _body_params(request)
        if isinstance(source, QueryDict):
            values.update({name: source.get(name) for name in source})
        else:
            values.update(source)
    return ApiParams(values, headers=_Headers(request.META))


# --- The answer ------------------------------------------------------------------------------------

# What Django's add_never_cache_headers writes, written once: it formats the time of the call
# into Expires and parses and rewrites Cache-Control on every answer. An Expires date in the past
# tells an HTTP/1.0 cache the same (RFC 9111: an invalid or past date is already stale).
NEVER_CACHE_HEADERS = (
    ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ("Cache-Control", "max-age=0, no-cache, no-store, must-revalidate, private"),
)


def _never_cache(response: HttpResponse) -> HttpResponse:
    for name, value in NEVER_CACHE_HEADERS:
        response.headers[name] = value
    return response


def _json_bytes(data: Any) -> bytes:
    """What DRF's JSONRenderer wrote for the API before: compact, UTF-8 (not \\u-escaped), and
    U+2028/U+2029 escaped (so the text is a valid JavaScript literal too). Written by orjson:
    15 µs where json.dumps took 206 for a 100-id `status` answer (docs/api.md, Performance).
    No answer holds a float (amounts are strings), so orjson's null for a NaN never shows."""
    body = orjson.dumps(data)
    if _SEPARATOR_LEAD in body:  # only where a non-ASCII character of that block was written
        body = body.replace(_LINE_SEPARATOR, b"\\u2028").replace(_PARAGRAPH_SEPARATOR, b"\\u2029")
    return body


_LINE_SEPARATOR, _PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()
_SEPARATOR_LEAD = _LINE_SEPARATOR[:2]


def _answer_rendered(request: HttpRequest, answer: RenderedJson) -> HttpResponse:
    """An answer the handler rendered itself: the same bytes, headers and gzip rule as
    _answer's through gzip_page (GZipMiddleware leaves a response with a Content-Encoding
    alone, so the Vary header it would add is added here)."""
    if re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
        response = HttpResponse(answer.gzipped, content_type="application/json")
        response["Content-Encoding"] = "gzip"
        patch_vary_headers(response, ("Accept-Encoding",))
    else:
        response = HttpResponse(answer.plain_body(), content_type="application/json")
    return _never_cache(response)


# An action's answer of at least this many bytes is gzipped for a client that accepts it (as
# Django's GZipMiddleware does: shorter ones are not worth it).
GZIP_MIN_BYTES = 200


def _answer_gzipped_fast(request: HttpRequest, data: Any) -> HttpResponse:
    """An action's answer, gzipped at level 1 for a client that accepts gzip: 41 µs where
    gzip_page's level 6 took 88 for a 100-id `status` answer (10 kB, 1.1 kB gzipped instead
    of 0.9), 320 k of that call's 4,700 k instructions beyond the ceiling. gzip_page also pads
    the header with random bytes against BREACH, which guesses a secret on a page from its
    compressed length while a third party's text is echoed beside it: these answers hold no
    secret (no key, token or session), and no third party can have a client send a call with
    its key, which it sends itself (no cookie). Error answers, and an answer level 1 does not
    shorten, still go through gzip_page."""
    body = _json_bytes(data)
    if len(body) < GZIP_MIN_BYTES or not re_accepts_gzip.search(
        request.META.get("HTTP_ACCEPT_ENCODING", "")
    ):
        return _never_cache(HttpResponse(body, content_type="application/json"))
    gzipped = gzip.compress(body, 1, mtime=0)
    if len(gzipped) >= len(body):  # gzip_page then tries level 6, else sends it as it is
        return _never_cache(HttpResponse(body, content_type="application/json"))
    return _answer_rendered(request, RenderedJson(gzipped, body))


def _answer(data: Any, *, retry_after: int | None = None) -> HttpResponse:
    response = HttpResponse(_json_bytes(data), content_type="application/json")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return _never_cache(response)


# What the key lookup also reads for an action, in the same statement (one round trip fewer).
# It runs before the key's allowlist and rate limits are checked, so a call they refuse has
# read it too: the price terms of `services` (a few rows), or up to 100 orders by primary
# key for `status` (0.3-0.5 ms of PostgreSQL's CPU; docs/api.md, Performance).
KEY_EXTRAS: dict[str, Callable[[ApiParams], KeyExtra | None]] = {
    "services": catalog_api.services_key_extra,
    "status": orders_api.status_key_extra,
}


def _authenticate(params: ApiParams) -> User:
    raw_key = params.get("key")
    if raw_key is None:
        raise ApiError('Missing API key: send your key in the "key" parameter.')
    try:
        action = (params.get("action") or "").strip().lower()
    except ApiError:
        # A malformed action is reported after the key is checked, as any other action error
        # (the key's own rate limit counts the call): here it just asks for no extra columns.
        action = ""
    extra = KEY_EXTRAS[action](params) if action in KEY_EXTRAS else None
    user = api_key_get_user(raw_key=raw_key.strip(), extra=extra)
    if user is None:
        raise ApiError("Invalid API key.")
    return user


def _touch(api_key: ApiKey, ip: str | None) -> None:
    """Record the key's use. API_KEY_TOUCH_SECONDS (default 60) skips the write when the recorded
    last use from the same address is more recent than that: a busy client costs one UPDATE
    (a commit, a WAL flush, a row every call of the key would queue on) per interval instead of
    one per call; 0 writes on every call."""
    interval = getattr(settings, "API_KEY_TOUCH_SECONDS", 60)
    last = api_key.last_used_at
    if (
        interval > 0
        and last is not None
        and api_key.last_used_ip == ip
        and (timezone.now() - last).total_seconds() < interval
    ):
        return
    api_key_touch(api_key=api_key, ip=ip)


def _dispatch(request: HttpRequest) -> HttpResponse:
    ip = client_ip(request)
    try:
        params = read_params(request)
        user = _authenticate(params)
    except ApiError:
        # Counted for the address all the same (it slows key guessing), and an address over
        # its limit is told that, whatever else was wrong.
        _check_rates(ip, None)
        raise
    api_key = user.api_key  # cached by api_key_get_user's select_related
    if not api_key.allows_ip(ip):  # the allowlist is a field of that row: no query
        _check_rates(ip, None)
        raise ApiError(
            f"This API key may not be used from {ip or 'an unknown address'}: the key's "
            "allowed addresses are set on the API page of the panel."
        )
    _check_rates(ip, api_key)
    _touch(api_key, ip)
    action = params.get("action")
    if action is None:
        raise ApiError('Missing parameter "action".')
    handler = ACTIONS.get(action.strip().lower())
    if handler is None:
        known = ", ".join(sorted(ACTIONS))
        raise ApiError(f'Unknown action "{_echo(action)}". The actions are: {known}.')
    answer = handler(user=user, params=params)
    if isinstance(answer, RenderedJson):
        return _answer_rendered(request, answer)
    return _answer_gzipped_fast(request, answer)


# --- The view ------------------------------------------------------------------------------------


@csrf_exempt
def _api_v2(request: HttpRequest) -> HttpResponse:
    """POST (form or JSON) or GET /api/v2 with `key` and `action`. A plain Django view: DRF's
    request wrapper, parsers, content negotiation and renderer cost more per call than the
    whole of `balance` (docs/api.md, Performance), and the API needs none of them."""
    if request.method not in ("GET", "HEAD", "POST"):
        return _answer({"error": "Send the request with POST (or GET)."})
    try:
        return _dispatch(request)
    except ApiError as exc:
        return _answer({"error": exc.message}, retry_after=exc.retry_after)
    except Exception:
        logger.exception("api_v2: unexpected error for %s", request.META.get("REMOTE_ADDR"))
        return _answer({"error": "Internal error: the request was not completed. Try again later."})


# Django's GZipMiddleware, for this view: it gzips the error answers (only when the client's
# Accept-Encoding allows it) and adds `Vary: Accept-Encoding` to the plain answers of 200 bytes
# or more. The actions' answers come gzipped already (_answer_gzipped_fast, _answer_rendered).
api_v2 = gzip_page(_api_v2)
