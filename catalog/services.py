"""Writes for the catalog: sync a provider's catalog, import upstream services, re-price, holds.

The sync keeps the raw upstream catalog (UpstreamService) apart from the panel's services. Its
query count does not grow with the catalog: it reads the provider's rows once, writes new and
changed rows with one bulk upsert per 1,000, marks removed ones with one UPDATE, and re-prices
the mapped panel services with one bulk_update. Everything after the upstream call happens in
one transaction, so a failed sync leaves the previous catalog exactly as it was.
"""

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import (
    CatalogChange,
    CatalogSettings,
    Category,
    PriceChange,
    Service,
    UpstreamService,
)
from catalog.order_types import OrderType
from catalog.pricing import Pause, PriceDecision, convert_rate, decide_price, quantize_rate
from providers.client import ProviderError
from providers.gateway import provider_call
from providers.models import Provider
from providers.schemas import ServiceList
from providers.schemas import UpstreamService as FetchedService

logger = logging.getLogger(__name__)

BATCH = 1000
MAX_INT = 2_147_483_647  # PositiveIntegerField; providers write "max": 9999999999 for "no limit"
MAX_RATE = Decimal("1e12")  # RATE_DIGITS 20 with 8 places
DETAIL_FIELDS = ("name", "type", "category", "description", "refill", "cancel", "dripfeed")
COMPARED_FIELDS = ("id", "service_id", *DETAIL_FIELDS, "rate", "min", "max", "raw", "removed_at")
UPSERT_FIELDS = (*DETAIL_FIELDS, "rate", "min", "max", "raw", "last_seen_at", "removed_at")
SERVICE_SYNC_FIELDS = (
    "rate",
    "priced_cost",
    "held_rate",
    "held_cost",
    "is_enabled",
    "disabled_cause",
    "disabled_reason",
    "type",
    "min",
    "max",
    "refill",
    "cancel",
    "dripfeed",
    "updated_at",
)
_TYPES = {t.value.casefold(): t for t in OrderType}

Cause = Service.DisabledCause


class CatalogError(Exception):
    """Bad input for a catalog operation; nothing was written. The message says what to fix."""


class CatalogSyncError(Exception):
    """A sync failed; nothing was written and provider.last_sync_error says why."""


@dataclass
class SyncReport:
    """What one sync did, for the command's summary, the admin message and the logs."""

    provider: str
    upstream_total: int = 0
    skipped: int = 0
    new: int = 0
    price: int = 0
    limits: int = 0
    details: int = 0
    removed: int = 0
    restored: int = 0
    repriced: int = 0
    held: int = 0
    disabled: int = 0
    enabled: int = 0
    imported: int = 0
    seconds: float = 0.0
    skipped_reasons: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return self.new + self.price + self.limits + self.details + self.removed + self.restored

    def summary(self) -> str:
        return (
            f"{self.provider}: {self.upstream_total} upstream services ({self.skipped} unreadable);"
            f" {self.new} new, {self.price} price changes, {self.limits} min/max changes,"
            f" {self.details} detail changes, {self.removed} removed, {self.restored} back;"
            f" panel services: {self.repriced} re-priced, {self.held} held for approval,"
            f" {self.disabled} disabled, {self.enabled} re-enabled, {self.imported} imported"
            f" ({self.seconds:.2f}s)"
        )


Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# --- sync ----------------------------------------------------------------------------------------


