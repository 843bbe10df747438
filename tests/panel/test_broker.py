"""panel.broker: kombu's Redis transport with its redis client kept between published messages
(kombu built a new one per message); a new pool (after a fork, or a closed channel) gets a new
client, and the messages still arrive."""

import os

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Queue

from panel.broker import Channel


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
