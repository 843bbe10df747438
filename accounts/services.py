"""Every write to customers, balances and API keys.

The balance changes only through balance_credit / balance_debit: each locks the wallet row,
appends one LedgerEntry and updates the cached balance in the same transaction (a debit in one
SQL statement: docs/money.md, Services). Staff changes
(balance_adjust_by_staff, the suspend and API-key switches) write their audit rows in the same
transaction as the change: a committed change always has its row, a refused one never does.
"""

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import requests
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Model, QuerySet
from django.utils import timezone
from django.utils.timesince import timesince

from accounts.audit import audit_record, audit_record_selection, audit_selection_ids
from accounts.models import (
    AdminAuditLog,
    ApiKey,
    DisplayCurrency,
    LedgerEntry,
    NotificationPreference,
    User,
    Wallet,
    ip_allowlist_clean,
)
from accounts.notifications import notify_if_balance_low
from accounts.selectors import BALANCE_MEMO, display_currency_list, ledger_recent_staff_entry
from accounts.sql import PREPARED, insert_select, mark_saved, sequence_next_sql
from accounts.tiers import price_terms_forget
from catalog.pricing import MONEY_DIGITS, MONEY_PLACES, parse_money, quantize_money, quantize_rate

logger = logging.getLogger(__name__)
MAX_AMOUNT = Decimal(10) ** (MONEY_DIGITS - MONEY_PLACES) - 1


class InsufficientFunds(Exception):
    """The balance does not cover a debit; nothing was written."""

    def __init__(self, *, balance: Decimal, amount: Decimal):
        self.balance = balance
        self.amount = amount
        super().__init__(f"Not enough funds: the balance is {balance}, {amount} is needed.")


class InvalidAmount(ValueError):
    """An amount that is zero, negative where a positive one is needed, or too large."""


def _checked_amount(amount: Decimal) -> Decimal:
    # Check the size before quantizing: quantize_money raises decimal.InvalidOperation (not an
    # InvalidAmount) for anything past 28 significant digits, e.g. `credit alice 1e23`.
    if not Decimal(amount).is_finite():
        raise InvalidAmount(f"The amount {amount} is not a finite number.")
    if abs(Decimal(amount)) > MAX_AMOUNT:
        raise InvalidAmount(f"The amount {amount} is too large.")
    amount = quantize_money(amount)
    if amount <= 0:
        raise InvalidAmount(f"The amount must be positive, not {amount}.")
    return amount


def _checked_signed(amount: Decimal) -> Decimal:
    """A signed staff change as the ledger will store it (InvalidAmount for zero or too large)."""
    size = _checked_amount(abs(amount))
    return size if amount > 0 else -size


def _apply(
    *,
    user: User,
    signed_amount: Decimal,
    kind: str,
    order_ref: int | None,
    payment_ref: str,
    idempotency_key: str | None,
    created_by: User | None,
    memo: str,
) -> LedgerEntry:
    with transaction.atomic():
        # Lock first, then look for a replay: two workers processing the same refund queue up
        # here, and the second one finds the first one's entry.
        wallet = _locked_wallet(user)
        existing = _find_replay(
            user=user, kind=kind, order_ref=order_ref, idempotency_key=idempotency_key
        )
        if existing is not None:
            return existing
        new_balance = wallet.balance + signed_amount
        if new_balance < 0:
            raise InsufficientFunds(balance=wallet.balance, amount=-signed_amount)
        if new_balance > MAX_AMOUNT:
            raise InvalidAmount("The balance would exceed the largest amount the panel stores.")
        now = timezone.now()
        entry = LedgerEntry.objects.create(
            user=user,
            kind=kind,
            amount=signed_amount,
            balance_after=new_balance,
            order_ref=order_ref,
            payment_ref=payment_ref,
            idempotency_key=idempotency_key,
            created_by=created_by,
            memo=memo,
            created_at=now,
        )
        spent = spent_change(kind=kind, signed_amount=signed_amount)
        Wallet.objects.filter(pk=wallet.pk).update(
            balance=new_balance, total_spent=wallet.total_spent + spent, updated_at=now
        )
    if spent:
        price_terms_forget(user)  # the tier may have changed: the next price reads it again
    user.__dict__.pop(BALANCE_MEMO, None)  # the balance the API read with the key is old now
    return entry


