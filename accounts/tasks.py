"""Celery entry points of accounts: the payment sweeps (docs/payments.md), referral
commissions (docs/growth.md), the mails of notifications (docs/notifications.md) and the login
history retention (docs/customer-panel.md)."""

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from accounts.notifications import (
    addresses_email_send,
    notification_email_failed,
    notification_email_send,
    notifications_prune,
)
from accounts.payments import payment_expire_stale, payment_reconcile_due
from accounts.referrals import commission_release_due
from accounts.security import login_history_prune
from accounts.services import display_currency_rates_update


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


@shared_task(ignore_result=True)
def notifications_cleanup_sweep() -> str:
    """Beat: delete the notices read more than PANEL_NOTIFICATION_DAYS ago."""
    deleted = notifications_prune()
    return "notices kept (setting 0)" if deleted is None else f"deleted {deleted}"


# A mail server down for a while: retried at 1, 2, 4, 8 and 16 minutes, then marked failed (the
# notice itself is in the panel either way).
MAIL_RETRIES = 5


@shared_task(bind=True, ignore_result=True, max_retries=MAIL_RETRIES)
def notification_email_send_task(self: Task, notification_id: int) -> None:
    """Send the mail of one notice (queued after the commit that wrote it)."""
    try:
        notification_email_send(notification_id=notification_id)
    except Exception as exc:
        if self.request.retries >= MAIL_RETRIES:
            notification_email_failed(notification_id=notification_id, error=repr(exc))
            return
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc


@shared_task(
    ignore_result=True, autoretry_for=(OSError,), retry_backoff=60, max_retries=MAIL_RETRIES
)
def notification_addresses_email_task(event: str, context: dict[str, Any], to: list[str]) -> None:
    """Mail a staff event to the settings.ADMINS addresses that belong to no staff user."""
    addresses_email_send(event=event, context=context, to=to)


@shared_task(ignore_result=True)
def referral_commissions_release_sweep() -> str:
    """Beat: release the held referral commissions that are due (and, with commission on
    spend, create those of new order charges first). Running it twice releases each once."""
    run = commission_release_due()
    return f"accrued {run.accrued}, released {run.released}"


@shared_task(ignore_result=True)
def display_currency_rates_update_sweep() -> str:
    """Beat: the display currencies' rates from DISPLAY_CURRENCY_RATES_URL (nothing to do
    without one). A source that fails raises DisplayRatesError, which names what is wrong: the
    task fails, the old rates stay."""
    if not settings.DISPLAY_CURRENCY_RATES_URL:
        return "no source configured (DISPLAY_CURRENCY_RATES_URL)"
    return f"updated {display_currency_rates_update()}"