def catalog_sync_provider(
    *, provider: Provider, progress: Progress | None = None, allow_mass_removal: bool = False
) -> SyncReport:
    """Fetch the provider's catalog and bring UpstreamService, the CatalogChange log and the
    mapped panel services up to date.

    A sync that would mark more than CATALOG_SYNC_MAX_REMOVED_PERCENT (50) % of the known
    services as removed is refused (a provider answering half a catalog under load would
    otherwise disable half the panel) unless `allow_mass_removal`.

    Raises CatalogSyncError (the ProviderError or the refusal as its cause) after storing the
    reason in provider.last_sync_error; nothing else is written then.
    """
    started = time.monotonic()
    progress = progress or _quiet
    report = SyncReport(provider=provider.name)
    try:
        progress(f"{provider.name}: fetching the catalog from {provider.api_url}")
        fetched = provider_call(provider, "services", lambda c: c.services())
        progress(f"{provider.name}: {len(fetched)} services received, writing")
        with transaction.atomic():
            _apply_catalog(provider, fetched, report, timezone.now(), allow_mass_removal)
    except ProviderError as exc:
        _sync_failed(provider, f"{exc.kind}: {exc.message}", exc)
    except CatalogSyncError as exc:
        _sync_failed(provider, str(exc), exc)
    except Exception as exc:
        logger.exception("catalog sync of %s crashed", provider.name)
        _sync_failed(provider, f"internal error: {exc!r}", exc)
    report.seconds = time.monotonic() - started
    logger.info("catalog sync %s", report.summary())
    return report


def _sync_failed(provider: Provider, message: str, exc: Exception) -> None:
    now = timezone.now()
    Provider.objects.filter(pk=provider.pk).update(
        last_sync_error=f"{now:%Y-%m-%d %H:%M} {message}"
    )
    provider.refresh_from_db(fields=["last_sync_error"])
    logger.warning("catalog sync of %s failed, nothing written: %s", provider.name, message)
    if isinstance(exc, CatalogSyncError):
        raise exc
    raise CatalogSyncError(f"{provider.name}: {message}") from exc


@dataclass
class _Diff:
    upserts: list[UpstreamService] = field(default_factory=list)
    changes: list[tuple[str, str, dict, dict]] = field(default_factory=list)  # id, kind, old, new
    removed: list[UpstreamService] = field(default_factory=list)
    restored: set[str] = field(default_factory=set)
    type_changed: set[str] = field(default_factory=set)
    new_ids: list[str] = field(default_factory=list)


def _apply_catalog(
    provider: Provider,
    fetched: ServiceList,
    report: SyncReport,
    now: datetime,
    allow_mass_removal: bool = False,
) -> None:
    # The row lock makes two syncs of one provider (beat + "sync now") run one after the other.
    locked = Provider.objects.select_for_update().get(pk=provider.pk)
    existing = {
        u.service_id: u
        for u in UpstreamService.objects.filter(provider=locked).only(*COMPARED_FIELDS)
    }
    readable, skipped = _readable(fetched)
    report.upstream_total, report.skipped = len(fetched) + len(fetched.skipped), len(skipped)
    report.skipped_reasons = skipped[:20]
    active = sum(1 for u in existing.values() if u.removed_at is None)
    if not readable and active:
        raise CatalogSyncError(
            f"the provider answered an empty catalog ({len(skipped)} unreadable items); refusing "
            f"to mark {active} services as removed"
        )
    diff = _diff(locked, existing, readable, _skipped_ids(fetched), now)
    limit = getattr(django_settings, "CATALOG_SYNC_MAX_REMOVED_PERCENT", 50)
    if not allow_mass_removal and len(diff.removed) > max(10, active * limit / 100):
        raise CatalogSyncError(
            f"{len(diff.removed)} of {active} services would be marked removed (more than "
            f"{limit}%); refusing in case the answer was partial. If the provider really dropped "
            "them: sync_catalog --provider NAME --allow-mass-removal"
        )
    _write_upstream(locked, diff, now)
    _count_changes(diff, report)
    settings = CatalogSettings.load()
    services = _services_of(locked, existing, diff)
    _refresh_services(services, settings=settings, now=now, diff=diff, report=report)
    if settings.auto_import_new_services and diff.new_ids:
        imported = catalog_import_services(
            provider=locked, upstream_ids=diff.new_ids, skip_unsupported=True
        )
        report.imported = len(imported)
    locked.last_sync_at, locked.last_sync_error = now, ""
    locked.save(update_fields=["last_sync_at", "last_sync_error"])
    provider.last_sync_at, provider.last_sync_error = now, ""