def wallet_count_order(*, user: User) -> None:
    """One more order for the customer's Wallet.order_count, in the order's transaction (an
    increment in SQL: concurrent orders both count), for an order that charges nothing; a
    charged order counts in its debit's UPDATE (balance_debit(count_order=True))."""
    if not Wallet.objects.filter(user=user).update(order_count=F("order_count") + 1):
        Wallet.objects.get_or_create(user=user)
        Wallet.objects.filter(user=user).update(order_count=F("order_count") + 1)


# The ledger kinds that make up "total spent": what orders cost, net of what they gave back.
SPENDING_KINDS = frozenset({LedgerEntry.Kind.CHARGE, LedgerEntry.Kind.REFUND})


def spent_change(*, kind: str, signed_amount: Decimal) -> Decimal:
    """How an entry changes the customer's total spent (Wallet.total_spent, the tiers' base): a
    charge (negative) adds its size, a refund (positive) takes it off; other kinds nothing."""
    return -signed_amount if kind in SPENDING_KINDS else Decimal(0)


def _locked_wallet(user: User) -> Wallet:
    """The user's wallet (created if missing), locked until the transaction ends: one query
    when it exists (every customer's is made with the account)."""
    wallet = Wallet.objects.select_for_update().filter(user=user).first()
    if wallet is None:
        Wallet.objects.get_or_create(user=user)
        wallet = Wallet.objects.select_for_update().get(user=user)
    return wallet


def _find_replay(
    *, user: User, kind: str, order_ref: int | None, idempotency_key: str | None
) -> LedgerEntry | None:
    if idempotency_key:
        entry = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if entry is not None:
            if entry.user_id != user.pk:
                raise IntegrityError("That idempotency key belongs to another customer's entry.")
            return entry
    if order_ref is not None and kind in (LedgerEntry.Kind.CHARGE, LedgerEntry.Kind.REFUND):
        return LedgerEntry.objects.filter(order_ref=order_ref, kind=kind).first()
    return None


def balance_credit(
    *,
    user: User,
    amount: Decimal,
    kind: str = LedgerEntry.Kind.DEPOSIT,
    order_ref: int | None = None,
    payment_ref: str = "",
    idempotency_key: str | None = None,
    created_by: User | None = None,
    memo: str = "",
) -> LedgerEntry:
    """Add a positive `amount` to the user's balance through the ledger.

    A refund of an order (kind=refund, order_ref set) happens at most once: a second call
    returns the first entry and changes nothing. So does a repeated idempotency_key.
    """
    return _apply(
        user=user,
        signed_amount=_checked_amount(amount),
        kind=kind,
        order_ref=order_ref,
        payment_ref=payment_ref,
        idempotency_key=idempotency_key,
        created_by=created_by,
        memo=memo,
    )


@dataclass(frozen=True)
class Credit:
    """One credit of balance_credit_many: `amount` to `user_id`, for `order_ref`."""

    user_id: int
    amount: Decimal
    order_ref: int
    memo: str = ""


def balance_credit_many(*, credits: list[Credit]) -> dict[int, LedgerEntry]:
    """Many order refunds at once: what balance_credit(kind=refund) does for each, with each
    wallet locked once and the entries written in one INSERT; returns order_ref -> entry.

    Still one entry per order: the ledger's unique (order_ref, kind) is the proof, and an
    order_ref that already has its entry gets that entry back and changes nothing. Wallets are
    locked in id order, so two batches over the same customers cannot deadlock. Runs inside
    the caller's transaction when there is one (no savepoint: an error fails the caller's).
    """
    kind = LedgerEntry.Kind.REFUND
    if len({c.order_ref for c in credits}) != len(credits):
        raise IntegrityError("balance_credit_many got the same order twice.")
    amounts = [_checked_amount(c.amount) for c in credits]
    if not credits:
        return {}
    with transaction.atomic(savepoint=False):
        wallets = _locked_wallets({c.user_id for c in credits})
        done: dict[int, LedgerEntry] = {
            e.order_ref: e
            for e in LedgerEntry.objects.filter(
                order_ref__in=[c.order_ref for c in credits], kind=kind
            )
            if e.order_ref is not None
        }
        now = timezone.now()
        entries, changed = [], {}
        for credit, amount in zip(credits, amounts, strict=True):
            if credit.order_ref in done:
                continue
            wallet = wallets[credit.user_id]
            wallet.balance += amount
            if wallet.balance > MAX_AMOUNT:
                raise InvalidAmount("The balance would exceed the largest amount the panel stores.")
            wallet.total_spent += spent_change(kind=kind, signed_amount=amount)
            wallet.updated_at = now
            changed[wallet.pk] = wallet
            entry = LedgerEntry(
                user=wallet.user,
                kind=kind,
                amount=amount,
                balance_after=wallet.balance,
                order_ref=credit.order_ref,
                memo=credit.memo,
                created_at=now,
            )
            entries.append(entry)
            done[credit.order_ref] = entry
        LedgerEntry.objects.bulk_create(entries)
        if changed:
            Wallet.objects.bulk_update(changed.values(), ["balance", "total_spent", "updated_at"])
    return done


