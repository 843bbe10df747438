"""panel.broker: kombu's Redis transport with its redis client kept between published messages
(kombu built a new one per message); a new pool (after a fork, or a closed channel) gets a new
client, and the messages still arrive. broker.send: task.delay()'s message, from the template
its transport keeps, in one LPUSH."""

import base64
import functools
import json
import os
import threading
import time
from dataclasses import replace

import pytest
import redis
from celery import Task
from django.conf import settings
from kombu import Connection, Exchange, Queue

from panel import broker
from panel.broker import Channel
from panel.celery import app as celery_app
from panel.kept_redis import KeptConnection
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
OTHER = f"{QUEUE}-other"


@celery_app.task(name="tests.panel.test_broker.noted", queue=QUEUE)
def noted(*ids: int) -> None:
    """A task no worker consumes: its messages stay in QUEUE for the test to read."""


@celery_app.task(name="tests.panel.test_broker.single", queue=QUEUE)
def single(order_id: int) -> None:
    """As `noted`, with one argument."""


@pytest.fixture
def live_broker(settings, connection):
    """The app publishing for real (not eagerly) on the Redis broker; no template kept from
    before; the queues emptied after."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    old = celery_app.conf.task_always_eager, celery_app.conf.task_send_sent_event
    celery_app.conf.task_always_eager = False
    broker._templates.clear()
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        yield client
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_send_sent_event = old
        broker._templates.clear()
        client.delete(QUEUE, OTHER)
        client.close()


def _messages(client, queue: str = QUEUE) -> list[dict]:
    """The queue's messages, oldest first (kombu LPUSHes), with their bodies decoded."""
    found = [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
    for message in found:
        message["body"] = json.loads(base64.b64decode(message["body"]))
    return found


def _without_the_calls_own(message: dict) -> dict:
    """The message less what differs between two calls: ids, arguments, publish time."""
    for name in ("id", "root_id", "argsrepr", PUBLISHED_AT_HEADER):
        message["headers"].pop(name)
    for name in ("correlation_id", "delivery_tag"):
        message["properties"].pop(name)
    message["body"][0] = None
    return message


def _refuse(*args, **kwargs):
    raise AssertionError("delay() called: the template was not used")


def test_send_pushes_the_message_a_fresh_delay_pushes(live_broker, monkeypatch):
    broker.send(noted, 5)  # no template yet: through delay(), which makes it
    assert noted.name in broker._templates
    before = time.time()
    with monkeypatch.context() as patched:
        patched.setattr(noted, "delay", _refuse)
        broker.send(noted, 6, 7)
    noted.delay(8)  # a message of Celery's own, made after send's
    _, by_send, by_delay = _messages(live_broker)
    task_id = by_send["headers"]["id"]
    assert task_id not in (by_delay["headers"]["id"], by_delay["headers"]["root_id"])
    assert by_send["headers"]["root_id"] == by_send["properties"]["correlation_id"] == task_id
    assert by_send["properties"]["delivery_tag"] != by_delay["properties"]["delivery_tag"]
    assert by_send["headers"]["argsrepr"] == "(6, 7)"
    assert by_send["body"][0] == [6, 7]
    assert before <= by_send["headers"][PUBLISHED_AT_HEADER] <= time.time()
    # Everything else as delay() sends it, key by key and in the same order.
    by_send, by_delay = _without_the_calls_own(by_send), _without_the_calls_own(by_delay)
    assert list(by_send) == list(by_delay)
    assert list(by_send["headers"]) == list(by_delay["headers"])
    assert by_send == by_delay


def test_a_message_sent_from_another_thread_has_that_thread_s_reply_address(live_broker):
    broker.send(noted, 1)
    broker.send(noted, 2)

    def in_thread():
        broker.send(noted, 3)
        noted.delay(4)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    replies = [m["properties"]["reply_to"] for m in _messages(live_broker)]
    assert replies[0] == replies[1] == celery_app.thread_oid
    assert replies[2] == replies[3] != celery_app.thread_oid  # delay() there says the same


def test_a_message_another_caller_sent_with_options_is_never_a_template(live_broker):
    noted.apply_async((1,), queue=OTHER, headers={"tenant": "x"}, time_limit=5)
    noted.apply_async((1,), ignore_result=False, countdown=60)
    assert noted.name not in broker._templates  # only send's own delay() makes one
    broker.send(noted, 2)
    broker.send(noted, 3)  # from the template
    noted.delay(4)
    _, by_send, by_delay = _messages(live_broker)[-3:]
    assert "tenant" not in by_send["headers"] and by_send["body"][0] == [3]
    assert _without_the_calls_own(by_send) == _without_the_calls_own(by_delay)
    assert len(_messages(live_broker, OTHER)) == 1


def test_a_message_send_pushed_is_received_as_delay_s(live_broker, connection):
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


def test_when_redis_does_not_take_it_delay_sends_it_and_the_template_is_made_again(
    live_broker, monkeypatch
):
    broker.send(noted, 1)
    nowhere = KeptConnection(redis.Connection, {"host": "127.0.0.1", "port": 9})
    monkeypatch.setitem(
        broker._templates, noted.name, replace(broker._templates[noted.name], connection=nowhere)
    )
    broker.send(noted, 2)  # refused twice: through delay(), with Celery's retries
    assert broker._templates[noted.name].connection is not nowhere
    broker.send(noted, 3)
    assert [m["body"][0] for m in _messages(live_broker)] == [[1], [2], [3]]


def test_the_arguments_are_checked_as_apply_async_checks_them(live_broker):
    broker.send(single, 1)
    with pytest.raises(TypeError):
        broker.send(single, 1, 2)
    assert [m["body"][0] for m in _messages(live_broker)] == [[1]]


def test_a_forked_child_makes_its_own_template(live_broker):
    broker.send(noted, 1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no template (its origin header names the parent)
        try:
            os.write(write, b"1" if not broker._templates else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)
    assert noted.name in broker._templates


def _wrapped(apply_async):
    """An integration's wrapper of Task.apply_async (Sentry's patches the class so)."""

    @functools.wraps(apply_async)
    def wrapper(*args, **kwargs):
        return apply_async(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize(
    "case",
    [
        "eager",
        "worker task",
        "sent events",
        "before receiver",
        "after receiver",
        "task_sent receiver",
        "wrapped apply_async",
        "a string",
        "a bool",
    ],
)
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
    elif case == "sent events":  # delay() then publishes a task-sent event too
        celery_app.conf.task_send_sent_event = True
    elif case.endswith("receiver"):  # a receiver may change or watch the message
        signal = {
            "before": signals.before_task_publish,
            "after": signals.after_task_publish,
            "task_sent": signals.task_sent,
        }[case.split()[0]]
        monkeypatch.setattr(signal, "receivers", [*signal.receivers, (0, _refuse)])
    elif case == "wrapped apply_async":
        monkeypatch.setattr(Task, "apply_async", _wrapped(Task.apply_async))
    else:
        args = ("2",) if case == "a string" else (True,)
    broker.send(noted, *args)
    assert sent == [args]
    assert len(_messages(live_broker)) == 1
