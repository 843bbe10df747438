"""Reads for customers, balances, keys and the ledger."""

import datetime as dt
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.cache import cache
from django.db import connections, router
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import (
    ApiKey,
    DisplayCurrency,
    LedgerEntry,
    Payment,
    PaymentCallback,
    User,
    Wallet,
)
from accounts.sql import ModelColumns, PerDatabase, field_converters, prepared
from catalog.pricing import DisplayRate


@dataclass(frozen=True)
class KeyExtra:
    """More columns read with the API key lookup, for the action that needs them (one round
    trip instead of two): SQL expressions over the lookup's aliases `u` (the user) and `w`
    (their wallet, NULL without one), and `receive(user, values)` to keep their values on the
    user for the readers that would have queried them.

    `args` are the values of the columns' %s placeholders, in their order (a call's own, e.g.
    the ids `status` asks for). The statement depends on the columns alone: the lookup writes
    (and the database prepares) one per set of columns, whatever the args and receive."""

    columns: tuple[str, ...]
    receive: Callable[[User, tuple[Any, ...]], None]
    args: tuple[Any, ...] = ()


def api_key_get_user(*, raw_key: str, extra: KeyExtra | None = None) -> User | None:
    """The active customer whose key this is, or None. Looked up by hash, then compared in
    constant time so that the answer's timing says nothing about the stored hash. The user comes
    with their key (`user.api_key`, no query) and the balance read in the same query, and the
    `extra` columns handed to its `receive`."""
    if not raw_key or len(raw_key) > 256:
        return None
    digest = ApiKey.hash(raw_key)
    found = _KeyLookup.get(router.db_for_read(ApiKey)).fetch(digest, extra)
    if found is None:
        return None
    api_key, user, balance, values = found
    if not hmac.compare_digest(api_key.key_hash, digest):
        return None
    # The balance read in the same query: the API's `balance` answers it without another one.
    setattr(user, BALANCE_MEMO, balance)
    if extra is not None:
        extra.receive(user, values)
    return user