def _locked_wallets(user_ids: set[int]) -> dict[int, Wallet]:
    """The users' wallets with their users (created if missing), locked in id order until the
    transaction ends, by user id: one SELECT ... FOR UPDATE."""

    def locked() -> dict[int, Wallet]:
        rows = (
            Wallet.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(user_id__in=user_ids)
            .order_by("pk")
        )
        return {w.user_id: w for w in rows}

    wallets = locked()
    if len(wallets) < len(user_ids):  # a wallet never made (older accounts): make, lock again
        for user_id in user_ids - wallets.keys():
            Wallet.objects.get_or_create(user_id=user_id)
        wallets = locked()
    return wallets


@dataclass(frozen=True)
class Alongside:
    """A write made in a debit's own SQL statement, and only if the debit is written
    (orders.services.create: the new order's status change and its daily summary row): a
    data-modifying statement that selects its rows FROM `debited`, the CTE that holds the
    wallet's row once the entry is written and no row when the debit is refused or a replay.
    With a debit that `pays_for` a new row, it may read that row's id as `drawn.id`.
    It runs after the wallet is locked and debited, so it locks its own rows after the wallet."""

    sql: str
    params: tuple[Any, ...] = ()


# The first "{id}" of a memo that `pays_for` a new row stands for that row's id.
DRAWN_ID = "{id}"


@dataclass(frozen=True)
class _Debited:
    balance: Decimal  # before the debit (the locked wallet's)
    entry_id: int | None  # None: not written (the balance does not cover it, or a replay)
    threshold: Decimal | None  # the customer's low-balance threshold
    drawn_id: int | None = None  # the id of the row it pays for (drawn even when not written)


@dataclass(frozen=True)
class _Debit:
    """What a debit writes, for its statement (or its steps on SQLite)."""

    entry: LedgerEntry
    spent: Decimal  # added to the wallet's total spent
    orders: int  # added to the wallet's order count
    alongside: Sequence[Alongside]
    pays_for: Model | None  # an unsaved row written with it, its id drawn first


def _debit_statement(debit: _Debit, using: str) -> tuple[str, list[Any]]:
    """One statement: lock the wallet, insert the entry with its balance after if the balance
    covers it (ON CONFLICT DO NOTHING: a replay inserts nothing), then, only from the inserted
    entry, update the wallet (balance, total spent, order count), insert the row it pays for
    (its id drawn first, in `drawn`: the entry's order_ref) and make the `alongside` writes;
    it returns the balance before, the entry's id, the low-balance threshold and the drawn id.
    The wallet's row is locked first in every debit, so two debits of it queue up there: the
    second one reads the first one's balance after."""
    wallets, entries = Wallet._meta.db_table, LedgerEntry._meta.db_table
    prefs = NotificationPreference._meta.db_table
    e = debit.entry
    drawn, order_ref, memo = "", "%s", "%s"
    drawn_params: list[Any] = []
    ref_params: list[Any] = [e.order_ref]
    memo_params: list[Any] = [e.memo]
    writes = list(debit.alongside)
    if debit.pays_for is not None:
        drawn = f"drawn AS (SELECT {sequence_next_sql(type(debit.pays_for), using)} AS id), "
        order_ref, ref_params = "drawn.id", []
        before, _, after = e.memo.partition(DRAWN_ID)
        memo, memo_params = "%s || drawn.id || %s", [before, after]
        row_sql, row_params = insert_select(
            debit.pays_for, using, pk_sql="drawn.id", rows_from="debited, drawn"
        )
        writes.insert(0, Alongside(row_sql, tuple(row_params)))
    extra = "".join(f",\nalongside_{i} AS ({a.sql})" for i, a in enumerate(writes))
    sql = f"""{PREPARED}WITH {drawn}wallet AS (
    SELECT balance FROM {wallets} WHERE user_id = %s FOR UPDATE
), entry AS (
    INSERT INTO {entries} (user_id, kind, amount, balance_after, order_ref, payment_ref,
        idempotency_key, created_by_id, memo, created_at)
    SELECT %s, %s, %s, wallet.balance + %s, {order_ref}, %s, %s, %s, {memo}, %s
    FROM {"drawn, " if drawn else ""}wallet WHERE wallet.balance + %s >= 0
    ON CONFLICT DO NOTHING
    RETURNING id, balance_after
), debited AS (
    UPDATE {wallets} SET balance = entry.balance_after, updated_at = %s,
        total_spent = {wallets}.total_spent + %s, order_count = {wallets}.order_count + %s
    FROM entry WHERE {wallets}.user_id = %s
    RETURNING {wallets}.user_id
){extra}
SELECT wallet.balance, entry.id,
    (SELECT low_balance_threshold FROM {prefs} WHERE user_id = %s),
    {"drawn.id" if drawn else "NULL"}
FROM {"drawn, " if drawn else ""}wallet LEFT JOIN entry ON true"""  # noqa: S608 - table names are ours, values bound
    params: list[Any] = [*drawn_params, e.user_id, e.user_id, e.kind, e.amount, e.amount]
    params += [*ref_params, e.payment_ref, e.idempotency_key, e.created_by_id, *memo_params]
    params += [e.created_at, e.amount, e.created_at, debit.spent, debit.orders, e.user_id]
    for write in writes:
        params += write.params
    return sql, [*params, e.user_id]


