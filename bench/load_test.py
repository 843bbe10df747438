"""Load test of /api/v2: a reseller mix with locust against gunicorn on PostgreSQL, this machine.

    .venv/bin/python bench/load_test.py [--rate 10] [--duration 20] [--workers 3]
        [--worker-class sync] [--threads 1] [--configs sync:3,gthread:2:4] [--repeat 2] [--debug]

It (re)creates and migrates the database --database on DATABASE_URL's server (default
postgres://postgres@127.0.0.1:5432), seeds one customer with a key, 5,000 services and 10,000
orders (bench/api_v2.py's seed), and starts gunicorn with gunicorn.conf.py on a loopback port,
DEBUG off (as production runs; --debug turns it on), settings bench.api_v2_settings (rate
limits set too high to refuse a call). Then locust runs bench/locustfile.py headless (80 %
status with 100 ids, 10 % add, 5 % balance, 5 % services):

1. at the fixed rate --rate for --duration seconds: p50 / p95 / p99, req/s and failures per call;
2. the step search: --step-rates one after the other, --step-duration seconds each, until p95
   (all calls together) reaches 100 ms, a call fails, or locust cannot send the rate; it prints
   the highest rate held with p95 under 100 ms, by locust's p95 and by gunicorn's (the search
   goes on past locust's limit while gunicorn's p95 holds).

Beside locust's figures (the client's view) each run prints the same requests as gunicorn timed
them (its access log's %(M)s, written to the run's temporary directory): what the load
generator adds to the latency shows as the difference.

Each rate is users x --user-rate requests per second per user (locust's constant_throughput).
`add` orders a service mapped to an upstream provider: the order is charged and saved, and its
placement enqueued on the Redis broker (REDIS_URL's database), where no worker takes it, so
nothing leaves the machine. At the end gunicorn is stopped and the broker queues purged.

locust shares the machine's CPUs with gunicorn, PostgreSQL and Redis, so the figures are a floor
for the server. Figures and how to read them: docs/performance.md.
"""

import argparse
import csv
import datetime
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_v2 import prepare_environment, purge_broker, seed  # noqa: E402

P95_LIMIT_MS = 100.0
# A step whose measured rate is below this share of the offered one was not held: locust (or
# the server) could not keep up, and its latencies describe a lower rate.
RATE_HELD = 0.9
DEFAULT_STEPS = "2,5,10,15,20,30,40,60,80,100,130,160,200"


@dataclass
class Config:
    worker_class: str
    workers: int
    threads: int

    def __str__(self) -> str:
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"{self.workers} {self.worker_class} workers{threads}"


@dataclass
class Row:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


@dataclass
class ServerTimes:
    """The same requests as gunicorn timed them (its access log's %(M)s: from the request read
    to the answer written), so that what the load generator adds shows."""

    requests: int
    p50: float
    p95: float
    p99: float

    def __str__(self) -> str:
        return (
            f"server p50 {self.p50:.0f} ms, p95 {self.p95:.0f} ms, p99 {self.p99:.0f} ms "
            f"({self.requests} requests, gunicorn's own timing)"
        )


def server_times(access_log: Path, offset: int) -> ServerTimes:
    """The request times gunicorn logged after `offset` (bytes into its access log)."""
    with access_log.open("rb") as f:
        f.seek(offset)
        times = sorted(float(line.split()[-1]) for line in f.read().decode().splitlines() if line)
    if not times:
        return ServerTimes(0, float("nan"), float("nan"), float("nan"))

    def at(share: float) -> float:
        return times[min(len(times) - 1, int(len(times) * share))]

    return ServerTimes(len(times), at(0.50), at(0.95), at(0.99))


