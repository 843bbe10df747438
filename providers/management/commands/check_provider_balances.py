from django.core.management.base import BaseCommand, CommandError

from catalog.pricing import format_money
from providers.client import ProviderError
from providers.models import Provider
from providers.selectors import provider_get_by_name
from providers.services import provider_check_balance


class Command(BaseCommand):
    help = (
        "Fetch and store the balance of one provider (--provider) or of every enabled one; "
        "a provider under its low-balance threshold is flagged and the admins are e-mailed "
        "once. Exits 1 if a provider could not be asked."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", help="The provider's name (default: all enabled).")

    def handle(self, *args, provider=None, **options):
        if provider:
            found = provider_get_by_name(name=provider)
            if found is None:
                raise CommandError(f"No provider called {provider!r}.")
            providers = [found]
        else:
            providers = list(Provider.objects.filter(is_enabled=True))
        failed = 0
        for item in providers:
            try:
                amount = provider_check_balance(provider=item)
            except ProviderError as exc:
                failed += 1
                self.stderr.write(f"{item.name}: FAILED {exc.kind}: {exc.message}")
                continue
            low = " LOW" if item.is_low_on_balance else ""
            self.stdout.write(f"{item.name}: {format_money(amount)} {item.currency}{low}")
        if failed:
            raise CommandError(f"{failed} balance checks failed.")
