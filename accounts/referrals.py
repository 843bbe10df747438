"""Referrals: links, attribution, commission and its payout (docs/growth.md).

Where the money is at each step:
- A paid deposit of a referred customer (payment_report_apply, under the payment's row lock)
  creates one Commission, **held** (unique per payment: however often "paid" is delivered).
  With REFERRAL_COMMISSION_BASE=spend, the periodic sweep creates one per order charge instead.
- A dispute or refund of the deposit before release **cancels** it; after release it is only
  flagged for staff (no automatic clawback).
- After REFERRAL_HOLD_DAYS the sweep **releases** it: the row moves held → released under its
  row lock, and its amount is added to ReferrerAccount.available in the same transaction.
- Available commission is not balance. The referrer either transfers some into the balance
  (one ledger entry of kind commission, idempotency key `commission-transfer:<token>`) or asks
  for a payout, which staff approve (ReferrerAccount.paid_out) or reject (back to available).

So `available` always equals released commission - transfers - payout requests not rejected;
`commission_find_mismatches` (run by check_ledger) says where it does not.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import (
    AdminAuditLog,
    Commission,
    CommissionTransfer,
    LedgerEntry,
    LoginEvent,
    Payment,
    PayoutRequest,
    Referral,
    ReferralProgram,
    ReferralVisit,
    ReferrerAccount,
    User,
)
from accounts.services import balance_credit
from catalog.pricing import money_text, quantize_money

log = logging.getLogger(__name__)

COOKIE_NAME = "panel_ref"
COOKIE_SALT = "accounts.referrals"
ZERO = Decimal("0")
CENT = Decimal("0.01")
SPEND_ACCRUE_PER_RUN = 1000
RELEASE_PER_RUN = 1000
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ReferralError(Exception):
    """A referral action was refused; the message is for the customer or staff."""


# --- Codes, visits, attribution -----------------------------------------------------------------


def referral_program() -> ReferralProgram:
    """The programme's one row, made with its defaults on first use."""
    program, _ = ReferralProgram.objects.get_or_create(pk=1)
    return program


def referrer_account_get(*, user: User) -> ReferrerAccount:
    """The customer's referrer account (their code), made on first use."""
    account = ReferrerAccount.objects.filter(user=user).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return ReferrerAccount.objects.create(user=user)
    except IntegrityError:  # made at the same moment by another request (or a code collision)
        return ReferrerAccount.objects.get(user=user)


def _account_ensure(user_id: int) -> None:
    if not ReferrerAccount.objects.filter(user_id=user_id).exists():
        try:
            with transaction.atomic():
                ReferrerAccount.objects.create(user_id=user_id)
        except IntegrityError:  # made at the same moment by another transaction
            pass


def referral_visit_record(
    *, code: str, ip: str | None, user_agent: str, visitor: User | None = None
) -> ReferralVisit | None:
    """Record a visit of the link `code` (None: no such code, a suspended referrer, or the
    referrer following their own link)."""
    account = (
        ReferrerAccount.objects.filter(code=code.strip().lower(), user__is_active=True)
        .select_related("user")
        .first()
    )
    if account is None or (visitor is not None and visitor.pk == account.user_id):
        return None
    return ReferralVisit.objects.create(referrer=account, ip=ip, user_agent=user_agent[:255])


def referral_cookie_visit_id(request: HttpRequest) -> int | None:
    """The visit of the first-touch cookie, if the browser carries a valid, unexpired one."""
    max_age = settings.REFERRAL_COOKIE_DAYS * 86400
    # A missing, tampered or expired cookie reads as None.
    raw = request.get_signed_cookie(COOKIE_NAME, default=None, salt=COOKIE_SALT, max_age=max_age)
    return int(raw) if raw is not None and raw.isdigit() else None


def _normalised_email(email: str) -> tuple[str, str]:
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return local, domain


