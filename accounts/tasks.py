"""Celery entry points for payments and referrals: the periodic sweeps (docs/payments.md,
docs/growth.md)."""

from celery import shared_task

from accounts.payments import payment_expire_stale, payment_reconcile_due
from accounts.referrals import commission_release_due


@shared_task(ignore_result=True)
def payments_expire_sweep() -> int:
    """Beat: mark the payments still waiting past their expiry as expired."""
    return payment_expire_stale()


@shared_task(ignore_result=True)
def payments_reconcile_sweep() -> str:
    """Beat: read at their gateways the waiting payments whose webhook may have been missed
    (bounded per run; a gateway that fails is logged and skipped until the next run)."""
    done = payment_reconcile_due()
    return f"checked {done.checked}, changed {done.changed}, errors {done.errors}"


@shared_task(ignore_result=True)
def referral_commissions_release_sweep() -> str:
    """Beat: release the held referral commissions that are due (and, with commission on
    spend, create those of new order charges first). Running it twice releases each once."""
    run = commission_release_due()
    return f"accrued {run.accrued}, released {run.released}"
