"""The catalog sync: fetch a provider's catalog, diff it against UpstreamService, write the
changes (with the CatalogChange log), then re-price the mapped panel services and import new
ones if the settings say so.

The sync keeps the raw upstream catalog (UpstreamService) apart from the panel's services. Its
query count does not grow with the catalog: it reads the provider's rows once, writes new and
changed rows with one bulk upsert per 1,000, marks removed ones with one UPDATE, and re-prices
the mapped panel services with one bulk_update. Everything after the upstream call happens in
one transaction, so a failed sync leaves the previous catalog exactly as it was.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, transaction
from django.utils import timezone

from catalog.models import CatalogChange, CatalogSettings, Category, Service, UpstreamService
from catalog.pricing import quantize_rate
from catalog.services.common import BATCH, CatalogSyncError
from catalog.services.descriptions import description_sanitize
from catalog.services.imports import catalog_import_services
from catalog.services.repricing import _refresh_services
from providers.client import ProviderError
from providers.gateway import provider_call
from providers.models import Provider
from providers.schemas import ServiceList, clean_text, has_unstorable
from providers.schemas import UpstreamService as FetchedService

logger = logging.getLogger(__name__)

MAX_INT = 2_147_483_647  # PositiveIntegerField; providers write "max": 9999999999 for "no limit"
MAX_RATE = Decimal("1e12")  # RATE_DIGITS 20 with 8 places
SERVICE_ID_CHARS = 64  # UpstreamService.service_id
DETAIL_FIELDS = ("name", "type", "category", "description", "refill", "cancel", "dripfeed")
COMPARED_FIELDS = ("id", "service_id", *DETAIL_FIELDS, "rate", "min", "max", "raw", "removed_at")
UPSERT_FIELDS = (*DETAIL_FIELDS, "rate", "min", "max", "raw", "last_seen_at", "removed_at")


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
    except DatabaseError as exc:
        # The transaction is rolled back whole: the previous catalog stays as it was.
        logger.exception("catalog sync of %s: the database refused a write", provider.name)
        _sync_failed(provider, f"the database refused a write, nothing written: {exc}", exc)
    except Exception as exc:
        logger.exception("catalog sync of %s crashed", provider.name)
        _sync_failed(provider, f"internal error: {exc!r}", exc)
    report.seconds = time.monotonic() - started
    logger.info("catalog sync %s", report.summary())
    return report


def _sync_failed(provider: Provider, message: str, exc: Exception) -> None:
    now = timezone.now()
    message = clean_text(message)
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
    diff = _diff(locked, existing, readable, _skipped_ids(fetched, readable), now)
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
        if service.upstream_id is not None:  # always: the filter went through upstream
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
        elif reason := _unwritable(s):
            skipped.append(f"{clean_text(s.service_id)[:64]}: {reason}")
        else:
            ok.append(s)
    return ok, skipped


def _unwritable(s: FetchedService) -> str | None:
    """Why the row of `s` cannot be written, or None. The client already cleans the texts and
    checks the id; this keeps one bad item (from any source) from failing the whole sync."""
    if len(s.service_id) > SERVICE_ID_CHARS:
        return "service id too long"
    texts = (s.service_id, s.name, s.type, s.category, s.description, s.raw)
    if any(has_unstorable(text) for text in texts):
        return "text the database cannot store (NUL or a lone surrogate)"
    return None


def _raw_id(raw: object) -> str | None:
    if isinstance(raw, dict):
        lowered = {str(k).casefold(): v for k, v in raw.items()}
        value = lowered.get("service", lowered.get("id", lowered.get("service_id")))
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value).strip()
    return None


def _skipped_ids(fetched: ServiceList, readable: list[FetchedService]) -> set[str]:
    # An item we could not read (or write) this time is not "removed": it is still listed
    # upstream.
    ids = {_raw_id(s.raw) for s in fetched.skipped}
    written = {s.service_id for s in readable}
    ids.update(s.service_id for s in fetched if s.service_id not in written)
    return {i for i in ids if i}


def _json_safe(raw: dict[str, Any]) -> dict[str, Any]:
    # The client parses JSON numbers as Decimal (exact rates); JSONField wants plain JSON.
    return json.loads(json.dumps(raw, cls=DjangoJSONEncoder))


def _values(s: FetchedService) -> dict[str, Any]:
    return {
        "name": s.name,
        "type": s.type[:64],
        "category": s.category,
        # Sanitized here, so the comparison below and the stored row see the allowed HTML only.
        "description": description_sanitize(s.description),
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


def _compare(old: UpstreamService, values: dict[str, Any], diff: _Diff) -> list[CatalogChange.Kind]:
    sid = old.service_id
    kinds: list[CatalogChange.Kind] = []
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
