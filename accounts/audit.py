"""The admin audit log: who did what to money, prices, providers, order statuses and customers.

Three ways in:
- `audit_record(...)` from any admin view or action (one row);
- `AuditedAdminMixin` on a ModelAdmin: every add, change (with the changed fields before and
  after) and delete made through that admin is recorded next to Django's own LogEntry;
- `@audited_action(...)` on an admin action: one row per selected object (or one summary row
  for a very large selection), written after the action ran;
- `audit_record_selection(...)` from a service that changes a selection (the same rows, written
  in the service's own transaction: accounts.services' suspend and key switches use it).
"""

import datetime
import functools
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import QuerySet

from accounts.models import AdminAuditLog, User

# An action over more objects than this gets one summary row instead of one row per object.
PER_OBJECT_LIMIT = 500


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a value: Decimals and dates as strings, model instances as their pk."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, QuerySet):
        return [obj.pk for obj in value]
    if isinstance(value, Decimal | datetime.date | datetime.time | datetime.timedelta | uuid.UUID):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _object_fields(obj: models.Model, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The concrete field values of `obj` (or only `names`), JSON-safe; secrets left out."""
    values = {}
    for field in obj._meta.concrete_fields:
        if names is not None and field.name not in names:
            continue
        if _is_secret(field.name):
            values[field.name] = "(hidden)"
            continue
        values[field.name] = _plain(getattr(obj, field.attname))
    return values


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("password", "api_key", "key_hash", "secret", "token"))


def audit_record(
    *,
    actor: User | None,
    action: str,
    obj: models.Model | None = None,
    summary: str = "",
    before: dict | None = None,
    after: dict | None = None,
    area: str = AdminAuditLog.Area.OTHER,
) -> AdminAuditLog:
    """Write one audit row. `before`/`after` may hold Decimals, dates and model instances."""
    return AdminAuditLog.objects.create(**_row(actor, action, obj, summary, before, after, area))


def _row(actor, action, obj, summary, before, after, area) -> dict[str, Any]:
    row: dict[str, Any] = {
        "actor": actor if actor is not None and actor.pk else None,
        "actor_name": getattr(actor, "username", "") or "",
        "action": action[:64],
        "area": area,
        "summary": summary,
        "before": _plain(before) if before is not None else None,
        "after": _plain(after) if after is not None else None,
    }
    if obj is not None:
        row["object_type"] = obj._meta.label_lower
        row["object_id"] = str(obj.pk)
        row["object_repr"] = str(obj)[:200]
    return row


def area_for(model: type[models.Model]) -> str:
    """Which part of the business a model's changes touch (for the log's filter)."""
    label = model._meta.label_lower
    return {
        "accounts.ledgerentry": AdminAuditLog.Area.MONEY,
        "accounts.wallet": AdminAuditLog.Area.MONEY,
        "accounts.user": AdminAuditLog.Area.ACCESS,
        "accounts.apikey": AdminAuditLog.Area.ACCESS,
        "catalog.service": AdminAuditLog.Area.PRICE,
        "catalog.category": AdminAuditLog.Area.PRICE,
        "catalog.catalogsettings": AdminAuditLog.Area.PRICE,
        "catalog.customerrate": AdminAuditLog.Area.PRICE,
        "catalog.customerdiscount": AdminAuditLog.Area.PRICE,
        "catalog.pricechange": AdminAuditLog.Area.PRICE,
        "providers.provider": AdminAuditLog.Area.PROVIDER,
        "orders.order": AdminAuditLog.Area.ORDER,
        "orders.refill": AdminAuditLog.Area.ORDER,
        "orders.cancelrequest": AdminAuditLog.Area.ORDER,
    }.get(label, AdminAuditLog.Area.OTHER)


class AuditedAdminMixin:
    """Put first in a ModelAdmin's bases: every add, change and delete made through it is also
    written to the audit log, a change with the changed fields' values before and after.

        class ServiceAdmin(AuditedAdminMixin, admin.ModelAdmin): ...

    `audit_area` overrides the area guessed from the model.
    """

    audit_area: str | None = None

    def _audit_area(self) -> str:
        return self.audit_area or area_for(self.model)

    def save_model(self, request, obj, form, change):
        if change and form is not None:
            changed = [name for name in form.changed_data if not _is_secret(name)]
            request._audit_diff = (
                {name: form.initial.get(name) for name in changed},
                {name: form.cleaned_data.get(name) for name in changed},
            )
        super().save_model(request, obj, form, change)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        audit_record(
            actor=request.user,
            action="add",
            obj=obj,
            summary=f"Added {obj._meta.verbose_name} “{obj}”.",
            after=_object_fields(obj),
            area=self._audit_area(),
        )
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        before, after = getattr(request, "_audit_diff", (None, None))
        request._audit_diff = (None, None)
        # Inline-only or no-op saves have nothing in the diff; the LogEntry message says what.
        summary = (
            f"Changed {', '.join(after)} of {obj._meta.verbose_name} “{obj}”."
            if after
            else f"Saved {obj._meta.verbose_name} “{obj}”."
        )
        audit_record(
            actor=request.user,
            action="change",
            obj=obj,
            summary=summary,
            before=before,
            after=after,
            area=self._audit_area(),
        )
        return entry

    def log_deletions(self, request, queryset):
        objects = list(queryset)
        entries = super().log_deletions(request, objects)
        AdminAuditLog.objects.bulk_create(
            AdminAuditLog(
                **_row(
                    request.user,
                    "delete",
                    obj,
                    f"Deleted {obj._meta.verbose_name} “{obj}”.",
                    _object_fields(obj),
                    None,
                    self._audit_area(),
                )
            )
            for obj in objects
        )
        return entries


def audit_selection_ids(queryset: QuerySet) -> list[Any]:
    """The selection's ids, taken before an action changes it: at most PER_OBJECT_LIMIT + 1 (one
    more than that is enough to know the selection gets a summary row)."""
    return list(queryset.values_list("pk", flat=True)[: PER_OBJECT_LIMIT + 1])


def audit_record_selection(
    *,
    actor: User | None,
    action: str,
    model: type[models.Model],
    ids: list[Any],
    label: str,
    after: dict | None = None,
    area: str | None = None,
) -> None:
    """Record an action on a selection (ids from audit_selection_ids): one row per object, or
    one summary row when more than PER_OBJECT_LIMIT were selected."""
    the_area = area or area_for(model)
    if len(ids) > PER_OBJECT_LIMIT:
        audit_record(
            actor=actor,
            action=action,
            summary=f"{label}: more than {PER_OBJECT_LIMIT} {model._meta.verbose_name_plural}.",
            after=after,
            area=the_area,
        )
        return
    AdminAuditLog.objects.bulk_create(
        AdminAuditLog(**_row(actor, action, obj, f"{label}.", None, after, the_area))
        for obj in model._default_manager.filter(pk__in=ids)
    )


def audited_action(
    *, action: str, area: str | None = None, **admin_action_kwargs: Any
) -> Callable[[Callable], Callable]:
    """Like `@admin.action(...)`, and records the action in the audit log afterwards: one row
    per selected object, or one summary row when more than PER_OBJECT_LIMIT were selected.

        @audited_action(action="suspend", description="Suspend the selected customers")
        def suspend(self, request, queryset): ...

    The row's `after` holds what the action returned if it returned a dict (e.g. counts).
    """

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(modeladmin, request, queryset):
            ids = audit_selection_ids(queryset)
            result = func(modeladmin, request, queryset)
            audit_record_selection(
                actor=request.user,
                action=action,
                model=queryset.model,
                ids=ids,
                label=admin_action_kwargs.get("description") or action,
                after=result if isinstance(result, dict) else None,
                area=area,
            )
            return None if isinstance(result, dict) else result

        return admin.action(**admin_action_kwargs)(wrapper)

    return decorate
