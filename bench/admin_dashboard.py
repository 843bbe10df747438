"""Time the admin's cockpit and its big lists on PostgreSQL with a large seed, and count their
SQL queries. Uses its own database (panel_bench_admin unless BENCH_DATABASE_URL says otherwise).

    # once: the data set (about 2 minutes for 1,000,000 orders)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/panel_bench_admin .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/panel_bench_admin \\
        .venv/bin/python manage.py seed_orders --orders 1000000 --days 90 --providers 3
    # then
    .venv/bin/python bench/admin_dashboard.py [--runs 5] [--debug]

DEBUG is off by default, as production runs: what production's settings require gets a
throwaway value (SECRET_KEY, ALLOWED_HOSTS, and the development FIELD_ENCRYPTION_KEYS so that the
seed's provider keys still decrypt), and requests are made as https, as behind the proxy.
`--debug` builds the development settings instead (DEBUG=true), as this bench did before.
In both, `settings.DEBUG` is set False after setup so that no query is logged per request.

Pages: the admin home (cockpit) for each period, the order changelist unfiltered and with each
filter it offers (every filter's first choice, read from the changelist itself), a search,
the customer list (total spent and order count annotated), the audit log and a bulk pricing
preview over every service. Each page is fetched once to warm up, then `--runs` times; the
table shows the median and the worst time and the number of SQL queries of one request.
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/panel_bench_admin"
)
DEBUG_ON = "--debug" in sys.argv[1:]
os.environ["DEBUG"] = "true" if DEBUG_ON else "false"
if not DEBUG_ON:
    # What production's settings require, with throwaway values (nothing is served).
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    # The development key, which seed_orders encrypted the providers' API keys with.
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA=")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

import django  # noqa: E402

django.setup()

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret  # noqa: E402
from allauth.mfa.utils import is_mfa_enabled  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.http import urlencode  # noqa: E402

from accounts.models import User  # noqa: E402
from orders.admin_views import attention_changelist_url  # noqa: E402
from orders.models import Order  # noqa: E402
from orders.selectors import order_attention_kinds  # noqa: E402


def timed(
    client: Client, url: str, runs: int, data: dict | None = None, before=None
) -> tuple[float, float, int, int]:
    """(median ms, max ms, queries, status) of GET (or POST with `data`) `url`; `before` runs
    untimed before each request."""
    fetch = (lambda: client.post(url, data)) if data is not None else (lambda: client.get(url))
    response = fetch()  # warm-up: sessions, content types, the database's caches
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = fetch()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), len(queries.captured_queries), response.status_code


def order_list_urls(client: Client) -> list[tuple[str, str]]:
    """The order changelist, unfiltered, with each filter's first real choice, and a search."""
    try:
        base = reverse("admin:orders_order_changelist")
    except NoReverseMatch:
        return []
    response = client.get(base)
    pages = [("orders: no filter", base)]
    changelist = response.context["cl"] if response.context else None
    if changelist is not None:
        for spec in changelist.filter_specs:
            title = getattr(spec, "title", spec.__class__.__name__)
            choices = [c for c in spec.choices(changelist) if not c.get("selected")]
            for choice in choices[:2]:  # the first one or two values of every filter
                query = choice["query_string"]
                if query and query != "?":
                    pages.append((f"orders: {title} = {choice['display']}", base + query))
        if changelist.search_fields:
            any_id = Order.objects.order_by("-id").values_list("id", flat=True).first()
            pages.append((f"orders: search {any_id}", f"{base}?q={any_id}"))
            pages.append(("orders: search seed_customer_000007", f"{base}?q=seed_customer_000007"))
            link = Order.objects.order_by("id").values_list("link", flat=True).first() or ""
            if len(link) > 4:
                prefix = link[:-2]  # the start of a link: a prefix search
                pages.append((f"orders: search {prefix}", f"{base}?{urlencode({'q': prefix})}"))
        if changelist.date_hierarchy:
            pages.append(
                (
                    "orders: date hierarchy (this month)",
                    f"{base}?{changelist.date_hierarchy}__year=2026",
                )
            )
    # The links the cockpit's attention cards use.
    for kind in order_attention_kinds(now=timezone.now()):
        pages.append((f"orders: attention link {kind.key}", attention_changelist_url(kind) or base))
    return pages


ROW = "| {:<58} | {:9.0f} | {:8.0f} | {:7d} | {:6d} |"


def prepare() -> Client:
    """Bench settings and a client logged in as a superuser; exits when there are no orders."""
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False  # no debug-only overhead in the figures
    # No collectstatic for a bench: static URLs without the manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    if not Order.objects.exists():
        sys.exit(
            "No orders: run `manage.py seed_orders --orders 1000000 ...` on the bench database first."
        )
    admin_user = User.objects.filter(
        username="bench_admin"
    ).first() or User.objects.create_superuser("bench_admin", "bench@example.com", None)
    if not is_mfa_enabled(admin_user):
        # Staff open the admin only with a second factor (AdminTwoFactorMiddleware); without
        # one every page is a redirect to its set-up.
        TOTP.activate(admin_user, generate_totp_secret())
    # https, as behind production's proxy (its settings redirect plain http there).
    client = Client(headers={} if DEBUG_ON else {"x-forwarded-proto": "https"})
    client.force_login(admin_user)
    return client


def admin_pages(client: Client) -> list[tuple[str, str]]:
    """(title, url) of every page timed with a plain GET."""
    home = reverse("admin:index")
    pages = [
        ("admin home (cockpit), 30 days", home),
        ("admin home, 7 days", home + "?period=7d"),
        ("admin home, today", home + "?period=today"),
    ]
    pages += order_list_urls(client)
    customer = (
        User.objects.filter(username="seed_customer_000000").values_list("pk", flat=True).first()
        or User.objects.get(username="bench_admin").pk
    )
    pages += [
        ("customers list", reverse("admin:accounts_user_changelist")),
        ("one customer", reverse("admin:accounts_user_change", args=[customer])),
        ("audit log", reverse("admin:accounts_adminauditlog_changelist")),
    ]
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--debug", action="store_true", help="Build the settings with DEBUG=true (development)."
    )
    args = parser.parse_args()
    client = prepare()
    pages = admin_pages(client)
    total = Order.objects.count()
    print(
        f"{total:,} orders in {connection.settings_dict['NAME']}, {args.runs} runs per page, "
        f"settings with DEBUG={'true' if DEBUG_ON else 'false'}\n"
    )
    print(f"| {'page':<58} | {'median ms':>9} | {'max ms':>8} | {'queries':>7} | status |")
    print(f"|{'-' * 60}|{'-' * 11}|{'-' * 10}|{'-' * 9}|--------|")
    rows = [("admin home, 30 days, nothing cached", reverse("admin:index"), None, cache.clear)]
    rows += [(title, url, None, None) for title, url in pages]
    preview = {"mode": "markup", "value": "40", "preview": "1"}
    rows.append(
        ("bulk pricing preview, every service", reverse("admin:pricing_bulk"), preview, None)
    )
    statuses = []
    for title, url, data, before in rows:
        figures = timed(client, url, args.runs, data, before)
        statuses.append(figures[3])
        print(ROW.format(title[:58], *figures))
    if any(status != 200 for status in statuses):
        print("\nA page did not answer 200: its time says nothing (see the status column).")
    if not order_list_urls(client):
        print("\n(no orders admin registered: the order changelist was not benched)")


if __name__ == "__main__":
    main()
