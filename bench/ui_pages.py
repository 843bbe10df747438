"""Customer panel pages with a big catalog: time, SQL queries and bytes of /services/ and /order/.

    .venv/bin/python bench/ui_pages.py [--services 5000] [--repeat 5] [--no-debug]

It (re)creates the database `panel_bench_ui` on the DATABASE_URL's server (default
postgres://postgres@127.0.0.1:5432), migrates it, seeds a customer with a discount, a spending
tier and a few custom rates, --services enabled services in one category, 1,200 completed
orders (12 for each of 100 services, so that their average time has data; refreshed as the beat
task does) and 50 favourites, then asks for each page with Django's test client (signed
in, in-process: no web server) --repeat times and prints the median and best time, the queries
of one request and the size of the HTML. The database is dropped at the end. With --no-debug
it runs as production does (DEBUG off: Django's cached template loader), with
throwaway values for the settings DEBUG off requires. `--profile URL` (repeatable) then prints
where that page's time goes: cProfile over --repeat requests, the 30 costliest functions by
their own time.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# BENCH_DB names another database, for two runs side by side on one server.
DB_NAME = os.environ.get("BENCH_DB", "panel_bench_ui")
if not DB_NAME.isidentifier() or not DB_NAME.islower():
    sys.exit(f"BENCH_DB must be a lower-case identifier, not {DB_NAME!r}")


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/panel")
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/ui_pages.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{DB_NAME}"))
    return urlunsplit(parts._replace(path="/postgres"))


def recreate_database(admin_url: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def _debug_environment(*, debug: bool) -> None:
    """DEBUG on, or off with throwaway values for what panel/settings.py then requires (plain
    HTTP from the test client, static files without a manifest, mails kept on the machine)."""
    os.environ["DEBUG"] = "true" if debug else "false"
    if debug:
        return
    import secrets
    from base64 import urlsafe_b64encode

    os.environ.update(
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="testserver,localhost",
        FIELD_ENCRYPTION_KEYS=urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        SECURE_SSL_REDIRECT="false",
        ALLOW_CONSOLE_EMAIL="true",
        STATICFILES_BACKEND="django.contrib.staticfiles.storage.StaticFilesStorage",
    )


def seed(n_services: int):
    from decimal import Decimal

    from accounts.models import Tier
    from accounts.services import customer_create
    from catalog.models import Category, CustomerDiscount, CustomerRate, Service

    user = customer_create(username="bench", opening_balance=Decimal("1000"))
    CustomerDiscount.objects.create(user=user, percent=Decimal("5"))
    # A tier whose discount beats the customer's and stops at cost: the rates need the costs.
    Tier.objects.create(name="Bench tier", min_spent=Decimal(0), discount_percent=Decimal("7"))
    category = Category.objects.create(name="Instagram followers")
    services = Service.objects.bulk_create(
        [
            Service(
                name=f"Bench service {i} — followers, real-looking accounts",
                description="Start 0-1h, speed 10k/day.\n30 days refill, no drop guarantee.",
                category=category,
                rate=Decimal(i % 997) / 100 + Decimal("0.01"),
                min=10,
                max=100000,
                refill=i % 3 == 0,
                refill_days=30,
                cancel=i % 2 == 0,
                dripfeed=i % 5 == 0,
            )
            for i in range(n_services)
        ]
    )
    CustomerRate.objects.bulk_create(
        [CustomerRate(user=user, service=s, rate=Decimal("0.42")) for s in services[::500]]
    )
    _seed_orders(user, services)
    return user


def _seed_orders(user, services) -> None:
    """12 completed orders for each of the first 100 services, their average times computed as
    the beat task does, and 50 favourites."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from catalog.models import FavouriteService
    from orders.models import Order
    from orders.services import service_average_times_refresh

    now = timezone.now()
    Order.objects.bulk_create(
        [
            Order(
                user=user,
                service=services[i % 100],
                status=Order.Status.COMPLETED,
                link=f"https://example.com/p/{i}",
                quantity=1000,
                rate=Decimal("0.9"),
                charge=Decimal("0.90000"),
                remains=0,
                created_at=now - timedelta(hours=2, minutes=i % 60),
                finished_at=now - timedelta(hours=1),
            )
            for i in range(1200)
        ]
    )
    service_average_times_refresh()
    FavouriteService.objects.bulk_create(
        [FavouriteService(user=user, service=s) for s in services[::100]]
    )


def measure(client, url: str, repeat: int) -> tuple[float, float, float, int, int]:
    """Median and best wall time, median CPU time of this process (the Python side: steadier
    than wall time when other work loads the machine), queries and bytes of one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm-up: templates, connection
    times, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as ctx:
        body = client.get(url).content
    return (
        statistics.median(times),
        min(times),
        statistics.median(cpu),
        len(ctx.captured_queries),
        len(body),
    )


def profile(client, url: str, repeat: int) -> None:
    """cProfile over `repeat` requests of `url`: the functions that cost the most by themselves
    (the profiler slows Python code down several times: compare shares, not milliseconds)."""
    import cProfile
    import pstats

    client.get(url)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        client.get(url)
    profiler.disable()
    print(f"\n### {url}: {repeat} requests under cProfile\n")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-debug", action="store_true", help="DEBUG off, as in production")
    parser.add_argument("--profile", action="append", default=[], metavar="URL")
    opts = parser.parse_args()

    admin_url = _admin_url()
    recreate_database(admin_url)
    _debug_environment(debug=not opts.no_debug)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
    )
    import django

    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's host, and rendered templates
    try:
        user = seed(opts.services)
        client = Client()
        client.force_login(user)
        print(
            f"{opts.services:,} enabled services in one category, median (best) of "
            f"{opts.repeat}, Django test client, {os.cpu_count()} CPUs shared by all, "
            f"DEBUG={os.environ['DEBUG']}\n"
        )
        print("| page | median ms | best ms | CPU ms | SQL queries | HTML bytes |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        urls = ("/services/", "/services/?page=50", "/services/?q=service+42", "/services/?fav=1")
        for url in (*urls, "/order/", "/order/?service=4999"):
            median, best, cpu, queries, size = measure(client, url, opts.repeat)
            print(
                f"| `{url}` | {median * 1000:.0f} | {best * 1000:.0f} | {cpu * 1000:.0f} "
                f"| {queries} | {size:,} |"
            )
        for url in opts.profile:
            profile(client, url, opts.repeat)
    finally:
        from django.db import connections

        connections.close_all()
        if not opts.keep:
            recreate_database(admin_url, drop_only=True)


if __name__ == "__main__":
    main()