def _debit_once(debit: _Debit) -> _Debited | None:
    """Run the debit's statement; None when the customer has no wallet."""
    using = router.db_for_write(LedgerEntry)
    connection = connections[using]
    if connection.vendor != "postgresql":
        return _debit_in_steps(debit, using)
    sql, params = _debit_statement(debit, using)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _Debited(*row) if row is not None else None


def _debit_in_steps(debit: _Debit, using: str) -> _Debited | None:
    """What _debit_statement does, one statement at a time, for SQLite (embedded mode), whose
    CTEs cannot write: there every transaction takes the database's write lock as it begins
    (IMMEDIATE), so nothing runs in between. Each `alongside` write reads a one-row
    `debited` (and `drawn`)."""
    entry = debit.entry
    wallet = Wallet.objects.filter(user_id=entry.user_id).first()
    if wallet is None:
        return None
    prefs = NotificationPreference.objects.filter(user_id=entry.user_id)
    threshold = prefs.values_list("low_balance_threshold", flat=True).first()
    replay = _find_replay(
        user=entry.user,
        kind=entry.kind,
        order_ref=entry.order_ref,
        idempotency_key=entry.idempotency_key,
    )
    if replay is not None or wallet.balance + entry.amount < 0:
        return _Debited(wallet.balance, None, threshold)
    drawn_id = None
    if debit.pays_for is not None:
        debit.pays_for.save(using=using)
        drawn_id = entry.order_ref = debit.pays_for.pk
        entry.memo = entry.memo.replace(DRAWN_ID, str(drawn_id), 1)
    entry.balance_after = wallet.balance + entry.amount
    entry.save()
    Wallet.objects.filter(pk=wallet.pk).update(
        balance=entry.balance_after,
        total_spent=F("total_spent") + debit.spent,
        order_count=F("order_count") + debit.orders,
        updated_at=entry.created_at,
    )
    with connections[using].cursor() as cursor:
        for write in debit.alongside:
            cursor.execute(
                f"WITH debited AS (SELECT %s AS user_id), drawn AS (SELECT %s AS id) {write.sql}",
                [wallet.pk, drawn_id, *write.params],
            )
    return _Debited(wallet.balance, entry.pk, threshold, drawn_id)


def _run_debit(debit: _Debit, using: str) -> _Debited:
    """The debit's statement, which writes all or nothing: on PostgreSQL it needs no
    transaction of its own (in autocommit it is one), except to make a missing wallet first.
    SQLite's steps run in one. No savepoint: a refusal is raised after the block, so it never
    spoils a caller's transaction."""
    one_statement = connections[using].vendor == "postgresql"
    with nullcontext() if one_statement else transaction.atomic(using, savepoint=False):
        debited = _debit_once(debit)
    if debited is None:  # an account older than wallets: make it, then debit
        with transaction.atomic(using, savepoint=False):
            Wallet.objects.get_or_create(user=debit.entry.user)
            debited = _debit_once(debit)
        assert debited is not None
    return debited


