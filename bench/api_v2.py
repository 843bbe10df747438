"""Reseller API benchmark: /api/v2 on PostgreSQL behind gunicorn on this machine.

    .venv/bin/python bench/api_v2.py [--duration 5] [--rounds 3] [--concurrency 4] [--workers 2]
        [--debug]
        [--worker-class sync|gthread --threads N] [--calls balance,status] [--profile N]
        [--profile-lines 25]

It (re)creates the database `panel_api_bench` (--database) on the DATABASE_URL's server (default
postgres://postgres@127.0.0.1:5432), migrates it, seeds one customer, 5,000 services and 1,000
orders, analyzes them (as autovacuum would on a production server), and starts gunicorn (sync
workers by default, settings bench.api_v2_settings) on a loopback port. DEBUG is off, as production runs (SECRET_KEY and the other settings production
requires are set to throwaway values, SECURE_SSL_REDIRECT off: a TLS proxy is not part of the
bench); --debug runs it with DEBUG=true (Django then keeps every query of a request in memory).
Then, for each call, a load generator of --concurrency processes (requests sessions) sends it
for --duration seconds (at most --max-requests), after a short warm-up. It does so in --rounds
rounds of every call in turn, each round's ceiling measured at its start and at its end (the
mean of both is that round's ceiling): on a shared machine whose speed drifts, a call and its
ceiling are then measured at nearly the same time. The table gives, as medians over the
rounds, requests per second, its ratio to its round's ceiling, p50 and p95 latency; then the
requests and errors of all rounds, and the SQL queries of one call after a first one (counted
in-process with CaptureQueriesContext). The ceiling is a bare Django JSON view served by the same
gunicorn through the same middleware (bench/api_v2_urls.py). The ratio is what compares between
runs: the absolute figures move with the machine's load.

--profile N skips gunicorn: it runs each call N times in-process (Django's test client, a form
body as the load generator sends), first without a profiler (its CPU time per call,
time.process_time: the figure that compares on a loaded machine, and the CPU time of the
connection's PostgreSQL backend per call), then under cProfile, and prints where the time went
(the top --profile-lines functions by cumulative time, and by own time).

`add` orders a service mapped to an upstream provider: the order is charged, saved and its
placement enqueued on the Redis broker (REDIS_URL's database), where no worker takes it, so it
stays queued and nothing leaves the machine. The broker queue is purged at the end.

The load generator shares the machine's CPUs with gunicorn and PostgreSQL, so the figures are a
floor for the server, and comparable between rows. It reads each answer whole but decompresses
only its first bytes (to tell an error): decompressing the 1.3 MB price list on every call
would measure the load generator, not the server.
"""

import argparse
import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = "panel_api_bench"


# What panel/settings.py requires when DEBUG is off, as throwaway values (never a real secret).
PRODUCTION_ENV = {
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "FIELD_ENCRYPTION_KEYS": "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA=",
    "ALLOW_CONSOLE_EMAIL": "true",
    "SECURE_SSL_REDIRECT": "false",
}


def prepare_environment(*, debug: bool, db_name: str = DB_NAME) -> None:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/panel")
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/api_v2.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    if not db_name.replace("_", "").isalnum():
        sys.exit(f"--database takes a plain name, not {db_name!r}")
    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db_name}")
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{db_name}"))
    os.environ["DEBUG"] = "true" if debug else "false"
    if not debug:
        for name, value in PRODUCTION_ENV.items():
            os.environ.setdefault(name, value)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.api_v2_settings"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
    )


