"""Django's PostgreSQL backend, with a health check that sends nothing while the connection is
quiet, and prepared statements for the statements the panel marks.

With CONN_HEALTH_CHECKS, Django runs `SELECT 1` before each request reuses a kept connection:
one more round trip per request, as costly in a worker's time as the API's whole key lookup
(docs/api.md, Performance). Yet a server that ends a connection says so on its socket: a
backend that is terminated, restarted, timed out or dropped by a proxy sends an error and
closes, and an idle connection's socket is then readable. So the check here first asks the
socket, without a round trip, whether anything arrived since the last answer: nothing (the
common case) means the connection is as the last request left it, and nothing is sent. Anything
at all, a connection psycopg already knows is broken, or one no request used in the last
QUIET_FOR_SECONDS (a peer may vanish without a word: a failover that moved the database's
address) gets Django's own check, `SELECT 1`, which reads what came and closes the connection if
it is gone: the request then opens a new one instead of failing.

Neither check sees a network cut between two requests a moment apart: `SELECT 1` would wait for
TCP's timeout there as the request's own query does.

Prepared statements (settings: DATABASE_PREPARED_STATEMENTS): with server-side binding, a
statement that starts with accounts.sql.PREPARED (the API's key lookup, `status`'s orders,
the service lookup of an order, the debit) is prepared on its connection the first time it
runs there, and PostgreSQL plans it once instead of on every run. Every other statement is never
prepared: a generic plan suits lookups by a unique key, not the ORM's queries, whose best plan
may depend on their parameters' values.
"""

import functools
import select
import time
from typing import Any, cast

from django.db.backends.postgresql import base
from psycopg import _queries, errors, pq

from accounts.sql import PREPARED

# A connection a request used less than this long ago is trusted on its quiet socket; one idle
# for longer gets SELECT 1 all the same. A peer can vanish without a word: a failover that moves
# the database's address, a firewall or NAT that forgot the connection. Only a round trip finds
# that out (the new host's reset), and a connection idle for seconds can afford one.
QUIET_FOR_SECONDS = 5.0


# A marked statement's conversion (its %s placeholders into $1, $2...), kept. psycopg keeps the
# conversions of statements of at most 50 parameters and 4 KB only, so that an ORM's bulk
# INSERTs of every length do not fill its cache; an order's debit (its INSERT of the order's
# columns inside) has more than 60, and splitting its text again cost 265 µs per order. There
# are a few marked statements, each written once per database (accounts.sql).
_convert_marked = functools.lru_cache(maxsize=64)(_queries._query2pg_nocache)


class _Query(_queries.PostgresQuery):
    """psycopg's query, converting a marked statement once per process (_convert_marked) with
    psycopg's own conversion. Its module is private, so psycopg's version is pinned and
    tests/panel/test_db_health_check.py runs marked and unmarked statements through it."""

    __slots__ = ()

    def convert(self, query: Any, vars: Any) -> None:
        if vars is None or not isinstance(query, str) or not query.startswith(PREPARED):
            return super().convert(query, vars)
        encoding = self._tx.encoding
        self.query, self._want_formats, self._order, self._parts = _convert_marked(
            query.encode(encoding), encoding
        )
        self.dump(vars)
        return None


class ServerBindingCursor(base.ServerBindingCursor):
    """Django's server-side binding cursor, preparing the marked statements only.

    A prepared statement whose result columns changed type since it was prepared (a migration
    run by another process) fails with "cached plan must not change result type", on every run
    until the connection goes. Outside a transaction the marked statement is then run again
    after DEALLOCATE ALL (psycopg forgets its own prepared statements with it): the failed run
    wrote nothing. Inside one, the error goes up; the transaction's ROLLBACK makes psycopg
    deallocate them all. Marked statements are converted once (_Query)."""

    _query_cls = _Query

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        marked = isinstance(query, str) and query.startswith(PREPARED)
        if kwargs.get("prepare") is None:
            kwargs["prepare"] = marked
        run = super().execute  # type: ignore[misc]  # psycopg's (not in django-stubs)
        try:
            return run(query, params, **kwargs)
        except errors.FeatureNotSupported:
            connection = cast(Any, self).connection  # psycopg's cursor's (not in django-stubs)
            idle = connection.info.transaction_status == pq.TransactionStatus.IDLE
            if not (marked and idle):
                raise
            connection.execute("DEALLOCATE ALL")
            return run(query, params, **kwargs)


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's BaseDatabaseWrapper (not in django-stubs).
    health_check_enabled: bool
    health_check_done: bool
    # When a request last checked this connection (time.monotonic()): 0, never.
    checked_at = 0.0

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.ServerBindingCursor:
            params["cursor_factory"] = ServerBindingCursor
        return params

    def connect(self) -> None:
        super().connect()
        self.checked_at = time.monotonic()  # a new connection is as good as checked

    def close_if_health_check_failed(self) -> None:
        if (
            self.pool
            or self.connection is None
            or not self.health_check_enabled
            or self.health_check_done
        ):
            return
        now = time.monotonic()
        recent = now - self.checked_at < QUIET_FOR_SECONDS
        if not (recent and self.is_quiet()) and not self.is_usable():
            self.close()
        self.health_check_done = True
        self.checked_at = now

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
