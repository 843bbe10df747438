"""Every write to customers, balances and API keys.

The balance changes only through balance_credit / balance_debit: each locks the wallet row,
appends one LedgerEntry and updates the cached balance in the same transaction.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiKey, LedgerEntry, User, Wallet
from catalog.pricing import MONEY_DIGITS, MONEY_PLACES, quantize_money

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
        wallet, _ = Wallet.objects.get_or_create(user=user)
        wallet = Wallet.objects.select_for_update().get(pk=wallet.pk)
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
        Wallet.objects.filter(pk=wallet.pk).update(balance=new_balance, updated_at=now)
    return entry


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
) -> LedgerEntry:
    """Take a positive `amount` from the user's balance through the ledger.

    Raises InsufficientFunds, writing nothing, when the balance does not cover it.
    """
    return _apply(
        user=user,
        signed_amount=-_checked_amount(amount),
        kind=kind,
        order_ref=order_ref,
        payment_ref=payment_ref,
        idempotency_key=idempotency_key,
        created_by=created_by,
        memo=memo,
    )


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


def customer_create(
    *,
    username: str,
    email: str = "",
    password: str | None = None,
    opening_balance: Decimal = Decimal(0),
    created_by: User | None = None,
) -> User:
    """Create a customer with a wallet, and credit the opening balance through the ledger."""
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model(username=username, email=email)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean()
        user.save()
        Wallet.objects.create(user=user)
        if opening_balance:
            balance_credit(
                user=user, amount=opening_balance, created_by=created_by, memo="Opening balance"
            )
            user.wallet.refresh_from_db()
    return user


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw: str  # shown to the customer once, never stored


def api_key_issue(*, user: User) -> IssuedKey:
    """Create the user's API key, or replace the old one (which stops working at once)."""
    raw = ApiKey.generate()
    with transaction.atomic():
        ApiKey.objects.filter(user=user).delete()
        api_key = ApiKey.objects.create(
            user=user, prefix=raw[: ApiKey.PREFIX_LENGTH], key_hash=ApiKey.hash(raw)
        )
    return IssuedKey(api_key=api_key, raw=raw)


def api_key_touch(*, api_key: ApiKey, ip: str | None) -> None:
    """Record a use of the key; a plain UPDATE so that concurrent calls never conflict."""
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now(), last_used_ip=ip)
