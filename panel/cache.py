"""The shared cache's Redis backend: Django's own, with one redis client kept per connection
pool. Django's RedisCacheClient builds a new `redis.Redis` on every cache call (its table of
reply callbacks filled anew, about 170 items), which cost an API `services` call more CPU than
the cache's round trip (docs/api.md, Performance). The client holds no connection of its own:
the pool does, and redis-py rebuilds a pool in a forked child, so one kept from before gunicorn
forks its workers still works in each of them.

`get`, the cache's most frequent read (the catalog's version on every API `services` call),
goes on a connection kept for it (panel.kept_redis) instead of the pooled client."""

from typing import Any

from django.core.cache.backends import redis as django_redis

from panel.kept_redis import kept_like


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[Any, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django's own private helpers (not in django-stubs), as its get_client uses them.
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(pool)
        if client is None:
            client = self._client(connection_pool=pool)  # type: ignore[attr-defined]
            client = self._clients.setdefault(pool, client)
        return client

    def get(self, key: Any, default: Any) -> Any:
        # What Django's get does (a read server's GET, the serializer's loads), on the kept
        # connection made like that server's pool's.
        pool = self._get_connection_pool(False)  # type: ignore[attr-defined]
        value = kept_like(pool).command("GET", key)
        return default if value is None else self._serializer.loads(value)  # type: ignore[attr-defined]


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
