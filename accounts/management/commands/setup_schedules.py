"""Create the default schedules of the periodic tasks in django-celery-beat's tables, where
admins edit them (Admin → Periodic tasks). Idempotent: a schedule that exists already is left
as the admin set it, unless --reset is given.

    python manage.py setup_schedules [--reset]
"""

import importlib
from dataclasses import dataclass

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str
    minute: str
    hour: str = "*"
    expire_seconds: int = 50  # close to the interval: runs never pile up behind a stalled worker
    description: str = ""


DEFAULT_SCHEDULES = [
    DefaultSchedule(
        "Status poll (orders, refills and cancels)",
        "orders.tasks.orders_poll_sweep",
        minute="*",
        expire_seconds=50,
        description="Every minute: one poll per provider with orders due; the provider sweep also "
        "sends and polls refills and cancels.",
    ),
    DefaultSchedule(
        "Requeue waiting orders",
        "orders.tasks.orders_requeue_sweep",
        minute="*",
        expire_seconds=50,
        description="Every minute: re-sends queued orders and sends orders stuck mid-placement to review.",
    ),
    DefaultSchedule(
        "Webhook retries",
        "orders.tasks.webhooks_retry_sweep",
        minute="*",
        expire_seconds=50,
        description="Every minute: one delivery attempt per resellers' webhook event whose "
        "retry is due (exponential back-off, for 24 hours).",
    ),
    DefaultSchedule(
        "Service average times",
        "orders.tasks.service_average_times_sweep",
        minute="*/10",
        expire_seconds=540,
        description="Every 10 minutes: the average time (median of the last 100 completed "
        "orders) of each service with an order completed in the last hour.",
    ),
    DefaultSchedule(
        "Service average times (all)",
        "orders.tasks.service_average_times_refresh_all",
        minute="47",
        hour="3",
        expire_seconds=3000,
        description="Every night at 03:47 UTC: the average time of every service.",
    ),
    DefaultSchedule(
        "Catalog sync",
        "catalog.tasks.catalog_sync_sweep",
        minute="7",
        expire_seconds=3000,
        description="Every hour at :07: one catalog sync per enabled provider.",
    ),
    DefaultSchedule(
        "Provider balance check",
        "providers.tasks.provider_check_balances_sweep",
        minute="*/15",
        expire_seconds=840,
        description="Every 15 minutes: balances and low-balance alerts.",
    ),
    DefaultSchedule(
        "Expire stale payments",
        "accounts.tasks.payments_expire_sweep",
        minute="*/15",
        expire_seconds=840,
        description="Every 15 minutes: payments still waiting past their expiry become expired.",
    ),
    DefaultSchedule(
        "Reconcile waiting payments",
        "accounts.tasks.payments_reconcile_sweep",
        minute="*/5",
        expire_seconds=280,
        description="Every 5 minutes: reads at its gateway each payment waiting for over 10 "
        "minutes (a missed webhook), at most 50 a run.",
    ),
    DefaultSchedule(
        "Login history retention",
        "accounts.tasks.login_history_cleanup_sweep",
        minute="17",
        hour="3",
        expire_seconds=3000,
        description="Every night at 03:17 UTC: deletes login history older than "
        "PANEL_LOGIN_HISTORY_DAYS (0 keeps it all).",
    ),
    DefaultSchedule(
        "Notification retention",
        "accounts.tasks.notifications_cleanup_sweep",
        minute="27",
        hour="3",
        expire_seconds=3000,
        description="Every night at 03:27 UTC: deletes the notices read more than "
        "PANEL_NOTIFICATION_DAYS ago (unread ones stay; 0 keeps them all).",
    ),
    DefaultSchedule(
        "Webhook event retention",
        "orders.tasks.webhook_events_cleanup_sweep",
        minute="37",
        hour="3",
        expire_seconds=3000,
        description="Every night at 03:37 UTC: deletes delivered and given-up webhook events "
        "older than PANEL_WEBHOOK_EVENT_DAYS (0 keeps them all).",
    ),
    DefaultSchedule(
        "Release referral commissions",
        "accounts.tasks.referral_commissions_release_sweep",
        minute="23",
        expire_seconds=3000,
        description="Every hour at :23: held referral commissions past their hold period are "
        "released to their referrers (commission on spend is created here first).",
    ),
    DefaultSchedule(
        "Display currency rates",
        "accounts.tasks.display_currency_rates_update_sweep",
        minute="41",
        expire_seconds=3000,
        description="Every hour at :41: the display currencies' rates from "
        "DISPLAY_CURRENCY_RATES_URL (does nothing without it; a failing source fails the run "
        "and the old rates stay).",
    ),
]


def task_exists(dotted: str) -> bool:
    """Whether `app.tasks.name` is a Celery task in this code base (beat would fail on a name
    no worker knows)."""
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return hasattr(getattr(module, attr, None), "delay")


def schedules_setup(*, reset: bool = False) -> dict[str, str]:
    """Create (or with `reset`, restore) every default schedule; returns name → what happened."""
    outcome = {}
    with transaction.atomic():
        for default in DEFAULT_SCHEDULES:
            if not task_exists(default.task):
                outcome[default.name] = f"skipped: no task {default.task}"
                continue
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=default.minute,
                hour=default.hour,
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone="UTC",
            )
            values = {
                "task": default.task,
                "crontab": crontab,
                "interval": None,
                "expire_seconds": default.expire_seconds,
                "description": default.description,
                "enabled": True,
            }
            existing = PeriodicTask.objects.filter(name=default.name).first()
            if existing is None:
                PeriodicTask.objects.create(name=default.name, **values)
                outcome[default.name] = "created"
            elif reset:
                for key, value in values.items():
                    setattr(existing, key, value)
                existing.save()
                outcome[default.name] = "reset"
            else:
                outcome[default.name] = "kept"
    return outcome


class Command(BaseCommand):
    help = "Create the default periodic task schedules (idempotent; --reset restores them)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset", action="store_true", help="Restore schedules an admin has changed."
        )

    def handle(self, *args, reset: bool = False, **options):
        for name, what in schedules_setup(reset=reset).items():
            self.stdout.write(f"{name}: {what}")