def _written(debit: _Debit, debited: _Debited, using: str) -> None:
    """The entry (and the row it pays for) as the statement wrote them; then the low-balance
    notice, if the debit crossed the customer's threshold."""
    entry = debit.entry
    entry.pk, entry.balance_after = debited.entry_id, debited.balance + entry.amount
    entry._state.adding, entry._state.db = False, using
    if debit.pays_for is not None:
        entry.order_ref = debited.drawn_id
        entry.memo = entry.memo.replace(DRAWN_ID, str(debited.drawn_id), 1)
        if debit.pays_for._state.adding:  # written by the statement (the steps saved it)
            mark_saved(debit.pays_for, debited.drawn_id, using)
    _tell_if_balance_low(
        entry=entry,
        before=debited.balance,
        threshold=debited.threshold,
        committed=not connections[using].in_atomic_block,
    )


def balance_debit(
    *,
    user: User,
    amount: Decimal,
    kind: str = LedgerEntry.Kind.CHARGE,
    order_ref: int | None = None,
    payment_ref: str = "",
    idempotency_key: str | None = None,
    created_by: User | None = None,
    memo: str = "",
    count_order: bool = False,
    alongside: Sequence[Alongside] = (),
    pays_for: Model | None = None,
) -> LedgerEntry:
    """Take a positive `amount` from the user's balance through the ledger, in one SQL
    statement (_debit_statement). A repeated order charge or idempotency_key returns the
    first entry and changes nothing.

    Raises InsufficientFunds, writing nothing, when the balance does not cover it (so a
    caller's transaction may go on). `count_order` adds one to Wallet.order_count in the same
    UPDATE; the `alongside` writes are made in the same statement when the entry is written
    (a replay then raises IntegrityError: they were meant for a new entry).

    `pays_for`, an unsaved row (the new order), is inserted in the same statement when the
    entry is written, with an id the statement draws first from its table's sequence: that id
    is the entry's order_ref (`order_ref` must then be None), the first "{id}" of `memo`, and
    `drawn.id` for the `alongside` writes; the row comes back saved (no save signals are sent,
    as with bulk_create). Refused, nothing of it is written.

    On PostgreSQL outside a transaction the one statement is its own: no BEGIN, no COMMIT.
    """
    if pays_for is not None and (order_ref is not None or not pays_for._state.adding):
        raise ValueError("A debit pays for a new row: no order_ref, an unsaved instance.")
    signed = -_checked_amount(amount)
    entry = LedgerEntry(
        user=user,
        kind=kind,
        amount=signed,
        order_ref=order_ref,
        payment_ref=payment_ref,
        idempotency_key=idempotency_key,
        created_by=created_by,
        memo=memo,
        created_at=timezone.now(),
    )
    spent = spent_change(kind=kind, signed_amount=signed)
    debit = _Debit(entry, spent, int(count_order), alongside, pays_for)
    using = router.db_for_write(LedgerEntry)
    debited = _run_debit(debit, using)
    if debited.entry_id is not None:
        _written(debit, debited, using)
    if debited.entry_id is None:
        return _not_debited(entry=entry, balance=debited.balance, alongside=alongside)
    if spent:
        price_terms_forget(user)  # the tier may have changed: the next price reads it again
    user.__dict__.pop(BALANCE_MEMO, None)  # the balance the API read with the key is old now
    return entry


def _not_debited(
    *, entry: LedgerEntry, balance: Decimal, alongside: Sequence[Alongside]
) -> LedgerEntry:
    """A debit that wrote no entry: the first entry of a replay (a replay comes first, as it
    always did, even when the balance no longer covers it), else InsufficientFunds."""
    replay = _find_replay(
        user=entry.user,
        kind=entry.kind,
        order_ref=entry.order_ref,
        idempotency_key=entry.idempotency_key,
    )
    if replay is not None:
        if alongside:  # they were meant for a new entry: never silently left out
            raise IntegrityError(f"{replay} was written before: the alongside rows were not.")
        return replay
    if balance + entry.amount < 0:
        raise InsufficientFunds(balance=balance, amount=-entry.amount)
    raise IntegrityError("The debit conflicted with a ledger entry that cannot be found.")


def _tell_if_balance_low(
    *, entry: LedgerEntry, before: Decimal, threshold: Decimal | None, committed: bool
) -> None:
    """The low-balance notice, when this debit took the balance across the customer's
    threshold (read in the debit's statement: the preference is read again only then). After a
    debit that committed on its own (one statement in autocommit) the notice cannot undo it:
    a failure to write it is logged, and the debit (the order it paid for) stands."""
    if threshold is None or not before >= threshold > entry.balance_after:
        return
    try:
        notify_if_balance_low(
            user=entry.user, before=before, after=entry.balance_after, order_ref=entry.order_ref
        )
    except Exception:
        if not committed:
            raise  # the caller's transaction decides
        logger.exception("the low-balance notice of ledger entry %s was not written", entry.pk)