def _services_of(
    provider: Provider, existing: dict[str, UpstreamService], diff: _Diff
) -> list[Service]:
    """The provider's panel services with their upstream rows as just written. The upstream
    rows and categories come from memory instead of a join: building three model instances per
    service was most of the time of a 5,000-service sync."""
    upstreams = {u.pk: u for u in existing.values()} | {u.pk: u for u in diff.upserts}
    for u in upstreams.values():
        u.provider = provider
    # Locked: the sync writes these rows back whole (rate, holds, enabled), so an admin's price
    # or approval committed meanwhile would be overwritten. service_set_price and
    # service_approve_held_price wait for the sync instead.
    services = list(
        Service.objects.filter(upstream__provider=provider)
        .select_for_update(of=("self",))
        .order_by("pk")
        .defer("name", "description", "created_at", "updated_at")
    )
    categories = Category.objects.in_bulk({s.category_id for s in services})
    for service in services:
        service.upstream = upstreams[service.upstream_id]
        service.category = categories[service.category_id]
    return services


def _readable(fetched: ServiceList) -> tuple[list[FetchedService], list[str]]:
    # The client already left out unreadable items; these are values our columns cannot hold.
    ok: list[FetchedService] = []
    skipped = [f"{_raw_id(s.raw) or '?'}: {s.reason}" for s in fetched.skipped]
    for s in fetched:
        if s.rate >= MAX_RATE:
            skipped.append(f"{s.service_id}: rate {s.rate} too large")
        else:
            ok.append(s)
    return ok, skipped


def _raw_id(raw: object) -> str | None:
    if isinstance(raw, dict):
        lowered = {str(k).casefold(): v for k, v in raw.items()}
        value = lowered.get("service", lowered.get("id", lowered.get("service_id")))
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value).strip()
    return None


def _skipped_ids(fetched: ServiceList) -> set[str]:
    # An item we could not read this time is not "removed": it is still listed upstream.
    ids = {_raw_id(s.raw) for s in fetched.skipped}
    ids.update(s.service_id for s in fetched if s.rate >= MAX_RATE)
    return {i for i in ids if i}


def _json_safe(raw: dict[str, Any]) -> dict[str, Any]:
    # The client parses JSON numbers as Decimal (exact rates); JSONField wants plain JSON.
    return json.loads(json.dumps(raw, cls=DjangoJSONEncoder))


def _values(s: FetchedService) -> dict[str, Any]:
    return {
        "name": s.name,
        "type": s.type[:64],
        "category": s.category,
        "description": s.description,
        "refill": s.refill,
        "cancel": s.cancel,
        "dripfeed": s.dripfeed,
        "rate": quantize_rate(s.rate),
        "min": min(s.min, MAX_INT),
        "max": min(s.max, MAX_INT),
        "raw": _json_safe(s.raw),
    }


def _diff(
    provider: Provider,
    existing: dict[str, UpstreamService],
    fetched: list[FetchedService],
    skipped_ids: set[str],
    now: datetime,
) -> _Diff:
    diff = _Diff()
    seen: set[str] = set()
    for s in fetched:
        seen.add(s.service_id)
        values = _values(s)
        old = existing.get(s.service_id)
        if old is None:
            diff.new_ids.append(s.service_id)
            diff.changes.append((s.service_id, CatalogChange.Kind.NEW, {}, _summary(values)))
        else:
            kinds = _compare(old, values, diff)
            if not kinds and old.raw == values["raw"] and old.removed_at is None:
                continue  # unchanged: only last_seen_at moves, in one UPDATE for all
        diff.upserts.append(
            UpstreamService(
                provider=provider,
                service_id=s.service_id,
                **values,
                first_seen_at=now,
                last_seen_at=now,
                removed_at=None,
            )
        )
    diff.removed = [
        u
        for sid, u in existing.items()
        if sid not in seen and sid not in skipped_ids and u.removed_at is None
    ]
    for u in diff.removed:
        diff.changes.append((u.service_id, CatalogChange.Kind.REMOVED, {}, {}))
    return diff


