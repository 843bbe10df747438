"""Seed a large, realistic data set for the admin's cockpit and its benchmark:

    python manage.py seed_orders --orders 1000000 --days 90 --providers 3

Providers (with balances, thresholds and recent calls), categories, upstream and panel services,
customers with wallets and an opening deposit in the ledger, and orders spread over the last
`--days` days: more recent days busier, weekends quieter, most old orders completed, some
partial (refunded for what was not delivered) or canceled (refunded in full), recent ones still
running, a few needing review or waiting for funds, a few stuck. On PostgreSQL the orders go in
with COPY, in batches of one transaction each; elsewhere (SQLite) with bulk_create.

The orders carry no ledger charge entries (each customer's ledger holds one deposit that equals
the wallet): this is a data set for reading, not for replaying money.
"""

import datetime
import random
import time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet
from catalog.models import Category, Service, UpstreamService
from catalog.pricing import quantize_money, quantize_rate
from orders.models import Order
from orders.services.summary import daily_summary_rebuild, wallet_order_counts_rebuild
from providers.models import Provider, ProviderCall

S = Order.Status
CATEGORIES = [
    ("Instagram Followers", "Followers", "default"),
    ("Instagram Likes", "Likes", "default"),
    ("Instagram Views", "Views", "default"),
    ("TikTok Followers", "Followers", "default"),
    ("TikTok Views", "Views", "default"),
    ("YouTube Views", "Views", "default"),
    ("YouTube Subscribers", "Subscribers", "default"),
    ("Twitter Followers", "Followers", "default"),
    ("Telegram Members", "Members", "default"),
    ("Spotify Plays", "Plays", "default"),
    ("Facebook Page Likes", "Likes", "default"),
    ("Instagram Comments", "Comments", "custom_comments"),
]
QUANTITIES = [100, 250, 500, 1000, 1000, 2000, 2500, 5000, 10000, 20000]
SOURCES = ["web"] * 12 + ["api"] * 7 + ["mass"]
COLUMNS = [
    "user_id", "service_id", "source", "status", "link", "quantity", "params", "rate", "charge",
    "cost", "refunded", "provider_id", "upstream_service_id", "failed_over", "upstream_order_id",
    "submit_attempts", "submitted_at", "attention_reason", "start_count", "remains",
    "upstream_status", "last_polled_at", "next_poll_at", "poll_errors", "idempotency_key",
    "request_fingerprint", "created_at", "updated_at", "finished_at",
]  # fmt: skip


