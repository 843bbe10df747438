"""Reads for customers, balances, keys and the ledger."""

import hmac
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db.models import QuerySet, Sum

from accounts.models import ApiKey, LedgerEntry, User, Wallet


def api_key_get_user(*, raw_key: str) -> User | None:
    """The active customer whose key this is, or None. Looked up by hash, then compared in
    constant time so that the answer's timing says nothing about the stored hash."""
    if not raw_key or len(raw_key) > 256:
        return None
    digest = ApiKey.hash(raw_key)
    api_key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=digest, is_active=True, user__is_active=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, digest):
        return None
    return api_key.user


def ledger_list_for_user(*, user: User) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(user=user).order_by("-id")


def ledger_recent_staff_entry(
    *, user: User, amount: Decimal, since: datetime
) -> LedgerEntry | None:
    """The newest entry written by staff (a manual credit or debit) to `user` for exactly the
    signed `amount` since `since`, or None: the admin's guard against a change made twice."""
    return (
        LedgerEntry.objects.filter(
            user=user,
            amount=amount,
            kind__in=[LedgerEntry.Kind.DEPOSIT, LedgerEntry.Kind.ADJUSTMENT],
            created_by__isnull=False,
            created_at__gte=since,
        )
        .select_related("created_by")
        .order_by("-id")
        .first()
    )


@dataclass(frozen=True)
class LedgerMismatch:
    user_id: int
    username: str
    problem: str


def ledger_find_mismatches() -> list[LedgerMismatch]:
    """Every customer whose ledger does not sum to the cached balance, or whose entries'
    balance_after do not chain (each = the previous one + its amount)."""
    problems: list[LedgerMismatch] = []
    sums = dict(LedgerEntry.objects.values_list("user_id").annotate(total=Sum("amount")).order_by())
    wallets = Wallet.objects.select_related("user").order_by("user_id")
    for wallet in wallets.iterator(chunk_size=2000):
        total = sums.pop(wallet.user_id, Decimal(0))
        if total != wallet.balance:
            problems.append(
                LedgerMismatch(
                    wallet.user_id,
                    wallet.user.username,
                    f"ledger sums to {total} but the balance is {wallet.balance}",
                )
            )
    for user_id in sums:  # entries for a user with no wallet at all
        problems.append(LedgerMismatch(user_id, "?", "ledger entries without a wallet"))
    problems.extend(_broken_chains())
    return problems


def _broken_chains() -> list[LedgerMismatch]:
    problems = []
    previous: dict[int, Decimal] = {}
    rows = LedgerEntry.objects.order_by("user_id", "id").values_list(
        "id", "user_id", "user__username", "amount", "balance_after"
    )
    for entry_id, user_id, username, amount, after in rows.iterator(chunk_size=5000):
        expected = previous.get(user_id, Decimal(0)) + amount
        if expected != after:
            problems.append(
                LedgerMismatch(
                    user_id,
                    username,
                    f"entry {entry_id}: balance_after is {after}, the chain gives {expected}",
                )
            )
        previous[user_id] = after
    return problems


def user_has_verified_email(*, user: User) -> bool:
    """Whether one of the user's e-mail addresses has been verified (allauth's EmailAddress)."""
    return EmailAddress.objects.filter(user_id=user.pk, verified=True).exists()


def user_may_deposit(*, user: User) -> bool:
    """Whether the user may add funds: always, unless PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT
    (on by default in production) asks for a verified e-mail address first."""
    if not getattr(settings, "PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT", False):
        return True
    return user_has_verified_email(user=user)
