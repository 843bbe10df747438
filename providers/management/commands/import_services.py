from django.core.management.base import BaseCommand, CommandError

from catalog.pricing import parse_money
from catalog.services import CatalogError, catalog_import_services
from providers.selectors import provider_get_by_name


class Command(BaseCommand):
    help = (
        "Import upstream services of a provider into the panel's catalog (run sync_catalog "
        "first), with the markup rules applied. Prints 'panel_id<TAB>upstream_id<TAB>rate<TAB>"
        "name' for each; an upstream service imported before prints its existing panel service."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", required=True, help="The provider's name.")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="Every active upstream service.")
        which.add_argument(
            "--service", action="append", metavar="UPSTREAM_ID", dest="services",
            help="An upstream service id; repeat for several (or comma-separate).",
        )  # fmt: skip
        parser.add_argument("--markup", help="Markup percent for these services (their own).")
        parser.add_argument("--category", help="Put them all in this category (created if new).")

    def handle(self, *args, provider, services, markup, category, **options):
        found = provider_get_by_name(name=provider)
        if found is None:
            raise CommandError(f"No provider called {provider!r}.")
        try:
            markup_percent = parse_money(markup) if markup is not None else None
        except ValueError as exc:
            raise CommandError(f"--markup: {exc}") from None
        ids = [i.strip() for s in services or () for i in s.split(",") if i.strip()]
        try:
            imported = catalog_import_services(
                provider=found,
                upstream_ids=None if options["all"] else ids,
                all=options["all"],
                markup_percent=markup_percent,
                category_name=category,
                skip_unsupported=options["all"],
            )
        except CatalogError as exc:
            raise CommandError(f"Nothing imported: {exc}") from None
        for service in imported:
            upstream = service.upstream
            assert upstream is not None
            self.stdout.write(
                f"{service.pk}\t{upstream.service_id}\t{service.rate.normalize():f}\t{service.name}"
            )
        self.stdout.write(self.style.SUCCESS(f"{len(imported)} services in the panel."))
