"""Redis commands sent on a connection kept for them, for the hot paths where redis-py's client
costs more CPU than the round trip: every API call's rate-limit script (accounts.ratelimit) and
every new order's task message (panel.broker.send).

redis-py's client takes a connection from its pool, checks it is clean (a poll of the socket),
wraps the command in its retry and observability layers and gives the connection back: 0.13-0.21
ms of CPU per command here, against 0.07-0.11 for the same command on the connection itself
(docs/api.md, "Sixth round"). A KeptConnection holds one redis-py Connection per thread (gunicorn's
gthread workers run requests on several) and per process (a forked child makes its own: it never
writes on its parent's socket), made from a pool's connection class and arguments, so database,
password, TLS and timeouts are the pool's. A command that finds its kept connection closed (by the
server, or a restart: redis-py reads the end of the stream, a ConnectionError) is sent once more
on a new one; a timeout is raised as it is, never waited out twice. Both are for commands that may
run twice (a rate-limit hit counted twice, a task message sent twice): a connection that breaks
after the server ran the command and before its reply came is rare, not impossible.

`kept_like(pool)` gives one KeptConnection per pool, shared by the cache's `get` and the
limiter's scripts: one more connection per thread to the Redis server, besides the pool's (and
one for the broker's messages)."""

import os
import threading
from typing import Any

import redis


class KeptConnection:
    def __init__(self, connection_class: type, connection_kwargs: dict[str, Any]) -> None:
        self._connection_class = connection_class
        self._connection_kwargs = dict(connection_kwargs)
        self._local = threading.local()

    @classmethod
    def like(cls, pool: Any) -> "KeptConnection":
        """A kept connection made as `pool` (a redis-py ConnectionPool) makes its own."""
        return cls(pool.connection_class, pool.connection_kwargs)

    def _connection(self) -> Any:
        local, pid = self._local, os.getpid()
        if getattr(local, "pid", None) != pid:
            local.connection, local.pid = self._connection_class(**self._connection_kwargs), pid
        return local.connection

    def command(self, *args: Any) -> Any:
        """The reply to one command; raises redis-py's errors (ResponseError for an error
        reply, after which the connection is still usable)."""
        connection = self._connection()
        for attempt in (1, 2):
            try:
                connection.send_command(*args)
                return connection.read_response()
            except (redis.TimeoutError, TimeoutError):  # redis-py's, or the socket's own
                connection.disconnect()  # its reply may still come: never read it for another
                raise
            except (redis.ConnectionError, OSError):
                connection.disconnect()  # the next attempt connects anew (redis-py shuts
                if attempt == 2:  # a socket down only in the process that opened it)
                    raise
        raise AssertionError("unreachable")


def kept_like(pool: Any) -> KeptConnection:
    """The one KeptConnection of this process made like `pool`'s connections, kept on the pool
    itself so that it goes with it (a pool's connection arguments refer back to the pool, so a
    registry of its own would keep every pool, and its sockets, alive). Two threads making it
    at once keep one of the two; the other was never used."""
    kept = pool.__dict__.get(_ATTRIBUTE)
    if kept is None:
        kept = pool.__dict__.setdefault(_ATTRIBUTE, KeptConnection.like(pool))
    return kept


_ATTRIBUTE = "_panel_kept_connection"
