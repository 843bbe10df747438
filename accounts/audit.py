"""The admin audit log: who did what to money, prices, providers, order statuses and customers.

The ways in:
- `audit_record(...)` from any admin view or action (one row);
- `AuditedAdminMixin` on a ModelAdmin: every add, change (with the changed fields before and
  after) and delete made through that admin is recorded next to Django's own LogEntry;
- `audit_record_selection(...)` from a service that changes a selection: one row per selected
  object (or one summary row for a very large selection), written in the service's own
  transaction (accounts.services' suspend and key switches use it).

`staff_user(request)` is the staff member behind an admin request, typed as a User: admin views
and actions pass it to services instead of `request.user` (a User or an AnonymousUser).
"""

import datetime
import uuid
import weakref
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import AdminAuditLog, User

# An action over more objects than this gets one summary row instead of one row per object.
PER_OBJECT_LIMIT = 500

# A change's fields before and after, kept from save_model to log_change for one request.
AuditDiff = tuple[dict[str, Any] | None, dict[str, Any] | None]
_DIFFS: weakref.WeakKeyDictionary[HttpRequest, AuditDiff] = weakref.WeakKeyDictionary()


def staff_user(request: HttpRequest) -> User:
    """The staff member making an admin request. The admin site lets in only active staff, so
    any other user (anonymous, inactive, not staff) is refused with PermissionDenied."""
    user = request.user
    if not isinstance(user, User) or not (user.is_active and user.is_staff):
        raise PermissionDenied
    return user


def audit_diff_get(request: HttpRequest) -> AuditDiff:
    """The fields before and after of the change this admin request is saving (None, None when
    no form change was recorded)."""
    return _DIFFS.get(request, (None, None))


def audit_diff_set(request: HttpRequest, diff: AuditDiff) -> None:
    """Replace what the audit row of this request's change will say before and after (e.g. to
    say that a secret was replaced without recording it)."""
    _DIFFS[request] = diff


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


def _row(
    actor: User | None,
    action: str,
    obj: models.Model | None,
    summary: str,
    before: dict | None,
    after: dict | None,
    area: str,
) -> dict[str, Any]:
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
        "accounts.tier": AdminAuditLog.Area.PRICE,
        "accounts.coupon": AdminAuditLog.Area.MONEY,
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


class AuditedAdminMixin(admin.ModelAdmin):
    """Put first in a ModelAdmin's bases: every add, change and delete made through it is also
    written to the audit log, a change with the changed fields' values before and after.

        class ServiceAdmin(AuditedAdminMixin, admin.ModelAdmin): ...

    `audit_area` overrides the area guessed from the model. A save_model that saves through a
    service instead of calling super() calls `audit_remember_form` first.
    """

    audit_area: str | None = None

    def _audit_area(self) -> str:
        return self.audit_area or area_for(self.model)

    def audit_remember_form(
        self, request: HttpRequest, form: forms.ModelForm | None, change: bool
    ) -> None:
        """Keep the changed fields' values before and after (secrets left out) for the audit
        row that log_change writes."""
        if change and form is not None:
            changed = [name for name in form.changed_data if not _is_secret(name)]
            audit_diff_set(
                request,
                (
                    {name: form.initial.get(name) for name in changed},
                    {name: form.cleaned_data.get(name) for name in changed},
                ),
            )

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        self.audit_remember_form(request, form, change)
        super().save_model(request, obj, form, change)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> LogEntry:
        entry = super().log_addition(request, obj, message)
        audit_record(
            actor=staff_user(request),
            action="add",
            obj=obj,
            summary=f"Added {obj._meta.verbose_name} “{obj}”.",
            after=_object_fields(obj),
            area=self._audit_area(),
        )
        return entry

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> LogEntry:
        entry = super().log_change(request, obj, message)
        before, after = audit_diff_get(request)
        audit_diff_set(request, (None, None))
        # Inline-only or no-op saves have nothing in the diff; the LogEntry message says what.
        summary = (
            f"Changed {', '.join(after)} of {obj._meta.verbose_name} “{obj}”."
            if after
            else f"Saved {obj._meta.verbose_name} “{obj}”."
        )
        audit_record(
            actor=staff_user(request),
            action="change",
            obj=obj,
            summary=summary,
            before=before,
            after=after,
            area=self._audit_area(),
        )
        return entry

    def log_deletions(self, request: HttpRequest, queryset: Iterable[Any]) -> list[LogEntry]:
        actor = staff_user(request)
        objects = list(queryset)
        # The stubs say QuerySet; Django's own delete_view passes a list, and so do we.
        entries = super().log_deletions(request, objects)  # type: ignore[arg-type]
        AdminAuditLog.objects.bulk_create(
            AdminAuditLog(
                **_row(
                    actor,
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