def _compare(old: UpstreamService, values: dict[str, Any], diff: _Diff) -> list[str]:
    sid, kinds = old.service_id, []
    if old.rate != values["rate"]:
        kinds.append(CatalogChange.Kind.PRICE)
        diff.changes.append(
            (sid, kinds[-1], {"rate": str(old.rate)}, {"rate": str(values["rate"])})
        )
    if (old.min, old.max) != (values["min"], values["max"]):
        kinds.append(CatalogChange.Kind.LIMITS)
        diff.changes.append(
            (
                sid,
                kinds[-1],
                {"min": old.min, "max": old.max},
                {"min": values["min"], "max": values["max"]},
            )
        )
    changed = [f for f in DETAIL_FIELDS if getattr(old, f) != values[f]]
    if changed:
        kinds.append(CatalogChange.Kind.DETAILS)
        diff.changes.append(
            (sid, kinds[-1], {f: getattr(old, f) for f in changed}, {f: values[f] for f in changed})
        )
        if "type" in changed:
            diff.type_changed.add(sid)
    if old.removed_at is not None:
        kinds.append(CatalogChange.Kind.RESTORED)
        diff.restored.add(sid)
        diff.changes.append((sid, kinds[-1], {"removed_at": old.removed_at.isoformat()}, {}))
    return kinds


def _summary(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items() if k != "raw"}


def _write_upstream(provider: Provider, diff: _Diff, now: datetime) -> None:
    # On PostgreSQL bulk_create(update_conflicts=True) sets the primary keys of every row,
    # inserted or updated: the CatalogChange rows below need them.
    UpstreamService.objects.bulk_create(
        diff.upserts,
        update_conflicts=True,
        unique_fields=["provider", "service_id"],
        update_fields=list(UPSERT_FIELDS),
        batch_size=BATCH,
    )
    if diff.removed:
        UpstreamService.objects.filter(pk__in=[u.pk for u in diff.removed]).update(removed_at=now)
        for u in diff.removed:
            u.removed_at = now
    UpstreamService.objects.filter(provider=provider, removed_at__isnull=True).exclude(
        last_seen_at=now
    ).update(last_seen_at=now)
    pks = {u.service_id: u.pk for u in diff.upserts} | {u.service_id: u.pk for u in diff.removed}
    CatalogChange.objects.bulk_create(
        [
            CatalogChange(
                provider=provider,
                upstream_service_id=pks[sid],
                kind=kind,
                old=old,
                new=new,
                created_at=now,
            )
            for sid, kind, old, new in diff.changes
        ],
        batch_size=BATCH,
    )


def _count_changes(diff: _Diff, report: SyncReport) -> None:
    for _sid, kind, _old, _new in diff.changes:
        setattr(report, kind, getattr(report, kind) + 1)


# --- panel services: limits, flags, prices, disabling --------------------------------------------


def _markup(service: Service, settings: CatalogSettings) -> Decimal:
    """Service, then category, then provider, then the global default."""
    for value in (
        service.markup_percent,
        service.category.markup_percent,
        service.upstream.provider.markup_percent if service.upstream else None,
    ):
        if value is not None:
            return value
    return settings.default_markup_percent


def service_cost(service: Service) -> Decimal | None:
    """The provider's rate in the panel's currency (None for a manual service)."""
    if service.upstream is None:
        return None
    return convert_rate(service.upstream.rate, service.upstream.provider.exchange_rate)


def service_price_decision(service: Service, settings: CatalogSettings) -> PriceDecision | None:
    """What the pricing rules say this service should sell at now (None: manual service)."""
    cost = service_cost(service)
    if cost is None:
        return None
    return decide_price(
        fixed=service.pricing == Service.Pricing.FIXED,
        current_rate=service.rate,
        priced_cost=service.priced_cost,
        cost=cost,
        markup_percent=_markup(service, settings),
        hold_percent=settings.price_rise_hold_percent,
        pause_on_hold=service.hold_policy == Service.HoldPolicy.PAUSE,
        allow_below_cost=service.allow_below_cost,
    )