def seed(n_services: int, n_orders: int) -> dict:
    """The customer, its key, the services and orders; returns what the calls need."""
    from decimal import Decimal

    from accounts.services import api_key_issue, customer_create
    from catalog.models import Category, Service, UpstreamService
    from orders.models import Order
    from providers.models import Provider

    user = customer_create(username="bench", opening_balance=Decimal("1000000000"))
    key = api_key_issue(user=user).raw
    categories = Category.objects.bulk_create(
        [Category(name=f"Category {i}", sort_order=i) for i in range(50)]
    )
    services = Service.objects.bulk_create(
        [
            Service(
                name=f"Bench service {i} — followers, real-looking accounts",
                description="Start 0-1h, speed 10k/day, 30 days refill.",
                category=categories[i % len(categories)],
                rate=Decimal(i % 997) / 100 + Decimal("0.01"),
                min=10,
                max=100000,
                refill=i % 3 == 0,
                cancel=i % 2 == 0,
                dripfeed=i % 5 == 0,
            )
            for i in range(n_services)
        ]
    )
    provider = Provider(name="bench-upstream", api_url="http://127.0.0.1:9/api/v2")
    provider.set_api_key("bench-upstream-key")
    provider.save()
    upstream = UpstreamService.objects.create(
        provider=provider, service_id="1", name="Upstream", rate=Decimal("0.5"), min=10, max=100000
    )
    mapped = services[0]
    Service.objects.filter(pk=mapped.pk).update(upstream=upstream)
    statuses = [Order.Status.IN_PROGRESS, Order.Status.COMPLETED, Order.Status.PARTIAL]
    orders = Order.objects.bulk_create(
        [
            Order(
                user=user,
                service=services[i % len(services)],
                status=statuses[i % 3],
                link=f"https://example.com/p/{i}",
                quantity=1000,
                rate=Decimal("0.9"),
                charge=Decimal("0.90000"),
                start_count=100 + i,
                remains=i % 1000,
            )
            for i in range(n_orders)
        ]
    )
    analyze()
    return {"key": key, "add_service": mapped.pk, "order_ids": [o.pk for o in orders[:100]]}


