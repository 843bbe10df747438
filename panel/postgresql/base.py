"""Django's PostgreSQL backend, with a health check that sends nothing while the connection is
quiet, and prepared statements for the statements the panel marks.

With CONN_HEALTH_CHECKS, Django runs `SELECT 1` before each request reuses a kept connection:
one more round trip per request, as costly in a worker's time as the API's whole key lookup
(docs/api.md, Performance). Yet a server that ends a connection says so on its socket: a
backend that is terminated, restarted, timed out or dropped by a proxy sends an error and
closes, and an idle connection's socket is then readable. So the check here first asks the
socket, without a round trip, whether anything arrived since the last answer: nothing (the
common case) means the connection is as the last request left it, and nothing is sent. Anything
at all, or a connection psycopg already knows is broken, gets Django's own check, `SELECT 1`,
which reads what came and closes the connection if it is gone: the request then opens a new one
instead of failing.

What neither check can see is a peer that vanished without a word (a network cut): `SELECT 1`
would wait for TCP's timeout there as the request's own query does.

Prepared statements (settings: DATABASE_PREPARED_STATEMENTS): with server-side binding, a
statement that starts with accounts.sql.PREPARED (the API's key lookup, the service lookup of an
order, the debit) is prepared on its connection the first time it runs there, and PostgreSQL
plans it once instead of on every run. Every other statement is never prepared: a generic plan
suits lookups by a unique key, not the ORM's queries, whose best plan may depend on their
parameters' values.
"""

import select
from typing import Any

from django.db.backends.postgresql import base
from psycopg import pq

from accounts.sql import PREPARED


class ServerBindingCursor(base.ServerBindingCursor):
    """Django's server-side binding cursor, preparing the marked statements only."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("prepare") is None:
            kwargs["prepare"] = isinstance(query, str) and query.startswith(PREPARED)
        return super().execute(query, params, **kwargs)  # type: ignore[misc]  # psycopg's (not in django-stubs)


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's BaseDatabaseWrapper (not in django-stubs).
    health_check_enabled: bool
    health_check_done: bool

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.ServerBindingCursor:
            params["cursor_factory"] = ServerBindingCursor
        return params

    def close_if_health_check_failed(self) -> None:
        if (
            self.pool
            or self.connection is None
            or not self.health_check_enabled
            or self.health_check_done
        ):
            return
        if not self.is_quiet() and not self.is_usable():
            self.close()
        self.health_check_done = True

    def is_quiet(self) -> bool:
        """True when the connection is open, idle and its socket has nothing to read: nothing
        came from the server since its last answer. False says only that a round trip is
        needed to know more."""
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        pgconn = connection.pgconn
        if pgconn.status != pq.ConnStatus.OK or (
            pgconn.transaction_status != pq.TransactionStatus.IDLE
        ):
            return False
        try:
            fd = pgconn.socket
        except Exception:  # psycopg.OperationalError: no socket
            return False
        return not _readable(fd)


def _readable(fd: int) -> bool:
    """Whether `fd` has data, an end of file or an error waiting (no wait: a timeout of 0)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))  # POLLHUP and POLLERR are always reported
    readable, _, errored = select.select([fd], [], [fd], 0)  # Windows: sockets only, as here
    return bool(readable or errored)
