"""Importing upstream services into the panel: one panel service per upstream service, priced by
the markup rules, in a category named like the upstream one (or one chosen)."""

import logging
from collections.abc import Sequence
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from catalog.models import CatalogSettings, Category, PriceChange, Service, UpstreamService
from catalog.order_types import OrderType
from catalog.selectors import service_cost
from catalog.services.common import BATCH, CatalogError, _check_markup
from catalog.services.descriptions import description_sanitize
from catalog.services.repricing import service_price_decision
from providers.models import Provider

logger = logging.getLogger(__name__)

_TYPES = {t.value.casefold(): t for t in OrderType}


def _categories(names: set[str]) -> dict[str, Category]:
    existing = {c.name: c for c in Category.objects.filter(name__in=names)}
    missing = [Category(name=n) for n in names if n not in existing]
    if missing:
        # ignore_conflicts: a category created meanwhile by someone else is simply reused.
        Category.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {c.name: c for c in Category.objects.filter(name__in=names)}
    return existing


def catalog_import_services(
    *,
    provider: Provider,
    upstream_ids: Sequence[str] | None = None,
    all: bool = False,
    markup_percent: Decimal | None = None,
    category_name: str | None = None,
    skip_unsupported: bool | None = None,
) -> list[Service]:
    """Create panel services for upstream services of `provider` (by upstream id, or `all` of
    them), priced by the markup rules; `markup_percent` sets a per-service markup and
    `category_name` puts them all in one category (created when missing), else each goes to a
    category named like its upstream one.

    Returns the panel services in the order asked; an upstream service already imported returns
    its existing panel service. Raises CatalogError (nothing written) for unknown or removed ids
    or an order type the panel does not know (unless `skip_unsupported`, the default with `all`:
    those are logged and left out).
    """
    if all == (upstream_ids is not None):
        raise CatalogError("Give either upstream ids or all=True.")
    _check_markup(markup_percent)
    if category_name is not None and not category_name.strip():
        raise CatalogError("The category name is empty.")
    qs = UpstreamService.objects.filter(provider=provider, removed_at__isnull=True)
    if not all:
        wanted = [str(i).strip() for i in upstream_ids or ()]
        qs = qs.filter(service_id__in=wanted)
    ups = list(qs.select_related("provider").order_by("id"))
    if not all:
        found = {u.service_id for u in ups}
        if missing := [i for i in wanted if i not in found]:
            raise CatalogError(
                f"No active upstream service {', '.join(missing)} at {provider.name} "
                "(unknown, or removed upstream; run sync_catalog first?)."
            )
        order = {sid: n for n, sid in enumerate(wanted)}
        ups.sort(key=lambda u: order[u.service_id])
    unsupported = [u for u in ups if u.type.casefold() not in _TYPES]
    if skip_unsupported is None:
        skip_unsupported = all
    if unsupported and not skip_unsupported:
        raise CatalogError(
            "Unsupported order type: "
            + ", ".join(f"#{u.service_id} {u.type!r}" for u in unsupported[:10])
        )
    for u in unsupported:
        logger.warning("not importing %s: unsupported type %r", u, u.type)
    ups = [u for u in ups if u.type.casefold() in _TYPES]
    with transaction.atomic():
        return _import(provider, ups, markup_percent, category_name)


def _import(
    provider: Provider,
    ups: list[UpstreamService],
    markup_percent: Decimal | None,
    category_name: str | None,
) -> list[Service]:
    existing: dict[int, Service] = {}
    for s in Service.objects.filter(upstream__in=ups).order_by("id"):
        if s.upstream_id is not None:  # always: the filter went through upstream
            existing.setdefault(s.upstream_id, s)
    todo = [u for u in ups if u.pk not in existing]
    cats = _categories(
        {(category_name or u.category or "Uncategorised").strip()[:200] for u in todo}
    )
    settings, now = CatalogSettings.load(), timezone.now()
    created: list[Service] = []
    for u in todo:
        service = Service(
            name=(u.name or f"{provider.name} #{u.service_id}")[:500],
            description=description_sanitize(u.description),
            category=cats[(category_name or u.category or "Uncategorised").strip()[:200]],
            type=_TYPES[u.type.casefold()],
            min=max(u.min, 1),
            max=max(u.max, u.min, 1),
            refill=u.refill,
            cancel=u.cancel,
            dripfeed=u.dripfeed,
            upstream=u,
            markup_percent=markup_percent,
            rate=Decimal(0),
            created_at=now,
        )
        decision = service_price_decision(service, settings)
        assert decision is not None
        service.rate, service.priced_cost = decision.rate, service_cost(service)
        created.append(service)
    Service.objects.bulk_create(created, batch_size=BATCH)
    PriceChange.objects.bulk_create(
        [
            PriceChange(
                service=s,
                old_rate=None,
                new_rate=s.rate,
                created_at=now,
                reason=f"imported from {provider.name} #{u.service_id}",
            )
            for u, s in zip(todo, created, strict=True)
        ],
        batch_size=BATCH,
    )
    by_upstream = existing | {s.upstream_id: s for s in created}
    logger.info(
        "imported %d services from %s (%d already there)",
        len(created),
        provider.name,
        len(existing),
    )
    return [by_upstream[u.pk] for u in ups]
