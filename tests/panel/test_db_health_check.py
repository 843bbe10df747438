"""panel.postgresql: Django's PostgreSQL backend whose health check (CONN_HEALTH_CHECKS) sends
`SELECT 1` only when the kept connection's socket has something to read. A quiet connection is
reused with no statement before the request's own; one the server ended (terminated, restarted)
is replaced before the request's first query, as Django's own check does. And the settings'
prepared statements: a statement run often is planned once per connection."""

import copy
from unittest import mock

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections

from accounts.models import User
from panel.postgresql.base import QUIET_FOR_SECONDS, DatabaseWrapper

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def test_the_settings_use_it_on_postgresql():
    assert settings.DATABASES["default"]["ENGINE"] == "panel.postgresql"
    assert isinstance(connections["default"], DatabaseWrapper)


@pytest.fixture
def kept():
    """A second connection to the test database, kept between "requests" with health checks on,
    as production's CONN_MAX_AGE and DATABASE_CONN_HEALTH_CHECKS set it."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict.update(CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=True)
    wrapper = DatabaseWrapper(settings_dict, alias="health-check-test")
    yield wrapper
    wrapper.close()


def _backend_pid(wrapper: DatabaseWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _next_request(wrapper: DatabaseWrapper) -> None:
    """What Django does for a kept connection as a request starts (close_old_connections)."""
    wrapper.close_if_unusable_or_obsolete()


def _spy(wrapper: DatabaseWrapper) -> mock.MagicMock:
    return mock.patch.object(wrapper, "is_usable", wraps=wrapper.is_usable)


def test_a_quiet_connection_is_reused_without_a_round_trip(kept):
    first = _backend_pid(kept)
    for _ in range(3):
        _next_request(kept)
        assert kept.is_quiet()
        with _spy(kept) as is_usable:
            assert _backend_pid(kept) == first
        is_usable.assert_not_called()  # no SELECT 1


def test_a_connection_the_server_ended_is_replaced_before_the_first_query(kept):
    first = _backend_pid(kept)
    with connection.cursor() as cursor:  # the test's own connection ends the kept one
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        assert cursor.fetchone() == (True,)
    _wait_until_readable(kept)
    _next_request(kept)
    assert not kept.is_quiet()
    with _spy(kept) as is_usable:
        second = _backend_pid(kept)  # no error: a new connection
    is_usable.assert_called_once()  # the socket spoke: Django's check, which failed
    assert second != first
    _next_request(kept)
    assert kept.is_quiet()


def test_a_message_on_a_healthy_connection_costs_one_check_and_keeps_it(kept):
    # A notification arrives while the connection is idle: the socket is readable though the
    # connection is fine. SELECT 1 reads it and the connection stays.
    with kept.cursor() as cursor:
        cursor.execute("LISTEN panel_health_check_test")
    first = _backend_pid(kept)
    other = psycopg.connect(**kept.get_connection_params(), autocommit=True)
    with other:
        other.execute("NOTIFY panel_health_check_test")
    _wait_until_readable(kept)
    _next_request(kept)
    with _spy(kept) as is_usable:
        assert _backend_pid(kept) == first
    is_usable.assert_called_once()
    _next_request(kept)
    assert kept.is_quiet()


def test_a_connection_idle_for_a_while_gets_a_round_trip_all_the_same(kept):
    # A peer can vanish without closing the socket (a failover that moved the address): only a
    # round trip tells, and a connection no request used for seconds gets one.
    first = _backend_pid(kept)
    kept.checked_at -= QUIET_FOR_SECONDS + 1
    _next_request(kept)
    assert kept.is_quiet()
    with _spy(kept) as is_usable:
        assert _backend_pid(kept) == first
    is_usable.assert_called_once()
    _next_request(kept)
    with _spy(kept) as is_usable:  # checked just now: trusted on its quiet socket again
        _backend_pid(kept)
    is_usable.assert_not_called()


def test_a_prepared_statement_survives_a_column_type_change_by_another_process(kept):
    """A migration in another process changes a column a prepared statement returns: PostgreSQL
    refuses the cached plan ("cached plan must not change result type"); the statement is run
    again after DEALLOCATE ALL instead of failing on every run until the connection goes."""
    from accounts.sql import prepared

    other = psycopg.connect(**kept.get_connection_params(), autocommit=True)
    other.execute("CREATE TABLE prepared_probe (name varchar(10))")
    try:
        other.execute("INSERT INTO prepared_probe VALUES ('a')")
        sql = prepared("SELECT name FROM prepared_probe WHERE name = %s")
        for _ in range(3):
            with kept.cursor() as cursor:
                cursor.execute(sql, ["a"])
                assert cursor.fetchall() == [("a",)]
        other.execute("ALTER TABLE prepared_probe ALTER COLUMN name TYPE varchar(20)")
        for _ in range(2):
            with kept.cursor() as cursor:
                cursor.execute(sql, ["a"])
                assert cursor.fetchall() == [("a",)]
    finally:
        other.execute("DROP TABLE prepared_probe")
        other.close()


def test_a_connection_in_a_transaction_is_not_quiet(kept):
    _backend_pid(kept)
    kept.connection.execute("BEGIN")
    assert not kept.is_quiet()
    kept.connection.execute("ROLLBACK")
    assert kept.is_quiet()


def test_no_check_at_all_when_health_checks_are_off(kept):
    kept.settings_dict["CONN_HEALTH_CHECKS"] = False
    _backend_pid(kept)
    _next_request(kept)
    with mock.patch.object(kept, "is_quiet") as is_quiet, _spy(kept) as is_usable:
        _backend_pid(kept)
    is_quiet.assert_not_called()
    is_usable.assert_not_called()


def _wait_until_readable(wrapper: DatabaseWrapper, timeout: float = 5.0) -> None:
    """The server's message reaches the socket a moment after the statement that sent it."""
    import select
    import time

    fd = wrapper.connection.pgconn.socket
    deadline = time.monotonic() + timeout
    while not select.select([fd], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server's message never arrived"


def test_a_marked_statement_is_prepared_and_planned_once(alice):
    """With the settings' server-side binding, the API's key lookup (marked PREPARED) is a
    prepared statement from its first run: PostgreSQL plans it once per connection. A statement
    not marked is never prepared, however often it runs."""
    from accounts.selectors import api_key_get_user
    from accounts.services import api_key_issue
    from accounts.sql import PREPARED

    assert connections["default"].settings_dict["OPTIONS"]["server_side_binding"] is True
    alice_key = api_key_issue(user=alice).raw
    for _ in range(8):
        assert api_key_get_user(raw_key=alice_key) is not None
        assert User.objects.filter(pk=alice.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        prepared = cursor.fetchall()
    assert [runs for sql, runs in prepared if "key_hash" in sql] == [8]
    assert all(sql.startswith(PREPARED) for sql, _ in prepared), prepared


def test_a_marked_statement_with_many_parameters_is_converted_once(alice):
    """psycopg keeps the conversion (%s into $n) of statements of at most 50 parameters only;
    a marked statement's is kept whatever its length: an order's debit has more than 60."""
    from accounts.sql import PREPARED
    from panel.postgresql.base import _convert_marked

    values = list(range(60))
    sql = f"{PREPARED}SELECT {', '.join(['%s::int'] * len(values))}"
    before = _convert_marked.cache_info()
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            assert list(cursor.fetchone()) == values
    after = _convert_marked.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)
    with connection.cursor() as cursor:  # not marked: psycopg's own conversion, as before
        cursor.execute(sql.removeprefix(PREPARED), values)
        assert list(cursor.fetchone()) == values
    assert _convert_marked.cache_info() == after
