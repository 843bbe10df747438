"""Before the tests: make sure PostgreSQL and Redis answer, and create the database.

The suite must run against the real services; when one is down this stops with a message that
says which and how to start it, instead of letting the tests fall back to SQLite.
"""

import os
import sys
from urllib.parse import urlparse

import psycopg
import redis
from psycopg import sql


def fail(message: str) -> None:
    print(f"check_services: {message}", file=sys.stderr)
    sys.exit(2)


def check_postgres(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        fail(f"DATABASE_URL must point at PostgreSQL for the tests, not {parsed.scheme!r}.")
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"check_services: created database {name}")
    except psycopg.OperationalError as exc:
        fail(
            f"PostgreSQL at {parsed.hostname}:{parsed.port or 5432} is unreachable ({exc}).\n"
            "Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
            "start`) or point DATABASE_URL at a running server."
        )


def check_redis(url: str) -> None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        fail(
            f"Redis at {url} is unreachable ({exc}).\n"
            "Start it (e.g. `redis-server --daemonize yes --bind 127.0.0.1 --port 6379`) or point "
            "REDIS_URL at a running server."
        )


def main() -> None:
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url or not redis_url:
        fail("DATABASE_URL and REDIS_URL must be set for the tests (the Makefile sets defaults).")
    check_postgres(database_url)
    check_redis(redis_url)
    print("check_services: PostgreSQL and Redis are up.")


if __name__ == "__main__":
    main()
