"""Benchmark: one status sweep over 100,000 active orders spread over three sandbox providers.

    DATABASE_URL=postgres://... .venv/bin/python bench/status_sweep.py [--orders 100000]
        [--debug] [--parallel | --processes] [--profile]

It runs with DEBUG off, as production does (a throwaway SECRET_KEY and ALLOWED_HOSTS are
filled in for the run); `--debug` runs it with DEBUG on, for comparison (Django then keeps
every query's SQL on the connection, which costs time of its own).

Needs a migrated PostgreSQL database (it writes its own rows: three "bench-sandbox-N"
providers, their orders and a "bench-sweep" customer; the orders of an earlier run are deleted
first). The three sandboxes run as separate processes (real HTTP on loopback), their state
seeded directly through the sandbox's Store so that setting up 100,000 upstream orders takes
seconds, not an hour of `add` calls. The orders are planned so that a sweep meets a realistic
mix: 30% still Pending (unchanged), 60% In progress (a status move), 10% finished (Completed,
or Partial with a refund through the ledger), all of a batch written in one transaction.

Prints per provider and in total: orders polled per second, upstream calls, SQL queries per
batch of 100 and which statements they are; then a second sweep of the same orders (now
mostly unchanged); then check_ledger. Each provider is swept whole (no time budget), one after
another; `--parallel` sweeps them at once, one thread each, as the periodic task's fan-out
does (one provider_sweep task per provider), and `--processes` sweeps them at once in one
forked process each, as a Celery prefork worker (`celery -A panel worker`, one process per CPU by
default) runs those tasks; the panel's CPU is then its processes'. `--profile` runs both sweeps
under cProfile.
"""

import argparse
import math
import multiprocessing
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="cProfile both sweeps")
    at_once = parser.add_mutually_exclusive_group()
    at_once.add_argument(
        "--parallel",
        action="store_true",
        help="sweep the providers at once, one thread each (as the periodic task's fan-out does)",
    )
    at_once.add_argument(
        "--processes",
        action="store_true",
        help="sweep the providers at once, one process each (as a Celery prefork worker runs "
        "the fan-out's tasks)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="run with DEBUG on (default: off, as in production)"
    )
    args = parser.parse_args()
    if args.profile and args.processes:
        parser.error("--profile profiles this process only: run it without --processes")
    return args


