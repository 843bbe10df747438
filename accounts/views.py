"""The customer's own pages: home, settings, funds and the API page (sign-up, login and the
rest of the account pages are django-allauth's, see docs/customer-panel.md)."""

import csv
from collections.abc import Callable, Iterator
from typing import Any

from allauth.account.decorators import reauthentication_required
from allauth.account.models import EmailAddress
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.forms import TimezoneForm
from accounts.middleware import AuthenticatedHttpRequest
from accounts.models import ApiKey, LedgerEntry
from accounts.payments import payment_methods
from accounts.selectors import ledger_list_for_user
from accounts.services import api_key_issue
from catalog.order_types import TYPE_SPECS
from orders.forms import PARAMS
from orders.selectors import order_list_for_user

STATEMENT_PAGE_SIZE = 50


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "home.html", {})
    orders = order_list_for_user(user=request.user)
    context = {"recent_orders": orders[:5], "order_count": orders.count()}
    return render(request, "home.html", context)


def moved_to(name: str) -> Callable[..., HttpResponse]:
    """A URL of the panel's own auth pages before allauth: it sends the browser to allauth's
    page that replaced it, query string (?next=) kept. GET and HEAD get a 302; another method a
    307, which repeats the same request there (a POST stays a POST)."""

    @login_not_required
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        target = reverse(name)
        if request.META.get("QUERY_STRING"):
            target += "?" + request.META["QUERY_STRING"]
        if request.method in ("GET", "HEAD"):
            return HttpResponseRedirect(target)
        response = HttpResponse(status=307)
        response["Location"] = target
        return response

    return view


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The time zone form, and links to allauth's e-mail, password and two-factor pages."""
    user = request.user
    form = TimezoneForm(request.POST or None, instance=user, prefix="tz")
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Times are now shown in your time zone.")
        return redirect("account_settings")
    context = {
        "form": form,
        "email_address": EmailAddress.objects.get_primary(user),
        "mfa_enabled": is_mfa_enabled(user),
    }
    return render(request, "accounts/settings.html", context, status=400 if form.errors else 200)


@login_required
def funds(request: AuthenticatedHttpRequest) -> HttpResponse:
    entries = ledger_list_for_user(user=request.user)
    page = Paginator(entries, STATEMENT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/funds.html", {"page": page, "entries": page.object_list})


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_cell(value: str) -> str:
    # A memo written by staff must not turn into a formula in the customer's spreadsheet.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@login_required
def funds_csv(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    entries = ledger_list_for_user(user=request.user).order_by("id")
    writer = csv.writer(_Echo())
    # The rows are written while the response streams, after UserTimezoneMiddleware has put the
    # default zone back: take the customer's zone now.
    tz = timezone.get_current_timezone()

    def rows() -> Iterator[str]:
        yield writer.writerow(
            ["entry", "date", "type", "amount", "balance_after", "order", "memo", "payment_ref"]
        )
        for entry in entries.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    entry.pk,
                    timezone.localtime(entry.created_at, tz).isoformat(timespec="seconds"),
                    entry.get_kind_display(),
                    f"{entry.amount}",
                    f"{entry.balance_after}",
                    entry.order_ref or "",
                    _csv_cell(entry.memo),
                    _csv_cell(entry.payment_ref),
                ]
            )

    stamp = timezone.localdate().isoformat()
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="statement-{stamp}.csv"'
    return response


