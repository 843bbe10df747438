"""Reads for providers, and their health for the admin's cockpit."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from providers.models import Provider, ProviderCall


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


@dataclass
class ProviderHealth:
    provider: Provider
    calls_last_hour: int
    errors_last_hour: int
    last_ok_sync: datetime | None

    @property
    def error_rate(self) -> Decimal | None:
        if not self.calls_last_hour:
            return None
        return (Decimal(self.errors_last_hour) * 100 / self.calls_last_hour).quantize(
            Decimal("0.1")
        )

    @property
    def low_balance(self) -> bool:
        return self.provider.is_low_on_balance

    @property
    def problems(self) -> list[str]:
        found = []
        if not self.provider.is_enabled:
            found.append("disabled")
        if self.low_balance:
            found.append("balance below threshold")
        if self.provider.out_of_funds_since:
            found.append("out of funds")
        if self.error_rate is not None and self.error_rate >= 20:
            found.append("many failing calls")
        if self.provider.last_sync_error:
            found.append("last sync failed")
        return found


def provider_health(*, now: datetime) -> list[ProviderHealth]:
    """Every provider with its call counts in the last hour and its last successful catalog
    sync, in one query (the providercall_recent index serves the join)."""
    hour_ago = now - timedelta(hours=1)
    providers = Provider.objects.annotate(
        calls_last_hour=_recent_calls(hour_ago),
        errors_last_hour=_recent_calls(hour_ago, ok=False),
    ).order_by("name")
    return [
        ProviderHealth(p, p.calls_last_hour, p.errors_last_hour, p.last_sync_at) for p in providers
    ]


def _recent_calls(since: datetime, **filters: object) -> Coalesce:
    # A correlated COUNT per provider over (provider, created_at >= since): an index range scan
    # of providercall_recent. A JOIN with Count(filter=...) would read every call ever made.
    calls = (
        ProviderCall.objects.filter(provider=OuterRef("pk"), created_at__gte=since, **filters)
        .order_by()
        .values("provider")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(calls), 0)
