import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from catalog.pricing import parse_money
from providers.services import provider_create, provider_test_connection


def _decimal(option: str, value: str | None):
    if value is None:
        return None
    try:
        return parse_money(value)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


class Command(BaseCommand):
    help = (
        "Register an upstream provider (API v2) and test the connection (balance + services). "
        "If the test fails the provider is not kept, unless --no-test. Give '-' as API_KEY to "
        "read the key from stdin (keeps it out of the shell history and the process list)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="A unique name, e.g. 'smmcloud'.")
        parser.add_argument("api_url", help="The API v2 endpoint, e.g. https://x.com/api/v2")
        parser.add_argument("api_key", help="The API key at the provider, or '-' for stdin.")
        parser.add_argument("--currency", default="USD", help="The provider's currency (USD).")
        parser.add_argument(
            "--exchange-rate", help="Panel currency per unit of the provider's (default 1)."
        )
        parser.add_argument("--markup", help="Markup percent for this provider's services.")
        parser.add_argument("--low-balance", help="Alert the admins under this balance.")
        parser.add_argument(
            "--no-test", action="store_true", help="Register without testing the connection."
        )

    def handle(self, *args, name, api_url, api_key, currency, **options):
        if api_key == "-":
            api_key = sys.stdin.readline().strip()
        try:
            provider = provider_create(
                name=name,
                api_url=api_url,
                api_key=api_key,
                currency=currency,
                # Not `or 1`: an exchange rate of 0 is an error to report, not a default.
                exchange_rate=_decimal("--exchange-rate", options["exchange_rate"] or "1"),
                markup_percent=_decimal("--markup", options["markup"]),
                low_balance_threshold=_decimal("--low-balance", options["low_balance"]),
            )
        except ValidationError as exc:
            errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(f"Provider not registered: {errors}") from None
        self.stdout.write(f"Registered provider {provider.name} (id {provider.pk}).")
        if options["no_test"]:
            return
        self.stdout.write("Testing the connection...")
        report = provider_test_connection(provider=provider)
        for line in report.lines():
            self.stdout.write(f"  {line}")
        if not report.ok:
            provider.delete()
            raise CommandError(
                f"The connection test failed, provider {name} was not kept. Check the URL and "
                "the key, or register it anyway with --no-test."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Connection OK. Next: python manage.py sync_catalog --provider {provider.name}"
            )
        )
