"""The one way the panel talks to a provider: a client built from the Provider row, and every
call recorded as a ProviderCall (for the order's history in admin and the error rate).

Other apps call `provider_call(provider, "add", lambda c: c.add_order(...), order_ref=order.id)`;
the ProviderError of the client passes through unchanged after it has been recorded.

A call made inside a database transaction raises ProviderCallInTransaction before anything is
sent: an upstream call can take the whole read timeout while the transaction holds its locks,
and a rollback after it cannot take back what the provider already did.
"""

import logging
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import DatabaseError, transaction

from providers.client import ApiV2Client, ProviderError
from providers.models import Provider, ProviderCall
from providers.schemas import clean_json, clean_text

logger = logging.getLogger(__name__)
T = TypeVar("T")

EXCERPT_CHARS = 2000
# A refused write: DatabaseError, or a text psycopg cannot even encode (UnicodeEncodeError).
UNSTORABLE = (DatabaseError, ValueError)


class ProviderCallInTransaction(RuntimeError):
    """provider_call was reached inside transaction.atomic(): a bug in the caller."""


def _refuse_inside_transaction(provider: Provider, action: str) -> None:
    """Raise unless we are outside every atomic block. An empty durable block is Django's own
    check (it tolerates only the blocks pytest-django's `db` tests wrap themselves in) and,
    outside a transaction, sends nothing to the database."""
    try:
        with transaction.atomic(durable=True):
            pass
    except RuntimeError as exc:
        raise ProviderCallInTransaction(
            f"provider_call({provider.name!r}, {action!r}) inside a database transaction: "
            "call the provider after the commit (transaction.on_commit or a task), never "
            "inside transaction.atomic()."
        ) from exc


def provider_client(provider: Provider) -> ApiV2Client:
    """An API v2 client for `provider`, with its timeouts and our User-Agent."""
    return ApiV2Client(
        base_url=provider.api_url,
        api_key=provider.api_key,
        timeout=(provider.connect_timeout, provider.read_timeout),
        user_agent=f"smm-panel/1.0 (+{settings.PANEL_PUBLIC_URL})",
    )


@dataclass
class BackgroundCall(Generic[T]):
    """A client call running in a ProviderSession's worker thread, not yet recorded."""

    key: Hashable
    future: Future[T]
    started: float


class ProviderSession:
    """One client for a run of calls to one provider (a status sweep's batches): the API key
    decrypted once, one HTTP session whose connection is kept alive between the calls, and
    at most one call run ahead in a worker thread (`start`) while the caller writes the
    previous answer. The worker thread does HTTP only (the client never touches the ORM);
    every call is recorded as a ProviderCall by `call`, in the caller's thread and database
    connection. Use it through `provider_session`."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.client = provider_client(provider)
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: BackgroundCall[Any] | None = None

    def call(self, action: str, call: Callable[[ApiV2Client], T], *, key: Hashable = None) -> T:
        """provider_call on this session's client; when the call started ahead with `key` is
        waiting, its answer (or its ProviderError) is taken instead of calling again."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and (key is None or ahead.key != key):
            ahead.future.cancel()  # not the one asked for: never used (see `start`)
            ahead = None
        return provider_call(self.provider, action, call, client=self.client, background=ahead)

    def start(self, action: str, key: Hashable, call: Callable[[ApiV2Client], Any]) -> None:
        """Send `call` now, in the worker thread; the next `call(..., key=key)` takes its
        answer. Only for reads (a status): an answer nobody takes is lost unrecorded."""
        _refuse_inside_transaction(self.provider, action)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provider-ahead")
        self._ahead = BackgroundCall(key, self._pool.submit(call, self.client), time.monotonic())

    def is_ahead(self, key: Hashable) -> bool:
        """True when the call with `key` was started ahead and waits to be taken."""
        return self._ahead is not None and self._ahead.key == key

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


@contextmanager
def provider_session(provider: Provider) -> Iterator[ProviderSession]:
    """A ProviderSession for `provider`, closed (its connection too) at the end."""
    session = ProviderSession(provider)
    try:
        yield session
    finally:
        session.close()


def provider_call(
    provider: Provider,
    action: str,
    call: Callable[[ApiV2Client], T],
    *,
    order_ref: int | None = None,
    request: dict[str, Any] | None = None,
    client: ApiV2Client | None = None,
    background: BackgroundCall[T] | None = None,
) -> T:
    """Run one client call against `provider` and record it, success or failure.

    `client`: a client to reuse (a ProviderSession's; left open), else one is made for this
    call and closed after it. `background`: the same call already sent in a worker thread
    (ProviderSession.start): its answer is waited for and recorded instead of calling again.

    Raises ProviderCallInTransaction, before any request is sent, when called inside a
    database transaction: upstream calls can take the whole read timeout.
    """
    _refuse_inside_transaction(provider, action)
    started = time.monotonic() if background is None else background.started
    own_client = client is None
    client = client or provider_client(provider)
    try:
        result = call(client) if background is None else background.future.result()
    except ProviderError as exc:
        _record(
            provider,
            action,
            order_ref,
            request,
            started,
            ok=False,
            error_kind=str(exc.kind),
            error_message=exc.message,
        )
        logger.warning("provider %s %s failed: %r", provider.name, action, exc)
        raise
    finally:
        if own_client:
            client.close()
    _record(
        provider,
        action,
        order_ref,
        request,
        started,
        ok=True,
        response_excerpt=repr(result)[:EXCERPT_CHARS],
    )
    return result


def _record(
    provider: Provider,
    action: str,
    order_ref: int | None,
    request: dict[str, Any] | None,
    started: float,
    *,
    ok: bool,
    error_kind: str = "",
    error_message: str = "",
    response_excerpt: str = "",
) -> None:
    """Store the ProviderCall; never raises a database error, which would hide the call's
    outcome from the caller (an `add` that was placed, or refused, must be stored as such)."""
    call = ProviderCall(
        provider=provider,
        action=action,
        order_ref=order_ref,
        # Upstream and customer text: PostgreSQL refuses NUL and lone surrogates.
        request=clean_json(request or {}),
        ok=ok,
        error_kind=error_kind,
        error_message=clean_text(error_message[:EXCERPT_CHARS]),
        response_excerpt=clean_text(response_excerpt),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    try:
        _save_call(call)
    except UNSTORABLE:
        logger.exception("provider %s %s: the call could not be recorded", provider.name, action)
        # Once more without the texts, so that the call at least shows in the history.
        call.pk, call.request, call.response_excerpt = None, {}, ""
        call.error_message = "(the texts of this call could not be stored, see the logs)"
        try:
            _save_call(call)
        except UNSTORABLE:
            logger.exception("provider %s %s: not recorded at all", provider.name, action)


def _save_call(call: ProviderCall) -> None:
    # A savepoint when a test wraps us in a transaction, so a refused INSERT leaves it usable.
    with transaction.atomic():
        call.save(force_insert=True)