def balance_adjust(
    *,
    user: User,
    amount: Decimal,
    created_by: User | None,
    reason: str,
    payment_ref: str = "",
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """A manual change by staff: a positive amount is a deposit, a negative one an adjustment
    (debit). A reason is required; it is the entry's memo. A repeated `idempotency_key` (the
    same form submitted twice) returns the first entry and changes nothing."""
    reason = reason.strip()
    if not reason:
        raise InvalidAmount("A manual balance change needs a reason.")
    service = balance_credit if amount > 0 else balance_debit
    return service(
        user=user,
        amount=abs(amount),
        kind=LedgerEntry.Kind.ADJUSTMENT if amount < 0 else LedgerEntry.Kind.DEPOSIT,
        payment_ref=payment_ref,
        idempotency_key=idempotency_key,
        created_by=created_by,
        memo=reason,
    )


@dataclass(frozen=True)
class StaffAdjustment:
    entry: LedgerEntry
    replayed: bool  # the same one-time key was used before: nothing new was written


class RepeatedAdjustment(Exception):
    """Staff wrote the same signed amount to the same customer within
    BALANCE_REPEAT_WINDOW_SECONDS: probably the same change made twice. Nothing was written;
    pass allow_repeat=True once it is confirmed."""

    def __init__(self, *, previous: LedgerEntry):
        self.previous = previous
        who = previous.created_by.get_username() if previous.created_by else "staff"
        super().__init__(
            f"The same change ({previous.amount:+}) was written to this balance "
            f"{timesince(previous.created_at)} ago by {who} (ledger entry {previous.pk}). "
            "Nothing was written: confirm again to write it a second time."
        )


def balance_repeat_window() -> timedelta:
    """How long an identical staff change counts as a repeat (0 turns the guard off)."""
    return timedelta(seconds=getattr(settings, "BALANCE_REPEAT_WINDOW_SECONDS", 600))


@dataclass(frozen=True)
class AdjustmentPreview:
    amount: Decimal  # signed and rounded as the ledger will store it
    balance: Decimal
    balance_after: Decimal
    repeat_of: LedgerEntry | None  # an identical staff change within the window

    @property
    def is_credit(self) -> bool:
        return self.amount > 0

    @property
    def size(self) -> Decimal:
        return abs(self.amount)


def balance_adjust_preview(*, user: User, amount: Decimal) -> AdjustmentPreview:
    """What balance_adjust_by_staff would do now, writing nothing: the signed amount, the
    balance before and after, and the identical recent change it would refuse as a repeat.
    Raises InsufficientFunds or InvalidAmount as the change itself would."""
    signed = _checked_signed(amount)
    wallet = Wallet.objects.filter(user=user).first()  # made by the first credit if missing
    balance = wallet.balance if wallet is not None else quantize_money(Decimal(0))
    after = balance + signed
    if after < 0:
        raise InsufficientFunds(balance=balance, amount=-signed)
    if after > MAX_AMOUNT:
        raise InvalidAmount("The balance would exceed the largest amount the panel stores.")
    return AdjustmentPreview(
        amount=signed,
        balance=balance,
        balance_after=after,
        repeat_of=_recent_repeat(user=user, amount=signed),
    )


def _recent_repeat(*, user: User, amount: Decimal) -> LedgerEntry | None:
    window = balance_repeat_window()
    if window <= timedelta(0):
        return None
    since = timezone.now() - window
    return ledger_recent_staff_entry(user=user, amount=amount, since=since)


def balance_adjust_by_staff(
    *,
    user: User,
    amount: Decimal,
    staff: User,
    reason: str,
    payment_ref: str = "",
    idempotency_key: str | None = None,
    allow_repeat: bool = False,
) -> StaffAdjustment:
    """A credit (amount > 0) or debit (amount < 0) by `staff` from the admin, and its audit row,
    in one transaction. A repeated `idempotency_key` (the same form submitted twice) returns the
    first entry with replayed=True and writes nothing, no audit row either. Raises
    InsufficientFunds or InvalidAmount, writing nothing, for a refused change, and
    RepeatedAdjustment when staff wrote the same signed amount to this customer within
    BALANCE_REPEAT_WINDOW_SECONDS, unless `allow_repeat` (confirmed again)."""
    with transaction.atomic():
        # The wallet lock makes a second submission of the same form wait for the first one's
        # commit, then find its entry: never two entries, never two audit rows. It also makes
        # two identical changes sent at once see each other for the repeat guard.
        _locked_wallet(user)
        if idempotency_key:
            done = _find_replay(user=user, kind="", order_ref=None, idempotency_key=idempotency_key)
            if done is not None:
                return StaffAdjustment(entry=done, replayed=True)
        if not allow_repeat:
            signed = _checked_signed(amount)
            previous = _recent_repeat(user=user, amount=signed)
            if previous is not None:
                raise RepeatedAdjustment(previous=previous)
        entry = balance_adjust(
            user=user,
            amount=amount,
            created_by=staff,
            reason=reason,
            payment_ref=payment_ref,
            idempotency_key=idempotency_key,
        )
        audit_record(
            actor=staff,
            action="balance_adjust",
            obj=user,
            summary=f"{entry.amount:+} ({entry.get_kind_display()}): {entry.memo}",
            before={"balance": entry.balance_after - entry.amount},
            after={"balance": entry.balance_after, "ledger_entry": entry.pk},
            area=AdminAuditLog.Area.MONEY,
        )
    return StaffAdjustment(entry=entry, replayed=False)


def customer_create(
    *,
    username: str,
    email: str = "",
    password: str | None = None,
    opening_balance: Decimal = Decimal(0),
    created_by: User | None = None,
) -> User:
    """Create a customer with a wallet, and credit the opening balance through the ledger. The
    address (given by staff, a command or the demo seed) is recorded as verified for allauth."""
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model(username=username, email=email)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        customer_save_new(user=user)
        if email:
            EmailAddress.objects.create(user=user, email=email.lower(), primary=True, verified=True)
        if opening_balance:
            balance_credit(
                user=user, amount=opening_balance, created_by=created_by, memo="Opening balance"
            )
            user.wallet.refresh_from_db()
    return user


def customer_save_new(*, user: User) -> User:
    """Save a new user built elsewhere (allauth's sign-up form, customer_create) as a
    customer: checked, saved, with an empty wallet."""
    with transaction.atomic():
        user.full_clean()
        user.save()
        Wallet.objects.create(user=user)
    return user


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw: str  # shown to the customer once, never stored


def api_key_issue(*, user: User) -> IssuedKey:
    """Create the user's API key, or replace the old one (which stops working at once)."""
    raw = ApiKey.generate()
    with transaction.atomic():
        old = ApiKey.objects.filter(user=user).select_for_update().first()
        ApiKey.objects.filter(user=user).delete()
        api_key = ApiKey.objects.create(
            user=user,
            prefix=raw[: ApiKey.PREFIX_LENGTH],
            key_hash=ApiKey.hash(raw),
            allowed_ips=old.allowed_ips if old else [],  # a new key keeps the allowlist
        )
    return IssuedKey(api_key=api_key, raw=raw)


def api_key_touch(*, api_key: ApiKey, ip: str | None) -> None:
    """Record a use of the key; a plain UPDATE so that concurrent calls never conflict."""
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now(), last_used_ip=ip)


