"""The customer's price list: every service on sale at this customer's own rate, with the
average completion time the panel measured on its own orders (Service.average_time, kept by
orders.services.averages), a category filter, a search and the customer's favourites."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.middleware import AuthenticatedHttpRequest, customer_login_required
from catalog.models import Category, Service
from catalog.selectors import (
    service_favourite_ids,
    service_get_enabled,
    service_list_enabled,
    service_list_favourites,
    service_rates_for_user,
)
from catalog.services import service_favourite_set
from orders.services.common import parse_id

# 5,000 services on one page were 2.7 MB of HTML; a page of 100 is about 60 kB, and the rates
# are then computed for the page's services only (docs/customer-panel.md, Figures).
SERVICES_PAGE_SIZE = 100


# An id no real address contains, to find where the id goes in a reversed URL.
_ID_MARKER = 9_876_543_210_123


def url_for_id(name: str) -> Callable[[int], str]:
    """The address of the URL `name` (whose one argument is an id) for any id, from a single
    reverse(): reversing it for each of a page's 100 services was a tenth of the page's time."""
    head, tail = reverse(name, args=[_ID_MARKER]).split(str(_ID_MARKER))
    return lambda pk: f"{head}{pk}{tail}"


# The texts of a price-list line that carry its service's id (the star's and the order link's
# names for screen readers) or its refill days.
FAVOURITE_LABEL = gettext_lazy("Favourite: service %(service_id)s")
ORDER_LABEL = gettext_lazy("service %(service_id)s")
REFILL_LABEL = gettext_lazy("Refill %(days)s d")


@dataclass(frozen=True)
class ServiceRow:
    """A line of the price list: the service, this customer's rate per 1000, the measured
    average completion time (None: not enough completed orders) and the customer's star,
    with the line's texts and the star's address made here (_Lines)."""

    service: Service
    customer_rate: Decimal
    average_time: timedelta | None
    favourite: bool = False
    favourite_url: str = ""
    favourite_label: str = ""
    order_label: str = ""
    refill_label: str = ""


class _Lines:
    """Builds a page's lines with one translation of each text and one reverse() of the star's
    address: a {% url %} and three {% blocktranslate %} for each of 100 lines were about a
    third of the list's rendering time."""

    def __init__(self) -> None:
        self.favourite_url = url_for_id("service_favourite")
        self.favourite_label = str(FAVOURITE_LABEL)
        self.order_label = str(ORDER_LABEL)
        self.refill_label = str(REFILL_LABEL)

    def row(self, s: Service, *, rate: Decimal, favourite: bool) -> ServiceRow:
        return ServiceRow(
            service=s,
            customer_rate=rate,
            average_time=s.average_time,
            favourite=favourite,
            favourite_url=self.favourite_url(s.pk),
            favourite_label=self.favourite_label % {"service_id": s.pk},
            order_label=self.order_label % {"service_id": s.pk},
            refill_label=self.refill_label % {"days": s.refill_days} if s.refill else "",
        )


@dataclass(frozen=True)
class Filters:
    category: str
    q: str
    favourites: bool

    @property
    def query(self) -> str:
        """The filter as the page links keep it (includes/pagination.html appends page=N)."""
        pairs = [
            ("category", self.category),
            ("q", self.q),
            ("fav", "1" if self.favourites else ""),
        ]
        kept = urlencode([(k, v) for k, v in pairs if v])
        return f"{kept}&" if kept else ""


def _filtered(request: AuthenticatedHttpRequest) -> tuple[QuerySet[Service], Filters]:
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
    favourites = request.GET.get("fav") == "1"
    if favourites:
        services = service_list_favourites(user=request.user, services=services)
    return services, Filters(category=category, q=q, favourites=favourites)


@customer_login_required
@require_GET
def service_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    matching, filters = _filtered(request)
    page = Paginator(matching, SERVICES_PAGE_SIZE).get_page(request.GET.get("page"))
    services = list(page.object_list)
    rates = service_rates_for_user(user=request.user, services=services)
    starred = service_favourite_ids(user=request.user)
    lines = _Lines()
    groups: dict[Category, list[ServiceRow]] = {}
    for s in services:
        row = lines.row(s, rate=rates[s.pk], favourite=s.pk in starred)
        groups.setdefault(s.category, []).append(row)
    context = {
        "groups": list(groups.items()),
        "count": page.paginator.count,
        "page": page,
        "query": filters.query,
        "categories": Category.objects.filter(is_enabled=True).order_by("sort_order", "name"),
        "category": filters.category,
        "q": filters.q,
        "favourites": filters.favourites,
        "next_url": request.get_full_path(),
    }
    # htmx asks for the table alone, except when it restores a page from history (back button).
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "catalog/_service_table.html" if partial else "catalog/services.html"
    return render(request, template, context)


@customer_login_required
@require_POST
def service_favourite(request: AuthenticatedHttpRequest, service_id: int) -> HttpResponse:
    """Star or unstar a service (`favourite=1|0`, explicit, so that a resent form is harmless).
    htmx gets the new button; a plain form goes back to the page it came from."""
    service = service_get_enabled(service_id=service_id) if service_id < 2**63 else None
    if service is None:
        raise Http404("No such service.")
    favourite = service_favourite_set(
        user=request.user, service=service, favourite=request.POST.get("favourite") == "1"
    )
    if request.headers.get("HX-Request"):
        context = {
            "s": service,
            "favourite": favourite,
            "favourite_url": reverse("service_favourite", args=[service.pk]),
            "favourite_label": str(FAVOURITE_LABEL) % {"service_id": service.pk},
        }
        return render(request, "catalog/_favourite.html", context)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("services")
    return redirect(target)
