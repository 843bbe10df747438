"""The customer's price list: every service on sale at this customer's own rate, with the
average completion time the panel measured on its own recent orders."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.middleware import AuthenticatedHttpRequest, customer_login_required
from catalog.models import Category, Service
from catalog.selectors import service_list_enabled, service_rates_for_user
from orders.selectors import order_average_completion_times
from orders.services.common import parse_id

# 5,000 services on one page were 2.7 MB of HTML; a page of 100 is about 60 kB, and the rates
# and averages are then computed for the page's services only (docs/customer-panel.md, Figures).
SERVICES_PAGE_SIZE = 100


@dataclass(frozen=True)
class ServiceRow:
    """A line of the price list: the service, this customer's rate per 1000 and the measured
    average completion time (None: not enough recent orders)."""

    service: Service
    customer_rate: Decimal
    average_time: timedelta | None


def _filtered(request: HttpRequest) -> tuple[QuerySet[Service], str, str]:
    services = service_list_enabled()
    category = request.GET.get("category", "")
    category_pk = parse_id(category)
    if category_pk is not None:
        services = services.filter(category_id=category_pk)
    # PostgreSQL refuses a NUL in a query parameter (a 500), and no name contains one.
    q = request.GET.get("q", "").replace("\x00", "").strip()[:200]
    if q:
        match = Q(name__icontains=q) | Q(description__icontains=q) | Q(type__icontains=q)
        number = parse_id(q)
        services = services.filter(match | Q(pk=number) if number is not None else match)
    return services, category, q


@customer_login_required
@require_GET
def service_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    matching, category, q = _filtered(request)
    page = Paginator(matching, SERVICES_PAGE_SIZE).get_page(request.GET.get("page"))
    services = list(page.object_list)
    rates = service_rates_for_user(user=request.user, services=services)
    averages = order_average_completion_times(service_ids=[s.pk for s in services])
    groups: dict[Category, list[ServiceRow]] = {}
    for s in services:
        row = ServiceRow(service=s, customer_rate=rates[s.pk], average_time=averages.get(s.pk))
        groups.setdefault(s.category, []).append(row)
    context = {
        "groups": list(groups.items()),
        "count": page.paginator.count,
        "page": page,
        # The filter the page links keep (includes/pagination.html appends page=N).
        "query": urlencode([(k, v) for k, v in (("category", category), ("q", q)) if v])
        + ("&" if category or q else ""),
        "categories": Category.objects.filter(is_enabled=True).order_by("sort_order", "name"),
        "category": category,
        "q": q,
    }
    # htmx asks for the table alone, except when it restores a page from history (back button).
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "catalog/_service_table.html" if partial else "catalog/services.html"
    return render(request, template, context)