def _email_reason(referrer: User, referred: User) -> str:
    if not referrer.email or not referred.email:
        return ""
    mine, theirs = _normalised_email(referrer.email), _normalised_email(referred.email)
    if mine == theirs:
        return "the same e-mail address as the referrer"
    pattern = settings.REFERRAL_SELF_EMAIL_DOMAIN_PATTERN
    if pattern and mine[1] == theirs[1] and re.search(pattern, mine[1]):
        return f"the referrer's e-mail domain ({mine[1]})"
    return ""


def _ip_reason(referrer: User, ip: str | None) -> str:
    if not ip or settings.REFERRAL_SELF_IP_LOGINS <= 0:
        return ""
    recent = LoginEvent.objects.filter(user=referrer, success=True).order_by("-at")
    ips = {row for row in recent.values_list("ip", flat=True)[: settings.REFERRAL_SELF_IP_LOGINS]}
    return "an address the referrer logs in from" if ip in ips else ""


def _loop_reason(referrer: User, referred: User) -> str:
    """A loop: `referred` is already up the referrer's chain (A refers B refers A)."""
    seen: set[int] = set()
    current: int | None = referrer.pk
    while current is not None and current not in seen:
        if current == referred.pk:
            return "a loop (the customer is already up the referrer's chain)"
        seen.add(current)
        current = (
            Referral.objects.filter(referred_id=current).values_list("referrer_id", flat=True)
        ).first()
    return ""


def referral_refusal(
    *, referrer: User, referred: User, ip: str | None, heuristics: bool = True
) -> str:
    """Why `referred` may not be attributed to `referrer` ("" when they may): the same
    customer, a loop, and (with `heuristics`) the same address or e-mail domain."""
    if referrer.pk == referred.pk:
        return "the same customer"
    reason = _loop_reason(referrer, referred)
    if reason or not heuristics:
        return reason
    return _email_reason(referrer, referred) or _ip_reason(referrer, ip)


def referral_attribute_signup(
    *, user: User, visit_id: int | None, ip: str | None
) -> Referral | None:
    """Attribute a new sign-up to the referrer of the first-touch visit, unless refused as a
    self-referral or a loop (logged). None when there is nothing to attribute."""
    if visit_id is None:
        return None
    visit = ReferralVisit.objects.select_related("referrer__user").filter(pk=visit_id).first()
    if visit is None or not visit.referrer.user.is_active:
        return None
    referrer = visit.referrer.user
    reason = referral_refusal(referrer=referrer, referred=user, ip=ip)
    if reason:
        log.info("Sign-up %s not attributed to %s: %s", user.pk, referrer.pk, reason)
        return None
    referral, _ = Referral.objects.get_or_create(
        referred=user, defaults={"referrer": referrer, "visit": visit, "signup_ip": ip}
    )
    return referral


def referral_set_referrer(*, referred: User, referrer: User | None, actor: User) -> None:
    """Staff set (or with None, remove) who referred a customer, audited. The same customer
    and loops are refused (ReferralError); the address and e-mail heuristics are staff's call.
    Commission already earned stays with its referrer."""
    with transaction.atomic():
        current = Referral.objects.select_for_update().filter(referred=referred).first()
        before = current.referrer_id if current else None
        if referrer is not None:
            reason = referral_refusal(
                referrer=referrer, referred=referred, ip=None, heuristics=False
            )
            if reason:
                raise ReferralError(f"Refused: {reason}.")
        if (referrer.pk if referrer else None) == before:
            return
        if current is not None and referrer is None:
            current.delete()
        elif current is not None and referrer is not None:
            current.referrer = referrer
            current.save(update_fields=["referrer"])
        elif referrer is not None:
            Referral.objects.create(referred=referred, referrer=referrer)
        audit_record(
            actor=actor,
            action="set referrer",
            obj=referred,
            summary=f"Referrer of {referred.username} set to "
            f"{referrer.username if referrer else 'nobody'}.",
            before={"referrer": before},
            after={"referrer": referrer.pk if referrer else None},
            area=AdminAuditLog.Area.MONEY,
        )


# --- Commission: created, cancelled, released -----------------------------------------------------


