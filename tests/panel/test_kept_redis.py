"""panel.kept_redis: commands on one redis-py connection per thread and process, sent again
once on a new connection when the kept one broke."""

import os
import threading

import pytest
import redis
from django.conf import settings

from panel.kept_redis import KeptConnection


@pytest.fixture
def kept():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    pool = redis.ConnectionPool.from_url(settings.REDIS_URL)
    yield KeptConnection.like(pool)
    pool.disconnect()


def _id(kept: KeptConnection) -> int:
    return kept.command("CLIENT", "ID")


def test_one_connection_per_thread(kept):
    first = _id(kept)
    assert _id(kept) == first
    other = []
    thread = threading.Thread(target=lambda: other.append(_id(kept)))
    thread.start()
    thread.join()
    assert other and other[0] != first
    assert _id(kept) == first


def test_a_connection_the_server_closed_is_replaced(kept):
    first = _id(kept)
    redis.Redis.from_url(settings.REDIS_URL).client_kill_filter(_id=first)
    assert kept.command("PING") in (b"PONG", "PONG", True)  # sent again on a new connection
    assert _id(kept) != first


def test_a_forked_child_makes_its_own_and_leaves_the_parents_alone(kept):
    first = _id(kept)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own connection, the parent's socket untouched
        try:
            os.write(write, str(_id(kept)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = int(os.read(read, 64) or 0)
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child != first
    assert _id(kept) == first  # the parent's connection still works, without reconnecting


def test_an_error_reply_is_raised_and_the_connection_kept(kept):
    first = _id(kept)
    key = f"test-kept-{os.getpid()}"
    kept.command("SET", key, "text")
    try:
        with pytest.raises(redis.ResponseError):
            kept.command("INCR", key)
        assert _id(kept) == first
    finally:
        kept.command("DEL", key)


def test_a_server_that_does_not_answer_raises_after_the_second_try():
    kept = KeptConnection(redis.Connection, {"host": "127.0.0.1", "port": 9, "socket_timeout": 1})
    with pytest.raises(redis.ConnectionError):
        kept.command("PING")
