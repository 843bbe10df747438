"""Resellers' webhooks: the endpoint (URL and signing secret), and delivering the events that
orders.services.events writes (docs/webhooks.md).

A delivery POSTs the event's JSON body signed with HMAC-SHA256 over "<timestamp>.<body>"
(`X-Panel-Signature: t=<unix>,v1=<hex>`, Stripe's scheme). The target's host name is resolved
here and every address it resolves to is checked (no loopback, private, link-local, multicast,
reserved...) unless PANEL_WEBHOOKS_ALLOW_PRIVATE; the connection then goes to the checked
address itself, with the URL's host in the Host header and for TLS (SNI and the certificate
check), so a second DNS answer cannot send it elsewhere (DNS rebinding). Redirects are not
followed. A failed attempt is retried with exponential back-off until 24 hours after the event;
the state lives in the event row, so the retry sweep (webhooks_retry_due, every minute)
carries on after a worker restart.
"""

import hashlib
import hmac
import ipaddress
import random
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import certifi
import urllib3
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from orders.models import WebhookEndpoint, WebhookEvent
from orders.services.common import OrderError, logger
from orders.services.enqueue import enqueue_webhook_deliver
from orders.services.events import new_event, save_events
from providers.crypto import decrypt, encrypt

SIGNATURE_HEADER = "X-Panel-Signature"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept a timestamp off by
TIMEOUT = 5.0  # connect and read, each
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY_DELAY = timedelta(hours=2)
# An attempt's task is killed after ATTEMPT_TIME_LIMIT (a receiver dripping its answer byte by
# byte never times out a read); the claim lasts longer, so no second attempt overlaps it.
ATTEMPT_SOFT_TIME_LIMIT = 20
ATTEMPT_TIME_LIMIT = 30
LOCK_FOR = timedelta(seconds=ATTEMPT_TIME_LIMIT + 30)
EXCERPT_CHARS = 200  # of the receiver's answer, kept for the delivery log
USER_AGENT = "SMM-Panel-Webhooks/1"
EV = WebhookEvent.Status


class WebhookRefused(Exception):
    """The URL may not be posted to (its address, its scheme); nothing was sent."""


# --- signatures --------------------------------------------------------------------------------


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of "<timestamp>.<body>" with the secret, in hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret=secret, timestamp=timestamp, body=body)}"


