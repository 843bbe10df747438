from django.core.management.base import BaseCommand, CommandError

from catalog.services import CatalogSyncError, catalog_sync_provider
from providers.models import Provider
from providers.selectors import provider_get_by_name


class Command(BaseCommand):
    help = (
        "Fetch the catalog of one provider (--provider) or of every enabled provider, record "
        "what changed and re-price the panel services. Exits 1 if any sync failed (a failed "
        "sync changes nothing)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", help="The provider's name (default: all enabled).")
        parser.add_argument(
            "--allow-mass-removal",
            action="store_true",
            help="Accept a catalog that drops more than half of the known services (refused by "
            "default, in case the provider answered a partial list).",
        )

    def handle(self, *args, provider=None, allow_mass_removal=False, **options):
        if provider:
            found = provider_get_by_name(name=provider)
            if found is None:
                names = ", ".join(Provider.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"No provider called {provider!r} (known: {names}).")
            providers = [found]
        else:
            providers = list(Provider.objects.filter(is_enabled=True))
            if not providers:
                raise CommandError("No enabled provider. Add one with add_provider.")
        failed = 0
        for item in providers:
            try:
                report = catalog_sync_provider(
                    provider=item, progress=self.stdout.write, allow_mass_removal=allow_mass_removal
                )
            except CatalogSyncError as exc:
                failed += 1
                self.stderr.write(self.style.ERROR(f"FAILED, nothing changed: {exc}"))
                continue
            self.stdout.write(self.style.SUCCESS(report.summary()))
            for reason in report.skipped_reasons:
                self.stdout.write(f"  unreadable upstream item {reason}")
        if failed:
            raise CommandError(f"{failed} of {len(providers)} provider syncs failed.")
