"""Writes for providers: register one, test the connection, check the balance, out-of-funds flags,
and learn what a provider cannot do (a multi call refused as unknown: single calls from then on).

Every upstream call goes through providers.gateway.provider_call (recorded as a ProviderCall) and
never runs inside a transaction that holds row locks.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat, Left
from django.utils import timezone

from accounts.models import Notification
from accounts.notifications import notify_staff
from catalog.pricing import format_money
from providers.client import (
    ApiV2Client,
    ErrorKind,
    ItemError,
    OrderStatus,
    ProviderError,
    RefillStatus,
    is_unsupported_call,
)
from providers.gateway import ProviderSession, provider_call
from providers.models import Provider

logger = logging.getLogger(__name__)
T = TypeVar("T")


def provider_create(
    *,
    name: str,
    api_url: str,
    api_key: str,
    currency: str = "USD",
    exchange_rate: Decimal = Decimal(1),
    markup_percent: Decimal | None = None,
    low_balance_threshold: Decimal | None = None,
    is_enabled: bool = True,
) -> Provider:
    """Register an upstream. The key is encrypted at rest; ValidationError on bad input."""
    provider = Provider(
        name=name.strip(),
        api_url=api_url.strip(),
        currency=currency.strip().upper(),
        exchange_rate=exchange_rate,
        markup_percent=markup_percent,
        low_balance_threshold=low_balance_threshold,
        is_enabled=is_enabled,
    )
    try:
        provider.set_api_key(api_key)
    except ValueError as exc:
        raise ValidationError({"api_key": str(exc)}) from None
    provider.full_clean()
    provider.save()
    logger.info(
        "provider %s registered (%s, key …%s)",
        provider.name,
        provider.api_url,
        provider.api_key_hint,
    )
    return provider


@dataclass
class ConnectionReport:
    """What a connection test found. `ok` means both the balance and the services call worked."""

    ok: bool = False
    balance: Decimal | None = None
    balance_currency: str = ""
    services_count: int | None = None
    skipped_count: int = 0
    detected: dict[str, bool] = field(default_factory=dict)  # Provider field → detected value
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A human summary, one fact per line (admin messages, the add_provider command)."""
        out: list[str] = []
        if self.balance is not None:
            out.append(f"balance: {format_money(self.balance)} {self.balance_currency}".rstrip())
        if self.services_count is not None:
            out.append(f"services: {self.services_count} readable, {self.skipped_count} skipped")
        for name, value in sorted(self.detected.items()):
            out.append(f"detected {name} = {value}")
        out.extend(f"note: {n}" for n in self.notes)
        out.extend(f"error: {e}" for e in self.errors)
        return out


def _detect_capabilities(services: list) -> dict[str, bool]:
    # A catalog whose items carry a `dripfeed` / `cancel` key says per service what is possible;
    # if none of them allows it, the provider does not offer it. A catalog without the key at
    # all says nothing, and the admin's setting stays.
    detected: dict[str, bool] = {}
    keys = [{str(k).casefold() for k in s.raw} for s in services]
    if any("dripfeed" in k for k in keys):
        detected["supports_dripfeed"] = any(s.dripfeed for s in services)
    if any("cancel" in k for k in keys):
        detected["supports_cancel"] = any(s.cancel for s in services)
    return detected


def provider_test_connection(*, provider: Provider, save: bool = True) -> ConnectionReport:
    """Call `balance` and `services`, report what worked and detect capabilities.

    With `save`, the balance and the detected capabilities are stored on the provider.
    """
    report = ConnectionReport()
    try:
        balance = provider_call(provider, "balance", lambda c: c.balance())
        report.balance, report.balance_currency = balance.amount, balance.currency
        if balance.currency and balance.currency.upper() != provider.currency.upper():
            report.notes.append(
                f"the provider bills in {balance.currency}, the panel has {provider.currency} "
                "for it: fix the currency and the exchange rate"
            )
    except ProviderError as exc:
        report.errors.append(f"balance: {exc.message} ({exc.kind})")
    try:
        services = provider_call(provider, "services", lambda c: c.services())
        report.services_count, report.skipped_count = len(services), len(services.skipped)
        report.detected = _detect_capabilities(list(services))
        if not services:
            report.notes.append("the provider's catalog is empty")
    except ProviderError as exc:
        report.errors.append(f"services: {exc.message} ({exc.kind})")
    report.ok = not report.errors
    if save:
        _save_test_results(provider, report)
    return report


def _save_test_results(provider: Provider, report: ConnectionReport) -> None:
    fields: list[str] = []
    for name, value in report.detected.items():
        setattr(provider, name, value)
        fields.append(name)
    if report.balance is not None:
        provider.balance, provider.balance_checked_at = report.balance, timezone.now()
        fields += ["balance", "balance_checked_at"]
    if fields:
        provider.save(update_fields=fields)