ARGS = parse_args()
# Set before Django reads the settings. DEBUG off requires a SECRET_KEY, the hosts and a key
# for the providers' API keys: throwaway ones (the bench stores its providers' keys again).
os.environ["DEBUG"] = "true" if ARGS.debug else "false"
if not ARGS.debug:
    from cryptography.fernet import Fernet

    os.environ["SECRET_KEY"] = secrets.token_urlsafe(48)
    os.environ.setdefault("ALLOWED_HOSTS", "bench.invalid")
    os.environ["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import CommandError, call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import customer_create  # noqa: E402
from catalog.models import Category, Service, UpstreamService  # noqa: E402
from orders.models import POLLED_STATUSES, Order  # noqa: E402
from orders.services import PollResult, provider_poll_orders  # noqa: E402
from orders.services.common import Deadline  # noqa: E402
from providers.models import Provider, ProviderCall  # noqa: E402
from providers.sandbox.catalog import Catalog  # noqa: E402
from providers.sandbox.store import Store  # noqa: E402
from providers.sandbox.validation import parse_add  # noqa: E402

KEY = "bench-key"
DURATION = 3000.0  # seconds from Pending to final at the sandbox; Pending is the first 300 s


def seed_sandbox(db_path: str, count: int, offset: int) -> list[tuple[int, str, int]]:
    """Create `count` upstream orders in a sandbox state file: (upstream id, link, quantity)."""
    catalog = Catalog()
    now = time.time()
    clock = {"t": now}
    store = Store(db_path, start_balance=Decimal(10**9), clock=lambda: clock["t"])
    made = []
    for i in range(count):
        bucket = i % 10
        if bucket == 0:  # finished: created long ago
            clock["t"] = now - DURATION - 60
            link = f"https://bench.test/{offset + i}" + ("-partial" if i % 20 == 0 else "")
        elif bucket <= 6:  # in progress
            clock["t"] = now - DURATION / 2
            link = f"https://bench.test/{offset + i}"
        else:  # still pending
            clock["t"] = now
            link = f"https://bench.test/{offset + i}"
        draft = parse_add({"service": "1", "link": link, "quantity": "1000"}, catalog)
        made.append((store.create_order(draft, duration=DURATION), link, 1000))
    store.close()
    return made


def start_sandbox(db_path: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "providers.sandbox",
            "--port",
            "0",
            "--print-port",
            "--quiet",
            "--db",
            db_path,
            "--key",
            KEY,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = process.stdout.readline().strip()
    return process, f"http://127.0.0.1:{port}/api/v2"


def setup_panel(urls: list[str], seeded: list[list[tuple[int, str, int]]]) -> list[Provider]:
    Order.objects.filter(provider__name__startswith="bench-sandbox-").delete()
    user = User.objects.filter(username="bench-sweep").first() or customer_create(
        username="bench-sweep", opening_balance=Decimal("1")
    )
    category, _ = Category.objects.get_or_create(name="Bench")
    providers = []
    created = timezone.now() - timedelta(hours=1)
    for n, (url, rows) in enumerate(zip(urls, seeded, strict=True), start=1):
        provider = Provider.objects.filter(name=f"bench-sandbox-{n}").first() or Provider(
            name=f"bench-sandbox-{n}"
        )
        provider.api_url = url
        provider.set_api_key(KEY)
        provider.save()
        upstream, _ = UpstreamService.objects.update_or_create(
            provider=provider,
            service_id="1",
            defaults=dict(name="Bench", rate=Decimal("0.9"), min=50, max=10000),
        )
        service = Service.objects.filter(upstream=upstream).first() or Service.objects.create(
            name=f"Bench {n}",
            category=category,
            upstream=upstream,
            rate=Decimal("1.8"),
            min=50,
            max=10000,
        )
        batch = [
            Order(
                user=user,
                service=service,
                status=Order.Status.PENDING,
                link=link,
                quantity=quantity,
                params={"quantity": str(quantity)},
                rate=Decimal("1.8"),
                charge=Decimal("1.80000"),
                cost=Decimal("0.90000"),
                provider=provider,
                upstream_service=upstream,
                upstream_order_id=str(upstream_id),
                created_at=created,
                next_poll_at=created,
            )
            for upstream_id, link, quantity in rows
        ]
        Order.objects.bulk_create(batch, batch_size=5000)
        providers.append(provider)
    return providers


class QueryCounter:
    """Counts every SQL statement (CaptureQueriesContext keeps only the last 9000)."""

    def __init__(self) -> None:
        self.count = 0
        self.kinds: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        words = sql.split(None, 1)
        table = re.search(r'"([a-z_]+)"', sql)
        self.kinds[f"{words[0] if words else '?'} {table.group(1) if table else ''}"] += 1
        return execute(sql, params, many, context)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process on this machine (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


@dataclass
class ProviderRun:
    provider: Provider
    result: PollResult
    took: float
    calls: int
    queries: QueryCounter
    db_cpu: float = 0.0  # CPU of this run's PostgreSQL backend process


def sweep_provider(provider: Provider) -> ProviderRun:
    """One provider's poll, timed, its upstream calls and SQL statements counted."""
    calls_before = ProviderCall.objects.filter(provider=provider).count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    db_cpu = cpu_seconds(backend)
    queries = QueryCounter()
    with connection.execute_wrapper(queries):
        started = time.monotonic()
        # No time budget: the whole provider is swept, however long it takes (the task's
        # budget would leave the rest to the next sweep and make the runs incomparable).
        result = provider_poll_orders(
            provider=provider, limit=1_000_000, deadline=Deadline(at=math.inf)
        )
        took = time.monotonic() - started
    db_cpu = cpu_seconds(backend) - db_cpu
    calls = ProviderCall.objects.filter(provider=provider).count() - calls_before
    return ProviderRun(provider, result, took, calls, queries, db_cpu)


def in_thread(provider: Provider) -> ProviderRun:
    try:
        return sweep_provider(provider)
    finally:
        connection.close()  # the thread's own connection


def in_processes(providers: list[Provider]) -> tuple[list[ProviderRun], float]:
    """One forked process per provider, as a Celery prefork worker runs the fan-out's
    provider_sweep tasks; returns the runs and the CPU time the processes used."""
    connections.close_all()  # each child opens its own connection
    context = multiprocessing.get_context("fork")
    before = os.times()
    pipes, children = [], []
    for provider in providers:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_sweep_in_child, args=(provider, send))
        child.start()
        pipes.append(receive)
        children.append(child)
    runs = [pipe.recv() for pipe in pipes]
    for child in children:
        child.join()  # reaped: their CPU time is in os.times()' children figures
    after = os.times()
    return runs, (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def _sweep_in_child(provider: Provider, send: Any) -> None:
    send.send(in_thread(provider))
    send.close()


SANDBOX_PIDS: list[int] = []


def sweep(providers: list[Provider], label: str) -> None:
    print(f"\n{label}")
    load_before = os.getloadavg()[0]
    sandbox_cpu = sum(cpu_seconds(pid) for pid in SANDBOX_PIDS)
    panel_cpu = time.process_time()
    started_all = time.monotonic()
    children_cpu = 0.0
    if ARGS.processes:
        runs, children_cpu = in_processes(providers)
    elif ARGS.parallel:  # as the periodic task's fan-out runs them: one worker per provider
        with ThreadPoolExecutor(max_workers=len(providers)) as pool:
            runs = list(pool.map(in_thread, providers))
    else:
        runs = [sweep_provider(provider) for provider in providers]
    took_all = time.monotonic() - started_all
    panel_cpu = time.process_time() - panel_cpu + children_cpu
    sandbox_cpu = sum(cpu_seconds(pid) for pid in SANDBOX_PIDS) - sandbox_cpu
    kinds: Counter[str] = Counter()
    for run in runs:
        result, took, queries = run.result, run.took, run.queries
        kinds.update(queries.kinds)
        print(
            f"  {run.provider.name}: {result.polled} orders in {took:.1f} s = "
            f"{result.polled / took:,.0f} orders/s; {run.calls} upstream calls; "
            f"{queries.count} SQL queries = {queries.count / max(run.calls, 1):.1f} per batch; "
            f"changed {result.changed} {dict(result.statuses)}, unchanged {result.unchanged}, "
            f"errors {result.errors}, left for the next sweep (time budget) {result.deferred}"
        )
    total_orders = sum(run.result.polled for run in runs)
    total_calls = sum(run.calls for run in runs)
    total_queries = sum(run.queries.count for run in runs)
    how = (
        "in parallel, one process each"
        if ARGS.processes
        else "in parallel, one thread each"
        if ARGS.parallel
        else "one after another"
    )
    print(
        f"  total: {total_orders} orders in {took_all:.1f} s = {total_orders / took_all:,.0f} "
        f"orders/s (providers {how}); "
        f"{total_calls} upstream calls; {total_queries / max(total_calls, 1):.1f} SQL per batch"
    )
    per_batch = ", ".join(
        f"{kind} {n / max(total_calls, 1):.2f}" for kind, n in kinds.most_common(12)
    )
    print(f"  SQL per batch by statement: {per_batch}")
    batches = max(total_calls, 1)
    db_cpu = sum(run.db_cpu for run in runs)
    print(
        f"  CPU per batch of 100: panel ({'its processes' if ARGS.processes else 'this process'}) {panel_cpu * 1000 / batches:.1f} ms, "
        f"PostgreSQL backends {db_cpu * 1000 / batches:.1f} ms, "
        f"sandboxes {sandbox_cpu * 1000 / batches:.1f} ms; "
        f"wall {took_all * 1000 / batches:.1f} ms; "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


def profiled(providers: list[Provider], label: str) -> None:
    """sweep() under cProfile: the functions that took the most time, own time and total."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(sweep, providers, label + " (profiled)")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def check_ledger() -> None:
    """The ledger against the wallets and orders after the sweeps (manage.py check_ledger)."""
    out = StringIO()
    started = time.monotonic()
    try:
        call_command("check_ledger", stdout=out)
    except CommandError as exc:
        print(f"\ncheck_ledger FAILED: {exc}\n{out.getvalue()}")
        return
    print(f"\ncheck_ledger ({time.monotonic() - started:.1f} s): {out.getvalue().strip()}")


def main() -> None:
    args = ARGS
    print(f"DEBUG={'on' if settings.DEBUG else 'off'}, {args.orders} orders")
    if connection.vendor != "postgresql":
        sys.exit("Run it against PostgreSQL (set DATABASE_URL).")
    per = args.orders // 3
    counts = [per, per, args.orders - 2 * per]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        started = time.monotonic()
        paths = [str(Path(tmp) / f"sandbox{n}.sqlite3") for n in range(3)]
        seeded = [
            seed_sandbox(p, c, n * per) for n, (p, c) in enumerate(zip(paths, counts, strict=True))
        ]
        print(f"seeded {args.orders} upstream orders in {time.monotonic() - started:.1f} s")
        sandboxes = [start_sandbox(p) for p in paths]
        SANDBOX_PIDS[:] = [process.pid for process, _ in sandboxes]
        try:
            started = time.monotonic()
            providers = setup_panel([url for _, url in sandboxes], seeded)
            print(f"created {args.orders} panel orders in {time.monotonic() - started:.1f} s")
            run = profiled if args.profile else sweep
            run(
                providers,
                "sweep 1 (30% still Pending: first remains recorded; 60% to In progress; 10% final):",
            )
            Order.objects.filter(provider__in=providers, status__in=POLLED_STATUSES).update(
                next_poll_at=timezone.now() - timedelta(seconds=1)
            )
            run(providers, "sweep 2 (the same orders again, mostly unchanged):")
            check_ledger()
        finally:
            for process, _ in sandboxes:
                process.terminate()
                process.wait(timeout=10)


if __name__ == "__main__":
    main()
