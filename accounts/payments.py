"""Payments: a customer adds funds through a gateway or a manual transfer, and a paid payment
credits the balance exactly once (docs/payments.md).

Everything a gateway says about a payment, by webhook, on the customer's return, by a status
read, or a member of staff's decision on a manual transfer, goes through
`payment_report_apply`. It records the callback, checks it against the payment (the
reference, the amount and the currency) and moves the payment's status. The move to paid
credits the deposit (and a bonus, when a rule applies) through accounts.services.balance_credit
in the same transaction, under a lock on the payment row, with the ledger idempotency key
`deposit:<method>:<gateway_id>`: five deliveries, ten concurrent ones, a return and a staff
confirmation of one payment make one deposit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop

from accounts.audit import audit_record
from accounts.coupons import (
    coupon_check_deposit,
    coupon_claim_paid,
    coupon_credit_claimed,
    coupon_release,
    coupon_release_many,
    coupon_reserve,
)
from accounts.gateways import gateway_for, gateways_configured
from accounts.gateways.base import (
    Checkout,
    Gateway,
    GatewayError,
    PaymentRequest,
    Report,
    redact,
)
from accounts.models import (
    AdminAuditLog,
    DepositBonusRule,
    LedgerEntry,
    Notification,
    Payment,
    PaymentCallback,
    PaymentMethodSetting,
    User,
)
from accounts.notifications import notify, notify_staff
from accounts.ratelimit import rate_limit_hit
from accounts.referrals import commission_cancel_for_payment, commission_create_for_payment
from accounts.selectors import payment_list_due_for_reconcile, user_may_deposit
from accounts.services import balance_credit
from catalog.pricing import money_text

log = logging.getLogger(__name__)

CENT = Decimal("0.01")

# How a statement names a method: "Deposit by card (payment #12)".
METHOD_WORDS = {
    "stripe": "card",
    "cryptomus": "crypto",
    "paypal": "PayPal",
    "manual": "bank transfer",
}


# Shown through the catalog (funds_add.html: {% translate unverified %}).
UNVERIFIED_EMAIL = gettext_noop(
    "Verify your e-mail address before adding funds: follow the link we mailed you, or send "
    "a new one from your e-mail settings."
)


class PaymentError(Exception):
    """A payment could not be started; the message is for the customer."""


@dataclass(frozen=True)
class MethodOffer:
    """One method as the Add funds page offers it."""

    gateway: Gateway
    name: str
    min_amount: Decimal
    max_amount: Decimal
    fee_percent: Decimal
    instructions: str

    @property
    def code(self) -> str:
        return self.gateway.code

    def fee_for(self, amount: Decimal) -> Decimal:
        return (amount * self.fee_percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def payment_methods_offered() -> list[MethodOffer]:
    """The configured gateways staff have not switched off, with their limits and fees."""
    rows = {row.method: row for row in PaymentMethodSetting.objects.all()}
    offers = []
    for gateway in gateways_configured():
        row = rows.get(gateway.code) or PaymentMethodSetting(method=gateway.code)
        if not row.is_enabled:
            continue
        offers.append(
            MethodOffer(
                gateway=gateway,
                name=row.display_name or gateway.name,
                min_amount=row.min_amount,
                max_amount=row.max_amount,
                fee_percent=row.fee_percent,
                instructions=row.instructions,
            )
        )
    return offers


def payment_method_offer(code: str) -> MethodOffer | None:
    return next((o for o in payment_methods_offered() if o.code == code), None)


AMOUNT_FORMAT = "Use digits and one decimal point, e.g. 25 or 25.50."
# Digits, then one decimal mark (a point, or a comma as many keyboards type it) and decimals. A
# thousands separator ("1,000", "1.000,50", "1 000") or an exponent ("1e3") is refused rather
# than guessed: "1,000" is a thousand to some and one to others.
_AMOUNT = re.compile(r"-?\d+(?:([.,])(\d+))?")


def parse_deposit_amount(raw: object) -> Decimal:
    """A deposit amount as a customer types it: "25", "25.50" or "25,50", at most 2 decimals.
    Zero or a negative amount is returned: the method's limits refuse it with their message."""
    text = str(raw).strip()
    if not text:
        raise PaymentError("Enter an amount, e.g. 25 or 25.50.")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise PaymentError(AMOUNT_FORMAT)
    mark, decimals = match.group(1), match.group(2) or ""
    if len(decimals) > 2:  # "1,000" reads as a thousands separator; "1.234" as 3 decimals
        raise PaymentError(AMOUNT_FORMAT if mark == "," else "Use at most 2 decimals.")
    return Decimal(text.replace(",", ".")).quantize(CENT)


