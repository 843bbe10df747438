"""panel.cache.RedisCache: Django's Redis cache with its redis client kept, not built again on
every call; it still works in a forked child (a gunicorn worker) and from several threads. Its
`get` goes on a kept connection (panel.kept_redis) and reads what the other commands wrote."""

import os
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.cache import caches

from panel.cache import RedisCache
from panel.kept_redis import kept_like


@pytest.fixture
def backend():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    cache = RedisCache(settings.REDIS_URL, {"KEY_PREFIX": f"test-cache-{os.getpid()}"})
    yield cache
    cache.clear()


def test_the_settings_use_it_with_redis():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    assert isinstance(caches["default"], RedisCache)


def test_one_client_serves_every_call(backend):
    client = backend._cache.get_client(write=True)
    assert backend._cache.get_client() is client
    backend.set("a", {"x": 1})
    assert backend.get("a") == {"x": 1}
    assert backend.add("n", 1) and backend.incr("n") == 2
    backend.delete("a")
    assert backend.get("a") is None and backend._cache.get_client() is client


def test_a_forked_child_uses_the_kept_client(backend):
    backend.set("before-fork", "parent")
    client = backend._cache.get_client()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same client object, its pool's connections its own
        try:
            ok = backend._cache.get_client() is client and backend.get("before-fork") == "parent"
            backend.set("from-child", "child")
            # redis-py reset the pool for this process: no socket shared with the parent.
            ok = ok and client.connection_pool.pid == os.getpid()
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert backend.get("from-child") == "child" and backend.get("before-fork") == "parent"


def test_threads_share_it(backend):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: backend.set(f"t{n}", n), range(200)))
    assert backend.get_many([f"t{n}" for n in range(200)]) == {f"t{n}": n for n in range(200)}


def test_get_reads_what_the_client_wrote_on_its_kept_connection(backend):
    values = {"int": 7, "big": 2**70, "text": "é", "dict": {"a": [1, 2]}, "money": Decimal("1.5")}
    backend.set_many(values)
    pool = backend._cache._get_connection_pool(False)
    assert "_panel_kept_connection" not in pool.__dict__
    for name, value in values.items():
        assert backend.get(name) == value
    assert backend.get("missing") is None and backend.get("missing", "default") == "default"
    kept = pool.__dict__["_panel_kept_connection"]  # made by the gets above
    assert kept_like(pool) is kept
    first = kept.command("CLIENT", "ID")
    backend._cache.get_client().client_kill_filter(_id=first)  # the server closes it
    assert backend.get("text") == "é"  # read again on a new connection
    assert kept.command("CLIENT", "ID") != first
    assert backend.get_many(["int", "text"]) == {"int": 7, "text": "é"}  # the pooled client