def _percent_for(referrer_id: int) -> Decimal | None:
    program = referral_program()
    if not program.is_active:
        return None
    own = (
        ReferrerAccount.objects.filter(user_id=referrer_id)
        .values_list("commission_percent", flat=True)
        .first()
    )
    return own if own is not None else program.commission_percent


def referrer_percent(*, user: User) -> Decimal | None:
    """The rate `user` earns as a referrer now (None: the programme is paused)."""
    return _percent_for(user.pk)


def _share(base: Decimal, percent: Decimal) -> Decimal:
    return quantize_money(base * percent / 100)


def commission_create_for_payment(*, payment: Payment, now: datetime | None = None) -> None:
    """The referrer's held commission on a deposit just credited (called by payment_report_apply
    under the payment's lock; the unique payment makes it once however often it is called)."""
    if settings.REFERRAL_COMMISSION_BASE != "deposit":
        return
    referral = Referral.objects.filter(referred_id=payment.user_id).first()
    if referral is None:
        return
    percent = _percent_for(referral.referrer_id)
    if percent is None or _share(payment.amount, percent) <= 0:
        return
    now = now or timezone.now()
    Commission.objects.get_or_create(
        payment=payment,
        defaults={
            "referrer_id": referral.referrer_id,
            "referred_id": payment.user_id,
            "base_amount": payment.amount,
            "percent": percent,
            "amount": _share(payment.amount, percent),
            "release_at": now + timedelta(days=settings.REFERRAL_HOLD_DAYS),
            "created_at": now,
        },
    )


def commission_cancel_for_payment(*, payment: Payment, reason: str) -> Commission | None:
    """The deposit was disputed or refunded: its held commission is cancelled; one already
    released is flagged for staff, who decide (nothing is taken back automatically)."""
    with transaction.atomic():
        commission = Commission.objects.select_for_update().filter(payment=payment).first()
        if commission is None:
            return None
        now = timezone.now()
        if commission.state == Commission.State.HELD:
            commission.state, commission.cancelled_at = Commission.State.CANCELLED, now
            commission.note = f"Cancelled before release: {reason}"[:2000]
            commission.save(update_fields=["state", "cancelled_at", "note"])
        elif commission.state == Commission.State.RELEASED and not commission.needs_attention:
            commission.needs_attention = True
            commission.note = f"After release: {reason}"[:2000]
            commission.save(update_fields=["needs_attention", "note"])
    return commission


def _spend_net(entry: LedgerEntry) -> Decimal:
    """An order charge less what was refunded of that order."""
    refunded = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.REFUND, order_ref=entry.order_ref, user_id=entry.user_id
    ).aggregate(total=Sum("amount"))["total"]
    return -entry.amount - (refunded or ZERO)


def commission_accrue_spend(*, now: datetime | None = None) -> int:
    """With REFERRAL_COMMISSION_BASE=spend: a held commission for each order charge of a referred
    customer made since their referral (and within the hold window) that has none yet."""
    if settings.REFERRAL_COMMISSION_BASE != "spend":
        return 0
    now = now or timezone.now()
    window = now - timedelta(days=max(settings.REFERRAL_HOLD_DAYS, 1))
    charges = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.CHARGE,
        user__referral__isnull=False,
        created_at__gte=F("user__referral__created_at"),
    ).filter(created_at__gte=window)
    if not referral_program().is_active:
        return 0
    made = 0
    percents: dict[int, Decimal | None] = {}  # each referrer's rate, read once per run
    due = charges.filter(commission__isnull=True).select_related("user__referral").order_by("id")
    # The whole window is walked: charges that earn nothing (a referrer at 0 %) stay without a
    # commission and come first every run, so SPEND_ACCRUE_PER_RUN counts those made.
    for entry in due.iterator(chunk_size=500):
        if made >= SPEND_ACCRUE_PER_RUN:
            break
        referrer_id = entry.user.referral.referrer_id
        if referrer_id not in percents:
            percents[referrer_id] = _percent_for(referrer_id)
        percent = percents[referrer_id]
        if percent is None or _share(-entry.amount, percent) <= 0:
            continue
        _, created = Commission.objects.get_or_create(
            charge_entry=entry,
            defaults={
                "referrer_id": referrer_id,
                "referred_id": entry.user_id,
                "base_amount": -entry.amount,
                "percent": percent,
                "amount": _share(-entry.amount, percent),
                "release_at": entry.created_at + timedelta(days=settings.REFERRAL_HOLD_DAYS),
            },
        )
        made += created
    return made


