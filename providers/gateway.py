"""The one way the panel talks to a provider: a client built from the Provider row, and every
call recorded as a ProviderCall (for the order's history in admin and the error rate).

Other apps call `provider_call(provider, "add", lambda c: c.add_order(...), order_ref=order.id)`;
the ProviderError of the client passes through unchanged after it has been recorded.
"""

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from providers.client import ApiV2Client, ProviderError
from providers.models import Provider, ProviderCall

logger = logging.getLogger(__name__)
T = TypeVar("T")

EXCERPT_CHARS = 2000


def provider_client(provider: Provider) -> ApiV2Client:
    """An API v2 client for `provider`, with its timeouts and our User-Agent."""
    return ApiV2Client(
        base_url=provider.api_url,
        api_key=provider.api_key,
        timeout=(provider.connect_timeout, provider.read_timeout),
        user_agent=f"smm-panel/1.0 (+{settings.PANEL_PUBLIC_URL})",
    )


def provider_call(
    provider: Provider,
    action: str,
    call: Callable[[ApiV2Client], T],
    *,
    order_ref: int | None = None,
    request: dict[str, Any] | None = None,
) -> T:
    """Run one client call against `provider` and record it, success or failure.

    Never call this inside a database transaction that holds locks: upstream calls can take
    the whole read timeout.
    """
    started = time.monotonic()
    client = provider_client(provider)
    try:
        result = call(client)
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
    ProviderCall.objects.create(
        provider=provider,
        action=action,
        order_ref=order_ref,
        request=request or {},
        ok=ok,
        error_kind=error_kind,
        error_message=error_message[:EXCERPT_CHARS],
        response_excerpt=response_excerpt,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