def parse_config(text: str) -> Config:
    """`sync:3` or `gthread:2:4` (class, workers, threads)."""
    parts = text.strip().split(":")
    if parts[0] not in ("sync", "gthread") or len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(
            f"a configuration looks like sync:3 or gthread:2:4, not {text!r}"
        )
    try:
        numbers = [int(p) for p in parts[1:]]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"workers and threads are whole numbers: {text!r}"
        ) from None
    threads = numbers[1] if len(numbers) == 2 else (4 if parts[0] == "gthread" else 1)
    if numbers[0] < 1 or threads < 1 or (parts[0] == "sync" and threads != 1):
        raise argparse.ArgumentTypeError(
            f"workers >= 1; threads >= 1 and only for gthread: {text!r}"
        )
    return Config(parts[0], numbers[0], threads)


def parse_rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"rates are numbers separated by commas: {text!r}"
        ) from None
    if not rates or any(r <= 0 for r in rates) or rates != sorted(rates):
        raise argparse.ArgumentTypeError(f"rates must be positive and increasing: {text!r}")
    return rates


def production_environment(debug: bool) -> None:
    """What DEBUG off requires (panel/settings.py), with throwaway secrets for this run."""
    from cryptography.fernet import Fernet

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")
    if debug:
        return
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    os.environ["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    # migrate's system checks refuse the console e-mail backend with DEBUG off; no mail is sent.
    os.environ["ALLOW_CONSOLE_EMAIL"] = "true"


def order_ids() -> list[int]:
    from orders.models import Order

    return list(Order.objects.filter(user__username="bench").values_list("id", flat=True))


def start_gunicorn(port: int, config: Config, access_log: Path) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv/bin/gunicorn"),
        "panel.wsgi:application",
        "-c",
        str(ROOT / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(config.workers),
        "--worker-class",
        config.worker_class,
        "--threads",
        str(config.threads),
        "--log-level",
        "warning",
        "--no-control-socket",  # its default path is shared by every gunicorn of this user
        # The access log to a file of the run, the path and each request's time in ms (%(M)s)
        # only: server_times reads it.
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "%(U)s %(s)s %(M)s",
    ]
    # No static files were collected: the API serves none, so whitenoise's warning about it is
    # left out.
    env = {**os.environ, "PYTHONWARNINGS": "ignore:No directory at"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            # The bench URLs' bare view (bench/api_v2_urls.py); /healthz would log a warning for
            # the queue no worker consumes.
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/bench/ceiling", headers={"X-Forwarded-Proto": "https"}
            )
            urllib.request.urlopen(request, timeout=5)
            return process
        except urllib.error.HTTPError:
            return process  # any answer means it serves
        except OSError:
            if process.poll() is not None:
                sys.exit("gunicorn exited; see its output above")
            time.sleep(0.2)
    stop(process)
    sys.exit("gunicorn did not answer within 30 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_locust(
    *, host: str, rate: float, duration: float, user_rate: float, seed_file: Path, workdir: Path
) -> tuple[list[Row], Row]:
    """One bounded locust run at `rate` requests per second; the rows per call and all together."""
    users = max(1, math.ceil(rate / user_rate))
    prefix = workdir / f"rate{rate:g}-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "PANEL_LOAD_SEED": str(seed_file),
        "PANEL_LOAD_USER_RATE": repr(rate / users),
    }
    command = [
        str(ROOT / ".venv/bin/locust"),
        "-f",
        str(ROOT / "bench/locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),  # all users within the first second, their calls spread over it
        "--run-time",
        f"{math.ceil(duration) + 1}s",
        "--reset-stats",  # counts from when every user runs
        "--stop-timeout",
        "10",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    # locust exits 1 when a call failed; the failures are in the figures.
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        sys.exit(f"locust wrote no figures (exit {result.returncode}):\n{result.stderr[-3000:]}")
    rows = []
    with stats.open() as f:
        for line in csv.DictReader(f):
            rows.append(
                Row(
                    name=line["Name"],
                    requests=int(line["Request Count"]),
                    failures=int(line["Failure Count"]),
                    rps=_number(line["Requests/s"]),
                    p50=_number(line["50%"]),
                    p95=_number(line["95%"]),
                    p99=_number(line["99%"]),
                )
            )
    total = next(r for r in rows if r.name == "Aggregated")
    failures = Path(f"{prefix}_failures.csv")
    if total.failures and failures.exists():
        print(f"    failures: {failures.read_text().strip()[:600]}")
    return [r for r in rows if r.name != "Aggregated"], total


def _number(text: str) -> float:
    """A figure of locust's CSV; N/A (no request of that kind in the run) is NaN, never held."""
    return float("nan") if text == "N/A" else float(text)


def held(total: Row, rate: float) -> bool:
    return total.failures == 0 and total.p95 < P95_LIMIT_MS and total.rps >= rate * RATE_HELD


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def print_table(rows: list[Row], total: Row) -> None:
    print("| call | requests | failures | req/s | p50 ms | p95 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in [*sorted(rows, key=lambda r: -r.requests), total]:
        name = "all calls" if r is total else r.name
        print(
            f"| {name} | {r.requests} | {r.failures} | {r.rps:.1f} | {r.p50:.0f} | {r.p95:.0f} "
            f"| {r.p99:.0f} |"
        )


@dataclass
class Held:
    """The highest step rates held with p95 under the limit: by locust's clock (the client's
    view, the search's first criterion) and by gunicorn's (the server's own p95)."""

    locust: float | None = None
    server: float | None = None

    def text(self) -> str:
        return " / ".join(f"{r:g}" if r else "none" for r in (self.locust, self.server))


def step_search(opts, run, seen: list[ServerTimes]) -> Held:
    """The highest of --step-rates held with p95 under the limit (None: not even the first),
    by locust's p95 and by gunicorn's. The search goes on past locust's limit while gunicorn's
    p95 holds and the rate is still sent: on a machine where the load generator's own latency
    grows with the rate (docs/performance.md), the server's capacity is only found so."""
    print(f"\nstep search, {opts.step_duration:g} s per rate:")
    best = Held()
    locust_holds = True
    for rate in opts.steps:
        _, step = run(rate=rate, duration=opts.step_duration)
        server = seen[-1]
        ok = held(step, rate)
        server_ok = (
            step.failures == 0 and server.p95 < P95_LIMIT_MS and step.rps >= rate * RATE_HELD
        )
        print(
            f"  {rate:g} req/s offered: {step.rps:.1f} req/s, p50 {step.p50:.0f} ms, "
            f"p95 {step.p95:.0f} ms, p99 {step.p99:.0f} ms, {step.failures} failures, "
            f"load average {load_average()} -> {'held' if ok else 'not held'}; {server} -> "
            f"{'held' if server_ok else 'not held'}",
            flush=True,
        )
        locust_holds = locust_holds and ok
        if locust_holds:
            best.locust = rate
        if not server_ok:
            break
        best.server = rate
    print(
        f"highest rate held with p95 < {P95_LIMIT_MS:g} ms, by locust's p95 / by gunicorn's: "
        f"{best.text()} req/s"
    )
    return best


def measure(config: Config, number: int, opts, seed_file: Path, workdir: Path) -> tuple:
    """One run of one configuration: a fresh gunicorn, a warm-up, the fixed rate, the steps."""

    access_log = workdir / f"access-{config.worker_class}-{config.workers}-{number}.log"
    seen: list[ServerTimes] = []

    def run(*, rate: float, duration: float) -> tuple[list[Row], Row]:
        offset = access_log.stat().st_size if access_log.exists() else 0
        result = run_locust(
            host=f"http://127.0.0.1:{opts.port}",
            rate=rate,
            duration=duration,
            user_rate=opts.user_rate,
            seed_file=seed_file,
            workdir=workdir,
        )
        seen.append(server_times(access_log, offset))
        return result

    print(f"\n## gunicorn {config}, run {number} of {opts.repeat}", flush=True)
    server = start_gunicorn(opts.port, config, access_log)
    try:
        # Warm-up, not counted: connections, the workers' first requests, PostgreSQL's caches.
        run(rate=opts.steps[0], duration=opts.warmup)
        rows, total = run(rate=opts.rate, duration=opts.duration)
        print(
            f"\nfixed rate {opts.rate:g} req/s for {opts.duration:g} s "
            f"(load average {load_average()}):\n"
        )
        print_table(rows, total)
        fixed = seen[-1]
        print(f"\n{fixed}")
        best = step_search(opts, run, seen) if opts.steps_enabled else Held()
    finally:
        stop(server)
    return config, number, total, best, fixed


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[2:]),
    )
    parser.add_argument("--database", default="panel_load_test", help="(re)created each run")
    parser.add_argument("--debug", action="store_true", help="DEBUG on (default: off)")
    parser.add_argument("--rate", type=float, default=10.0, help="fixed rate, req/s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds at the fixed rate")
    parser.add_argument(
        "--step-rates",
        dest="steps",
        type=parse_rates,
        default=parse_rates(DEFAULT_STEPS),
        help=f"rates of the step search, increasing (default {DEFAULT_STEPS})",
    )
    parser.add_argument("--step-duration", type=float, default=15.0, help="seconds per step")
    parser.add_argument("--no-steps", dest="steps_enabled", action="store_false")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds, not counted")
    parser.add_argument(
        "--user-rate", type=float, default=1.0, help="req/s per locust user (users = rate / this)"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    parser.add_argument("--threads", type=int, default=None, help="per gthread worker (4)")
    parser.add_argument(
        "--configs",
        type=lambda text: [parse_config(c) for c in text.split(",")],
        help="several gunicorn configurations one after the other, e.g. sync:2,sync:3,gthread:2:4 "
        "(instead of --workers/--worker-class/--threads)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration")
    parser.add_argument("--port", type=int, default=8872)
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=10000)
    opts = parser.parse_args()
    if opts.configs is None:
        threads = opts.threads or (4 if opts.worker_class == "gthread" else 1)
        spec = f"{opts.worker_class}:{opts.workers}:{threads}"
        try:
            opts.configs = [parse_config(spec)]
        except argparse.ArgumentTypeError as e:
            parser.error(str(e))
    if min(opts.duration, opts.step_duration, opts.warmup, opts.user_rate) <= 0:
        parser.error("durations and --user-rate must be positive")
    if opts.orders < 100:
        parser.error("status asks for 100 ids: --orders must be at least 100")
    return opts


def main() -> None:
    opts = parse_options()
    t0 = time.monotonic()
    production_environment(opts.debug)
    prepare_environment(debug=opts.debug, db_name=opts.database)
    import django

    django.setup()
    seeded = seed(opts.services, opts.orders)
    with tempfile.TemporaryDirectory(prefix="load_test-") as tmp:
        workdir = Path(tmp)
        seed_file = workdir / "seed.json"
        seed_file.write_text(
            json.dumps(
                {
                    "key": seeded["key"],
                    "add_service": seeded["add_service"],
                    "order_ids": order_ids(),
                }
            )
        )
        print(
            f"seeded {opts.services} services and {opts.orders} orders in "
            f"{time.monotonic() - t0:.1f}s; {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
            f"UTC, {os.cpu_count()} CPUs shared by gunicorn, PostgreSQL, Redis and locust, "
            f"DEBUG={'on' if opts.debug else 'off'}",
            flush=True,
        )
        try:
            # Run 1 of every configuration, then run 2...: a slow spell of the shared machine
            # then weighs on one run of several configurations, not on both runs of one.
            results = [
                measure(config, number, opts, seed_file, workdir)
                for number in range(1, opts.repeat + 1)
                for config in opts.configs
            ]
        finally:
            purge_broker()
    print(f"\n## Summary (fixed rate {opts.rate:g} req/s; all calls together)\n")
    print(
        "| gunicorn | run | req/s | p50 ms | p95 ms | p99 ms | failures "
        "| highest rate held (locust / gunicorn p95) | server p50 / p95 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for config, run, t, best, fixed in results:
        held_text = best.text() if opts.steps_enabled else "-"
        print(
            f"| {config} | {run} | {t.rps:.1f} | {t.p50:.0f} | {t.p95:.0f} | {t.p99:.0f} "
            f"| {t.failures} | {held_text} | {fixed.p50:.0f} / {fixed.p95:.0f} |"
        )


if __name__ == "__main__":
    main()