class Command(BaseCommand):
    help = "Seed providers, services, customers and many orders (for the cockpit and its bench)."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=100_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--providers", type=int, default=3)
        parser.add_argument("--customers", type=int, default=2000)
        parser.add_argument("--services-per-provider", type=int, default=40)
        parser.add_argument("--batch", type=int, default=100_000)
        parser.add_argument(
            "--seed", type=int, default=42, help="Random seed (same data each run)."
        )
        parser.add_argument(
            "--not-production",
            action="store_true",
            help="Required when DEBUG is off: this writes fake customers, wallets and orders.",
        )

    def handle(self, *args, **opts):
        if not settings.DEBUG and not opts["not_production"]:
            raise CommandError(
                "seed_orders writes fake customers, balances and orders: run it on a benchmark "
                "database, with DEBUG=true or --not-production."
            )
        if opts["orders"] < 0 or opts["days"] < 1 or opts["providers"] < 1 or opts["customers"] < 1:
            raise CommandError("--orders ≥ 0, --days ≥ 1, --providers ≥ 1 and --customers ≥ 1.")
        rng = random.Random(opts["seed"])
        now = timezone.now()
        started = time.monotonic()
        providers = self._providers(opts["providers"], rng, now)
        services = self._services(providers, opts["services_per_provider"], rng)
        customers = self._customers(opts["customers"], rng, now)
        self.stdout.write(
            f"{len(providers)} providers, {len(services)} services, {len(customers)} customers "
            f"ready in {time.monotonic() - started:.1f} s"
        )
        written = 0
        maker = _OrderMaker(rng, now, opts["days"], services, customers)
        # Oldest first, as a live panel writes them: ids and the table's physical order follow
        # created_at, which is what range scans on created_at meet in production.
        ages = sorted((maker.age() for _ in range(opts["orders"])), reverse=True)
        while written < opts["orders"]:
            size = min(opts["batch"], opts["orders"] - written)
            rows = [maker.row(age) for age in ages[written : written + size]]
            with transaction.atomic():
                _write_orders(rows)
            written += size
            self.stdout.write(f"  {written} orders, {time.monotonic() - started:.1f} s")
        # Written in bulk, past order_create: the counters it keeps are set from the orders.
        cells = daily_summary_rebuild()
        wallet_order_counts_rebuild(user_ids=customers)
        self.stdout.write(f"  daily summary ({cells} rows), {time.monotonic() - started:.1f} s")
        if connection.vendor == "postgresql" and connection.get_autocommit():
            # What autovacuum would do after a bulk load: statistics for the planner and the
            # visibility map that index-only scans need.
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM (ANALYZE) {Order._meta.db_table}")
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {written} orders in {time.monotonic() - started:.1f} s.")
        )

    def _providers(self, count: int, rng: random.Random, now) -> list[Provider]:
        providers = []
        for n in range(1, count + 1):
            provider = Provider.objects.filter(name=f"Seed provider {n}").first()
            if provider is None:
                provider = Provider(
                    name=f"Seed provider {n}",
                    api_url=f"http://127.0.0.1:9/seed{n}/api/v2",
                    exchange_rate=Decimal("1") if n != 3 else Decimal("1.08"),
                    currency="USD" if n != 3 else "EUR",
                )
                provider.set_api_key(f"seed-key-{n}-{rng.getrandbits(64):x}")
            provider.balance = Decimal(rng.randint(5, 5000))
            provider.low_balance_threshold = Decimal(100)
            provider.balance_checked_at = now - datetime.timedelta(minutes=rng.randint(1, 30))
            provider.last_sync_at = now - datetime.timedelta(minutes=rng.randint(5, 300))
            provider.save()
            providers.append(provider)
            calls = [
                ProviderCall(
                    provider=provider,
                    action=rng.choice(["status", "status", "add", "balance"]),
                    ok=rng.random() > 0.03 * n,
                    duration_ms=rng.randint(80, 900),
                    created_at=now - datetime.timedelta(seconds=rng.randint(0, 7200)),
                )
                for _ in range(200)
            ]
            ProviderCall.objects.bulk_create(calls)
        return providers

    def _services(self, providers, per_provider: int, rng: random.Random) -> list[Service]:
        categories = []
        for sort, (name, _unit, _type) in enumerate(CATEGORIES):
            category, _ = Category.objects.get_or_create(name=name, defaults={"sort_order": sort})
            categories.append(category)
        services = []
        for provider in providers:
            existing = list(
                Service.objects.filter(upstream__provider=provider).select_related("upstream")
            )
            if existing:
                services.extend(existing)
                continue
            for n in range(per_provider):
                index = n % len(CATEGORIES)
                name, _unit, _type = CATEGORIES[index]
                cost = quantize_rate(Decimal(rng.randint(5, 4000)) / 1000)
                upstream = UpstreamService.objects.create(
                    provider=provider,
                    service_id=str(1000 + n),
                    name=f"{name} [{['HQ', 'Real', 'Fast', 'Cheap', 'Premium'][n % 5]}] #{n}",
                    category=name,
                    rate=cost,
                    min=100,
                    max=20000,
                )
                markup = Decimal(rng.choice([20, 35, 50, 50, 80, 120]))
                rate = quantize_rate(cost * provider.exchange_rate * (100 + markup) / 100)
                services.append(
                    Service.objects.create(
                        name=f"{upstream.name} — {provider.name}",
                        category=categories[index],
                        upstream=upstream,
                        rate=rate,
                        markup_percent=markup,
                        min=100,
                        max=20000,
                        refill=n % 3 == 0,
                        cancel=n % 4 == 0,
                    )
                )
        return services

    def _customers(self, count: int, rng: random.Random, now) -> list[int]:
        prefix = "seed_customer_"
        have = User.objects.filter(username__startswith=prefix).count()
        password = make_password(None)  # unusable: seeded customers cannot log in
        new_users = [
            User(username=f"{prefix}{n:06d}", email=f"c{n}@seed.invalid", password=password,
                 date_joined=now - datetime.timedelta(days=rng.randint(1, 400)))
            for n in range(have, count)
        ]  # fmt: skip
        with transaction.atomic():
            users = User.objects.bulk_create(new_users, batch_size=2000)
            balances = {u.pk: quantize_money(Decimal(rng.randint(0, 50000)) / 100) for u in users}
            Wallet.objects.bulk_create(
                [Wallet(user_id=pk, balance=b) for pk, b in balances.items()], batch_size=2000
            )
            LedgerEntry.objects.bulk_create(
                [
                    LedgerEntry(user_id=pk, kind=LedgerEntry.Kind.DEPOSIT, amount=b,
                                balance_after=b, memo="Seed deposit")
                    for pk, b in balances.items() if b
                ],
                batch_size=2000,
            )  # fmt: skip
        return list(
            User.objects.filter(username__startswith=prefix).values_list("pk", flat=True)[:count]
        )


