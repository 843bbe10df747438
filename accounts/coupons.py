"""Coupons (docs/growth.md, Coupons): deposit bonus codes, entered at top-up and credited as a
bonus entry when that payment is paid, and balance codes (gift cards) redeemed on the funds page.

Uses are counted atomically. Every use is taken under a row lock on the coupon
(`SELECT ... FOR UPDATE`), with a conditional `UPDATE ... SET uses = uses + 1 WHERE uses <
max_uses` behind it and a CHECK (uses <= max_uses) behind that; a customer's live uses of one
code are numbered (`seq`) under the same lock, and a partial unique constraint on (coupon,
customer, seq) refuses a second live use with the same number. However many requests arrive at
once, a code is never used past its limits.

A deposit code's use is **reserved** when the payment starts (it counts against the limits at
once, so a code with 10 uses cannot be promised to 11 waiting payments), **used** when the
payment is paid (the bonus credited once, ledger key `coupon:<method>:<gateway_id>`), and
**released** when the payment fails, expires or is canceled (the use is given back). A payment
paid after its use was released takes a use again if one is left; otherwise it is credited
without the code's bonus and flagged for staff.

Lock order, everywhere: payment, then coupon, then wallet (the balance).
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from accounts.models import Coupon, CouponUse, LedgerEntry, Payment, User
from accounts.ratelimit import rate_limit_record, rate_limit_wait
from accounts.services import balance_credit
from catalog.pricing import money_text, quantize_money

CENT = Decimal("0.01")
CODE_MAX_LENGTH = 40
_CODE = re.compile(r"[A-Z0-9_-]+")
LIVE = (CouponUse.Status.RESERVED, CouponUse.Status.USED)
WRONG_CODES_PER_HOUR = 10


class CouponError(Exception):
    """A code that cannot be used; the message is for the customer, shown at the field."""


def coupon_code_clean(raw: object) -> str:
    """A code as stored and compared: trimmed, upper-case (codes are case-insensitive)."""
    code = str(raw or "").strip().upper()
    if not code:
        raise CouponError("Enter a code.")
    if len(code) > CODE_MAX_LENGTH or not _CODE.fullmatch(code):
        raise CouponError("A code has only letters, digits, - and _ (at most 40).")
    return code


def _amount_text(amount: Decimal) -> str:
    return money_text(amount, settings.PANEL_CURRENCY)


def _find(code: str, *, user: User, lock: bool) -> Coupon | None:
    """The coupon named `code`, for a customer who has not typed too many wrong codes: a
    gift card's code is money, so guessing is limited (WRONG_CODES_PER_HOUR, counted per
    customer, the wrong ones only)."""
    key = f"coupon-wrong:{user.pk}"
    wait = rate_limit_wait(key=key, limit=WRONG_CODES_PER_HOUR, period=3600)
    if wait:
        minutes = max(1, -(-wait // 60))
        raise CouponError(f"Too many wrong codes: try again in {minutes} minutes.")
    coupons = Coupon.objects.select_for_update() if lock else Coupon.objects.all()
    coupon = coupons.filter(code=code).first()
    if coupon is None:
        rate_limit_record(key=key, limit=WRONG_CODES_PER_HOUR, period=3600)
    return coupon


def _live_uses(coupon: Coupon, user: User) -> int:
    return CouponUse.objects.filter(coupon=coupon, user=user, status__in=LIVE).count()


def _next_seq(coupon: Coupon, user: User) -> int:
    """The number of the customer's next live use: after the highest live one, not the count
    plus one (live uses 1 and 2 with 1 released: the count gives 2, which is taken)."""
    live = CouponUse.objects.filter(coupon=coupon, user=user, status__in=LIVE)
    return (live.aggregate(top=Max("seq"))["top"] or 0) + 1


def _used_up_by_customer(coupon: Coupon, user: User, per_customer: int) -> str:
    """Why `user` may not use `coupon` again. A use may only be reserved by a payment they
    started and left (the checkout closed, the back button): they are told which one holds it
    and how to free it, not that they used a code they never got the bonus of."""
    waiting = (
        CouponUse.objects.filter(
            coupon=coupon, user=user, status=CouponUse.Status.RESERVED, payment__isnull=False
        )
        .select_related("payment")
        .order_by("-created_at")
        .first()
    )
    if waiting is not None and waiting.payment is not None:
        payment = waiting.payment
        return (
            f"Your payment #{payment.pk} of {money_text(payment.amount, payment.currency)}, "
            "not paid yet, holds this code: finish that payment, or cancel it on its page "
            "(under Your latest payments), then use the code here."
        )
    times = "once" if per_customer == 1 else f"{per_customer} times"
    return f"You have already used this code ({times} per customer)."


def _check(
    coupon: Coupon | None, *, kind: str, user: User, now: datetime, amount: Decimal | None
) -> Coupon:
    """The coupon if `user` may use it now for a deposit of `amount` (deposit codes), else
    CouponError with the reason."""
    if coupon is None or not coupon.is_active:
        raise CouponError("This code is not valid.")
    if coupon.kind != kind:
        if kind == Coupon.Kind.BALANCE:
            raise CouponError("This is a deposit bonus code: enter it when you add funds.")
        raise CouponError("This is a balance code: redeem it on the Funds page.")
    if coupon.expires_at is not None and coupon.expires_at <= now:
        raise CouponError("This code has expired.")
    if coupon.max_uses is not None and coupon.uses >= coupon.max_uses:
        raise CouponError("This code has been used up.")
    per_customer = coupon.max_uses_per_customer
    if per_customer is not None and _live_uses(coupon, user) >= per_customer:
        raise CouponError(_used_up_by_customer(coupon, user, per_customer))
    if amount is not None and amount < coupon.min_deposit:
        raise CouponError(
            f"This code is for deposits of {_amount_text(coupon.min_deposit)} or more."
        )
    return coupon


def _take(
    coupon: Coupon, *, user: User, status: str, now: datetime, payment: Payment | None = None
) -> CouponUse:
    """Count one use (the coupon row is locked by the caller) and write its row."""
    _count_one(coupon)
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction goes on
            return CouponUse.objects.create(
                coupon=coupon,
                user=user,
                payment=payment,
                seq=_next_seq(coupon, user),
                status=status,
                created_at=now,
                used_at=now if status == CouponUse.Status.USED else None,
            )
    except IntegrityError:  # the same customer's use written at once: the lock makes it rare
        Coupon.objects.filter(pk=coupon.pk).update(uses=F("uses") - 1)
        raise CouponError("You have already used this code.") from None


def _count_one(coupon: Coupon) -> None:
    """uses + 1, only while under the limit: zero rows updated means it is used up."""
    within = Q(max_uses__isnull=True) | Q(uses__lt=F("max_uses"))
    if not Coupon.objects.filter(within, pk=coupon.pk).update(uses=F("uses") + 1):
        raise CouponError("This code has been used up.")


def deposit_bonus_for(coupon: Coupon, amount: Decimal) -> Decimal:
    """What a deposit code adds to a deposit of `amount`: a percent (rounded to the cent) or a
    fixed amount."""
    if coupon.bonus_type == Coupon.BonusType.PERCENT:
        return (amount * coupon.value / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return quantize_money(coupon.value)


# --- Deposit codes ------------------------------------------------------------------------------


def coupon_check_deposit(*, user: User, code: str, amount: Decimal | None) -> Coupon:
    """The deposit code `code` if `user` may use it for a deposit of `amount` (None: not known
    yet), without taking a use; CouponError otherwise (the Add funds form's check)."""
    code = coupon_code_clean(code)
    return _check(
        _find(code, user=user, lock=False),
        kind=Coupon.Kind.DEPOSIT,
        user=user,
        now=timezone.now(),
        amount=amount,
    )


def coupon_reserve(*, user: User, code: str, payment: Payment) -> CouponUse:
    """Reserve a use of the deposit code for `payment` (in the caller's transaction, which
    creates the payment): it counts against the limits until the payment is paid (used) or
    fails, expires or is canceled (released). Raises CouponError."""
    code = coupon_code_clean(code)
    with transaction.atomic():
        coupon = _check(
            _find(code, user=user, lock=True),
            kind=Coupon.Kind.DEPOSIT,
            user=user,
            now=timezone.now(),
            amount=payment.amount,
        )
        return _take(
            coupon, user=user, status=CouponUse.Status.RESERVED, now=timezone.now(), payment=payment
        )


def coupon_release(*, payment: Payment) -> bool:
    """Give back the use a payment reserved, when it failed, expired or was canceled (the
    payment row is locked by the caller, or its status was just moved by a conditional
    UPDATE). True when a use was released; a second call does nothing."""
    reserved = CouponUse.objects.filter(payment=payment, status=CouponUse.Status.RESERVED)
    coupon_id = reserved.values_list("coupon_id", flat=True).first()
    if coupon_id is None:
        return False
    with transaction.atomic():
        # The coupon first, like every other path; then the conditional UPDATE of the use
        # decides who releases it (two releases at once: one wins, the other changes nothing).
        Coupon.objects.select_for_update().filter(pk=coupon_id).first()
        if not reserved.update(status=CouponUse.Status.RELEASED):
            return False
        Coupon.objects.filter(pk=coupon_id, uses__gt=0).update(uses=F("uses") - 1)
    return True


def coupon_release_many(*, payment_ids: list[int]) -> int:
    """coupon_release for the payments a sweep expired; returns how many uses came back.
    Coupons are locked in id order, so two sweeps at once (each holding its own payments)
    never wait on each other's coupons in a cycle."""
    released = 0
    ids = CouponUse.objects.filter(payment_id__in=payment_ids, status=CouponUse.Status.RESERVED)
    for payment_id in ids.order_by("coupon_id", "payment_id").values_list("payment_id", flat=True):
        released += coupon_release(payment=Payment(pk=payment_id))
    return released


@dataclass(frozen=True)
class CouponClaim:
    """A paid payment's claim on its deposit code, taken before the deposit is credited."""

    use_id: int | None  # None: no code, or no use left for a late payment
    code: str = ""
    bonus: Decimal = Decimal(0)
    seq: int = 0
    note: str = ""  # for staff, when the code's bonus could not be given


def coupon_claim_paid(*, payment: Payment) -> CouponClaim:
    """Lock the deposit code of a payment just paid (payment row locked by the caller; the
    coupon before the wallet, the lock order) and work out its bonus. A use released meanwhile
    (the payment expired, then was paid) is taken again if the code still allows.
    `coupon_credit_claimed` credits it, after the deposit's own credit."""
    use = CouponUse.objects.filter(payment=payment).first()
    if use is None:
        return CouponClaim(None)
    coupon = Coupon.objects.select_for_update().get(pk=use.coupon_id)  # coupon, then its use
    use = CouponUse.objects.select_for_update().get(pk=use.pk)
    seq = use.seq
    if use.status == CouponUse.Status.RELEASED:
        try:
            _check(
                coupon,
                kind=coupon.kind,
                user=payment.user,
                now=timezone.now(),
                amount=payment.amount,
            )
            _count_one(coupon)
        except CouponError as exc:
            return CouponClaim(None, note=f"Code {coupon.code} not credited: {exc}")
        seq = _next_seq(coupon, payment.user)
    return CouponClaim(use.pk, coupon.code, deposit_bonus_for(coupon, payment.amount), seq)


def coupon_credit_claimed(*, payment: Payment, claim: CouponClaim) -> LedgerEntry | None:
    """Credit a claimed code's bonus once, as a bonus entry with the key
    `coupon:<method>:<gateway_id>` (so the statement shows it after the deposit it rides
    on), and mark the use used. None when there is nothing to credit."""
    if claim.use_id is None:
        return None
    entry = None
    if claim.bonus > 0:  # a percent of a small deposit may round to no cent: no zero entry
        entry = balance_credit(
            user=payment.user,
            amount=claim.bonus,
            kind=LedgerEntry.Kind.BONUS,
            payment_ref=f"{payment.method}:{payment.gateway_id}",
            idempotency_key=f"coupon:{payment.method}:{payment.gateway_id}",
            memo=f"Code {claim.code} on deposit #{payment.pk}",
        )
    CouponUse.objects.filter(pk=claim.use_id).update(
        status=CouponUse.Status.USED,
        seq=claim.seq,
        used_at=timezone.now(),
        amount=entry.amount if entry is not None else Decimal(0),
    )
    return entry


# --- Balance codes (gift cards) -----------------------------------------------------------------


def coupon_redeem(*, user: User, code: str) -> LedgerEntry:
    """Redeem a balance code: its amount is credited to `user` through the ledger, once per
    use (key `coupon:<id>:<user>:<seq>`), within the code's limits whatever the concurrency.
    Raises CouponError with a message for the customer."""
    code = coupon_code_clean(code)
    with transaction.atomic():
        now = timezone.now()
        coupon = _check(
            _find(code, user=user, lock=True),
            kind=Coupon.Kind.BALANCE,
            user=user,
            now=now,
            amount=None,
        )
        use = _take(coupon, user=user, status=CouponUse.Status.USED, now=now)
        entry = balance_credit(
            user=user,
            amount=coupon.value,
            kind=LedgerEntry.Kind.BONUS,
            idempotency_key=f"coupon:{coupon.pk}:{user.pk}:{use.seq}",
            memo=f"Balance code {coupon.code}",
        )
        CouponUse.objects.filter(pk=use.pk).update(amount=entry.amount)
    return entry


# --- Staff ---------------------------------------------------------------------------------------


def coupon_codes_generate(*, template: Coupon, count: int, prefix: str = "") -> list[Coupon]:
    """`count` new coupons like `template` (its kind, value, limits and expiry), each with a
    random code `<prefix><10 letters and digits>`; for gift cards printed or sent one by one."""
    if not 1 <= count <= 1000:
        raise CouponError("Generate between 1 and 1,000 codes at once.")
    prefix = coupon_code_clean(prefix) if prefix.strip() else ""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a card
    made: list[Coupon] = []
    with transaction.atomic():
        while len(made) < count:
            code = prefix + "".join(secrets.choice(alphabet) for _ in range(10))
            if Coupon.objects.filter(code=code).exists():
                continue
            made.append(
                Coupon.objects.create(
                    code=code[:CODE_MAX_LENGTH],
                    kind=template.kind,
                    bonus_type=template.bonus_type,
                    value=template.value,
                    min_deposit=template.min_deposit,
                    expires_at=template.expires_at,
                    max_uses=template.max_uses,
                    max_uses_per_customer=template.max_uses_per_customer,
                    note=template.note,
                )
            )
    return made


def coupon_use_counts(*, coupon_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per coupon, its uses by status (the admin's usage columns), in one query."""
    counts: dict[int, dict[str, int]] = {pk: {} for pk in coupon_ids}
    rows = (
        CouponUse.objects.filter(coupon_id__in=coupon_ids)
        .values_list("coupon_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for coupon_id, status, n in rows:
        counts[coupon_id][status] = n
    return counts


# --- Checks (check_ledger) ------------------------------------------------------------------------


@dataclass(frozen=True)
class CouponMismatch:
    code: str
    problem: str


def coupon_find_mismatches() -> list[CouponMismatch]:
    """Every code whose use counter (the one the limit is enforced on) is not its number of
    live uses (reserved or used): a counter behind would let the code be used past its limit,
    one ahead would refuse customers it should not."""
    live = dict(
        CouponUse.objects.filter(status__in=LIVE)
        .values_list("coupon_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        CouponMismatch(code, f"counts {uses} uses but has {live.get(pk, 0)} live ones")
        for pk, code, uses in Coupon.objects.order_by("pk").values_list("pk", "code", "uses")
        if uses != live.get(pk, 0)
    ]