def _snapshot(service: Service) -> tuple:
    return tuple(getattr(service, f) for f in SERVICE_SYNC_FIELDS if f != "updated_at")


def _disable(service: Service, cause: str, reason: str) -> None:
    service.is_enabled, service.disabled_cause, service.disabled_reason = False, cause, reason[:300]


def _enable(service: Service) -> None:
    service.is_enabled, service.disabled_cause, service.disabled_reason = True, Cause.NONE, ""


def _follow_upstream(service: Service, now: datetime, diff: _Diff | None) -> bool:
    """Limits, flags and removal; False when the service cannot sell (removed/type changed)."""
    up = service.upstream
    assert up is not None
    if up.removed_at is not None:
        if service.is_enabled or service.disabled_cause in (Cause.PRICE_HOLD, Cause.BELOW_COST):
            _disable(
                service,
                Cause.UPSTREAM_REMOVED,
                f"Upstream service #{up.service_id} disappeared from {up.provider.name} "
                f"(sync of {now:%Y-%m-%d %H:%M} UTC).",
            )
        return False
    if diff and up.service_id in diff.restored and service.disabled_cause == Cause.UPSTREAM_REMOVED:
        _enable(service)
    if diff and up.service_id in diff.type_changed and service.type != up.type:
        _disable(
            service,
            Cause.UPSTREAM_CHANGED,
            f"The upstream type changed to {up.type!r}; check the service and enable it again.",
        )
    # Never accept what upstream refuses: limits narrow into the upstream range, flags the
    # upstream dropped are dropped (flags it adds are left for the admin to switch on).
    lo, hi = max(service.min, up.min, 1), min(service.max, up.max)
    if lo > hi:
        lo, hi = max(up.min, 1), max(up.max, up.min, 1)
    service.min, service.max = lo, hi
    service.refill = service.refill and up.refill
    service.cancel = service.cancel and up.cancel
    service.dripfeed = service.dripfeed and up.dripfeed
    return service.disabled_cause not in (Cause.UPSTREAM_REMOVED, Cause.UPSTREAM_CHANGED)


def _apply_decision(
    service: Service,
    decision: PriceDecision,
    cost: Decimal,
    reason: str,
    prices: list[PriceChange],
    changed_by=None,
) -> None:
    if decision.rate != service.rate:
        prices.append(
            PriceChange(
                service=service,
                old_rate=service.rate,
                new_rate=decision.rate,
                reason=reason[:300],
                changed_by=changed_by,
            )
        )
        service.rate = decision.rate
    service.held_rate, service.held_cost = decision.held_rate, decision.held_cost
    if not decision.is_held:
        service.priced_cost = cost
    if decision.pause:
        if service.is_enabled or service.disabled_cause in (Cause.PRICE_HOLD, Cause.BELOW_COST):
            _disable(service, str(decision.pause), decision.reason)
    elif not service.is_enabled and service.disabled_cause in (Cause.PRICE_HOLD, Cause.BELOW_COST):
        _enable(service)


def _refresh_services(
    services: Iterable[Service],
    *,
    settings: CatalogSettings,
    now: datetime,
    diff: _Diff | None = None,
    report: SyncReport | None = None,
    changed_by=None,
    reason: str = "sync",
) -> int:
    """Apply the upstream state and the pricing rules to `services`; write the changed ones with
    one bulk_update and every rate change as a PriceChange. Returns how many changed."""
    changed: list[Service] = []
    prices: list[PriceChange] = []
    for service in services:
        if service.upstream is None:
            continue
        before, was_enabled, rate_before = _snapshot(service), service.is_enabled, service.rate
        if _follow_upstream(service, now, diff):
            decision = service_price_decision(service, settings)
            assert decision is not None
            cost = service_cost(service)
            assert cost is not None
            _apply_decision(
                service,
                decision,
                cost,
                f"{reason}: cost {cost.normalize():f}, markup {_markup(service, settings)}%",
                prices,
                changed_by,
            )
        if _snapshot(service) == before:
            continue
        service.updated_at = now
        changed.append(service)
        if report is not None:
            report.repriced += service.rate != rate_before
            report.held += service.held_rate is not None
            report.disabled += was_enabled and not service.is_enabled
            report.enabled += not was_enabled and service.is_enabled
    Service.objects.bulk_update(changed, list(SERVICE_SYNC_FIELDS), batch_size=500)
    PriceChange.objects.bulk_create(prices, batch_size=BATCH)
    return len(changed)