class _OrderMaker:
    """One random order row at a time, with prices precomputed per (service, quantity)."""

    def __init__(self, rng: random.Random, now, days: int, services, customers):
        self.rng, self.now, self.days = rng, now, days
        self.services = services
        # A few services sell most (Zipf-like); a few customers (resellers) order most.
        self.service_weights = _cumulative([1 / (i + 1) ** 0.8 for i in range(len(services))])
        rng.shuffle(self.services)
        self.customers = customers
        self.customer_weights = _cumulative([1 / (i + 1) ** 0.9 for i in range(len(customers))])
        self.prices = {}
        for service in services:
            cost_rate = service.upstream.rate * service.upstream.provider.exchange_rate
            for q in set(QUANTITIES):
                self.prices[service.pk, q] = (
                    quantize_money(service.rate * q / 1000),
                    quantize_money(cost_rate * q / 1000),
                )
        self.serial = rng.randint(10_000_000, 20_000_000)

    def age(self) -> datetime.timedelta:
        """How long ago an order was placed: busier lately (skewed towards 0), weekends quieter
        (a third of weekend draws are drawn again)."""
        age = datetime.timedelta(days=self.days * self.rng.random() ** 1.25)
        if (self.now - age).weekday() >= 5 and self.rng.random() < 0.3:
            age = datetime.timedelta(days=self.days * self.rng.random() ** 1.25)
        return age

    def row(self, age: datetime.timedelta) -> tuple:
        rng, now = self.rng, self.now
        created = now - age
        service = rng.choices(self.services, cum_weights=self.service_weights)[0]
        user_id = rng.choices(self.customers, cum_weights=self.customer_weights)[0]
        quantity = rng.choice(QUANTITIES)
        charge, cost = self.prices[service.pk, quantity]
        status, remains = self._status(age, quantity)
        refunded = Decimal(0)
        if status == S.CANCELED:
            refunded = charge
        elif status == S.PARTIAL and remains is not None:  # a partial order always has remains
            refunded = quantize_money(charge * remains / quantity)
        placed = status not in (S.QUEUED, S.NEEDS_REVIEW, S.WAITING_FUNDS)
        final = status in (S.COMPLETED, S.PARTIAL, S.CANCELED)
        self.serial += 1
        finished = created + datetime.timedelta(minutes=rng.randint(5, 3000)) if final else None
        if finished is not None and finished > now:
            finished = now
        return (
            user_id, service.pk, rng.choice(SOURCES), status.value,
            f"https://instagram.com/p/{self.serial:x}", quantity, "{}", service.rate, charge,
            cost if placed else None, refunded, service.upstream.provider_id if placed else None,
            service.upstream_id if placed else None, False,
            str(self.serial) if placed else "", 1 if placed else 0,
            created + datetime.timedelta(seconds=2) if placed else None,
            "Read timeout after sending" if status == S.NEEDS_REVIEW else "",
            rng.randint(0, 50000) if placed else None, remains,
            str(status.label) if placed else "",
            now - datetime.timedelta(minutes=rng.randint(1, 60)) if placed else None,
            now + datetime.timedelta(minutes=rng.randint(1, 10)) if placed and not final else None,
            0, None, "", created, finished or created, finished,
        )  # fmt: skip

    def _status(self, age: datetime.timedelta, quantity: int) -> tuple[Order.Status, int | None]:
        roll = self.rng.random()
        hours = age.total_seconds() / 3600
        if roll < 0.0002:
            return S.NEEDS_REVIEW, None
        if roll < 0.0005:
            return S.WAITING_FUNDS, None
        if hours < 0.1:
            return self.rng.choice([S.QUEUED, S.PENDING, S.IN_PROGRESS]), None
        if hours < 24 or roll < 0.0015:  # a few older ones are stuck
            status = self.rng.choice(
                [S.PENDING, S.IN_PROGRESS, S.IN_PROGRESS, S.PROCESSING, S.COMPLETED]
            )
            return status, (0 if status == S.COMPLETED else self.rng.randint(1, quantity))
        if roll < 0.07:
            return S.PARTIAL, self.rng.randint(1, quantity - 1)
        if roll < 0.12:
            return S.CANCELED, quantity
        return S.COMPLETED, 0


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _write_orders(rows: list[tuple]) -> None:
    if connection.vendor == "postgresql":
        columns = ", ".join(COLUMNS)
        with connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg's own cursor, for COPY
            with raw.copy(f"COPY {Order._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    Order.objects.bulk_create(
        [Order(**{**dict(zip(COLUMNS, row, strict=True)), "params": {}}) for row in rows],
        batch_size=2000,
    )
