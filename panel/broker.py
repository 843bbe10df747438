"""Celery's Redis broker transport: kombu's, with its redis client kept. kombu's channel builds a
new `redis.Redis` for every message it publishes (its table of about 170 reply callbacks filled
anew), which cost more CPU than the LPUSH it sends: a third of `order_submit.delay()`, the
enqueue of every new order (docs/api.md, Performance). The kept client holds no connection of
its own: the channel's pool does, and when kombu replaces the pool (after a fork, or once the
channel is closed) the next message builds a client for the new one. Set as
CELERY_BROKER_TRANSPORT when the broker is a redis:// URL (panel/settings.py)."""

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _kept_client: tuple[Any, Any] | None = None  # (the pool, its client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        # kombu's own private method, which its type information does not declare.
        if asynchronous:  # the worker's consuming client: kombu keeps it itself
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        kept = self._kept_client
        if kept is None or kept[0] is not pool:
            kept = self._kept_client = (pool, super()._create_client())  # type: ignore[misc]
        return kept[1]


class Transport(redis.Transport):
    Channel = Channel
