"""Catalog-sync benchmark: 5,000 upstream services from a loopback API v2 server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/panel .venv/bin/python bench/catalog_sync.py

It uses its own database (the DATABASE_URL's server, database `panel_bench`, created and
migrated when missing) and prints, for each step, the wall time and the number of SQL queries:
the first sync, importing every service into the panel, a re-sync with 5% of the catalog changed
(price rises and falls, min/max, names, removals, new services) and a re-sync with no change.
Options: --services N (default 5000), --changed PERCENT (default 5).
"""

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

if TYPE_CHECKING:
    from providers.models import Provider

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY = "bench-key"
T = TypeVar("T")
TYPES = ("Default", "Default", "Default", "Package", "Custom Comments", "Subscriptions")


def _use_bench_database() -> None:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/panel")
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/catalog_sync.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    import psycopg

    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'panel_bench'").fetchone():
            conn.execute("CREATE DATABASE panel_bench")
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/panel_bench"))
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")


def service(i: int) -> dict:
    return {
        "service": i,
        "name": f"Bench service {i} <b>{'x' * (i % 40)}</b>",
        "type": TYPES[i % len(TYPES)],
        "category": f"Category {i % 120}",
        "rate": f"{(i % 997) / 100 + 0.01:.5f}",
        "min": str(10 * (1 + i % 5)),
        "max": str(10000 * (1 + i % 7)),
        "refill": i % 3 == 0,
        "cancel": i % 2 == 0,
        "dripfeed": i % 5 == 0,
        "desc": f"Line one of {i}\nline two",
    }


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        action = form.get("action", [""])[0]
        if form.get("key", [""])[0] != KEY:
            body = {"error": "Invalid API key"}
        elif action == "services":
            body = self.server.catalog  # type: ignore[attr-defined]
        else:
            body = {"balance": "1000.00", "currency": "USD"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # no getfqdn() lookup
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


def change(catalog: list[dict], percent: float, next_id: int) -> dict[str, int]:
    """Change `percent` of the catalog in place: a fifth each of price rises (half of them
    above the hold threshold), price falls, min/max, names, and removals + new services."""
    n = max(5, int(len(catalog) * percent / 100))
    step = len(catalog) // n
    picked = catalog[::step][:n]
    fifth = n // 5
    counts = {"price": 0, "limits": 0, "details": 0, "removed": 0, "new": 0}
    for k, entry in enumerate(picked):
        group = min(k // max(fifth, 1), 4)
        if group in (0, 1):
            factor = (1.5 if k % 2 else 1.1) if group == 0 else 0.8
            entry["rate"] = f"{float(entry['rate']) * factor:.5f}"
            counts["price"] += 1
        elif group == 2:
            entry["min"], entry["max"] = "100", "5000"
            counts["limits"] += 1
        elif group == 3:
            entry["name"] += " (v2)"
            counts["details"] += 1
    removed = picked[4 * fifth :]
    for entry in removed:
        catalog.remove(entry)
    catalog.extend(service(next_id + j) for j in range(len(removed)))
    counts["removed"] = counts["new"] = len(removed)
    return counts


def _measure(label: str, fn: Callable[[], T]) -> T:
    """Run `fn` once and print its wall time and SQL query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:8.2f} s {len(queries.captured_queries):6d} queries")
    return result


def _start(services: int) -> tuple[Server, "Provider"]:
    """Migrate, forget the last run's provider, and serve a catalog of `services` items."""
    from django.core.management import call_command

    from catalog.models import CatalogSettings, Service
    from providers.models import Provider
    from providers.services import provider_create

    call_command("migrate", verbosity=0)
    Service.objects.filter(upstream__provider__name="bench").delete()
    Provider.objects.filter(name="bench").delete()
    settings = CatalogSettings.load()
    settings.auto_import_new_services = False
    settings.save()
    server = Server(("127.0.0.1", 0), Handler)
    server.catalog = [service(i) for i in range(1, services + 1)]  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    return server, provider_create(name="bench", api_url=url, api_key=KEY)


def _steps(server: Server, provider: "Provider", args: argparse.Namespace) -> None:
    """The four measured steps: first sync, import all, re-sync with changes, re-sync as is."""
    from django.db import connection

    from catalog.models import CatalogChange, UpstreamService
    from catalog.services import catalog_import_services, catalog_sync_provider

    print(f"PostgreSQL {connection.pg_version}, {args.services} upstream services\n")
    print(f"{'step':<44} {'wall time':>10} {'SQL':>14}")
    report = _measure("first sync", lambda: catalog_sync_provider(provider=provider))
    print(f"  {report.summary()}")
    imported = _measure(
        "import all into the panel", lambda: catalog_import_services(provider=provider, all=True)
    )
    print(f"  {len(imported)} panel services")
    counts = change(server.catalog, args.changed, args.services + 1)  # type: ignore[attr-defined]
    report = _measure(
        f"re-sync, {args.changed:g}% changed {counts}",
        lambda: catalog_sync_provider(provider=provider),
    )
    print(f"  {report.summary()}")
    report = _measure("re-sync, nothing changed", lambda: catalog_sync_provider(provider=provider))
    print(f"  {report.summary()}")
    print(
        f"\nrows: {UpstreamService.objects.filter(provider=provider).count()} upstream services, "
        f"{CatalogChange.objects.filter(provider=provider).count()} catalog changes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--changed", type=float, default=5.0)
    args = parser.parse_args()
    _use_bench_database()

    import django

    django.setup()
    server, provider = _start(args.services)
    _steps(server, provider, args)
    server.shutdown()


if __name__ == "__main__":
    main()
