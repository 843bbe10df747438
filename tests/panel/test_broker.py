"""panel.broker: kombu's Redis transport with its redis client kept between published messages
(kombu built a new one per message); a new pool (after a fork, or a closed channel) gets a new
client, and the messages still arrive. broker.send: task.delay()'s message, from the template
its transport keeps, in one LPUSH."""

import base64
import json
import os
import time

import pytest
import redis
from django.conf import settings
from kombu import Connection, Exchange, Queue

from panel import broker
from panel.broker import Channel
from panel.celery import app as celery_app
from panel.queues import PUBLISHED_AT_HEADER


@pytest.fixture
def connection():
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker (REDIS_URL)")
    with Connection(settings.CELERY_BROKER_URL, transport="panel.broker:Transport") as conn:
        yield conn


def test_the_settings_use_it_with_a_redis_broker():
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker (REDIS_URL)")
    from panel.celery import app

    assert app.conf.broker_transport == "panel.broker:Transport"
    with app.connection_for_write() as conn:
        assert isinstance(conn.default_channel, Channel)


def test_one_client_publishes_every_message_and_a_new_pool_gets_its_own(connection):
    name = f"test-broker-{os.getpid()}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    channel = connection.default_channel
    producer = connection.Producer(channel)
    try:
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name, declare=[queue])
        client = channel._create_client()
        producer.publish({"n": 2}, exchange=queue.exchange, routing_key=name)
        assert channel._create_client() is client
        channel._after_fork()  # what kombu does in a forked child: the pool is dropped
        producer.publish({"n": 3}, exchange=queue.exchange, routing_key=name)
        renewed = channel._create_client()
        assert renewed is not client and renewed.connection_pool is channel.pool
        received = []
        with connection.SimpleQueue(queue) as simple:
            for _ in range(3):
                message = simple.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
        assert sorted(received) == [1, 2, 3]
    finally:
        queue.bind(channel).delete()


# --- broker.send: delay()'s message in one LPUSH ------------------------------------------------

QUEUE = f"test-broker-send-{os.getpid()}"


@celery_app.task(name="tests.panel.test_broker.noted", queue=QUEUE)
def noted(*ids: int) -> None:
    """A task no worker consumes: its messages stay in QUEUE for the test to read."""


@pytest.fixture
def live_broker(settings, connection):
    """The app publishing for real (not eagerly) on the Redis broker; no template kept from
    before; QUEUE emptied after."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    old = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    broker._templates.clear()
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        yield client
    finally:
        celery_app.conf.task_always_eager = old
        broker._templates.clear()
        client.delete(QUEUE)
        client.close()


def _messages(client) -> list[dict]:
    """QUEUE's messages, oldest first (kombu LPUSHes), with their bodies decoded."""
    found = [json.loads(raw) for raw in reversed(client.lrange(QUEUE, 0, -1))]
    for message in found:
        message["body"] = json.loads(base64.b64decode(message["body"]))
    return found


def _refuse(*args, **kwargs):
    raise AssertionError("delay() called: the template was not used")


def test_send_pushes_the_message_delay_pushes(live_broker, monkeypatch):
    broker.send(noted, 5)  # no template yet: through delay(), which keeps one
    assert noted.name in broker._templates
    monkeypatch.setattr(noted, "delay", _refuse)
    before = time.time()
    broker.send(noted, 6, 7)
    by_delay, by_send = _messages(live_broker)
    # The call's own values: its id (the root's and the correlation's), arguments, publish time.
    task_id = by_send["headers"]["id"]
    assert task_id != by_delay["headers"]["id"]
    assert by_send["headers"]["root_id"] == by_send["properties"]["correlation_id"] == task_id
    assert by_send["properties"]["delivery_tag"] != by_delay["properties"]["delivery_tag"]
    assert by_send["headers"]["argsrepr"] == "(6, 7)"
    assert by_send["body"][0] == [6, 7]
    assert before <= by_send["headers"][PUBLISHED_AT_HEADER] <= time.time()
    # Everything else as delay() sent it, key by key and in the same order.
    for message in (by_delay, by_send):
        for name in ("id", "root_id", "argsrepr", PUBLISHED_AT_HEADER):
            message["headers"].pop(name)
        for name in ("correlation_id", "delivery_tag"):
            message["properties"].pop(name)
        message["body"][0] = None
    assert list(by_send) == list(by_delay)
    assert list(by_send["headers"]) == list(by_delay["headers"])
    assert by_send == by_delay


def test_a_message_send_pushed_is_received_and_run_as_delay_s(live_broker, connection):
    broker.send(noted, 1)
    broker.send(noted, 2)  # through the template
    received = []
    with connection.SimpleQueue(QUEUE) as simple:
        for _ in range(2):
            message = simple.get(timeout=5)
            received.append((message.headers["task"], message.payload))
            message.ack()
    callbacks = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert received == [(noted.name, [[1], {}, callbacks]), (noted.name, [[2], {}, callbacks])]


def test_a_connection_the_server_closed_is_replaced(live_broker):
    broker.send(noted, 1)
    broker.send(noted, 2)
    kept = broker._templates[noted.name].connection
    kept.command("CLIENT", "KILL", "ID", kept.command("CLIENT", "ID"))  # the server closes it
    broker.send(noted, 3)  # sent again once, on a new connection (panel.kept_redis)
    assert [m["body"][0] for m in _messages(live_broker)] == [[1], [2], [3]]


@pytest.mark.parametrize("case", ["eager", "worker task", "receiver", "not an int", "keyword"])
def test_send_goes_through_delay_when_the_message_would_differ(live_broker, monkeypatch, case):
    from celery import signals

    broker.send(noted, 1)  # the template
    sent = []
    monkeypatch.setattr(noted, "delay", lambda *args: sent.append(args))
    args: tuple = (2,)
    if case == "eager":
        celery_app.conf.task_always_eager = True  # the fixture sets it back
    elif case == "worker task":  # a task's messages carry its own ids
        monkeypatch.setattr(type(celery_app), "current_worker_task", property(lambda app: noted))
    elif case == "receiver":  # a receiver of the signals may change or watch the message
        monkeypatch.setattr(signals.after_task_publish, "receivers", [(0, _refuse)])
    elif case == "not an int":
        args = ("2",)
    else:
        args = (True,)
    broker.send(noted, *args)
    assert sent == [args]
    assert len(_messages(live_broker)) == 1


def test_only_plain_messages_become_templates(live_broker):
    noted.apply_async((1,), countdown=60)
    noted.apply_async((1,), expires=60)
    noted.apply_async((1,), priority=3)
    noted.apply_async((1,), link=noted.si(2))
    assert noted.name not in broker._templates
    noted.delay(1)
    assert noted.name in broker._templates