def catalog_reprice_services(*, services: Iterable[Service] | None = None, changed_by=None) -> int:
    """Re-apply the markup rules (after a markup, exchange rate or hold threshold changed in
    admin) to `services` (default: every service mapped to an upstream). Returns the number of
    services that changed."""
    qs = Service.objects.filter(upstream__isnull=False).select_related(
        "category", "upstream", "upstream__provider"
    )
    if isinstance(services, QuerySet):
        qs = qs.filter(pk__in=services.values("pk"))
    elif services is not None:
        qs = qs.filter(pk__in=[s.pk for s in services])
    with transaction.atomic():
        return _refresh_services(
            # pk order, like the sync's lock: two lockers of overlapping sets cannot deadlock.
            list(qs.select_for_update(of=("self",)).order_by("pk")),
            settings=CatalogSettings.load(),
            now=timezone.now(),
            changed_by=changed_by,
            reason="markup rules changed",
        )


# --- import --------------------------------------------------------------------------------------


def _check_markup(markup_percent: Decimal | None) -> None:
    if markup_percent is None:
        return
    if not markup_percent.is_finite() or not Decimal(-100) < markup_percent < Decimal(1_000_000):
        raise CatalogError(f"The markup must be a percentage above -100, got {markup_percent}.")
    # The column holds 2 places (PERCENT): more would be rounded by the database, and a price
    # computed from the unrounded value would not match the one the next sync computes.
    if markup_percent != markup_percent.quantize(Decimal("0.01")):
        raise CatalogError(f"The markup takes at most 2 decimal places, got {markup_percent}.")


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
            description=u.description,
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
                reason=f"imported from {provider.name} #{s.upstream.service_id}",
            )
            for s in created
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


# --- holds and hand-set prices -------------------------------------------------------------------


def service_approve_held_price(*, service: Service, approved_by=None) -> Service:
    """Accept the held upstream rise: sell at held_rate from now on and re-enable the service if
    the hold paused it. CatalogError when nothing is held."""
    with transaction.atomic():
        service = Service.objects.select_for_update().get(pk=service.pk)
        if service.held_rate is None:
            raise CatalogError(f"Service {service.pk} has no held price to approve.")
        PriceChange.objects.create(
            service=service,
            old_rate=service.rate,
            new_rate=service.held_rate,
            reason="held upstream rise approved",
            changed_by=approved_by,
        )
        service.rate, service.priced_cost = service.held_rate, service.held_cost
        service.held_rate = service.held_cost = None
        if not service.is_enabled and service.disabled_cause in (
            Cause.PRICE_HOLD,
            Cause.BELOW_COST,
        ):
            _enable(service)
        service.save()
    logger.info("service %s: held price %s approved by %s", service.pk, service.rate, approved_by)
    return service


