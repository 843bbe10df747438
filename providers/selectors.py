"""Reads for providers."""

from django.db.models import QuerySet

from providers.models import Provider


def provider_list_enabled() -> QuerySet[Provider]:
    return Provider.objects.filter(is_enabled=True).order_by("name")


def provider_ids_enabled() -> list[int]:
    """Ids of the providers the periodic sweeps (catalog sync, balance check) fan out to."""
    return list(provider_list_enabled().values_list("pk", flat=True))


def provider_get_by_name(*, name: str) -> Provider | None:
    """The provider called `name` (exact match first, then case-insensitive), or None."""
    return (
        Provider.objects.filter(name=name).first()
        or Provider.objects.filter(name__iexact=name).first()
    )