@login_required
def funds_add(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = {
        "methods": payment_methods(),
        "instructions": getattr(settings, "PANEL_FUNDS_INSTRUCTIONS", ""),
        "deposits": ledger_list_for_user(user=request.user).filter(kind=LedgerEntry.Kind.DEPOSIT)[
            :5
        ],
    }
    return render(request, "accounts/funds_add.html", context)


@login_required
@require_http_methods(["GET", "POST"])
# A new key only after a fresh password or second factor (allauth's reauthentication: a stolen
# session alone cannot take over the reseller API).
@reauthentication_required(allow_get=True)
def api_docs(request: AuthenticatedHttpRequest) -> HttpResponse:
    issued = None
    if request.method == "POST":
        with transaction.atomic():
            issued = api_key_issue(user=request.user)
    api_key = issued.api_key if issued else ApiKey.objects.filter(user=request.user).first()
    context = {
        "api_url": settings.PANEL_PUBLIC_URL.rstrip("/") + "/api/v2",
        "api_key": api_key,
        "raw_key": issued.raw if issued else None,
        "order_types": [
            (
                order_type.value,
                [(name, PARAMS[name], name in spec.required) for name in spec.fields],
            )
            for order_type, spec in TYPE_SPECS.items()
        ],
        "actions": [
            {**a, "example": a["example"].replace("{currency}", settings.PANEL_CURRENCY)}
            for a in API_ACTIONS
        ],
    }
    response = render(request, "accounts/api.html", context)
    if issued:
        response["Cache-Control"] = "no-store"  # the raw key must not linger in a cache
    return response


# The actions of /api/v2 besides `add` (whose parameters come from TYPE_SPECS), in the order
# and with the example answers of the providers' documents the API follows.
API_ACTIONS: list[dict] = [
    {
        "id": "services",
        "title": "Service list",
        "params": [("action", "services")],
        "example": '[\n  {\n    "service": 1,\n    "name": "Followers",\n    "type": "Default",\n'
        '    "category": "First Category",\n    "rate": "0.90",\n    "min": "50",\n'
        '    "max": "10000",\n    "refill": true,\n    "cancel": true,\n'
        '    "dripfeed": false\n  }\n]',
    },
    {
        "id": "status",
        "title": "Order status",
        "params": [("action", "status"), ("order", "Order ID")],
        "example": '{\n  "charge": "0.27819",\n  "start_count": "3572",\n  "status": "Partial",\n'
        '  "remains": "157",\n  "currency": "{currency}"\n}',
    },
    {
        "id": "multi-status",
        "title": "Multiple orders status",
        "params": [
            ("action", "status"),
            ("orders", "Order IDs (separated by a comma, up to 100 IDs)"),
        ],
        "example": '{\n  "1": {\n    "charge": "0.27819",\n    "start_count": "3572",\n'
        '    "status": "Partial",\n    "remains": "157",\n    "currency": "{currency}"\n'
        '  },\n  "10": {\n    "error": "Incorrect order ID"\n  }\n}',
    },
    {
        "id": "refill",
        "title": "Create refill",
        "params": [("action", "refill"), ("order", "Order ID")],
        "example": '{\n  "refill": "1"\n}',
    },
    {
        "id": "multi-refill",
        "title": "Create multiple refill",
        "params": [
            ("action", "refill"),
            ("orders", "Order IDs (separated by a comma, up to 100 IDs)"),
        ],
        "example": '[\n  {\n    "order": 1,\n    "refill": 1\n  },\n  {\n    "order": 3,\n'
        '    "refill": {\n      "error": "Incorrect order ID"\n    }\n  }\n]',
    },
    {
        "id": "refill-status",
        "title": "Get refill status",
        "params": [("action", "refill_status"), ("refill", "Refill ID")],
        "example": '{\n  "status": "Completed"\n}',
    },
    {
        "id": "multi-refill-status",
        "title": "Get multiple refill status",
        "params": [
            ("action", "refill_status"),
            ("refills", "Refill IDs (separated by a comma, up to 100 IDs)"),
        ],
        "example": '[\n  {\n    "refill": 1,\n    "status": "Completed"\n  },\n  {\n    "refill": 3,\n'
        '    "status": {\n      "error": "Refill not found"\n    }\n  }\n]',
    },
    {
        "id": "cancel",
        "title": "Create cancel",
        "params": [
            ("action", "cancel"),
            ("orders", "Order IDs (separated by a comma, up to 100 IDs)"),
        ],
        "example": '[\n  {\n    "order": 9,\n    "cancel": {\n      "error": "Incorrect order ID"\n'
        '    }\n  },\n  {\n    "order": 2,\n    "cancel": 1\n  }\n]',
    },
    {
        "id": "cancel-status",
        "title": "Get multiple cancel status",
        "params": [
            ("action", "cancel"),
            ("cancels", "Cancel IDs (separated by a comma, up to 100 IDs)"),
        ],
        "example": '[\n  {\n    "cancel": 1,\n    "status": "Completed"\n  },\n  {\n    "cancel": 3,\n'
        '    "status": {\n      "error": "Cancel not found"\n    }\n  }\n]',
    },
    {
        "id": "balance",
        "title": "User balance",
        "params": [("action", "balance")],
        "example": '{\n  "balance": "100.84292",\n  "currency": "{currency}"\n}',
    },
]
