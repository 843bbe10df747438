from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F, Sum
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.management.commands.setup_schedules import DEFAULT_SCHEDULES, task_exists
from accounts.selectors import ledger_find_mismatches
from orders.models import Order
from providers.models import Provider

pytestmark = pytest.mark.django_db


def test_setup_schedules_creates_defaults_once_and_keeps_admin_edits():
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    # Every default names a real task: status poll, requeue, catalog sync, balance check.
    assert [d.task for d in DEFAULT_SCHEDULES if not task_exists(d.task)] == []
    existing = DEFAULT_SCHEDULES
    tasks = {t.task: t for t in PeriodicTask.objects.all()}
    assert set(tasks) == {d.task for d in existing}
    poll = tasks["orders.tasks.orders_poll_sweep"]
    assert (poll.crontab.minute, poll.expire_seconds, poll.enabled) == ("*", 50, True)
    assert tasks["catalog.tasks.catalog_sync_sweep"].crontab.minute == "7"
    assert tasks["providers.tasks.provider_check_balances_sweep"].expire_seconds == 840
    for missing in (d for d in DEFAULT_SCHEDULES if not task_exists(d.task)):
        assert f"{missing.name}: skipped" in out.getvalue()

    # An admin edits one; running again (make run does) keeps it and creates nothing new.
    hourly = CrontabSchedule.objects.create(minute="0", hour="*", timezone="UTC")
    PeriodicTask.objects.filter(task="catalog.tasks.catalog_sync_sweep").update(crontab=hourly)
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    assert PeriodicTask.objects.count() == len(existing)
    assert PeriodicTask.objects.get(task="catalog.tasks.catalog_sync_sweep").crontab == hourly
    assert "Catalog sync: kept" in out.getvalue()
    call_command("setup_schedules", "--reset", stdout=StringIO())
    assert PeriodicTask.objects.get(task="catalog.tasks.catalog_sync_sweep").crontab.minute == "7"


def test_task_exists_checks_real_tasks():
    assert task_exists("orders.tasks.orders_poll_sweep")
    assert not task_exists("orders.tasks.no_such_task")
    assert not task_exists("no_such_app.tasks.x")


def test_seed_orders_makes_consistent_realistic_data():
    call_command(
        "seed_orders",
        orders=3000,
        days=30,
        providers=3,
        customers=50,
        batch=1000,
        not_production=True,  # tests run with DEBUG off
        stdout=StringIO(),
    )
    assert Order.objects.count() == 3000
    assert Provider.objects.count() == 3
    statuses = set(Order.objects.values_list("status", flat=True).distinct())
    assert {"completed", "partial", "canceled"} <= statuses
    # Canceled orders are refunded in full, partial ones in part, others not at all.
    assert not Order.objects.filter(status="canceled").exclude(refunded=F("charge")).exists()
    partial = Order.objects.filter(status="partial")
    assert (
        not partial.filter(refunded__gte=F("charge")).exists()
        and not partial.filter(refunded=0).exists()
    )
    assert not Order.objects.filter(status="completed").exclude(refunded=0).exists()
    assert not Order.objects.filter(provider__isnull=False, cost__isnull=True).exists()
    # Oldest first: ids follow created_at.
    ordered = list(Order.objects.order_by("id").values_list("created_at", flat=True))
    assert ordered == sorted(ordered)
    assert Order.objects.aggregate(s=Sum("charge"))["s"] > Decimal(0)
    assert ledger_find_mismatches() == []
    # Running it again adds orders, not providers, services or customers.
    call_command(
        "seed_orders",
        orders=10,
        days=30,
        providers=3,
        customers=50,
        not_production=True,
        stdout=StringIO(),
    )
    assert Provider.objects.count() == 3 and Order.objects.count() == 3010


def test_seed_orders_refuses_a_database_that_may_be_production():
    with pytest.raises(CommandError, match="fake customers"):
        call_command("seed_orders", orders=10, stdout=StringIO())
    assert not Order.objects.exists()