def commission_release(*, commission_id: int, now: datetime | None = None) -> bool:
    """Release one held commission that is due into its referrer's available commission, once:
    the row is locked and must still be held, so a second run (or a concurrent one) finds it
    released and does nothing. A commission on spend is recomputed on the charge net of its
    refund first (nothing left: cancelled)."""
    now = now or timezone.now()
    with transaction.atomic():
        commission = (
            Commission.objects.select_for_update(of=("self",))  # not the joined source rows
            .filter(pk=commission_id, state=Commission.State.HELD, release_at__lte=now)
            .select_related("payment", "charge_entry")
            .first()
        )
        if commission is None:
            return False
        if not _still_earned(commission, now):
            return False
        _account_ensure(commission.referrer_id)
        commission.state, commission.released_at = Commission.State.RELEASED, now
        commission.save(update_fields=["state", "released_at", "amount"])
        ReferrerAccount.objects.filter(user_id=commission.referrer_id).update(
            available=F("available") + commission.amount
        )
    return True


def _still_earned(commission: Commission, now: datetime) -> bool:
    """Whether the commission's source still earns it; cancels it (saved) when not."""
    reason = ""
    if commission.payment is not None and commission.payment.status != Payment.Status.PAID:
        reason = f"the deposit is {commission.payment.status}"
    elif commission.charge_entry is not None:
        commission.amount = _share(_spend_net(commission.charge_entry), commission.percent)
        if commission.amount <= 0:
            commission.amount, reason = ZERO, "the order was refunded"
    if not reason:
        return True
    commission.state, commission.cancelled_at = Commission.State.CANCELLED, now
    commission.note = f"Cancelled before release: {reason}"
    commission.save(update_fields=["state", "cancelled_at", "note", "amount"])
    return False


@dataclass
class ReleaseRun:
    accrued: int = 0
    released: int = 0


def commission_release_due(*, now: datetime | None = None) -> ReleaseRun:
    """The periodic sweep: accrue commission on spend (when that is the base), then release
    every held commission that is due (bounded per run)."""
    now = now or timezone.now()
    run = ReleaseRun(accrued=commission_accrue_spend(now=now))
    due = Commission.objects.filter(state=Commission.State.HELD, release_at__lte=now)
    for commission_id in due.order_by("release_at", "id").values_list("id", flat=True)[
        :RELEASE_PER_RUN
    ]:
        run.released += commission_release(commission_id=commission_id, now=now)
    return run


def commission_attention_handle(*, commission: Commission, actor: User) -> bool:
    """Staff have decided about a released commission whose deposit was disputed or refunded
    (any money taken back is a ledger adjustment of theirs): the flag is cleared, audited."""
    with transaction.atomic():
        changed = Commission.objects.filter(pk=commission.pk, needs_attention=True).update(
            needs_attention=False
        )
        if changed:
            audit_record(
                actor=actor,
                action="commission attention handled",
                obj=commission,
                summary=f"Marked commission #{commission.pk} as handled.",
                before={"needs_attention": True, "note": commission.note},
                after={"needs_attention": False},
                area=AdminAuditLog.Area.MONEY,
            )
    return bool(changed)


# --- Using available commission: transfer to the balance, payout requests -----------------------


def _locked_account(user: User) -> ReferrerAccount:
    referrer_account_get(user=user)
    return ReferrerAccount.objects.select_for_update().get(user=user)


