"""panel.kept_redis: commands on one redis-py connection per thread and process, sent again
once on a new connection when the kept one broke."""

import contextlib
import gc
import os
import socket
import threading
import weakref

import pytest
import redis
from django.conf import settings

from panel.kept_redis import KeptConnection, kept_like


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


def test_a_timeout_is_raised_without_sending_again():
    """A server that takes the connection and never answers: one attempt, not two (the
    command may have run; its reply must not be waited out twice)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    kept = KeptConnection(
        redis.Connection, {"host": "127.0.0.1", "port": port, "socket_timeout": 0.3}
    )
    try:
        with pytest.raises(redis.TimeoutError):
            kept.command("PING")
        listener.settimeout(0.1)
        accepted = []
        with contextlib.suppress(TimeoutError):
            while True:
                accepted.append(listener.accept()[0])
        assert len(accepted) == 1
        for sock in accepted:
            sock.close()
    finally:
        listener.close()


def test_one_kept_connection_per_pool_for_the_cache_and_the_limiter():
    """The cache's get and both of the limiter's scripts share one kept connection."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    from accounts import ratelimit

    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        pytest.skip("needs Django's Redis cache")
    pool = backend._cache.get_client(write=True).connection_pool
    pool.__dict__.pop("_panel_kept_connection", None)
    ratelimit._scripts.pop(backend, None)  # made anew below, on this pool's kept connection
    backend.get("anything")
    kept = pool.__dict__["_panel_kept_connection"]  # made by the cache's get
    assert kept_like(pool) is kept
    ratelimit.rate_limit_hit(key="test:kept", limit=5, period=10)
    ratelimit.rate_limit_hit_all([("test:kept:all", 5, 10)])
    scripts = ratelimit._scripts[backend]
    assert len(scripts) == 2
    assert {id(script.connection) for script in scripts.values()} == {id(kept)}


def test_a_pool_and_its_kept_connection_go_together():
    """kept_like keeps nothing alive: once the pool is dropped, it and its sockets are freed."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    pool = redis.ConnectionPool.from_url(settings.REDIS_URL)
    kept_like(pool).command("PING")
    gone = weakref.ref(pool)
    del pool
    gc.collect()
    assert gone() is None