class _KeyLookup(PerDatabase):
    """The key lookup of every API call as one SQL statement written once per database from the
    models' metadata: the key, its user and the wallet's balance, for an active key of an active
    user. It is what `ApiKey.objects.select_related("user").annotate(...).filter(...).first()`
    sent, without building and compiling that query on each call (which cost more CPU than
    the round trip: docs/api.md, Performance). Rows become model objects as the ORM builds
    them (ModelColumns), both sides of the one-to-one cached."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        connection = connections[alias]
        q = connection.ops.quote_name
        key_meta, user_meta, wallet_meta = ApiKey._meta, User._meta, Wallet._meta
        self.key = ModelColumns(ApiKey, "k", alias)
        self.user = ModelColumns(User, "u", alias)
        self.balance = wallet_meta.get_field("balance")
        self.balance_converters = field_converters(self.balance, connection)

        def col(meta: Any, name: str) -> str:
            return q(meta.get_field(name).column)  # concrete fields: never None

        user_pk = q(cast(str, user_meta.pk.column))
        # Only the models' own table and column names, quoted; the key's hash is a parameter.
        # `{extra}`: a KeyExtra's columns, if any (sql_for).
        self.sql = prepared(
            f"SELECT {self.key.sql}, {self.user.sql}, w.{col(wallet_meta, 'balance')}{{extra}}"  # noqa: S608
            f" FROM {q(key_meta.db_table)} k"
            f" INNER JOIN {q(user_meta.db_table)} u ON u.{user_pk} = k.{col(key_meta, 'user')}"
            f" LEFT OUTER JOIN {q(wallet_meta.db_table)} w"
            f" ON w.{col(wallet_meta, 'user')} = u.{user_pk}"
            f" WHERE k.{col(key_meta, 'key_hash')} = %s"
            f" AND k.{col(key_meta, 'is_active')} AND u.{col(user_meta, 'is_active')} LIMIT 1"
        )
        self.user_relation = key_meta.get_field("user")
        self._sql_for: dict[tuple[str, ...], str] = {}

    def sql_for(self, extra: KeyExtra | None) -> str:
        columns = extra.columns if extra else ()
        sql = self._sql_for.get(columns)
        if sql is None:
            text = "".join(f", {c}" for c in columns)
            sql = self._sql_for.setdefault(columns, self.sql.replace("{extra}", text))
        return sql

    def fetch(
        self, digest: str, extra: KeyExtra | None = None
    ) -> tuple[ApiKey, User, Decimal | None, tuple[Any, ...]] | None:
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            # The extra columns come before the WHERE clause: their arguments first.
            cursor.execute(self.sql_for(extra), [*extra.args, digest] if extra else [digest])
            row = cursor.fetchone()
        if row is None:
            return None
        n_key, n_user = len(self.key), len(self.user)
        api_key = self.key.build(row[:n_key])
        user = self.user.build(row[n_key : n_key + n_user])
        balance = row[n_key + n_user]
        for converter in self.balance_converters:
            balance = converter(balance, self.balance.cached_col, connection)
        self.user_relation.set_cached_value(api_key, user)  # api_key.user
        self.user_relation.remote_field.set_cached_value(user, api_key)  # user.api_key
        return api_key, user, balance, tuple(row[n_key + n_user + 1 :])


# The balance read with the customer's API key (api_key_get_user), on the User object of that
# request; a ledger write through that object forgets it (accounts.services).
BALANCE_MEMO = "_panel_balance_at_key_lookup"


def wallet_balance(*, user: User) -> Decimal:
    """The customer's balance (0 without a wallet): the one read with their API key when the
    API looked it up in this request, else one query."""
    memo = user.__dict__.get(BALANCE_MEMO, _UNREAD)
    if memo is not _UNREAD:
        return memo if memo is not None else ZERO_BALANCE
    amount = Wallet.objects.filter(user=user).values_list("balance", flat=True).first()
    return amount if amount is not None else ZERO_BALANCE


_UNREAD = object()
ZERO_BALANCE = Decimal("0.00000")


def display_currency_list() -> QuerySet[DisplayCurrency]:
    """The currencies customers may pick to read prices in (staff's enabled ones)."""
    return DisplayCurrency.objects.filter(enabled=True).order_by("code")


def display_rate_for_user(*, user: User) -> DisplayRate | None:
    """The customer's display currency and its rate, or None (the panel's currency): no query
    for a customer who never chose one; a code staff disabled or removed falls back too."""
    if not user.display_currency:
        return None
    row = display_currency_list().filter(code=user.display_currency).first()
    return row.display_rate if row is not None else None


def ledger_list_for_user(*, user: User) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(user=user).order_by("-id")


def payment_many_by_ref_for_user(*, user: User, refs: Iterable[str]) -> dict[str, Payment]:
    """The customer's payments whose ledger reference (`<method>:<gateway_id>`, the
    `payment_ref` of their deposit and bonus entries) is among `refs`, in one query."""
    pairs = {tuple(ref.split(":", 1)) for ref in refs if ":" in ref}
    if not pairs:
        return {}
    rows = Payment.objects.filter(user=user, gateway_id__in={gid for _, gid in pairs})
    return {f"{p.method}:{p.gateway_id}": p for p in rows if (p.method, p.gateway_id) in pairs}


def payment_list_for_user(*, user: User) -> QuerySet[Payment]:
    """The customer's payments, newest first (drafts a gateway never saw excluded)."""
    return Payment.objects.filter(user=user).exclude(status=Payment.Status.CREATED)


def payment_list_due_for_reconcile(*, now: datetime, older_than: timedelta) -> QuerySet[Payment]:
    """Waiting gateway payments (manual transfers excepted) made before `now - older_than` and
    not yet expired, the ones least recently read at their gateway first (never read: first),
    so that a bounded sweep gets round to all of them."""
    last_read = (
        PaymentCallback.objects.filter(payment=OuterRef("pk"), source=PaymentCallback.Source.POLL)
        .order_by()
        .values("payment")
        .annotate(at=Max("received_at"))
        .values("at")
    )
    return (
        Payment.objects.filter(
            status=Payment.Status.PENDING,
            gateway_id__isnull=False,
            created_at__lt=now - older_than,
        )
        .exclude(method="manual")
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .annotate(last_read=Subquery(last_read))
        .order_by(F("last_read").asc(nulls_first=True), "created_at", "id")
    )


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
    balance_after do not chain (each = the previous one + its amount), or whose cached total
    spent is not their charges net of refunds."""
    problems: list[LedgerMismatch] = []
    sums = dict(LedgerEntry.objects.values_list("user_id").annotate(total=Sum("amount")).order_by())
    spent = dict(
        LedgerEntry.objects.filter(kind__in=["charge", "refund"])
        .values_list("user_id")
        .annotate(total=-Sum("amount"))
        .order_by()
    )
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
        problems.extend(_spent_mismatch(wallet, spent.get(wallet.user_id, Decimal(0))))
    for user_id in sums:  # entries for a user with no wallet at all
        problems.append(LedgerMismatch(user_id, "?", "ledger entries without a wallet"))
    problems.extend(_broken_chains())
    return problems


def _spent_mismatch(wallet: Wallet, spent: Decimal) -> list[LedgerMismatch]:
    """The total spent the tiers read (Wallet.total_spent) against the ledger's charges net of
    refunds."""
    if spent == wallet.total_spent:
        return []
    problem = f"charges net of refunds are {spent} but the total spent is {wallet.total_spent}"
    return [LedgerMismatch(wallet.user_id, wallet.user.username, problem)]


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


def api_key_list_stale(*, now: datetime) -> QuerySet[ApiKey]:
    """Active keys unused for ApiKey.STALE_AFTER: last used before the cutoff, or never used
    and created before it."""
    cutoff = now - ApiKey.STALE_AFTER
    return (
        ApiKey.objects.filter(is_active=True)
        .annotate(last_activity=Coalesce("last_used_at", "created_at"))
        .filter(last_activity__lt=cutoff)
        .select_related("user")
    )


# --- payments on the admin cockpit ------------------------------------------------------------


@dataclass(frozen=True)
class PaymentAttentionKind:
    """One reason a payment needs a person: `key` is also the payments admin filter's value."""

    key: str
    label: str
    condition: Q


PAYMENT_ATTENTION_CAP = 1000
_FLAGGED_ELSEWHERE = (Payment.Status.DISPUTED, Payment.Status.REFUNDED)


def payment_attention_kinds() -> list[PaymentAttentionKind]:
    """Every kind of payment that needs staff, in the order the cockpit shows them."""
    return [
        PaymentAttentionKind(
            "manual",
            "Manual transfers waiting for approval",
            Q(method="manual", status=Payment.Status.PENDING),
        ),
        PaymentAttentionKind(
            "disputed", "Payments disputed", Q(needs_attention=True, status=Payment.Status.DISPUTED)
        ),
        PaymentAttentionKind(
            "refunded",
            "Payments refunded by the gateway",
            Q(needs_attention=True, status=Payment.Status.REFUNDED),
        ),
        PaymentAttentionKind(
            "mismatch",
            # Underpaid ones (not credited) and overpaid ones (credited, the extra to settle).
            "Payments to check (amount or currency differs)",
            Q(needs_attention=True) & ~Q(status__in=_FLAGGED_ELSEWHERE),
        ),
    ]


def payment_attention_kind_get(*, key: str | None) -> PaymentAttentionKind | None:
    return next((k for k in payment_attention_kinds() if k.key == key), None)


@dataclass(frozen=True)
class PaymentAttentionGroup:
    kind: PaymentAttentionKind
    count: int
    capped: bool

    @property
    def key(self) -> str:
        return self.kind.key

    @property
    def label(self) -> str:
        return self.kind.label


def payment_attention_summary() -> list[PaymentAttentionGroup]:
    """A capped count per kind of payment needing attention (a COUNT over a LIMITed subquery:
    bounded however many match)."""
    groups = []
    for kind in payment_attention_kinds():
        ids = Payment.objects.filter(kind.condition).order_by().values("pk")
        count = ids[: PAYMENT_ATTENTION_CAP + 1].count()
        groups.append(
            PaymentAttentionGroup(
                kind, min(count, PAYMENT_ATTENTION_CAP), count > PAYMENT_ATTENTION_CAP
            )
        )
    return groups


# Deposits count on the UTC day they were paid; a payment the gateway later refunded is left
# out (the money went back), a disputed one stays in until the dispute is lost.
DEPOSIT_STATUSES = (Payment.Status.PAID, Payment.Status.DISPUTED)


@dataclass(frozen=True)
class DepositCell:
    day: dt.date
    method: str
    amount: Decimal
    bonus: Decimal
    payments: int


@dataclass
class DepositDay:
    day: dt.date
    amount: Decimal = Decimal(0)
    bonus: Decimal = Decimal(0)
    payments: int = 0
    by_method: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class Deposits:
    days: list[DepositDay]  # oldest first, one per UTC day, days without deposits as zeros
    methods: list[str]  # the methods with deposits in the period, the biggest first
    by_method: dict[str, Decimal]
    amount: Decimal
    bonus: Decimal
    payments: int

    def since(self, day: dt.date) -> Decimal:
        """The deposits of the days from `day` on."""
        return sum((d.amount for d in self.days if d.day >= day), Decimal(0))

    @property
    def method_totals(self) -> list[Decimal]:
        """The period's deposits per method, in the order of `methods`."""
        return [self.by_method[m] for m in self.methods]

    def method_row(self, day: DepositDay) -> list[Decimal]:
        return [day.by_method.get(m, Decimal(0)) for m in self.methods]


def _deposit_cells(since: datetime, until: datetime | None = None) -> list[DepositCell]:
    paid = Payment.objects.filter(status__in=DEPOSIT_STATUSES, paid_at__gte=since)
    if until is not None:
        paid = paid.filter(paid_at__lt=until)
    rows = (
        paid.annotate(day=TruncDate("paid_at", tzinfo=dt.UTC))
        .values_list("day", "method")
        .annotate(amount=Sum("amount"), bonus=Sum("bonus"), payments=Count("id"))
        .order_by()
    )
    return [DepositCell(*row) for row in rows]


def _deposit_cells_cached(*, first: datetime, today: datetime) -> list[DepositCell]:
    # As the cockpit's profit figures: the past days change only when a payment is refunded or
    # paid late, so they are cached for COCKPIT_CACHE_SECONDS; today is read live.
    seconds = int(getattr(settings, "COCKPIT_CACHE_SECONDS", 300))
    if seconds <= 0:
        return _deposit_cells(first)
    key = f"cockpit:deposits:{first:%Y%m%d}:{today:%Y%m%d}"
    past = cache.get(key)
    if past is None:
        past = _deposit_cells(first, today)
        cache.set(key, past, seconds)
    return past + _deposit_cells(today)


def deposits_by_day(*, now: datetime, days: int = 30) -> Deposits:
    """The deposits of paid payments per UTC day and method for the last `days` days (today
    included): what customers added, beside the cockpit's revenue."""
    today = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days - 1)
    rows = {
        first.date() + timedelta(days=i): DepositDay(first.date() + timedelta(days=i))
        for i in range(days)
    }
    by_method: dict[str, Decimal] = {}
    for cell in _deposit_cells_cached(first=first, today=today):
        row = rows[cell.day]
        row.amount += cell.amount
        row.bonus += cell.bonus
        row.payments += cell.payments
        row.by_method[cell.method] = row.by_method.get(cell.method, Decimal(0)) + cell.amount
        by_method[cell.method] = by_method.get(cell.method, Decimal(0)) + cell.amount
    return Deposits(
        days=list(rows.values()),
        methods=sorted(by_method, key=lambda m: (-by_method[m], m)),
        by_method=by_method,
        amount=sum(by_method.values(), Decimal(0)),
        bonus=sum((d.bonus for d in rows.values()), Decimal(0)),
        payments=sum(d.payments for d in rows.values()),
    )


def user_has_verified_email(*, user: User) -> bool:
    """Whether one of the user's e-mail addresses has been verified (allauth's EmailAddress)."""
    return EmailAddress.objects.filter(user_id=user.pk, verified=True).exists()


def user_may_deposit(*, user: User) -> bool:
    """Whether the user may add funds: always, unless PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT
    (on by default in production) asks for a verified e-mail address first."""
    if not getattr(settings, "PANEL_REQUIRE_VERIFIED_EMAIL_FOR_DEPOSIT", False):
        return True
    return user_has_verified_email(user=user)
