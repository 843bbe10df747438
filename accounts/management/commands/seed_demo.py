from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.services import api_key_issue, customer_create

DEMO_ADMIN = ("admin", "admin")
DEMO_CUSTOMER = ("demo", "demo")
DEMO_BALANCE = Decimal("100.00000")


class Command(BaseCommand):
    help = (
        "Create the demo logins for a local trial: an admin and a customer with a balance and an "
        "API key. Safe to run again: what exists is left as it is."
    )

    def handle(self, *args, **options):
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
        raw_key = key_file.read_text().strip()
        url = settings.PANEL_PUBLIC_URL.rstrip("/")
        self.stdout.write(
            f"\n  Panel:        {url}/\n"
            f"  Admin:        {url}/admin/   login {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}\n"
            f"  Customer:     {url}/login/   login {DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}"
            f" (balance {customer.balance} {settings.PANEL_CURRENCY})\n"
            f"  Reseller API: {url}/api/v2   key {raw_key}\n"
        )