def signature_verify(
    *,
    secret: str,
    header: str,
    body: bytes,
    tolerance: int = SIGNATURE_TOLERANCE,
    now: float | None = None,
) -> bool:
    """What a receiver does (docs/webhooks.md shows it in Python and PHP): the header's
    timestamp within `tolerance` seconds of now, and one v1 equal to the expected HMAC,
    compared in constant time."""
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    stamps = [value for key, value in parts if key.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    timestamp = int(stamps[0])
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = signature(secret=secret, timestamp=timestamp, body=body)
    return any(
        hmac.compare_digest(expected, value.strip()) for key, value in parts if key.strip() == "v1"
    )


# --- addresses ---------------------------------------------------------------------------------


def allow_private() -> bool:
    return bool(getattr(settings, "PANEL_WEBHOOKS_ALLOW_PRIVATE", settings.DEBUG))


def address_refusal(address: str) -> str | None:
    """Why the panel must not post to `address` (None: a public unicast address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside (mapped, or 6to4: a relay or tunnel delivers it there) is what
        # must be public.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    for what, flag in (
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a reserved", ip.is_reserved),
        ("an unspecified", ip.is_unspecified),
        ("a private", ip.is_private),
        ("a non-public", not ip.is_global),
    ):
        if flag:
            return f"{address} is {what} address"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal: itself), in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(f"{host} could not be resolved ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_address(host: str, port: int) -> str:
    """The address to connect to: the first one `host` resolves to, when none of them is
    refused (a name answering a public and a private address is refused: which one a client
    gets is the attacker's choice)."""
    addresses = resolve(host, port)
    if not addresses:
        raise WebhookRefused(f"{host} has no address")
    if not allow_private():
        for address in addresses:
            if (why := address_refusal(address)) is not None:
                raise WebhookRefused(f"{host}: {why}; webhooks go to public addresses only")
    return addresses[0]


# --- one POST ----------------------------------------------------------------------------------


class WebhookFailed(Exception):
    """The attempt was made and failed (connection, timeout, TLS): worth retrying."""


@dataclass(frozen=True)
class PostResult:
    status: int
    excerpt: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _pool(scheme: str, host: str, address: str, port: int) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to the checked `address`; for https, SNI and the certificate
    check use `host` (the URL's), so the certificate must be valid for the name."""
    timeout = urllib3.Timeout(connect=TIMEOUT, read=TIMEOUT)
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            assert_hostname=host,
            server_hostname=host,
        )
    return urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
    """POST `body` to `url` at a checked address (WebhookRefused: nothing sent), without
    following redirects; WebhookFailed on a network error. Only the first EXCERPT_CHARS of
    the answer are read."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("the webhook URL is not an http(s) address")
    try:
        host = parts.hostname.encode("idna").decode("ascii")  # an international name: punycode
    except UnicodeError:
        raise WebhookRefused(f"{parts.hostname} is not a valid host name") from None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = checked_address(host, port)
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool = _pool(parts.scheme, host, address, port)
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            raw = response.read(EXCERPT_CHARS * 4, decode_content=False)
        finally:
            response.close()
    except urllib3.exceptions.HTTPError as exc:
        raise WebhookFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
    finally:
        pool.close()
    return PostResult(response.status, raw.decode("utf-8", "replace")[:EXCERPT_CHARS])


# --- delivering events -------------------------------------------------------------------------


def webhook_events_ready(*, now: datetime) -> QuerySet[WebhookEvent]:
    """Pending events due now, not being attempted, and first in line for their order (events
    of one order go out in order: a later one waits while an earlier one is still pending)."""
    earlier = WebhookEvent.objects.filter(
        order_id=OuterRef("order_id"), status=EV.PENDING, pk__lt=OuterRef("pk")
    )
    return (
        WebhookEvent.objects.filter(status=EV.PENDING, next_attempt_at__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .exclude(Exists(earlier))
    )


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """1, 2, 4, 8... minutes after attempt 1, 2, 3, 4..., at most 2 hours, ±10% jitter."""
    delay = min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 16), MAX_RETRY_DELAY)
    return delay * (rng or random).uniform(0.9, 1.1)


def webhook_event_deliver(*, event_id: int, now: datetime | None = None) -> WebhookEvent | None:
    """One attempt at one event, if it is ready (webhook_events_ready); None when it was not
    (delivered, given up, not due, being attempted, or waiting behind an earlier event). The
    claim is a conditional UPDATE, so two workers never post the same attempt."""
    now = now or timezone.now()
    claimed = (
        webhook_events_ready(now=now)
        .filter(pk=event_id)
        .update(locked_until=now + LOCK_FOR, attempts=F("attempts") + 1, last_attempt_at=now)
    )
    if not claimed:
        return None
    event = WebhookEvent.objects.get(pk=event_id)
    endpoint = WebhookEndpoint.objects.filter(user_id=event.user_id, is_active=True).first()
    if endpoint is None:
        _finish(event, now, status=EV.FAILED, error="No active webhook: the event was dropped.")
        return event
    event.url, event.last_status_code, event.response_excerpt = endpoint.url, None, ""
    try:
        result = _attempt(endpoint, event)
    except (WebhookRefused, WebhookFailed) as exc:
        _failed(event, now, error=str(exc))
    except SoftTimeLimitExceeded:
        _failed(event, now, error=f"No answer within {ATTEMPT_SOFT_TIME_LIMIT} seconds")
    except Exception as exc:  # recorded, so that the event is retried and given up in time
        logger.exception("webhook %s: attempt failed unexpectedly", event.event_id)
        _failed(event, now, error=f"{type(exc).__name__}: {exc}")
    else:
        event.last_status_code = result.status
        event.response_excerpt = result.excerpt
        if result.ok:
            _finish(event, now, status=EV.DELIVERED, error="")
        else:
            _failed(event, now, error=f"HTTP {result.status}")
    return event


def _attempt(endpoint: WebhookEndpoint, event: WebhookEvent) -> PostResult:
    body = event.payload.encode()
    timestamp = int(time.time())
    secret = decrypt(endpoint.secret_encrypted)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret=secret, timestamp=timestamp, body=body),
        "X-Panel-Event": event.type,
        "X-Panel-Event-Id": event.event_id,
    }
    return webhook_post(url=endpoint.url, body=body, headers=headers)


def _failed(event: WebhookEvent, now: datetime, *, error: str) -> None:
    """A failed attempt: the next one after the back-off, or given up past give_up_at."""
    later = now + retry_delay(event.attempts)
    if later > event.give_up_at:
        _finish(event, now, status=EV.FAILED, error=error)
        return
    logger.info("webhook %s: attempt %d failed (%s)", event.event_id, event.attempts, error)
    event.status, event.last_error, event.next_attempt_at = EV.PENDING, error[:500], later
    _save_outcome(event, now)


def _finish(event: WebhookEvent, now: datetime, *, status: str, error: str) -> None:
    """Delivered or given up: the order's next pending event (if any) may go now."""
    event.status, event.last_error, event.next_attempt_at = status, error[:500], None
    if status == EV.DELIVERED:
        event.delivered_at = now
    else:
        logger.warning("webhook %s: given up after %d attempts", event.event_id, event.attempts)
    _save_outcome(event, now)
    if event.order_id is not None:
        following = (
            WebhookEvent.objects.filter(order_id=event.order_id, status=EV.PENDING)
            .order_by("pk")
            .first()
        )
        if following is not None:
            WebhookEvent.objects.filter(pk=following.pk, next_attempt_at__gt=now).update(
                next_attempt_at=now
            )
            enqueue_webhook_deliver(following.pk)


def _save_outcome(event: WebhookEvent, now: datetime) -> None:
    event.locked_until = None
    event.save(
        update_fields=[
            "status",
            "last_error",
            "last_status_code",
            "response_excerpt",
            "url",
            "next_attempt_at",
            "locked_until",
            "delivered_at",
        ]
    )


def webhooks_retry_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """The retry sweep: queue one attempt per ready event (oldest first); returns how many."""
    now = now or timezone.now()
    ids = list(webhook_events_ready(now=now).order_by("pk").values_list("pk", flat=True)[:limit])
    for pk in ids:
        enqueue_webhook_deliver(pk)
    return len(ids)


def webhook_event_retry(*, event: WebhookEvent, now: datetime | None = None) -> WebhookEvent:
    """Staff's "retry now": a pending event's next attempt is now; a failed one gets one more
    attempt now (it is given up again if that fails). A delivered one is left as it is."""
    now = now or timezone.now()
    if event.status == EV.DELIVERED:
        return event
    fields: dict[str, object] = {"status": EV.PENDING, "next_attempt_at": now}
    if event.status == EV.FAILED:
        fields["give_up_at"] = now
    WebhookEvent.objects.filter(pk=event.pk).exclude(status=EV.DELIVERED).update(**fields)
    transaction.on_commit(lambda: enqueue_webhook_deliver(event.pk))
    event.refresh_from_db()
    return event


# --- the customer's endpoint -------------------------------------------------------------------

URL_MAX = 500


@dataclass(frozen=True)
class EndpointSaved:
    endpoint: WebhookEndpoint
    secret: str | None  # the new signing secret, to show once; None when it did not change


def webhook_url_clean(url: str) -> str:
    """The URL as it will be stored, or OrderError("url", ...): http(s) with a host, https
    unless DEBUG, no user name or password, and not an address the panel refuses to post to
    (a name is resolved and checked at every delivery)."""
    url = url.strip()
    if len(url) > URL_MAX:
        raise OrderError("url", f"The address is too long (at most {URL_MAX} characters).")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise OrderError("url", "This is not a valid web address.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OrderError("url", "Enter a full address, starting with https://")
    if parts.scheme != "https" and not settings.DEBUG:
        raise OrderError(
            "url", "The address must start with https:// (events are signed, not hidden)."
        )
    if parts.username or parts.password:
        raise OrderError("url", "Leave the user name and password out of the address.")
    if not allow_private():
        _check_host_literal(parts.hostname)
    return url


def _check_host_literal(host: str) -> None:
    if host == "localhost" or host.endswith(".localhost"):
        raise OrderError("url", "Webhooks go to public addresses only, not to localhost.")
    try:
        why = address_refusal(host)
    except ValueError:
        return  # a name: resolved and checked at each delivery
    if why is not None:
        raise OrderError("url", f"Webhooks go to public addresses only: {why}.")


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _set_secret(endpoint: WebhookEndpoint, now: datetime) -> str:
    secret = _new_secret()
    endpoint.secret_encrypted = encrypt(secret)
    endpoint.secret_hint = secret[:10]
    endpoint.secret_rotated_at = now
    return secret


def webhook_endpoint_set(*, user: User, url: str, is_active: bool = True) -> EndpointSaved:
    """Set (or change) the customer's webhook URL; a new endpoint gets a signing secret,
    returned once. OrderError("url", ...) for a URL webhook_url_clean refuses."""
    url = webhook_url_clean(url)
    now = timezone.now()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(user=user).first()
        secret = None
        if endpoint is None:
            endpoint = WebhookEndpoint(user=user, created_at=now)
            secret = _set_secret(endpoint, now)
        endpoint.url, endpoint.is_active = url, is_active
        endpoint.save()
    logger.info("webhook of user %s set to %s (active: %s)", user.pk, url, is_active)
    return EndpointSaved(endpoint, secret)


def webhook_secret_rotate(*, user: User) -> EndpointSaved:
    """A new signing secret (returned once); the old one stops signing at once."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(user=user).first()
        if endpoint is None:
            raise OrderError("url", "Set a webhook URL first.")
        secret = _set_secret(endpoint, timezone.now())
        endpoint.save()
    return EndpointSaved(endpoint, secret)


def webhook_endpoint_remove(*, user: User) -> bool:
    """Remove the customer's webhook; events still pending are dropped at their next attempt.
    The delivery log stays."""
    deleted, _ = WebhookEndpoint.objects.filter(user=user).delete()
    return bool(deleted)


def webhook_send_test(*, user: User, now: datetime | None = None) -> WebhookEvent:
    """A "test" event to the customer's webhook, attempted once (its outcome shows in the
    delivery log). OrderError when there is no active webhook."""
    now = now or timezone.now()
    if not WebhookEndpoint.objects.filter(user=user, is_active=True).exists():
        raise OrderError("url", "Set an active webhook URL first.")
    data = {"message": "A test event from the panel: your webhook works.", "order": None}
    with transaction.atomic():
        (event,) = save_events(
            [
                new_event(
                    user_id=user.pk, order_id=None, type=WebhookEvent.Type.TEST, data=data, now=now
                )
            ]
        )
    return event


def webhook_events_prune(*, now: datetime | None = None) -> int | None:
    """Retention: delete the delivered and given-up events older than PANEL_WEBHOOK_EVENT_DAYS;
    how many went, or None when the setting is 0 (every event is kept). Events still waiting
    are never deleted (they give up after 24 hours anyway)."""
    days = settings.PANEL_WEBHOOK_EVENT_DAYS
    if not days:
        return None
    before = (now or timezone.now()) - timedelta(days=days)
    old = WebhookEvent.objects.filter(created_at__lt=before).exclude(
        status=WebhookEvent.Status.PENDING
    )
    deleted, _ = old.delete()
    return deleted
