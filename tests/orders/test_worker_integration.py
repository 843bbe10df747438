"""End to end with a REAL Celery worker process on Redis, PostgreSQL and the sandbox over HTTP.

The worker runs `celery -A panel worker` against the test database (transactional tests, so it
sees the committed rows). Orders of every type are created here, placed by the worker, polled
by the worker's sweep, and end Completed or Partial with the exact refund.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.db import connection

from accounts.models import LedgerEntry
from accounts.services import customer_create
from orders.models import FINAL_STATUSES, Order
from orders.services import order_create, orders_requeue, refund_amount
from panel import broker as panel_broker
from panel.celery import app as celery_app
from tests.orders.factories import make_provider, make_service
from tests.orders.sandbox import KEY
from tests.orders.test_create import SUB, VALID

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not REDIS_URL, reason="needs PostgreSQL and Redis"
    ),
]
ROOT = Path(__file__).resolve().parents[2]
SPEED = 6.0


def _database_url() -> str:
    db = connection.settings_dict
    user, host, port = db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    auth = f"{user}:{db['PASSWORD']}" if db["PASSWORD"] else user
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


class Worker:
    def __init__(self, log: Path, queues: str | None = "default,provider_io") -> None:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "DEBUG": "true",
        }
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "panel",
                "worker",
                *(["-Q", queues] if queues else []),
                "-c",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def broker(settings):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()  # this helper's own Redis database: stale messages of earlier runs go
    # Read before changing the Django setting: the Celery conf reads through to it, so reading
    # after would "restore" False and leave every later test in the session without eager tasks.
    old = celery_app.conf.task_always_eager, celery_app.conf.broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = REDIS_URL
    yield client
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = old
    client.flushdb()


@pytest.fixture
def worker(broker, tmp_path):
    started = Worker(tmp_path / "worker.log")
    yield started
    started.stop()


@pytest.fixture
def plain_worker(broker, tmp_path):
    """`celery -A panel worker` with no --queues, as Celery's and cookiecutter-django's docs
    start it."""
    started = Worker(tmp_path / "worker.log", queues=None)
    yield started
    started.stop()


def _wait(predicate, timeout: float, what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    log = worker.log.name if worker else None
    tail = Path(log).read_text()[-3000:] if log else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_every_type_is_charged_placed_and_settled_by_a_real_worker(sandbox, worker, monkeypatch):
    from orders.tasks import order_submit, orders_poll_sweep

    sandbox.config(speed=SPEED)
    # The first placement goes through delay(); panel.broker.send sends the others from its
    # message, in one LPUSH each: the worker must take and run those as it does delay()'s.
    panel_broker._templates.clear()
    delayed = []
    real_delay = order_submit.delay
    monkeypatch.setattr(order_submit, "delay", lambda *a: delayed.append(a) or real_delay(*a))
    user = customer_create(username="e2e", opening_balance=Decimal("500"))
    provider = make_provider(api_url=sandbox.api_url, key=KEY, name="sandbox-e2e")
    orders = []
    cases = [(t, d) for t, d, *_ in VALID] + [("Subscriptions", SUB)]
    for index, (order_type, data) in enumerate(cases):
        service = make_service(provider=provider, order_type=order_type)
        if "link" in data and index % 3 == 0 and "Package" not in order_type:
            data = {**data, "link": f"{data['link']}-partial-{index}"}
        elif "link" in data:
            data = {**data, "link": f"{data['link']}-{index}"}
        orders.append(order_create(user=user, service=service, data=data))
    charged = sum(o.charge for o in orders)
    assert LedgerEntry.objects.filter(kind="charge").count() == len(orders)
    assert delayed == [(orders[0].pk,)] and len(orders) > 10
    ids = [o.pk for o in orders]

    def placed():
        return (
            not Order.objects.filter(pk__in=ids)
            .exclude(upstream_order_id="")
            .exclude(
                status__in=[
                    Order.Status.PENDING,
                    Order.Status.IN_PROGRESS,
                    Order.Status.PROCESSING,
                    *FINAL_STATUSES,
                ]
            )
            .exists()
            and Order.objects.filter(pk__in=ids, upstream_order_id="").count() == 0
        )

    _wait(placed, 60, "placement by the worker", worker)
    placed_at = time.monotonic()
    # Past the sandbox's Pending tenth: the worker's sweep (fan-out per provider) sees them
    # In progress, with remains going down.
    time.sleep(SPEED * 0.3)
    Order.objects.filter(pk__in=ids).update(next_poll_at="2000-01-01T00:00:00Z")
    orders_poll_sweep.delay()
    _wait(
        lambda: (
            Order.objects.filter(pk__in=ids, status=Order.Status.IN_PROGRESS).count() == len(ids)
        ),
        30,
        "In progress",
        worker,
    )
    # Then past the end: the next sweep settles them.
    time.sleep(max(0.0, SPEED + 0.5 - (time.monotonic() - placed_at)))
    Order.objects.filter(pk__in=ids).update(next_poll_at="2000-01-01T00:00:00Z")
    orders_poll_sweep.delay()
    _wait(
        lambda: Order.objects.filter(pk__in=ids, status__in=FINAL_STATUSES).count() == len(ids),
        60,
        "the poll sweep",
        worker,
    )

    refunded = Decimal(0)
    for order in Order.objects.filter(pk__in=ids):
        partial = "-partial-" in order.link
        assert order.status == (Order.Status.PARTIAL if partial else Order.Status.COMPLETED)
        expected = refund_amount(order=order, status=order.status, remains=order.remains)
        assert order.refunded == expected
        assert LedgerEntry.objects.filter(order_ref=order.pk, kind="refund").count() == (
            1 if expected else 0
        )
        refunded += expected
        if partial:
            assert order.remains == max(1, order.quantity // 3) and expected > 0
        history = list(order.status_changes.values_list("new_status", flat=True))
        assert history == [
            Order.Status.QUEUED,
            Order.Status.SUBMITTING,
            Order.Status.PENDING,
            Order.Status.IN_PROGRESS,
            order.status,
        ]
    user.wallet.refresh_from_db()
    assert user.wallet.balance == Decimal("500") - charged + refunded
    assert len(sandbox.orders()) == len(orders)  # one upstream order per panel order
    call_command("check_ledger", verbosity=0)


def test_worker_killed_during_placement_never_places_twice(sandbox, worker, settings):
    sandbox.config(speed=SPEED)
    user = customer_create(username="killed", opening_balance=Decimal("50"))
    provider = make_provider(api_url=sandbox.api_url, key=KEY, name="sandbox-kill")
    service = make_service(provider=provider, sandbox_id=1)
    sandbox.fault("slow", seconds=3)
    order = order_create(
        user=user,
        service=service,
        data={"link": "https://instagram.com/p/killed", "quantity": "100"},
    )
    _wait(
        lambda: Order.objects.get(pk=order.pk).status == Order.Status.SUBMITTING,
        30,
        "the claim",
        worker,
    )
    time.sleep(1)  # the `add` is at the sandbox now, which answers only after 3 s
    for child in worker.children():  # the pool process running the task dies mid-call
        os.kill(child, signal.SIGKILL)
    time.sleep(3)  # the sandbox carries out the `add` it received; the task is redelivered
    order.refresh_from_db()
    assert order.status == Order.Status.SUBMITTING and order.submit_attempts == 1
    settings.ORDER_SUBMIT_STUCK_AFTER = timedelta(seconds=1)
    result = orders_requeue()
    assert result.to_review == [order.pk]
    time.sleep(1)
    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_REVIEW
    # The provider did get the order, exactly once: the admin will set its id by hand.
    assert sum(1 for o in sandbox.orders() if o["link"] == order.link) == 1
    assert len(sandbox.log("add")) == 1
    call_command("check_ledger", verbosity=0)


def test_a_worker_started_without_queues_places_orders_routed_to_provider_io(sandbox, plain_worker):
    from panel.queues import queue_backlog

    user = customer_create(username="plain", opening_balance=Decimal("50"))
    provider = make_provider(api_url=sandbox.api_url, key=KEY, name="sandbox-plain")
    service = make_service(provider=provider, sandbox_id=1)
    assert celery_app.amqp.router.route({}, "orders.tasks.order_submit")["queue"].name == (
        "provider_io"
    )
    order = order_create(
        user=user,
        service=service,
        data={"link": "https://instagram.com/p/plain", "quantity": "100"},
    )
    _wait(
        lambda: Order.objects.get(pk=order.pk).upstream_order_id != "",
        60,
        "placement by a worker started without --queues",
        plain_worker,
    )
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING
    assert sum(1 for o in sandbox.orders() if o["link"] == order.link) == 1
    assert all(q.length == 0 and not q.stale for q in queue_backlog(app=celery_app))