def _checked_amount(amount: Decimal, available: Decimal) -> Decimal:
    if not amount.is_finite() or amount <= 0:
        raise ReferralError("Enter an amount above zero.")
    if amount != amount.quantize(CENT):
        raise ReferralError("Use at most 2 decimals.")
    if amount > available:
        raise ReferralError(
            f"Only {money_text(available.quantize(CENT), settings.PANEL_CURRENCY)} of commission "
            "is available."
        )
    return amount


def commission_transfer(*, user: User, amount: Decimal, token: str) -> CommissionTransfer:
    """Move `amount` of available commission into the balance: one ledger entry of kind
    commission. The form's one-time `token` makes a second submission return the first
    transfer. Raises ReferralError (nothing written) for an amount not available."""
    if not _TOKEN.fullmatch(token or ""):
        raise ReferralError("The form has expired: reload the page and try again.")
    with transaction.atomic():
        account = _locked_account(user)  # a second submission waits here, then finds the first
        done = CommissionTransfer.objects.filter(token=token).first()
        if done is not None:
            if done.referrer_id != user.pk:
                raise ReferralError("The form has expired: reload the page and try again.")
            return done
        amount = _checked_amount(amount, account.available)
        ReferrerAccount.objects.filter(pk=account.pk).update(available=F("available") - amount)
        entry = balance_credit(
            user=user,
            amount=amount,
            kind=LedgerEntry.Kind.COMMISSION,
            idempotency_key=f"commission-transfer:{token}",
            memo="Referral commission moved to the balance",
        )
        return CommissionTransfer.objects.create(
            referrer=user, amount=amount, token=token, ledger_entry=entry
        )


def payout_request_create(*, user: User, amount: Decimal, details: str) -> PayoutRequest:
    """Ask for `amount` of available commission to be paid out to `details`: it leaves
    `available` at once (so requests at the same moment can never add up to more), and staff
    approve or reject it. Raises ReferralError, writing nothing."""
    details = details.strip()
    if not details:
        raise ReferralError("Say where the payout should go (e.g. a wallet address).")
    minimum = Decimal(settings.REFERRAL_PAYOUT_MINIMUM)
    if amount < minimum:
        raise ReferralError(
            f"The smallest payout is {money_text(minimum, settings.PANEL_CURRENCY)}."
        )
    with transaction.atomic():
        account = _locked_account(user)
        amount = _checked_amount(amount, account.available)
        ReferrerAccount.objects.filter(pk=account.pk).update(available=F("available") - amount)
        return PayoutRequest.objects.create(referrer=user, amount=amount, details=details[:2000])


def _decide_payout(
    *, payout: PayoutRequest, actor: User, state: str, note: str = ""
) -> PayoutRequest | None:
    with transaction.atomic():
        locked = (
            PayoutRequest.objects.select_for_update()
            .filter(pk=payout.pk, state=PayoutRequest.State.PENDING)
            .first()
        )
        if locked is None:  # decided already (by another member of staff, or a second click)
            return None
        locked.state, locked.decided_by, locked.decided_at = state, actor, timezone.now()
        locked.note = note[:2000]
        locked.save(update_fields=["state", "decided_by", "decided_at", "note"])
        field = "paid_out" if state == PayoutRequest.State.PAID else "available"
        ReferrerAccount.objects.filter(user_id=locked.referrer_id).update(
            **{field: F(field) + locked.amount}
        )
        audit_record(
            actor=actor,
            action="approve payout" if state == PayoutRequest.State.PAID else "reject payout",
            obj=locked,
            summary=f"Payout #{locked.pk} of {locked.amount} {state}"
            + (f": {note}" if note else "."),
            before={"state": PayoutRequest.State.PENDING},
            after={"state": state},
            area=AdminAuditLog.Area.MONEY,
        )
    return locked


def payout_approve(*, payout: PayoutRequest, actor: User) -> PayoutRequest | None:
    """Staff paid it out (outside the panel): recorded as paid out, once. None when it was no
    longer waiting."""
    return _decide_payout(payout=payout, actor=actor, state=PayoutRequest.State.PAID)