def analyze() -> None:
    """The planner's statistics of the seeded tables, as autovacuum gathers them within a
    minute on a production server. Where it is off (as on the machine these figures come
    from), every statement would be planned for empty tables, and the plans would change
    mid-run if it ran."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def scenarios(seeded: dict) -> list[tuple[str, str, dict, dict]]:
    key = seeded["key"]
    ids = ",".join(str(i) for i in seeded["order_ids"])
    add = {
        "key": key,
        "action": "add",
        "service": str(seeded["add_service"]),
        "link": "https://example.com/bench",
        "quantity": "100",
    }
    return [
        # name, path, form data, extra headers
        ("ceiling (bare Django JSON view)", "/bench/ceiling", {}, {}),
        ("balance", "/api/v2", {"key": key, "action": "balance"}, {}),
        ("status, 100 ids", "/api/v2", {"key": key, "action": "status", "orders": ids}, {}),
        ("services, 5,000 (gzip)", "/api/v2", {"key": key, "action": "services"}, {}),
        (
            "services, 5,000 (no gzip)",
            "/api/v2",
            {"key": key, "action": "services"},
            {"Accept-Encoding": "identity"},
        ),
        ("add (placement left queued)", "/api/v2", add, {}),
    ]


def count_queries(path: str, data: dict) -> int | None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    if not data:
        return 0
    client = Client(HTTP_HOST="127.0.0.1")
    # After one call: the cached `services` answer built, the key's last use written, as under
    # load (the first call after the seed counted the build, 3 queries instead of 2).
    client.post(path, data)
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(path, data)
    assert response.status_code == 200 and b'"error"' not in response.content[:200], (
        response.content[:200]
    )
    return len(ctx.captured_queries)


def services_size(key: str) -> str:
    import gzip

    from django.test import Client

    body = Client(HTTP_HOST="127.0.0.1").post("/api/v2", {"key": key, "action": "services"}).content
    return f"services answer: {len(body):,} bytes, {len(gzip.compress(body)):,} gzipped"


def _worker(args) -> tuple[list[float], int]:
    import requests

    url, data, headers, until, cap = args
    session = requests.Session()
    latencies: list[float] = []
    errors = 0
    while time.monotonic() < until and len(latencies) < cap:
        started = time.perf_counter()
        response = session.post(url, data=data, headers=headers, timeout=30, stream=True)
        body = response.raw.read(decode_content=False)  # every byte, as sent
        latencies.append(time.perf_counter() - started)
        response.raw.release_conn()  # back to the session's pool, as .content would
        if response.status_code != 200 or b'"error"' in _head(response, body):
            errors += 1
    return latencies, errors


def _head(response, body: bytes) -> bytes:
    """The first bytes of the answer, decompressed: the load generator shares the CPUs with the
    server, so it does not decompress a whole 1.3 MB price list per call (a client elsewhere
    would, on its own machine)."""
    if response.headers.get("Content-Encoding") == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, 100)
    return body[:100]


def load(url: str, data: dict, headers: dict, *, concurrency: int, duration: float, cap: int):
    with multiprocessing.Pool(concurrency) as pool:
        # Warm-up: connections, gunicorn workers' first requests, PostgreSQL caches.
        pool.map(_worker, [(url, data, headers, time.monotonic() + 0.5, 50)] * concurrency)
        started = time.monotonic()
        args = [(url, data, headers, started + duration, cap // concurrency)] * concurrency
        results = pool.map(_worker, args)
        wall = time.monotonic() - started
    latencies = sorted(x for lats, _ in results for x in lats)
    errors = sum(e for _, e in results)
    p95 = latencies[int(len(latencies) * 0.95) - 1] if latencies else float("nan")
    return len(latencies) / wall, statistics.median(latencies), p95, len(latencies), errors


def start_gunicorn(port: int, workers: int, worker_class: str, threads: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "panel.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/bench/ceiling", timeout=10)
            return process
        except requests.RequestException:
            if process.poll() is not None:
                sys.exit("gunicorn exited")
            time.sleep(0.2)
    process.terminate()
    sys.exit("gunicorn did not start")


def purge_broker() -> None:
    from panel.celery import app

    with app.connection_for_write() as conn:
        for queue in ("default", "provider_io"):
            with contextlib.suppress(Exception):  # a queue nobody declared
                conn.default_channel.queue_purge(queue)


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a PostgreSQL backend on this machine (0 if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def profile(calls: list[tuple[str, str, dict, dict]], repeat: int, lines: int = 25) -> None:
    """Each call `repeat` times in-process under cProfile: where its time goes."""
    import cProfile
    import io
    import pstats

    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    for name, path, data, headers in calls:
        extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        extra.setdefault("HTTP_ACCEPT_ENCODING", "gzip")
        # A form body, as the load generator (requests' data=) and the providers' clients send.
        body = urlencode(data, doseq=True)
        form = "application/x-www-form-urlencoded"
        for _ in range(3):  # warm-up: connections, first-call imports, caches
            client.post(path, body, content_type=form, **extra)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        cpu, db_cpu = time.process_time(), backend_cpu_seconds(backend)
        for _ in range(repeat):  # first without the profiler: its CPU time per call
            client.post(path, body, content_type=form, **extra)
        cpu_per_call = (time.process_time() - cpu) / repeat * 1000
        db_per_call = (backend_cpu_seconds(backend) - db_cpu) / repeat * 1000
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(repeat):
            client.post(path, body, content_type=form, **extra)
        profiler.disable()
        per_call = (time.perf_counter() - started) / repeat * 1000
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(lines)
        stats.sort_stats("tottime").print_stats(15)
        print(
            f"\n===== {name}: {cpu_per_call:.2f} ms of CPU per call in-process (not profiled), "
            f"PostgreSQL's backend {db_per_call:.2f} ms, {per_call:.2f} ms per call profiled ====="
        )
        print(out.getvalue())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per call")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every call (medians)")
    parser.add_argument("--concurrency", type=int, default=4, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--debug", action="store_true", help="run with DEBUG=true")
    parser.add_argument("--max-requests", type=int, default=20000, help="cap per call")
    parser.add_argument("--port", type=int, default=8871)
    parser.add_argument("--database", default=DB_NAME, help="the bench's own database")
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument(
        "--calls", default="", help="comma-separated words; only the calls whose name has one"
    )
    parser.add_argument("--profile", type=int, default=0, help="profile each call N times")
    parser.add_argument(
        "--profile-lines", type=int, default=25, help="functions listed by cumulative time"
    )
    opts = parser.parse_args()
    if opts.rounds < 1:
        parser.error("--rounds must be at least 1")
    return opts


def selected(calls: list, words: str) -> list:
    """The ceiling (always: the ratios need it) and the calls whose name holds one of `words`."""
    wanted = [w.strip() for w in words.split(",") if w.strip()]
    return [
        c for i, c in enumerate(calls) if i == 0 or not wanted or any(w in c[0] for w in wanted)
    ]


def run_load(opts: argparse.Namespace, calls: list, queries: dict) -> list[tuple]:
    """--rounds rounds of every call in turn, each round's ceiling measured at its start and its
    end (their mean is that round's ceiling), so that a machine whose speed drifts (a shared
    one) moves a call and its ceiling together. Per call: the median over the rounds of req/s,
    of its ratio to its round's ceiling, and of p50 and p95."""
    server = start_gunicorn(opts.port, opts.workers, opts.worker_class, opts.threads)
    ceiling, *others = calls
    results: dict[str, list[tuple]] = {name: [] for name, *_ in calls}
    try:
        for round_no in range(1, opts.rounds + 1):
            measured = {}
            for name, path, data, headers in [ceiling, *others, ceiling]:
                result = load(
                    f"http://127.0.0.1:{opts.port}{path}",
                    data,
                    headers,
                    concurrency=opts.concurrency,
                    duration=opts.duration,
                    cap=opts.max_requests,
                )
                measured.setdefault(name, []).append(result)
                print(f"  round {round_no}, {name}: {result[0]:.0f} req/s", flush=True)
            base = statistics.mean(r[0] for r in measured[ceiling[0]])
            for name, runs in measured.items():
                rps, p50, p95 = (statistics.mean(x) for x in list(zip(*runs, strict=True))[:3])
                n, errors = sum(r[3] for r in runs), sum(r[4] for r in runs)
                results[name].append((rps, rps / base, p50, p95, n, errors))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        purge_broker()
    rows = []
    for name, runs in results.items():
        rps, ratio, p50, p95 = (statistics.median(x) for x in list(zip(*runs, strict=True))[:4])
        n, errors = sum(r[4] for r in runs), sum(r[5] for r in runs)
        rows.append((name, rps, ratio, p50, p95, int(n), int(errors), queries[name]))
    return rows