# --- Staff switches: suspend customers, disable API keys (audited in the same transaction) ---


def _switch_audited(
    *,
    target: QuerySet,
    selection: QuerySet,
    active: bool,
    actor: User,
    action: str,
    label: str,
    result_key: str,
) -> int:
    """Set is_active on the rows of `target` that differ, and record one audit row per object of
    `selection` (what staff selected) with the count, in one transaction."""
    with transaction.atomic():
        ids = audit_selection_ids(selection)
        changed = target.filter(is_active=not active).update(is_active=active)
        audit_record_selection(
            actor=actor,
            action=action,
            model=selection.model,
            ids=ids,
            label=label,
            after={result_key: changed},
            area=AdminAuditLog.Area.ACCESS,
        )
    return changed


def customer_suspend(*, customers: QuerySet[User], actor: User) -> int:
    """Suspend the customers (no login, no API), never `actor` themself; returns how many
    changed."""
    return _switch_audited(
        target=customers.exclude(pk=actor.pk),
        selection=customers,
        active=False,
        actor=actor,
        action="suspend",
        label="Suspend the selected customers (no login, no API)",
        result_key="suspended",
    )


def customer_unsuspend(*, customers: QuerySet[User], actor: User) -> int:
    """Let suspended customers in again; returns how many changed."""
    return _switch_audited(
        target=customers,
        selection=customers,
        active=True,
        actor=actor,
        action="unsuspend",
        label="Unsuspend the selected customers",
        result_key="unsuspended",
    )