def service_set_price(
    *, service: Service, rate: Decimal, changed_by=None, reason: str = "set by hand"
) -> Service:
    """Set a fixed retail rate by hand (Service.pricing becomes FIXED: syncs never change it).

    Raises ValidationError for a negative rate, or one below cost unless the service allows it.
    """
    rate = quantize_rate(Decimal(rate))
    if not rate.is_finite() or rate < 0:
        raise ValidationError({"rate": "The rate must be a positive amount."})
    with transaction.atomic():
        service = (
            Service.objects.select_for_update(of=("self",))
            .select_related("upstream__provider")
            .get(pk=service.pk)
        )
        cost = service_cost(service)
        if cost is not None and rate < cost and not service.allow_below_cost:
            raise ValidationError(
                {
                    "rate": f"{rate.normalize():f} is below the cost {cost.normalize():f}; allow "
                    "selling below cost for this service first."
                }
            )
        if rate != service.rate:
            PriceChange.objects.create(
                service=service,
                old_rate=service.rate,
                new_rate=rate,
                reason=reason[:300],
                changed_by=changed_by,
            )
        service.rate, service.pricing = rate, Service.Pricing.FIXED
        service.held_rate = service.held_cost = None
        if not service.is_enabled and service.disabled_cause in (
            Cause.PRICE_HOLD,
            Cause.BELOW_COST,
        ):
            _enable(service)
        service.save()
    return service


def service_use_markup(
    *, service: Service, markup_percent: Decimal | None = None, changed_by=None
) -> Service:
    """Switch a service back to following the upstream rate with the markup rules
    (`markup_percent` as its own override, None to inherit) and re-price it now."""
    _check_markup(markup_percent)
    Service.objects.filter(pk=service.pk).update(
        pricing=Service.Pricing.MARKUP, markup_percent=markup_percent
    )
    catalog_reprice_services(services=[service], changed_by=changed_by)
    service.refresh_from_db()
    return service


def catalog_apply_markup(
    *, services: Iterable[Service], markup_percent: Decimal | None, changed_by=None
) -> int:
    """Bulk: make `services` follow their cost with `markup_percent` (None: inherit from the
    category/provider/global) and re-price them now. Returns how many changed."""
    _check_markup(markup_percent)
    ids = [s.pk for s in services]
    Service.objects.filter(pk__in=ids).update(
        pricing=Service.Pricing.MARKUP, markup_percent=markup_percent
    )
    return catalog_reprice_services(services=[Service(pk=i) for i in ids], changed_by=changed_by)


def service_disable(*, service: Service, reason: str, cause: str = Cause.MANUAL) -> Service:
    """Disable a service, saying why (shown in admin). A sync re-enables only what a sync
    disabled; with the default cause (an admin, or the orders app after an upstream "service
    disabled") it stays off until someone enables it."""
    _disable(service, cause, reason or "Disabled by an admin.")
    service.save(update_fields=["is_enabled", "disabled_cause", "disabled_reason", "updated_at"])
    return service


def service_enable_refusal(service: Service) -> str | None:
    """Why `service` must not go on sale now, or None: orders could not be served (its upstream
    service is gone, its provider disabled) or would lose money (below cost without
    `allow_below_cost`)."""
    upstream = service.upstream
    if upstream is None:
        return None
    if upstream.removed_at is not None:
        return f"{service}: its upstream service was removed at the provider."
    if not upstream.provider.is_enabled:
        return f"{service}: its provider {upstream.provider} is disabled."
    cost = service_cost(service)
    if cost is not None and service.rate < cost and not service.allow_below_cost:
        return (
            f"{service}: the rate {service.rate} is below the cost {cost}; raise the price "
            "or allow selling below cost first."
        )
    return None


def service_enable(*, service: Service) -> Service:
    """Enable a service by hand (clears why it was disabled). Raises CatalogError, changing
    nothing, when service_enable_refusal() gives a reason."""
    if refusal := service_enable_refusal(service):
        raise CatalogError(refusal)
    _enable(service)
    service.save(update_fields=["is_enabled", "disabled_cause", "disabled_reason", "updated_at"])
    return service


__all__ = [
    "CatalogError",
    "CatalogSyncError",
    "Pause",
    "SyncReport",
    "catalog_apply_markup",
    "catalog_import_services",
    "catalog_reprice_services",
    "catalog_sync_provider",
    "service_approve_held_price",
    "service_cost",
    "service_disable",
    "service_enable",
    "service_enable_refusal",
    "service_price_decision",
    "service_set_price",
    "service_use_markup",
]