def provider_check_balance(*, provider: Provider) -> Decimal:
    """Fetch and store the provider's balance; flag low balance and e-mail ADMINS once per
    low-balance episode (the episode ends when the balance is back above the threshold).

    Raises ProviderError (recorded as a ProviderCall) when the provider cannot answer.
    """
    balance = provider_call(provider, "balance", lambda c: c.balance())
    now = timezone.now()
    Provider.objects.filter(pk=provider.pk).update(balance=balance.amount, balance_checked_at=now)
    provider.balance, provider.balance_checked_at = balance.amount, now
    if provider.is_low_on_balance:
        _alert_low_balance(provider, now)
    else:
        Provider.objects.filter(pk=provider.pk, low_balance_alerted_at__isnull=False).update(
            low_balance_alerted_at=None
        )
        provider.low_balance_alerted_at = None
    # The out-of-funds flag is not cleared here: a balance above zero says nothing about the
    # next order's price. The next successful placement at this provider clears it.
    return balance.amount


def _alert_low_balance(provider: Provider, now: datetime) -> None:
    balance, threshold = provider.balance, provider.low_balance_threshold
    if balance is None or threshold is None:
        return  # never: is_low_on_balance, the caller's test, says both are set
    # A conditional UPDATE claims the alert: two concurrent checks send one e-mail. The claim
    # and the notices commit together (the mails leave after).
    with transaction.atomic():
        claimed = Provider.objects.filter(
            pk=provider.pk, low_balance_alerted_at__isnull=True
        ).update(low_balance_alerted_at=now)
        if claimed:
            _tell_low_balance(provider, balance, threshold)
    if claimed:
        provider.low_balance_alerted_at = now
        logger.warning("provider %s is low on balance: %s < %s", provider.name, balance, threshold)


def _tell_low_balance(provider: Provider, balance: Decimal, threshold: Decimal) -> None:
    notify_staff(
        event=Notification.Event.PROVIDER_BALANCE_LOW,
        context={
            "provider": provider.name,
            "provider_id": provider.pk,
            "balance": balance,
            "threshold": threshold,
            "provider_currency": provider.currency,
        },
    )


def provider_mark_out_of_funds(
    *, provider: Provider, message: str = "", order_ref: int | None = None
) -> bool:
    """Flag the provider as refusing orders for funds (placement calls it on an `add` answer;
    `order_ref` is the refused order). True when this call set the flag and told staff,
    False when it was already set: one e-mail per episode, which the next successful placement
    at this provider ends (provider_clear_out_of_funds)."""
    now = timezone.now()
    refused = f"order {order_ref}" if order_ref is not None else "an order"
    with transaction.atomic():
        claimed = Provider.objects.filter(pk=provider.pk, out_of_funds_since__isnull=True).update(
            out_of_funds_since=now
        )
        if not claimed:
            return False
        notify_staff(
            event=Notification.Event.PROVIDER_OUT_OF_FUNDS,
            context={
                "provider": provider.name,
                "provider_id": provider.pk,
                "refused": refused,
                "reason": message[:300],
            },
        )
    provider.out_of_funds_since = now
    logger.warning("provider %s is out of funds: %s", provider.name, message)
    return True


def provider_clear_out_of_funds(*, provider: Provider) -> bool:
    """Clear the out-of-funds flag: placement calls it when the provider accepted an order
    while flagged. True when it was set."""
    cleared = Provider.objects.filter(pk=provider.pk, out_of_funds_since__isnull=False).update(
        out_of_funds_since=None
    )
    provider.out_of_funds_since = None
    if cleared:
        logger.info("provider %s: out-of-funds flag cleared", provider.name)
    return bool(cleared)


# --- capabilities learned from refusals ---------------------------------------------------------

# The Provider fields a refusal can turn off, and how the note names each call.
CAPABILITY_LABELS: dict[str, str] = {
    "supports_multi_status": "multi status (status with orders=)",
    "supports_multi_refill": "multi refill (refill with orders=)",
    "supports_multi_refill_status": "multi refill_status (refill_status with refills=)",
    "supports_multi_cancel": "multi cancel (cancel with orders=)",
    "supports_cancel": "cancel",
}
NOTE_CHARS = 4000
# Per-id failures of a single call: the next id may still be answered.
_ITEM_ERROR_KINDS = frozenset({ErrorKind.API_ERROR, ErrorKind.BAD_ANSWER})


