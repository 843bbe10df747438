"""Service.average_time: the median time to completion of a service's last 100 completed
orders, None below 10 of them, refreshed by orders.services.averages (the beat tasks call it)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Service
from orders import tasks
from orders.models import Order
from orders.services import service_average_times_refresh, service_average_times_refresh_recent

pytestmark = pytest.mark.django_db


def completed(user, service, minutes: list[float], *, finished_ago=timedelta(hours=2), **extra):
    """One completed order of `service` per entry of `minutes` (its time to completion), the
    first finished most recently."""
    now = timezone.now()
    orders = []
    for i, took in enumerate(minutes):
        finished = now - finished_ago - timedelta(seconds=i)
        orders.append(
            Order(
                user=user,
                service=service,
                status=extra.get("status", Order.Status.COMPLETED),
                link=f"https://example.com/p/{i}",
                quantity=100,
                rate=Decimal("1"),
                charge=Decimal("0.10000"),
                created_at=finished - timedelta(minutes=took),
                finished_at=finished,
            )
        )
    Order.objects.bulk_create(orders)


def average(service: Service) -> timedelta | None:
    service.refresh_from_db()
    return service.average_time


def test_nine_completed_orders_are_not_enough_ten_are(alice, default_service):
    completed(alice, default_service, [10] * 9)
    service_average_times_refresh(service_ids=[default_service.pk])
    assert average(default_service) is None
    completed(alice, default_service, [30])
    service_average_times_refresh(service_ids=[default_service.pk])
    assert average(default_service) == timedelta(minutes=10)


def test_the_median_not_the_mean(alice, default_service, comments_service):
    # 10 orders: 1..9 minutes and one stuck for 3 days; the mean would be over 7 hours.
    completed(alice, default_service, [1, 2, 3, 4, 5, 6, 7, 8, 9, 4320])
    # 11 orders: the middle one.
    completed(alice, comments_service, [5, 50, 7, 70, 9, 90, 11, 110, 13, 130, 15])
    assert service_average_times_refresh() >= 2
    assert average(default_service) == timedelta(minutes=5, seconds=30)  # (5 + 6) / 2
    assert average(comments_service) == timedelta(minutes=15)


def test_only_the_last_hundred_completed_orders_count(alice, default_service):
    completed(alice, default_service, [60] * 100)  # the latest hundred: an hour each
    completed(alice, default_service, [1] * 150, finished_ago=timedelta(days=3))  # older, fast
    completed(alice, default_service, [1] * 20, status=Order.Status.PARTIAL)  # not completed
    service_average_times_refresh(service_ids=[default_service.pk])
    assert average(default_service) == timedelta(hours=1)


def test_the_sweep_refreshes_services_with_a_recent_completion_only(
    alice, default_service, comments_service
):
    completed(alice, default_service, [20] * 10, finished_ago=timedelta(minutes=5))
    completed(alice, comments_service, [20] * 10, finished_ago=timedelta(days=2))
    assert service_average_times_refresh_recent() == 1
    assert average(default_service) == timedelta(minutes=20)
    assert average(comments_service) is None  # until the nightly refresh of every service
    tasks.service_average_times_refresh_all()
    assert average(comments_service) == timedelta(minutes=20)


def test_the_sweep_task_runs_the_refresh(alice, default_service):
    completed(alice, default_service, [42] * 12, finished_ago=timedelta(minutes=1))
    tasks.service_average_times_sweep()
    assert average(default_service) == timedelta(minutes=42)


def test_an_order_completing_through_the_status_service_counts(alice, default_service, place):
    from orders.services import order_set_status

    for _ in range(10):
        order = place(default_service, status="in_progress")
        order_set_status(order=order, new="completed", source="poll")
    service_average_times_refresh_recent()
    assert average(default_service) is not None  # finished_at was set by the status change


def test_the_command_refreshes_every_service(alice, default_service):
    from io import StringIO

    from django.core.management import call_command

    completed(alice, default_service, [7] * 10, finished_ago=timedelta(days=9))
    out = StringIO()
    call_command("refresh_average_times", stdout=out)
    assert "services refreshed" in out.getvalue()
    assert average(default_service) == timedelta(minutes=7)