def payout_reject(*, payout: PayoutRequest, actor: User, reason: str) -> PayoutRequest | None:
    """Staff refuse it: the amount returns to available, once. None when no longer waiting."""
    if not reason.strip():
        raise ReferralError("Say why the payout is rejected.")
    return _decide_payout(
        payout=payout, actor=actor, state=PayoutRequest.State.REJECTED, note=reason.strip()
    )


def transfer_token() -> str:
    """A one-time token for a transfer form."""
    return secrets.token_urlsafe(24)


# --- Reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralStats:
    visits: int
    signups: int
    paying: int
    held: Decimal
    available: Decimal
    pending_payouts: Decimal
    paid_out: Decimal
    transferred: Decimal


def _sum(queryset: QuerySet, field: str = "amount") -> Decimal:
    return queryset.aggregate(total=Sum(field))["total"] or ZERO


def referral_stats(*, account: ReferrerAccount) -> ReferralStats:
    """The figures of the customer's referral page."""
    user_id = account.user_id
    referred = Referral.objects.filter(referrer_id=user_id).values("referred_id")
    paying = (
        Payment.objects.filter(
            user_id__in=referred, status__in=(Payment.Status.PAID, Payment.Status.DISPUTED)
        )
        .values("user_id")
        .distinct()
        .count()
    )
    return ReferralStats(
        visits=ReferralVisit.objects.filter(referrer=account).count(),
        signups=Referral.objects.filter(referrer_id=user_id).count(),
        paying=paying,
        held=_sum(Commission.objects.filter(referrer_id=user_id, state=Commission.State.HELD)),
        available=account.available,
        pending_payouts=_sum(
            PayoutRequest.objects.filter(referrer_id=user_id, state=PayoutRequest.State.PENDING)
        ),
        paid_out=account.paid_out,
        transferred=_sum(CommissionTransfer.objects.filter(referrer_id=user_id)),
    )


def commission_list_for_referrer(*, user: User) -> QuerySet[Commission]:
    """The referrer's commissions, newest first, with the referred customer's name."""
    return (
        Commission.objects.filter(referrer=user)
        .select_related("referred", "payment")
        .order_by("-id")
    )


def payout_list_for_referrer(*, user: User) -> QuerySet[PayoutRequest]:
    return PayoutRequest.objects.filter(referrer=user).order_by("-id")


@dataclass(frozen=True)
class CommissionMismatch:
    user_id: int
    problem: str


def commission_find_mismatches() -> list[CommissionMismatch]:
    """Every referrer whose available or paid-out commission is not what their rows say:
    available = released - transferred - payout requests not rejected; paid out = approved."""
    problems = []
    released = _by_referrer(Commission.objects.filter(state=Commission.State.RELEASED))
    moved = _by_referrer(CommissionTransfer.objects.all())
    asked = _by_referrer(PayoutRequest.objects.exclude(state=PayoutRequest.State.REJECTED))
    paid = _by_referrer(PayoutRequest.objects.filter(state=PayoutRequest.State.PAID))
    accounts = ReferrerAccount.objects.values_list("user_id", "available", "paid_out")
    known = set()
    for user_id, available, paid_out in accounts.iterator(chunk_size=2000):
        known.add(user_id)
        expected = released.get(user_id, ZERO) - moved.get(user_id, ZERO) - asked.get(user_id, ZERO)
        if expected != available:
            problems.append(
                CommissionMismatch(user_id, f"available is {available}, the rows give {expected}")
            )
        if paid.get(user_id, ZERO) != paid_out:
            problems.append(
                CommissionMismatch(
                    user_id, f"paid out is {paid_out}, approved payouts give {paid.get(user_id)}"
                )
            )
    for user_id in set(released) - known:
        problems.append(CommissionMismatch(user_id, "released commission without an account"))
    return problems


def _by_referrer(queryset: QuerySet) -> dict[int, Decimal]:
    rows = queryset.order_by().values_list("referrer_id").annotate(total=Sum("amount"))
    return dict(rows)
