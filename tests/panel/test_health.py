import json
import time

import pytest
import redis
from django.conf import settings as django_settings

from panel import health
from panel.celery import app as celery_app
from panel.queues import PUBLISHED_AT_HEADER, queue_backlog

pytestmark = [
    pytest.mark.django_db,
    # send_task always publishes (the eager setting does not apply): what these tests want.
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]
REDIS = django_settings.CELERY_BROKER_URL.startswith("redis")


@pytest.fixture
def broker():
    """The test run's own Redis database (REDIS_URL), emptied before and after; no worker
    consumes it, so whatever is published stays in its queue."""
    if not REDIS:
        pytest.skip("needs Redis")
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


def _publish(queue: str, *, age: float) -> None:
    """A real task message through Celery's publisher (the stamp comes from the signal), then
    its stamp moved `age` seconds back."""
    celery_app.send_task("orders.tasks.order_submit", args=[0], queue=queue)
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    raw = client.lindex(queue, 0)
    message = json.loads(raw)
    assert message["headers"][PUBLISHED_AT_HEADER] == pytest.approx(time.time(), abs=30)
    message["headers"][PUBLISHED_AT_HEADER] -= age
    client.lset(queue, 0, json.dumps(message))


def test_healthz_reports_database_and_broker_up(client, broker):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("status", "database", "broker")} == {
        "status": "ok",
        "database": "up",
        "broker": "up",
    }
    assert body["queues"] == {
        "default": {"length": 0, "oldest_seconds": None, "stale": False},
        "provider_io": {"length": 0, "oldest_seconds": None, "stale": False},
    }


def test_healthz_reports_a_broker_that_is_down(client, settings, monkeypatch):
    monkeypatch.setattr(health.celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["database"] == "up"


def test_every_routed_queue_is_declared_so_a_plain_worker_consumes_it():
    declared = {q.name for q in django_settings.CELERY_TASK_QUEUES}
    routed = {route["queue"] for route in django_settings.CELERY_TASK_ROUTES.values()}
    assert routed | {django_settings.CELERY_TASK_DEFAULT_QUEUE} <= declared
    # What `celery worker` without -Q consumes: every declared queue.
    assert set(celery_app.amqp.queues) >= {"default", "provider_io"}
    # Each queue bound by its own name: a message for one queue is never copied into another.
    assert {name: q.routing_key for name, q in celery_app.amqp.queues.items()} == {
        "default": "default",
        "provider_io": "provider_io",
    }


def test_a_queue_nobody_consumes_is_degraded_on_healthz(client, broker, settings):
    settings.QUEUE_STALE_SECONDS = 300
    _publish("provider_io", age=301)
    _publish("default", age=5)
    response = client.get("/healthz")
    assert response.status_code == 200  # the web server itself is fine
    body = response.json()
    assert body["status"] == "degraded"
    assert body["stale_queues"] == ["provider_io"]
    assert body["queues"]["provider_io"]["length"] == 1
    assert body["queues"]["provider_io"]["stale"] is True
    assert body["queues"]["provider_io"]["oldest_seconds"] >= 301
    assert body["queues"]["default"] == {
        "length": 1,
        "oldest_seconds": pytest.approx(5, abs=5),
        "stale": False,
    }
    assert client.get("/healthz?strict=1").status_code == 503


def test_a_fresh_backlog_is_not_stale(client, broker, settings):
    settings.QUEUE_STALE_SECONDS = 300
    _publish("provider_io", age=10)
    response = client.get("/healthz?strict=1")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["queues"]["provider_io"]["length"] == 1


def test_queue_backlog_reads_the_oldest_of_several_messages(broker, settings):
    settings.QUEUE_STALE_SECONDS = 60
    _publish("default", age=100)
    _publish("default", age=0)  # newer, pushed on the left; the oldest stays on the right
    backlog = {q.name: q for q in queue_backlog(app=celery_app)}
    assert backlog["default"].length == 2
    assert backlog["default"].stale
    assert not backlog["provider_io"].stale and backlog["provider_io"].length == 0


def test_queue_backlog_is_unknown_when_the_broker_is_down(monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    backlog = queue_backlog(app=celery_app)
    assert [q.name for q in backlog] == ["default", "provider_io"]
    assert all(not q.known and not q.stale for q in backlog)
    assert backlog[0].as_json()["length"] == "unknown"


def test_queue_backlog_on_the_file_system_broker(tmp_path, monkeypatch, settings):
    settings.QUEUE_STALE_SECONDS = 60
    folder = tmp_path / "out"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    monkeypatch.setattr(celery_app.conf, "broker_url", "filesystem://")
    monkeypatch.setitem(celery_app.conf, "broker_transport", None)  # as the settings leave it
    monkeypatch.setitem(celery_app.conf, "broker_transport_options", options)
    old = time.time() - 120
    (folder / "1000_a.provider_io.msg").write_text(
        json.dumps({"headers": {PUBLISHED_AT_HEADER: old}, "body": ""})
    )
    (folder / "2000_b.provider_io.msg").write_text(
        json.dumps({"headers": {PUBLISHED_AT_HEADER: time.time()}, "body": ""})
    )
    backlog = {q.name: q for q in queue_backlog(app=celery_app)}
    assert backlog["provider_io"].length == 2
    assert backlog["provider_io"].stale
    assert backlog["default"].length == 0 and not backlog["default"].stale


def test_the_cockpit_warns_of_a_queue_no_worker_consumes(client, staff, broker, settings):
    settings.QUEUE_STALE_SECONDS = 300
    client.force_login(staff)
    page = client.get("/admin/").content.decode()
    assert 'id="cockpit-queues"' in page and "default 0 waiting" in page
    assert "No worker consumes queue" not in page
    _publish("provider_io", age=400)
    page = client.get("/admin/").content.decode()
    assert 'data-queue="provider_io"' in page
    assert "No worker consumes queue provider_io" in page
    assert "provider_io 1 waiting, oldest 40" in page


def test_the_cockpit_says_unknown_when_the_broker_cannot_be_read(client, staff, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    client.force_login(staff)
    page = client.get("/admin/").content.decode()
    assert "default unknown; provider_io unknown." in page
    assert "No worker consumes queue" not in page
