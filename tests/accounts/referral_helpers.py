"""Helpers of the referral tests: a referred customer, a paid manual deposit, a due release."""

from datetime import timedelta
from decimal import Decimal

from django.core.management import call_command
from django.utils import timezone

from accounts.models import Commission, Payment, Referral, User
from accounts.payments import payment_approve_manual
from accounts.referrals import commission_find_mismatches, referrer_account_get
from accounts.selectors import ledger_find_mismatches
from accounts.services import customer_create
from tests.payments.core_helpers import start_manual


def referred_customer(referrer: User, username: str = "carol") -> User:
    """A customer referred by `referrer` (as a sign-up through the link would make it)."""
    user = customer_create(username=username, email=f"{username}@example.org", password="pw-x-1")
    referrer_account_get(user=referrer)
    Referral.objects.create(referred=user, referrer=referrer)
    return user


def paid_deposit(user: User, staff: User, amount: str = "100.00") -> Payment:
    """A manual transfer of `amount` by `user`, approved by `staff` (credited)."""
    payment = start_manual(user, amount)
    payment_approve_manual(payment=payment, actor=staff)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PAID
    return payment


def make_due(*commissions: Commission) -> None:
    """Move the commissions' hold period into the past."""
    past = timezone.now() - timedelta(seconds=1)
    Commission.objects.filter(pk__in=[c.pk for c in commissions]).update(release_at=past)


def assert_books_clean() -> None:
    assert not ledger_find_mismatches()
    assert not commission_find_mismatches()
    call_command("check_ledger")


def dec(text: str) -> Decimal:
    return Decimal(text)
