"""Celery entry points of accounts: the payment sweeps (docs/payments.md) and the login
history retention (docs/customer-panel.md)."""

from celery import shared_task

from accounts.payments import payment_expire_stale, payment_reconcile_due
from accounts.security import login_history_prune


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
def login_history_cleanup_sweep() -> str:
    """Beat: delete the login history older than PANEL_LOGIN_HISTORY_DAYS."""
    deleted = login_history_prune()
    return "history kept (setting 0)" if deleted is None else f"deleted {deleted}"