def print_table(opts: argparse.Namespace, rows: list[tuple]) -> None:
    threads = f" x {opts.threads} threads" if opts.threads > 1 else ""
    print(
        f"\ngunicorn {opts.workers} {opts.worker_class} workers{threads}, "
        f"{opts.concurrency} client processes, {opts.duration:g}s per call, "
        f"{opts.rounds} rounds (medians; each round's ceiling measured first and last), "
        f"{os.cpu_count()} CPUs shared by all, DEBUG={'true' if opts.debug else 'false'}, "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| call | req/s | ratio to ceiling | p50 ms | p95 ms | requests | errors | SQL queries/call |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rps, ratio, p50, p95, n, errors, q in rows:
        print(
            f"| {name} | {rps:.0f} | {ratio:.2f} | {p50 * 1000:.1f} | {p95 * 1000:.1f} "
            f"| {n} | {errors} | {q} |"
        )


def main() -> None:
    opts = parse_args()
    t0 = time.monotonic()
    prepare_environment(debug=opts.debug, db_name=opts.database)
    import django

    django.setup()
    seeded = seed(opts.services, opts.orders)
    print(
        f"seeded {opts.services} services and {opts.orders} orders in {time.monotonic() - t0:.1f}s"
    )
    calls = selected(scenarios(seeded), opts.calls)
    queries = {name: count_queries(path, data) for name, path, data, _ in calls}
    print(services_size(seeded["key"]))
    if opts.profile:
        profile(calls, opts.profile, opts.profile_lines)
        purge_broker()
        return
    print_table(opts, run_load(opts, calls, queries))


if __name__ == "__main__":
    main()