def api_key_set_active(
    *, api_keys: QuerySet[ApiKey], active: bool, actor: User, selection: QuerySet | None = None
) -> int:
    """Enable or disable the keys; returns how many changed. The audit rows are about
    `selection` (the customers staff selected) or, without it, the keys themselves."""
    on_customers = selection is not None and selection.model is User
    whose = "the API keys of the selected customers" if on_customers else "the selected API keys"
    return _switch_audited(
        target=api_keys,
        selection=selection if selection is not None else api_keys,
        active=active,
        actor=actor,
        action="enable_api_key" if active else "disable_api_key",
        label=f"{'Enable' if active else 'Disable'} {whose}",
        result_key="api_keys_enabled" if active else "api_keys_disabled",
    )


def api_key_set_allowlist(*, api_key: ApiKey, allowed_ips: list[str]) -> ApiKey:
    """Save the addresses the key may be used from (empty: anywhere), checked and normalised
    by the model field's validator (accounts.models.ip_allowlist_clean)."""
    api_key.allowed_ips = ip_allowlist_clean(allowed_ips)
    api_key.full_clean(validate_unique=False)
    api_key.save(update_fields=["allowed_ips"])
    return api_key


def user_set_language(*, user: User, language: str) -> User:
    """Save the customer's language (one of settings.LANGUAGES, or "" to follow the browser):
    their pages and their mails use it from now on, on every device."""
    if language and language not in dict(settings.LANGUAGES):
        raise ValueError(f"{language!r} is not one of the panel's languages.")
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return user


class DisplayCurrencyError(ValueError):
    """A display currency staff do not offer."""


def user_set_display_currency(*, user: User, code: str) -> User:
    """Show `user` prices and the balance in `code` ("" for the panel's own currency).

    Raises DisplayCurrencyError for a code staff do not offer (or no longer offer)."""
    code = code.strip().upper()
    if code and not display_currency_list().filter(code=code).exists():
        raise DisplayCurrencyError(f"{code} is not one of the currencies offered.")
    user.display_currency = code
    user.save(update_fields=["display_currency"])
    return user


class DisplayRatesError(Exception):
    """The rates source could not be read or did not say what is needed; nothing was written."""


def display_currency_rates_update(*, url: str = "", timeout: float = 10.0) -> int:
    """Set every enabled display currency's rate from the JSON source at `url` (default:
    DISPLAY_CURRENCY_RATES_URL), `{"base": "USD", "rates": {"EUR": 0.92}}`, the base being the
    panel's currency. All or nothing: raises DisplayRatesError naming what is wrong (no source,
    network, not JSON, another base, a currency missing or not a positive number). Returns how
    many rates changed."""
    url = url or settings.DISPLAY_CURRENCY_RATES_URL
    if not url:
        raise DisplayRatesError(
            "No DISPLAY_CURRENCY_RATES_URL is set: staff set the rates in admin."
        )
    rates = _rates_from_source(url, timeout)
    rows = list(DisplayCurrency.objects.filter(enabled=True).order_by("code"))
    missing = [row.code for row in rows if row.code not in rates]
    if missing:
        raise DisplayRatesError(f"{url} gives no rate for {', '.join(missing)}.")
    changed = [row for row in rows if row.rate != rates[row.code]]
    now = timezone.now()
    for row in changed:
        row.rate, row.updated_at = rates[row.code], now
    DisplayCurrency.objects.bulk_update(changed, ["rate", "updated_at"])
    return len(changed)


def _rates_from_source(url: str, timeout: float) -> dict[str, Decimal]:
    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        response.raise_for_status()
        body = response.json(parse_float=Decimal)
    except ValueError:  # requests' JSONDecodeError is a RequestException too: first
        raise DisplayRatesError(f"{url} did not answer JSON.") from None
    except requests.RequestException as exc:
        raise DisplayRatesError(f"Could not read {url}: {exc}") from None
    raw = body.get("rates") if isinstance(body, dict) else None
    if not isinstance(raw, dict):
        raise DisplayRatesError(f'{url} has no "rates" object.')
    base = str(body.get("base") or body.get("base_code") or settings.PANEL_CURRENCY).upper()
    if base != settings.PANEL_CURRENCY.upper():
        raise DisplayRatesError(f"{url} gives rates for {base}, not {settings.PANEL_CURRENCY}.")
    rates = {}
    for code, value in raw.items():
        try:
            rate = quantize_rate(parse_money(value))
        except ValueError:
            raise DisplayRatesError(
                f"{url}: the rate of {code} is not a number ({value!r})."
            ) from None
        if rate <= 0:
            raise DisplayRatesError(f"{url}: the rate of {code} is not above zero ({value!r}).")
        rates[str(code).upper()] = rate
    return rates
