"""The one enqueue module, the tasks named after their services, and the old task names that
stay registered for one release."""

from pathlib import Path

import pytest
from django.conf import settings

from orders import tasks
from orders.models import Order
from orders.services import order_cancel_request, order_create
from orders.services.enqueue import (
    SWEEP_EXPIRES,
    enqueue_order_submit,
    enqueue_provider_send_cancels,
    enqueue_provider_send_refills,
)
from tests.orders.factories import make_provider, make_service

pytestmark = pytest.mark.django_db
S = Order.Status
LINK = "https://instagram.com/p/enqueue"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, *args, **kwargs) -> None:
        self.calls.append((args, kwargs))


def _broken(*args, **kwargs) -> None:
    raise ConnectionError("broker down")


def test_order_create_enqueues_its_placement_after_commit(
    alice, monkeypatch, django_capture_on_commit_callbacks
):
    delay = Recorder()
    monkeypatch.setattr(tasks.order_submit, "delay", delay)
    service = make_service(provider=make_provider(), sandbox_id=1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = order_create(user=alice, service=service, data={"link": LINK, "quantity": "100"})
    assert delay.calls == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert delay.calls == [((order.pk,), {})]


def test_cancel_request_enqueues_sending_cancels_after_commit(
    alice, monkeypatch, django_capture_on_commit_callbacks
):
    delay = Recorder()
    monkeypatch.setattr(tasks.provider_send_cancels, "delay", delay)
    provider = make_provider(supports_cancel=True)
    service = make_service(provider=provider, sandbox_id=1)
    order = order_create(user=alice, service=service, data={"link": LINK, "quantity": "100"})
    Order.objects.filter(pk=order.pk).update(status=S.PENDING, upstream_order_id="77")
    order.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel_request(user=alice, order=order)
    assert delay.calls == [((provider.pk,), {})]


@pytest.mark.parametrize(
    ("enqueue", "task"),
    [
        (enqueue_order_submit, "order_submit"),
        (enqueue_provider_send_refills, "provider_send_refills"),
        (enqueue_provider_send_cancels, "provider_send_cancels"),
    ],
)
def test_enqueue_never_raises_when_the_broker_is_down(monkeypatch, caplog, enqueue, task):
    monkeypatch.setattr(getattr(tasks, task), "delay", _broken)
    enqueue(42)  # committed work: a sweep finds it again, the caller must not fail
    assert "could not enqueue" in caplog.text


def test_poll_fan_out_queues_one_expiring_sweep_per_provider(monkeypatch):
    apply_async = Recorder()
    monkeypatch.setattr(tasks.provider_sweep, "apply_async", apply_async)
    monkeypatch.setattr(tasks, "provider_ids_with_due_orders", lambda now: [3, 8])
    tasks.orders_poll_sweep()
    assert apply_async.calls == [
        (((3,),), {"expires": SWEEP_EXPIRES}),
        (((8,),), {"expires": SWEEP_EXPIRES}),
    ]


@pytest.mark.parametrize(
    ("old", "new", "service"),
    [
        ("provider_poll_orders", "provider_sweep", "provider_sweep"),
        ("provider_process_refills", "provider_send_refills", "provider_send_refills"),
        ("provider_process_cancels", "provider_send_cancels", "provider_send_cancels"),
    ],
)
def test_old_task_names_still_run_the_renamed_tasks(monkeypatch, old, new, service):
    provider = make_provider()
    ran = Recorder()
    monkeypatch.setattr(f"orders.services.{service}", ran)
    getattr(tasks, old).delay(provider.pk)  # a message queued before the deploy
    getattr(tasks, new).delay(provider.pk)
    assert [kwargs["provider"].pk for _, kwargs in ran.calls] == [provider.pk, provider.pk]
    # Both names run where provider I/O runs.
    for name in (old, new):
        assert getattr(tasks, name).name == f"orders.tasks.{name}"
        assert settings.CELERY_TASK_ROUTES[f"orders.tasks.{name}"] == {"queue": "provider_io"}


def test_tasks_skip_a_disabled_provider(monkeypatch):
    provider = make_provider(is_enabled=False)
    ran = Recorder()
    monkeypatch.setattr("orders.services.provider_sweep", ran)
    tasks.provider_sweep.delay(provider.pk)
    assert ran.calls == []


def test_enqueue_module_is_the_only_service_module_that_names_the_tasks():
    services = Path(settings.BASE_DIR) / "orders" / "services"
    naming = sorted(
        p.name
        for p in services.glob("*.py")
        if "orders.tasks" in p.read_text() or "from orders import tasks" in p.read_text()
    )
    assert naming == ["enqueue.py"]