def _check_limits(offer: MethodOffer, amount: Decimal) -> None:
    currency = settings.PANEL_CURRENCY
    if amount < offer.min_amount or amount <= 0:
        smallest = max(offer.min_amount, CENT)
        raise PaymentError(
            f"The smallest amount for {offer.name} is {money_text(smallest, currency)}."
        )
    if amount > offer.max_amount:
        raise PaymentError(
            f"The largest amount for {offer.name} is {money_text(offer.max_amount, currency)}."
        )


def payment_limits_check(*, offer: MethodOffer, amount: Decimal) -> None:
    """Raise PaymentError (a message for the customer) when `amount` is outside the method's
    limits; the Add funds form says it beside another field's error (payment_start checks
    again)."""
    _check_limits(offer, amount)


def _check_start_rate(user: User) -> None:
    wait = rate_limit_hit(
        key=f"payment-start:{user.pk}", limit=settings.PAYMENT_STARTS_PER_HOUR, period=3600
    )
    if wait:
        minutes = max(1, -(-wait // 60))  # rounded up: never "try again in 0 minutes"
        raise PaymentError(
            f"Too many payments started in the last hour; try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}."
        )


def payment_start(
    *,
    user: User,
    method: str,
    amount: Decimal,
    urls: PaymentUrls,
    customer_reference: str = "",
    coupon: str = "",
) -> Payment:
    """Make a payment and create it at the gateway; the caller sends the customer to
    `payment.checkout_url`. Raises PaymentError with a message for the customer, or
    CouponError (accounts.coupons) for the deposit code `coupon`, which is reserved for the
    payment until it is paid, fails, expires or is canceled."""
    if not user_may_deposit(user=user):
        raise PaymentError(UNVERIFIED_EMAIL)
    offer = payment_method_offer(method)
    if offer is None:
        raise PaymentError("That payment method is not available.")
    _check_limits(offer, amount)
    if coupon.strip():
        coupon_check_deposit(user=user, code=coupon, amount=amount)  # before the start limit
    _check_start_rate(user)
    payment = _payment_create(
        user=user, offer=offer, amount=amount, reference=customer_reference, coupon=coupon
    )
    request = PaymentRequest(
        reference=str(payment.public_id),
        amount=payment.total,
        currency=payment.currency,
        description=f"{settings.PANEL_NAME}: add {amount:.2f} {payment.currency} to {user.username}",
        customer_email=user.email,
        return_url=urls.return_url(payment),
        cancel_url=urls.cancel_url(payment),
        webhook_url=urls.webhook_url(method),
    )
    try:
        checkout = offer.gateway.start(request)  # outside any transaction: an HTTP call
    except GatewayError as exc:
        with transaction.atomic():
            Payment.objects.filter(pk=payment.pk).update(
                status=Payment.Status.FAILED,
                note=f"The gateway refused to start: {exc}"[:2000],
                updated_at=timezone.now(),
            )
            coupon_release(payment=payment)
        raise PaymentError(
            f"{offer.name} could not start the payment; nothing was charged. Try again in a "
            "moment, or another method."
        ) from exc
    _checkout_save(payment, checkout)
    return payment


def _payment_create(
    *, user: User, offer: MethodOffer, amount: Decimal, reference: str, coupon: str
) -> Payment:
    """The payment row, and the deposit code's reserved use with it (both or neither)."""
    method = offer.code
    with transaction.atomic():
        payment = Payment.objects.create(
            user=user,
            method=method,
            amount=amount,
            fee=offer.fee_for(amount),
            currency=settings.PANEL_CURRENCY,
            customer_reference=reference,
            # A bank transfer may take days: a manual transfer waits for staff and never expires.
            expires_at=None
            if method == "manual"
            else timezone.now() + timedelta(hours=settings.PAYMENT_EXPIRE_HOURS),
        )
        if coupon.strip():
            coupon_reserve(user=user, code=coupon, payment=payment)
    return payment


def _checkout_save(payment: Payment, checkout: Checkout) -> None:
    payment.gateway_id = checkout.gateway_id
    payment.checkout_url = checkout.redirect_url
    payment.status = Payment.Status.PENDING
    payment.details = dict(checkout.details)
    if checkout.expires_at is not None:
        payment.expires_at = checkout.expires_at
    payment.updated_at = timezone.now()
    payment.save(
        update_fields=[
            "gateway_id",
            "checkout_url",
            "status",
            "details",
            "expires_at",
            "updated_at",
        ]
    )


class PaymentUrls:
    """Where the gateway sends the customer back and its webhooks: absolute URLs built by the
    view from the request (the panel's public address)."""

    def __init__(self, *, base_url: str, return_path: Any, cancel_path: Any, webhook_path: Any):
        self.base_url = base_url.rstrip("/")
        self._return, self._cancel, self._webhook = return_path, cancel_path, webhook_path

    def return_url(self, payment: Payment) -> str:
        return self.base_url + self._return(payment)

    def cancel_url(self, payment: Payment) -> str:
        return self.base_url + self._cancel(payment)

    def webhook_url(self, method: str) -> str:
        return self.base_url + self._webhook(method)


# --- What a gateway says ----------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    outcome: str  # a PaymentCallback.Outcome
    reason: str
    payment: Payment | None


def payment_report_apply(
    *,
    method: str,
    report: Report,
    source: str,
    remote_addr: str | None = None,
    actor: User | None = None,
) -> Applied:
    """Apply what the gateway `method` reports about one payment, record it, and say what it
    did. Never raises for a report that does not fit: it is refused and recorded."""
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update()
            .filter(method=method, gateway_id=report.gateway_id)
            .first()
        )
        applied = _decide(payment, report, actor=actor, source=source)
        if (
            report.attention
            and payment is not None
            and applied.outcome != PaymentCallback.Outcome.REFUSED
        ):
            _attend(payment, report.attention)
        PaymentCallback.objects.create(
            payment=payment,
            method=method,
            source=source,
            event_id=report.event_id[:128],
            gateway_id=report.gateway_id[:128],
            reported_status=report.status,
            reported_amount=report.amount,
            reported_currency=report.currency[:16],
            outcome=applied.outcome,
            reason=applied.reason,
            payload=redact(dict(report.payload)) or None,
            remote_addr=remote_addr,
        )
    return applied


def payment_refusal_record(
    *, method: str, source: str, reason: str, payload: Any = None, remote_addr: str | None = None
) -> None:
    """Record a callback that was not believed (bad signature, stale, unreadable)."""
    PaymentCallback.objects.create(
        method=method,
        source=source,
        outcome=PaymentCallback.Outcome.REFUSED,
        reason=reason,
        payload=redact(payload) if payload else None,
        remote_addr=remote_addr,
    )


def _decide(payment: Payment | None, report: Report, *, actor: User | None, source: str) -> Applied:
    refused = PaymentCallback.Outcome.REFUSED
    if payment is None:
        return Applied(refused, "No payment of this method has that gateway id.", None)
    if report.reference and report.reference != str(payment.public_id):
        return Applied(refused, "The reference does not match the payment's.", payment)
    if report.status == payment.status:
        return Applied(PaymentCallback.Outcome.DUPLICATE, f"Already {payment.status}.", payment)
    if report.status == Payment.Status.PAID and payment.paid_at is not None and actor is None:
        # Credited once already: a gateway's "paid" now is a late or repeated delivery, and
        # must not close a dispute (staff do).
        return Applied(
            PaymentCallback.Outcome.IGNORED,
            f"Already credited; a {payment.status} payment stays so until staff decide.",
            payment,
        )
    if report.status not in Payment.TRANSITIONS[payment.status]:
        return Applied(
            PaymentCallback.Outcome.IGNORED,
            f"A {payment.status} payment does not become {report.status}.",
            payment,
        )
    if report.status == Payment.Status.PAID:
        mismatch = _amount_mismatch(payment, report, source=source)
        if mismatch:
            _flag(payment, mismatch, report)
            return Applied(refused, mismatch, payment)
        _settle_paid(payment, report, actor=actor)
    else:
        _move(payment, report.status, actor=actor, received=report)
    return Applied(PaymentCallback.Outcome.APPLIED, f"Now {report.status}.", payment)


def _amount_mismatch(payment: Payment, report: Report, *, source: str) -> str:
    """Why a report of "paid" does not match what was asked, or "" when it does. A staff
    confirmation, which reports no amount, is taken at the payment's amount; a gateway must
    say what was paid."""
    if report.amount is None:
        if source == PaymentCallback.Source.STAFF:
            return ""
        return "The gateway reported it paid without saying the amount."
    if report.currency.upper() != payment.currency.upper():
        return f"Paid in {report.currency or '?'}, asked in {payment.currency}."
    if report.amount < payment.total:
        return f"Paid {report.amount} {report.currency}, asked {payment.total}."
    return ""


def _move(payment: Payment, status: str, *, actor: User | None, received: Report) -> None:
    payment.status = status
    payment.updated_at = timezone.now()
    fields = ["status", "updated_at"]
    if status == Payment.Status.FAILED and received.amount is not None:  # e.g. underpaid
        payment.charged_amount, payment.charged_currency = received.amount, received.currency
        fields += ["charged_amount", "charged_currency"]
    if actor is not None:
        payment.reviewed_by = actor
        fields.append("reviewed_by")
    if status in (Payment.Status.FAILED, Payment.Status.EXPIRED, Payment.Status.CANCELED):
        coupon_release(payment=payment)  # the deposit code's use is given back
    if status in (Payment.Status.DISPUTED, Payment.Status.REFUNDED):
        payment.needs_attention = True
        fields.append("needs_attention")
        _alert_staff(payment, f"The gateway reports payment #{payment.pk} {status}.")
        # Its referral commission: cancelled while held, flagged for staff once released.
        commission_cancel_for_payment(payment=payment, reason=f"the deposit was {status}")
    payment.save(update_fields=fields)


def _settle_paid(payment: Payment, report: Report, *, actor: User | None) -> None:
    was_paid_before = payment.paid_at is not None  # a dispute won: paid again, no new credit
    if report.amount is not None:
        payment.charged_amount = report.amount
        payment.charged_currency = report.currency
        if report.amount > payment.total:
            payment.note = (
                f"Paid {report.amount} {report.currency}, more than the {payment.total} asked; "
                f"{payment.amount} credited."
            )
            payment.needs_attention = True  # staff settle the extra (the customer is told so)
            _alert_staff(payment, f"Payment #{payment.pk}: {payment.note}")
    payment.paid_at = payment.paid_at or timezone.now()
    balance = None
    if not was_paid_before:
        balance = _credit(payment)
        commission_create_for_payment(payment=payment)  # once: unique per payment
    payment.status = Payment.Status.PAID
    payment.updated_at = timezone.now()
    if actor is not None:
        payment.reviewed_by = actor
    payment.save()
    if balance is not None:
        _tell_paid(payment, balance=balance)


def _tell_paid(payment: Payment, *, balance: Decimal) -> None:
    """The customer's "payment received" notice (its mail leaves after the commit)."""
    notify(
        user=payment.user,
        event=Notification.Event.PAYMENT_RECEIVED,
        context={
            "payment_id": payment.pk,
            "payment_public_id": str(payment.public_id),
            "amount": payment.amount,
            "bonus": payment.bonus,
            "balance": balance,
            "method": METHOD_WORDS.get(payment.method, payment.method),
        },
        dedupe_key=f"payment:{payment.pk}:paid",
    )


def _credit(payment: Payment) -> Decimal:
    """Credit the deposit, then its code's bonus and its rule's bonus (the statement reads in
    that order); the balance after them all."""
    ref = f"{payment.method}:{payment.gateway_id}"
    # The code is locked first: the lock order is payment, coupon, wallet (accounts.coupons).
    claim = coupon_claim_paid(payment=payment)
    if claim.note:
        payment.note = f"{payment.note} {claim.note}".strip()[:2000]
        payment.needs_attention = True
        _alert_staff(payment, f"Payment #{payment.pk}: {claim.note}")
    entry = balance_credit(
        user=payment.user,
        amount=payment.amount,
        kind=LedgerEntry.Kind.DEPOSIT,
        payment_ref=ref,
        idempotency_key=payment.ledger_key,
        memo=f"Deposit by {METHOD_WORDS.get(payment.method, payment.method)} "
        f"(payment #{payment.pk})",
    )
    by_code = coupon_credit_claimed(payment=payment, claim=claim)
    if by_code is not None:
        entry = by_code
    code_bonus = by_code.amount if by_code is not None else Decimal(0)
    payment.bonus = code_bonus
    rule = deposit_bonus_rule_for(method=payment.method, amount=payment.amount)
    if rule is None:
        return entry.balance_after
    bonus = (payment.amount * rule.percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    if bonus <= 0:
        return entry.balance_after
    bonus_entry = balance_credit(
        user=payment.user,
        amount=bonus,
        kind=LedgerEntry.Kind.BONUS,
        payment_ref=ref,
        idempotency_key=f"bonus:{payment.method}:{payment.gateway_id}",
        memo=f"Bonus +{rule.percent.normalize():f} % on deposit #{payment.pk} ({rule.name})",
    )
    payment.bonus = code_bonus + bonus
    return bonus_entry.balance_after


def deposit_bonus_rules_active() -> list[DepositBonusRule]:
    """The bonus rules in force now, best first (the Add funds page lists them)."""
    now = timezone.now()
    return list(
        DepositBonusRule.objects.filter(is_active=True)
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("-percent", "min_amount")
    )


def deposit_bonus_rule_for(*, method: str, amount: Decimal) -> DepositBonusRule | None:
    """The best active rule for a deposit of `amount` by `method` (the highest percent)."""
    now = timezone.now()
    return (
        DepositBonusRule.objects.filter(is_active=True, min_amount__lte=amount)
        .filter(Q(method="") | Q(method=method))
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("-percent", "id")
        .first()
    )


def _flag(payment: Payment, reason: str, report: Report) -> None:
    """A "paid" that does not match: kept for staff with what the gateway says it received (the
    customer's page shows it)."""
    payment.charged_amount, payment.charged_currency = report.amount, report.currency[:16]
    Payment.objects.filter(pk=payment.pk).update(
        needs_attention=True,
        note=reason[:2000],
        charged_amount=report.amount,
        charged_currency=report.currency[:16],
        updated_at=timezone.now(),
    )
    _alert_staff(payment, f"Payment #{payment.pk} was not credited: {reason}")


def _attend(payment: Payment, reason: str) -> None:
    """Flag the payment for staff with the gateway's reason, once (a repeat changes nothing)."""
    if payment.needs_attention and payment.note == reason[:2000]:
        return
    payment.needs_attention, payment.note = True, reason[:2000]
    Payment.objects.filter(pk=payment.pk).update(
        needs_attention=True, note=payment.note, updated_at=timezone.now()
    )
    _alert_staff(payment, f"Payment #{payment.pk}: {reason}")


def _alert_staff(payment: Payment, text: str) -> None:
    """Tell staff (notices now, mails once the transaction commits, never inside it)."""
    notify_staff(
        event=Notification.Event.PAYMENT_DISPUTED,
        context={
            "payment_id": payment.pk,
            "reason": text,
            "customer": payment.user.username,
            "method": payment.method,
            "gateway_id": payment.gateway_id or "",
            "amount": payment.amount,
            "currency": payment.currency,
        },
    )


# The statuses a status read may still change: not paid yet.
REFRESHABLE = (
    Payment.Status.CREATED,
    Payment.Status.PENDING,
    Payment.Status.FAILED,
    Payment.Status.EXPIRED,
    Payment.Status.CANCELED,
)


def payment_refresh(
    *, payment: Payment, source: str = PaymentCallback.Source.POLL
) -> Applied | None:
    """Read the payment's status at its gateway and apply it (a missed webhook). None when the
    gateway has no such read, or the payment was already paid: a read of a paid, disputed or
    refunded payment would only repeat a stale "paid". Raises GatewayError."""
    gateway = gateway_for(payment.method)
    if gateway is None or not payment.gateway_id or payment.status not in REFRESHABLE:
        return None
    report = gateway.fetch(gateway_id=payment.gateway_id)
    if report is None:
        return None
    return payment_report_apply(method=payment.method, report=report, source=source)


def payment_expire_stale(*, now: Any = None) -> int:
    """Mark payments still created or waiting past their expiry as expired. A gateway that
    later reports one paid still credits it (expired → paid is allowed). Manual transfers are
    left waiting: a bank transfer may take days, and staff decide (approve or reject)."""
    now = now or timezone.now()
    with transaction.atomic():
        # Locked (those a report is settling are skipped: the next sweep sees them), so the
        # deposit codes released are those of the payments this sweep expired.
        ids = list(
            Payment.objects.select_for_update(skip_locked=True)
            .filter(status__in=Payment.OPEN, expires_at__lt=now)
            .exclude(method="manual")
            .values_list("pk", flat=True)
        )
        expired = Payment.objects.filter(pk__in=ids).update(
            status=Payment.Status.EXPIRED, updated_at=now
        )
        coupon_release_many(payment_ids=ids)
    return expired


def payment_cancel_by_customer(*, payment: Payment, user: User) -> Applied:
    """The customer cancels their own waiting payment (the Cancel button, a POST): recorded
    like any report (source return), so a gateway that later says paid still credits it
    (canceled → paid), and a waiting manual transfer leaves staff's queue."""
    if payment.user_id != user.pk or not payment.gateway_id:
        raise PaymentError("This payment cannot be canceled here.")
    report = Report(
        gateway_id=payment.gateway_id,
        status=Payment.Status.CANCELED,
        reference=str(payment.public_id),
        event_id=f"cancel:{user.pk}",
        payload={"action": "cancel", "by": user.username},
    )
    return payment_report_apply(
        method=payment.method, report=report, source=PaymentCallback.Source.RETURN
    )


# --- Staff decisions ---------------------------------------------------------------------------


# What staff may do to a manual transfer: approve one not credited yet (a rejected transfer
# whose money turns up after all included), reject one still waiting.
MANUAL_APPROVABLE = frozenset(
    {
        Payment.Status.CREATED,
        Payment.Status.PENDING,
        Payment.Status.FAILED,
        Payment.Status.EXPIRED,
        Payment.Status.CANCELED,
    }
)
MANUAL_REJECTABLE = frozenset(Payment.OPEN)


def _manual_only(payment: Payment) -> None:
    if payment.method != "manual" or not payment.gateway_id:
        raise PaymentError("Only manual transfers are approved or rejected by staff.")


def payment_approve_manual(*, payment: Payment, actor: User) -> Applied:
    """Staff confirm a manual transfer arrived: it is credited through payment_report_apply
    like any gateway's "paid", so approving twice, or two members of staff at once, credits
    once. Audited (area money) when it changed the payment."""
    _manual_only(payment)
    report = Report(
        gateway_id=payment.gateway_id or "",
        status=Payment.Status.PAID,
        reference=str(payment.public_id),
        event_id=f"approve:{actor.pk}",
        payload={"action": "approve", "staff": actor.username},
    )
    with transaction.atomic():
        before = payment.status
        applied = payment_report_apply(
            method=payment.method, report=report, source=PaymentCallback.Source.STAFF, actor=actor
        )
        if applied.outcome == PaymentCallback.Outcome.APPLIED and applied.payment is not None:
            audit_record(
                actor=actor,
                action="approve payment",
                obj=applied.payment,
                summary=f"Approved manual payment #{payment.pk}: {payment.amount} "
                f"{payment.currency} credited to {payment.user.username}.",
                before={"status": before},
                after={"status": applied.payment.status, "bonus": applied.payment.bonus},
                area=AdminAuditLog.Area.MONEY,
            )
    return applied


def payment_reject_manual(*, payment: Payment, actor: User, reason: str) -> Applied:
    """Staff say a manual transfer never arrived: the payment fails with `reason` (shown in
    admin; nothing is credited). A paid payment is not rejected (the report is ignored)."""
    _manual_only(payment)
    reason = reason.strip()
    if not reason:
        raise PaymentError("Say why the transfer is rejected.")
    report = Report(
        gateway_id=payment.gateway_id or "",
        status=Payment.Status.FAILED,
        reference=str(payment.public_id),
        event_id=f"reject:{actor.pk}",
        payload={"action": "reject", "staff": actor.username, "reason": reason},
    )
    with transaction.atomic():
        before = payment.status
        applied = payment_report_apply(
            method=payment.method, report=report, source=PaymentCallback.Source.STAFF, actor=actor
        )
        if applied.outcome == PaymentCallback.Outcome.APPLIED and applied.payment is not None:
            note = f"Rejected by {actor.username}: {reason}"[:2000]
            Payment.objects.filter(pk=payment.pk).update(note=note)
            applied.payment.note = note
            audit_record(
                actor=actor,
                action="reject payment",
                obj=applied.payment,
                summary=f"Rejected manual payment #{payment.pk}: {reason}",
                before={"status": before},
                after={"status": applied.payment.status},
                area=AdminAuditLog.Area.MONEY,
            )
    return applied


def payment_attention_handle(*, payments: QuerySet[Payment], actor: User) -> int:
    """Staff have dealt with flagged payments (a dispute, a refund, a mismatch): the flag is
    cleared and each one is audited. Taking money back stays a ledger adjustment."""
    with transaction.atomic():
        # The selection may carry joins (an admin changelist's): lock the payment rows alone.
        chosen = list(
            Payment.objects.select_for_update()
            .filter(pk__in=payments.values("pk"), needs_attention=True)
            .order_by("id")
        )
        for payment in chosen:
            audit_record(
                actor=actor,
                action="payment attention handled",
                obj=payment,
                summary=f"Marked payment #{payment.pk} ({payment.status}) as handled.",
                before={"needs_attention": True, "note": payment.note},
                after={"needs_attention": False},
                area=AdminAuditLog.Area.MONEY,
            )
        return Payment.objects.filter(pk__in=[p.pk for p in chosen]).update(
            needs_attention=False, updated_at=timezone.now()
        )


# --- The periodic sweeps ----------------------------------------------------------------------

RECONCILE_AFTER = timedelta(minutes=10)
RECONCILE_PER_RUN = 50


@dataclass
class Reconciled:
    checked: int = 0
    changed: int = 0
    errors: int = 0


def payment_reconcile_due(*, now: Any = None, limit: int = RECONCILE_PER_RUN) -> Reconciled:
    """Read at their gateways the waiting payments whose webhook may have been missed (older
    than RECONCILE_AFTER, not yet expired), at most `limit`, least recently read first. A
    gateway that fails is logged and skipped: the next run tries again."""
    now = now or timezone.now()
    done = Reconciled()
    due = payment_list_due_for_reconcile(now=now, older_than=RECONCILE_AFTER)[:limit]
    for payment in due:
        done.checked += 1
        try:
            applied = payment_refresh(payment=payment)
        except GatewayError as exc:
            done.errors += 1
            log.warning("Reading payment %s at %s failed: %s", payment.pk, payment.method, exc)
            continue
        except Exception:  # one gateway's surprise must not stop the sweep for the others
            done.errors += 1
            log.exception("Reading payment %s at %s failed", payment.pk, payment.method)
            continue
        if applied is not None and applied.outcome == PaymentCallback.Outcome.APPLIED:
            done.changed += 1
    return done


__all__ = [
    "MANUAL_APPROVABLE",
    "MANUAL_REJECTABLE",
    "METHOD_WORDS",
    "Applied",
    "GatewayError",
    "MethodOffer",
    "PaymentError",
    "PaymentUrls",
    "deposit_bonus_rule_for",
    "deposit_bonus_rules_active",
    "parse_deposit_amount",
    "payment_approve_manual",
    "payment_attention_handle",
    "payment_cancel_by_customer",
    "payment_expire_stale",
    "payment_limits_check",
    "payment_method_offer",
    "payment_methods_offered",
    "payment_reconcile_due",
    "payment_refresh",
    "payment_refusal_record",
    "payment_reject_manual",
    "payment_report_apply",
    "payment_start",
]
