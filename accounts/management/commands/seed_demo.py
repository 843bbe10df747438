import threading
import urllib.request
from contextlib import contextmanager
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.middleware import admin_two_factor_exempt_name
from accounts.services import api_key_issue, customer_create

DEMO_ADMIN = ("admin", "admin")
DEMO_CUSTOMER = ("demo", "demo")
DEMO_BALANCE = Decimal("100.00000")
SANDBOX_NAME = "Sandbox"


class Command(BaseCommand):
    help = (
        "Create the demo data of a local trial: an admin, a customer with a balance and an API "
        "key and, with --sandbox-url, the sandbox provider with its catalog synced and imported. "
        "Safe to run again: what exists is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--sandbox-url",
            help="Register the sandbox provider at this API URL (e.g. http://127.0.0.1:8765/api/v2)"
            " and import its catalog. A sandbox is started for the sync if none answers there.",
        )

    def handle(self, *args, sandbox_url=None, **options):
        customer, raw_key = self._logins()
        if sandbox_url:
            self._sandbox(sandbox_url)
        url = settings.PANEL_PUBLIC_URL.rstrip("/")
        self.stdout.write(
            f"\n  Panel:        {url}/\n"
            f"  Admin:        {url}/admin/   login {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}"
            f"{self._two_factor_note()}\n"
            f"  Customer:     {url}/accounts/login/   login {DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}"
            f" (balance {customer.balance} {settings.PANEL_CURRENCY})\n"
            f"  Reseller API: {url}/api/v2   key {raw_key}\n"
        )
        if sandbox_url:
            self.stdout.write(
                f"  Sandbox:      {sandbox_url}   key sandbox-key (docs/sandbox.md)\n"
            )

    def _logins(self):
        key_file = settings.VAR_DIR / "demo_api_key.txt"
        user_model = get_user_model()
        with transaction.atomic():
            if not user_model.objects.filter(username=DEMO_ADMIN[0]).exists():
                user_model.objects.create_superuser(DEMO_ADMIN[0], "admin@localhost", DEMO_ADMIN[1])
            customer = user_model.objects.filter(username=DEMO_CUSTOMER[0]).first()
            if customer is None:
                customer = customer_create(
                    username=DEMO_CUSTOMER[0],
                    email="demo@localhost",
                    password=DEMO_CUSTOMER[1],
                    opening_balance=DEMO_BALANCE,
                )
            if not key_file.exists() or not hasattr(customer, "api_key"):
                # The key is stored hashed; the demo keeps its plain text in var/ so that every
                # `make run` can print it again.
                key_file.write_text(api_key_issue(user=customer).raw + "\n")
        return customer, key_file.read_text().strip()

    @staticmethod
    def _two_factor_note() -> str:
        if admin_two_factor_exempt_name(DEMO_ADMIN[0]):
            return " (no second factor: PANEL_ADMIN_2FA_EXEMPT, DEBUG only)"
        return " (the admin asks it to set up two-factor first)"

    def _sandbox(self, api_url: str) -> None:
        from catalog.services import (
            CatalogError,
            CatalogSyncError,
            catalog_import_services,
            catalog_sync_provider,
        )
        from providers.models import Provider
        from providers.sandbox.server import DEFAULT_KEY
        from providers.services import provider_create

        provider = Provider.objects.filter(name=SANDBOX_NAME).first()
        if provider is None:
            provider = provider_create(
                name=SANDBOX_NAME, api_url=api_url, api_key=DEFAULT_KEY, currency="USD"
            )
            self.stdout.write(f"Registered the sandbox provider at {api_url}.")
        if provider.upstream_services.exists():
            return  # synced before; beat keeps it in sync from now on
        try:
            with _sandbox_answering(api_url):
                report = catalog_sync_provider(provider=provider)
                services = catalog_import_services(provider=provider, all=True)
        except (CatalogError, CatalogSyncError, OSError) as exc:
            raise CommandError(f"Could not sync the sandbox catalog: {exc}") from None
        self.stdout.write(f"Synced {report.summary()}\n{len(services)} sandbox services on sale.")


@contextmanager
def _sandbox_answering(api_url: str):
    """Make sure a sandbox answers at `api_url` for the first sync: `make run` seeds before the
    process manager starts the real one, so start one in a thread for the moment if needed."""
    parts = urlsplit(api_url)
    base = f"{parts.scheme}://{parts.netloc}"
    try:
        urllib.request.urlopen(f"{base}/_sandbox/health", timeout=2).close()  # noqa: S310
    except OSError:
        pass
    else:
        yield
        return
    from providers.sandbox.server import SandboxConfig, make_server

    config = SandboxConfig(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 80,
        db_path=str(settings.VAR_DIR / "sandbox.sqlite3"),
        quiet=True,
    )
    server = make_server(config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