def provider_learn_capability(
    *, provider: Provider, capability: str, reason: str, now: datetime | None = None
) -> bool:
    """Record that `provider` lacks `capability` (a field of CAPABILITY_LABELS): the field is
    turned off, capabilities_learned_at set and a dated line (what, the refusal) put at the top
    of capabilities_note. The admin may turn it back on.

    A conditional UPDATE (only while the field is still on): True for the one call that
    changed it, so concurrent sweeps record it once."""
    if capability not in CAPABILITY_LABELS:
        raise ValueError(f"not a learnable capability: {capability!r}")
    now = now or timezone.now()
    line = (
        f"{now:%Y-%m-%d %H:%M} UTC: {CAPABILITY_LABELS[capability]} turned off, the provider "
        f"answered {reason[:200]!r}\n"
    )
    note = Concat(Value(line), F("capabilities_note"), output_field=TextField())
    changed = Provider.objects.filter(pk=provider.pk, **{capability: True}).update(
        **{capability: False}, capabilities_learned_at=now, capabilities_note=Left(note, NOTE_CHARS)
    )
    setattr(provider, capability, False)
    if changed:
        provider.capabilities_learned_at = now
        provider.capabilities_note = (line + provider.capabilities_note)[:NOTE_CHARS]
        logger.warning("provider %s: %s", provider.name, line.strip())
    return bool(changed)


def provider_fetch_statuses(
    *,
    provider: Provider,
    order_ids: Sequence[str],
    session: ProviderSession | None = None,
    next_ids: Sequence[str] = (),
) -> dict[str, OrderStatus | ItemError]:
    """The statuses of up to 100 upstream orders: one multi-status call, or one status call per
    order for a provider without multi status (learned the first time it refuses one).

    With a `session` (a sweep's: one client, its connection kept alive), the call is made on
    it, or taken from it when it was started ahead; then, at a provider with multi status,
    the call for `next_ids` (the caller's next batch) is started ahead in the session's worker
    thread, to run while the caller writes these answers.

    Raises ProviderError when the provider cannot be asked at all."""
    ids = list(order_ids)
    answers = _fetch_many(
        provider,
        "supports_multi_status",
        "status",
        ids,
        many=lambda client, wanted: client.statuses(wanted),
        one=lambda client, id_: client.status(id_),
        session=session,
    )
    if session is not None and next_ids and provider.supports_multi_status:
        ahead = list(next_ids)
        session.start("status", tuple(ahead), lambda client: client.statuses(ahead))
    return answers


def provider_fetch_refill_statuses(
    *, provider: Provider, refill_ids: Sequence[str]
) -> dict[str, RefillStatus | ItemError]:
    """The statuses of up to 100 upstream refills: one refill_status call with `refills=`, or one
    per refill for a provider without the list form (seed 000; learned when it refuses one).

    Raises ProviderError when the provider cannot be asked at all."""
    return _fetch_many(
        provider,
        "supports_multi_refill_status",
        "refill_status",
        list(refill_ids),
        many=lambda client, ids: client.refill_statuses(ids),
        one=lambda client, id_: client.refill_status(id_),
    )


def _fetch_many(
    provider: Provider,
    capability: str,
    action: str,
    ids: list[str],
    *,
    many: Callable[[ApiV2Client, list[str]], dict[str, T | ItemError]],
    one: Callable[[ApiV2Client, str], T],
    session: ProviderSession | None = None,
) -> dict[str, T | ItemError]:
    if not getattr(provider, capability):
        return _fetch_each(provider, action, ids, one, session)[0]
    try:
        if session is not None:
            return session.call(action, lambda client: many(client, ids), key=tuple(ids))
        return provider_call(provider, action, lambda client: many(client, ids))
    except ProviderError as exc:
        if not is_unsupported_call(exc):
            raise
        # Refused as unknown: a read, so asking id by id is safe. The capability is learned
        # only when the single form is understood (else the call itself is what is refused).
        answers, understood = _fetch_each(provider, action, ids, one, session)
        if understood:
            provider_learn_capability(provider=provider, capability=capability, reason=exc.message)
        return answers


def _fetch_each(
    provider: Provider,
    action: str,
    ids: list[str],
    one: Callable[[ApiV2Client, str], T],
    session: ProviderSession | None = None,
) -> tuple[dict[str, T | ItemError], bool]:
    """One call per id: answers (an ItemError for a per-id refusal), and whether the provider
    understood the single form at least once. A network-level failure before any answer is
    raised, as a failed multi call would be; after some answers it ends the round, the rest
    marked as not asked."""
    answers: dict[str, T | ItemError] = {}
    understood = False
    for index, id_ in enumerate(ids):
        try:
            answers[id_] = provider_call(
                provider,
                action,
                lambda client: one(client, id_),  # noqa: B023 - called at once
                client=session.client if session is not None else None,
            )
        except ProviderError as exc:
            if exc.kind not in _ITEM_ERROR_KINDS:
                if not answers:
                    raise
                answers.update(
                    (rest, ItemError(f"not asked: {exc.message}")) for rest in ids[index:]
                )
                break
            answers[id_] = ItemError(exc.message)
            # A refusal about this id ("Incorrect order ID") shows the form was understood.
            understood = understood or (
                exc.kind is ErrorKind.API_ERROR and not is_unsupported_call(exc)
            )
        else:
            understood = True
    return answers, understood
