"""The customer's order pages: new order (with a live charge preview), mass order, the order
list with status tabs and self-refreshing progress, order detail, refill and cancel.

Every read goes through orders.selectors.*_for_user, so another customer's order id answers
404 exactly like one that does not exist; every write goes through orders.services.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from html import escape
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.middleware import AuthenticatedHttpRequest, customer_login_required
from accounts.models import User
from accounts.services import InsufficientFunds
from accounts.templatetags.panel_ui import rate as rate_text
from catalog.models import Category, Service
from catalog.order_types import QuantityFrom
from catalog.pricing import convert_rate, money_text
from catalog.selectors import (
    service_get_enabled,
    service_list_enabled,
    service_rates_for_user_by_id,
)
from orders.forms import PARAMS, MassOrderForm, OrderForm, OrderSearchForm, service_spec
from orders.models import (
    FINAL_STATUSES,
    OPEN_CANCEL_STATUSES,
    OPEN_REFILL_STATUSES,
    POLLED_STATUSES,
    PUBLIC_STATUS,
    CancelRequest,
    Order,
    Refill,
)
from orders.selectors import (
    order_get_for_user,
    order_last_service_for_user,
    order_list_drip_feed_for_user,
    order_list_for_user,
    order_list_subscriptions_for_user,
)
from orders.services import (
    MassLine,
    OrderError,
    order_cancel_request,
    order_create,
    order_create_many,
    order_quote,
    order_refill_request,
)
from orders.services.common import parse_id
from orders.services.create import EXPIRY_FORMAT

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

ORDERS_PAGE_SIZE = 25
MAX_ID = 2**63 - 1
STALE_FORM = "This form is incomplete or out of date: reload the page and fill it in again."
PICKER_LIMIT = 1000  # options in the service select; search or a category narrows it
# Status tabs → the internal statuses behind them (Processing sits under "In progress").
# (key, the tab's label for the customer, the public statuses it shows: the API's words)
STATUS_TABS: "list[tuple[str, StrOrPromise, frozenset[str]]]" = [
    ("all", gettext_lazy("All"), frozenset()),
    ("pending", gettext_lazy("Pending"), frozenset({"Pending"})),
    ("in_progress", gettext_lazy("In progress"), frozenset({"In progress", "Processing"})),
    ("completed", gettext_lazy("Completed"), frozenset({"Completed"})),
    ("partial", gettext_lazy("Partial"), frozenset({"Partial"})),
    ("canceled", gettext_lazy("Canceled"), frozenset({"Canceled"})),
]
OPEN_REFILL = (Refill.Status.QUEUED, Refill.Status.PENDING, Refill.Status.IN_PROGRESS)
BLOCKING_CANCEL = (
    CancelRequest.Status.QUEUED,
    CancelRequest.Status.SENT,
    CancelRequest.Status.COMPLETED,
)


def poll_seconds() -> int:
    return getattr(settings, "PANEL_UI_POLL_SECONDS", 10)


# --- Presentation helpers --------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    delivered: int
    quantity: int

    @property
    def percent(self) -> int:
        return round(100 * self.delivered / self.quantity) if self.quantity else 0


def order_progress(order: Order) -> Progress:
    """Delivered of quantity, from the provider's `remains` (unknown remains: nothing yet,
    or everything once Completed)."""
    if order.remains is None:
        delivered = order.quantity if order.status == Order.Status.COMPLETED else 0
    else:
        delivered = order.quantity - min(max(order.remains, 0), order.quantity)
    return Progress(delivered=delivered, quantity=order.quantity)


def refill_allowed(order: Order, now: datetime | None = None) -> bool:
    """Mirror of what order_refill_request accepts, to show the button only where it works
    (the service still decides)."""
    service = order.service
    if not service.refill or order.status != Order.Status.COMPLETED:
        return False
    if order.provider_id is None or not order.upstream_order_id:
        return False
    finished = order.finished_at or order.updated_at
    if finished and finished + timedelta(days=service.refill_days) < (now or timezone.now()):
        return False
    return not any(r.status in OPEN_REFILL_STATUSES for r in order.refills.all())


def cancel_allowed(order: Order) -> bool:
    """Mirror of what order_cancel_request accepts."""
    if not order.service.cancel or order.status in FINAL_STATUSES:
        return False
    if any(c.status in OPEN_CANCEL_STATUSES for c in order.cancel_requests.all()):
        return False
    # Not sent upstream yet (a manual service's order waits for the admin): canceled at once.
    if order.status in (Order.Status.QUEUED, Order.Status.WAITING_FUNDS, Order.Status.MANUAL):
        return True
    return (
        order.status in POLLED_STATUSES
        and order.provider is not None
        and bool(getattr(order.provider, "supports_cancel", False))
    )


@dataclass(frozen=True)
class OrderRow:
    """An order as the customer's pages show it: the order itself, how much of it is
    delivered, and which of the Refill / Cancel buttons the services would accept."""

    order: Order
    progress: Progress
    can_refill: bool
    can_cancel: bool
    # A refill / cancel asked and not answered yet: the row says so instead of hiding why
    # the button is gone.
    refill_requested: bool
    cancel_requested: bool


def _row(order: Order) -> OrderRow:
    return OrderRow(
        order=order,
        progress=order_progress(order),
        can_refill=refill_allowed(order),
        can_cancel=cancel_allowed(order),
        refill_requested=any(r.status in OPEN_REFILL_STATUSES for r in order.refills.all()),
        cancel_requested=any(c.status in OPEN_CANCEL_STATUSES for c in order.cancel_requests.all()),
    )


class PickerOption(NamedTuple):
    """A service in the picker: id, name and this customer's rate per 1000, read as plain
    values (1,000 model objects with their joins were most of the page's time)."""

    pk: int
    name: str
    customer_rate: Decimal


def with_history(queryset: QuerySet[Order]) -> QuerySet[Order]:
    return queryset.select_related("provider").prefetch_related(
        Prefetch("refills", queryset=Refill.objects.order_by("-id")),
        Prefetch("cancel_requests", queryset=CancelRequest.objects.order_by("-id")),
    )


def _get_order(request: AuthenticatedHttpRequest, order_id: int) -> Order:
    if order_id > MAX_ID:
        raise Http404("No such order.")
    order = order_get_for_user(user=request.user, order_id=order_id)
    if order is None:
        raise Http404("No such order.")
    return (
        with_history(Order.objects.filter(pk=order.pk))
        .select_related("service", "service__category")
        .get()
    )


# --- New order -------------------------------------------------------------------------------
def _picker_params(request: AuthenticatedHttpRequest) -> tuple[str, int | None, str]:
    params = request.GET if request.method == "GET" else request.POST
    category_id = params.get("category", "")
    # PostgreSQL refuses a NUL in a query parameter (a 500), and no name contains one.
    q = params.get("q", "").replace("\x00", "").strip()[:200]
    category_pk = parse_id(category_id)
    if q and category_pk is not None and not _matching(category_pk, q).exists():
        # The category shown is often just the preselected service's: a search that finds
        # nothing there looks in every category rather than answering "none".
        return "", None, q
    return category_id, category_pk, q


def _matching(category_pk: int | None, q: str) -> QuerySet[Service]:
    matching = service_list_enabled()
    if category_pk is not None:
        matching = matching.filter(category_id=category_pk)
    if q:
        match = Q(name__icontains=q) | Q(category__name__icontains=q)
        number = parse_id(q)
        matching = matching.filter(match | Q(pk=number) if number is not None else match)
    return matching


def _preselected(request: AuthenticatedHttpRequest, service: Service | None) -> Service | None:
    """The service the page opens with: the one asked for, unless the customer just picked a
    category (or searched) it is not in, then the first match; with nothing asked, the service
    of the customer's last order, else the catalog's first."""
    if request.method != "GET":
        return service
    _, category_pk, q = _picker_params(request)
    if category_pk is not None or q:
        matching = _matching(category_pk, q)
        if service is not None and matching.filter(pk=service.pk).exists():
            return service
        return matching.first()
    if service is not None or "service" in request.GET:
        return service  # an explicit choice, "Choose a service…" included
    last = order_last_service_for_user(user=request.user)
    return last if last is not None else service_list_enabled().first()


# A picker row: id, name, retail rate, and the upstream's rate and exchange rate (None for a
# manual service) from which service_cost would work out the cost.
PickerRow = tuple[int, str, Decimal, Decimal | None, Decimal | None]


def _picker_rows(
    category_pk: int | None, q: str, service: Service | None
) -> tuple[list[PickerRow], bool]:
    """The picker's services as plain values (the first PICKER_LIMIT, and whether there are
    more), the preselected service first when the limit or the filter left it out."""
    rows: list[PickerRow] = list(
        _matching(category_pk, q).values_list(
            "pk", "name", "rate", "upstream__rate", "upstream__provider__exchange_rate"
        )[: PICKER_LIMIT + 1]
    )
    more = len(rows) > PICKER_LIMIT
    rows = rows[:PICKER_LIMIT]
    if service is not None and all(row[0] != service.pk for row in rows):
        upstream = service.upstream
        cost = (upstream.rate, upstream.provider.exchange_rate) if upstream else (None, None)
        rows.insert(0, (service.pk, service.name, service.rate, *cost))
    return rows, more


def _picker_rates(user: User, rows: list[PickerRow]) -> dict[int, Decimal]:
    """This customer's rate for each picker row; the costs a tier's floor needs come from the
    rows (the same rule as service_cost), not from a second query with 1,000 ids."""
    upstream = {pk: (rate, exchange) for pk, _, _, rate, exchange in rows}

    def cost_of(pk: int) -> Decimal | None:
        rate, exchange = upstream[pk]
        return convert_rate(rate, exchange) if rate is not None and exchange is not None else None

    retail = {pk: rate for pk, _, rate, _, _ in rows}
    return service_rates_for_user_by_id(user=user, retail=retail, cost_of=cost_of)


def _picker_context(request: AuthenticatedHttpRequest, service: Service | None) -> dict[str, Any]:
    category_id, category_pk, q = _picker_params(request)
    if category_pk is None and service is not None and not q:
        # The service's own category: its neighbours are what the customer compares it with.
        category_id, category_pk = str(service.category_id), service.category_id
    rows, more = _picker_rows(category_pk, q, service)
    rates = _picker_rates(request.user, rows)
    options = [PickerOption(pk, name, rates[pk]) for pk, name, *_ in rows]
    on_sale = Service.objects.filter(category=OuterRef("pk"), is_enabled=True)
    return {
        "categories": Category.objects.filter(Exists(on_sale), is_enabled=True),
        "services": options,
        "service_options": service_options_html(options, selected=service),
        "services_count": len(options),
        "more": more,
        "category_id": category_id,
        "q": q,
        # The side card's price: the picker always holds the service shown.
        "rate": rates[service.pk] if service is not None else None,
    }


def service_options_html(options: list[PickerOption], *, selected: Service | None) -> SafeString:
    """The picker's <option>s, built here rather than in a template loop (at 1,000 services
    the loop was a large part of the page's time). The text is the id, the whole name and this
    customer's price: a phone's native list and the searchable picker show it wrapped, never
    cut; data-rate lets the searchable picker (static/panel/order_picker.js) lay it out.
    Plain f-strings and html.escape (what django's escape calls) on the two texts: format_html
    on each of 1,000 options was about a third of the page's time."""
    chosen = selected.pk if selected is not None else None
    html = []
    for o in options:
        price = escape(rate_text(o.customer_rate))
        attrs = f'value="{o.pk}" selected' if o.pk == chosen else f'value="{o.pk}"'
        html.append(
            f'<option {attrs} data-rate="{price}">{o.pk} — {escape(o.name)} — {price}</option>'
        )
    # Safe: the only texts, the name and the price, are escaped just above; the ids are ints.
    return mark_safe("".join(html))  # noqa: S308


def _service_info(service: Service) -> dict[str, Any]:
    spec = service_spec(service)
    return {
        "service": service,
        "per_package": spec.quantity_from == QuantityFrom.PACKAGE,
        "quantity_from": spec.quantity_from.value,
        "average_time": service.average_time,
    }


def shortfall(balance: Decimal, charge: Decimal) -> dict[str, Decimal] | None:
    """How much the balance lacks for `charge` (None when it covers it), and the amount to add
    rounded up to cents, which the add-funds form takes (?amount=)."""
    if balance >= charge:
        return None
    short = charge - balance
    return {"amount": short, "add": short.quantize(Decimal("0.01"), rounding=ROUND_CEILING)}


def _place(
    request: AuthenticatedHttpRequest, form: OrderForm, service: Service
) -> tuple[Order | None, dict[str, Decimal] | None]:
    try:
        order = order_create(
            user=request.user,
            service=service,
            data=form.service_data(),
            source=Order.Source.WEB,
            idempotency_key=f"web:{form.cleaned_data['token']}",
        )
    except OrderError as exc:
        if exc.field == "idempotency_key":
            form.add_error(
                None,
                "This form was already sent with other values. Check "
                "your orders before ordering again; the form is ready anew.",
            )
            fresh = request.POST.copy()  # the form's data: it was bound to request.POST
            fresh["token"] = uuid.uuid4().hex
            form.data = fresh
        else:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return None, None
    except InsufficientFunds as exc:
        form.add_error(
            None,
            f"Not enough funds: this order costs {money_text(exc.amount, settings.PANEL_CURRENCY)}"
            f" and your balance is {money_text(exc.balance, settings.PANEL_CURRENCY)}.",
        )
        return None, shortfall(exc.balance, exc.amount)
    return order, None


@customer_login_required
@require_http_methods(["GET", "POST"])
def order_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    params = request.GET if request.method == "GET" else request.POST
    service_pk = parse_id(params.get("service", ""))
    service = service_get_enabled(service_id=service_pk) if service_pk is not None else None
    service = _preselected(request, service)
    context = _picker_context(request, service)
    status = 200
    form = quote = short = None
    if service is not None:
        context.update(_service_info(service))
        form = OrderForm(request.POST if request.method == "POST" else None, service=service)
        if request.method == "POST" and form.is_valid():
            if request.POST.get("action") == "quote":
                quote = _quote_or_error(request, service, form)
            else:
                order, short = _place(request, form, service)
                if order is not None:
                    messages.success(
                        request,
                        _("Order {order_id} is placed: {charge} was charged.").format(
                            order_id=order.pk,
                            charge=money_text(order.charge, settings.PANEL_CURRENCY),
                        ),
                    )
                    return redirect("order_detail", order_id=order.pk)
        if form.errors:
            status = 400
    elif request.method == "POST":
        messages.error(request, _("Choose a service first."))
        status = 400
    balance = request.user.balance
    context.update({"form": form, "quote": quote, "balance": balance, "short": short})
    return render(request, "orders/new.html", context, status=status)


def _quote_or_error(
    request: AuthenticatedHttpRequest, service: Service, form: OrderForm
) -> dict[str, Any]:
    try:
        quote = order_quote(user=request.user, service=service, data=form.service_data())
    except OrderError as exc:
        return {"error": exc.message, "field": exc.field}
    return {
        "ok": quote,
        "short": shortfall(request.user.balance, quote.charge),
        "drip": form.dripfeed_plan(),
    }


@customer_login_required
@require_POST
def order_quote_fragment(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The live charge preview (htmx): validates like ordering, writes nothing."""
    service_id = request.POST.get("service", "")
    service_pk = parse_id(service_id)
    service = service_get_enabled(service_id=service_pk) if service_pk is not None else None
    if service is None:
        return render(request, "orders/_quote.html", {"quote": {"error": "Choose a service."}})
    form = OrderForm(request.POST, service=service)
    quote = _quote_or_error(request, service, form) if form.is_valid() else _form_problem(form)
    return render(request, "orders/_quote.html", {"quote": quote})


def _form_problem(form: OrderForm) -> dict:
    """What the preview says about an incomplete form: the fields still empty, else the first
    error (the full list appears next to the fields when the form is sent)."""
    problems = form.errors.as_data()
    if any(form[n].is_hidden for n in problems if n in form.fields):
        return {"error": STALE_FORM}  # service or token: not the customer's typing
    missing = [
        name
        for name, errors in problems.items()
        if name in form.fields and all(e.code == "required" for e in errors)
    ]
    if len(missing) == len(problems):
        return {"missing": [str(form.fields[n].label).lower() for n in missing]}
    name = next(n for n in problems if n not in missing)
    errors = form.errors[name]
    label = form.fields[name].label if name in form.fields else ""
    return {"error": f"{label}: {errors[0]}" if label else errors[0], "field": name}


# --- Mass order ------------------------------------------------------------------------------
@customer_login_required
@require_http_methods(["GET", "POST"])
def mass_order(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = MassOrderForm(request.POST or None)
    results: list[MassLine] = []
    if request.method == "POST" and form.is_valid():
        results = order_create_many(
            user=request.user, lines=form.cleaned_data["orders"], token=form.cleaned_data["token"]
        )
        form = MassOrderForm(initial={"orders": "\n".join(r.text for r in results if r.error)})
    placed = [r.order for r in results if r.order is not None]
    context = {
        "form": form,
        "results": results,
        "accepted": [r for r in results if r.order is not None],
        "total": sum((order.charge for order in placed), start=Decimal(0)),
    }
    status = 400 if form.errors else 200
    return render(request, "orders/mass.html", context, status=status)


# --- Order list, detail, actions -------------------------------------------------------------
@customer_login_required
@require_GET
def order_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    tab = request.GET.get("status", "all")
    tabs = {key: publics for key, _, publics in STATUS_TABS}
    if tab not in tabs:
        tab = "all"
    orders = order_list_for_user(user=request.user)
    if tabs[tab]:
        orders = orders.filter(status__in=[s for s, p in PUBLIC_STATUS.items() if p in tabs[tab]])
    search = OrderSearchForm(request.GET)
    q = search.cleaned_data["q"].strip() if search.is_valid() else ""
    if q:
        by_link = Q(link__icontains=q)
        number = parse_id(q)
        orders = orders.filter(by_link | Q(pk=number) if number is not None else by_link)
    page = Paginator(with_history(orders), ORDERS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "orders": [_row(o) for o in page.object_list],
        "tabs": STATUS_TABS,
        "tab": tab,
        "q": q,
        # What the page links keep (includes/pagination.html appends page=N): tab and search.
        "query": urlencode([("status", tab), *([("q", q)] if q else [])]) + "&",
        "search": search,
        "poll": poll_seconds(),
    }
    return render(request, "orders/list.html", context)


@customer_login_required
@require_GET
def order_row(request: AuthenticatedHttpRequest, order_id: int) -> HttpResponse:
    """One row of the order list, for the htmx poll that keeps active orders up to date."""
    order = _get_order(request, order_id)
    # The row's Refill/Cancel forms return to the page showing the row, not to this fragment.
    try:
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
    except ValueError:  # a malformed header ("http://[") is no reason for a 500
        current = urlsplit("")
    next_url = (
        current.path + (f"?{current.query}" if current.query else "")
        if current.path.startswith(reverse("orders"))
        else reverse("orders")
    )
    context = {"order": order, "row": _row(order), "poll": poll_seconds(), "next_url": next_url}
    return render(request, "orders/_order_row.html", context)


@customer_login_required
@require_GET
def order_detail(request: AuthenticatedHttpRequest, order_id: int) -> HttpResponse:
    order = _get_order(request, order_id)
    history: list[dict[str, Any]] = []
    for change in order.status_changes.all():
        if not change.old_status:
            continue  # the order's creation: the first line of the history already says it
        public = PUBLIC_STATUS.get(change.new_status, "Pending")
        if history and history[-1]["status"] == public and history[-1]["remains"] == change.remains:
            continue  # internal steps (queued → submitting → pending) look alike to a customer
        history.append(
            {
                "status": public,
                "at": change.created_at,
                "remains": change.remains,
                "start_count": change.start_count,
            }
        )
    context = {
        "order": order,
        "row": _row(order),
        "history": history,
        "poll": poll_seconds(),
        "params": _shown_params(order),
        # The polled part is fetched from this page itself: its forms come back here.
        "order_url": reverse("order_detail", args=[order.pk]),
    }
    return render(request, "orders/detail.html", context)


def _shown_params(order: Order) -> "list[tuple[StrOrPromise, str]]":
    """The type's own parameters (comments, usernames, runs...), not the link and quantity
    the page shows already."""
    params = order.params if isinstance(order.params, dict) else {}
    return [
        (PARAMS[k].label if k in PARAMS else k, v)
        for k, v in sorted(params.items())
        if k not in ("link", "quantity")
    ]


def _back(request: HttpRequest, order: Order) -> HttpResponse:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("order_detail", args=[order.pk])
    return redirect(target)


@customer_login_required
@require_POST
def order_refill(request: AuthenticatedHttpRequest, order_id: int) -> HttpResponse:
    order = _get_order(request, order_id)
    try:
        refill = order_refill_request(user=request.user, order=order)
    except OrderError as exc:
        messages.error(
            request, _("Order {order_id}: {error}").format(order_id=order.pk, error=exc.message)
        )
    else:
        messages.success(
            request,
            _("Refill {refill_id} of order {order_id} is requested.").format(
                refill_id=refill.pk, order_id=order.pk
            ),
        )
    return _back(request, order)


@customer_login_required
@require_http_methods(["GET", "POST"])
def order_cancel(request: AuthenticatedHttpRequest, order_id: int) -> HttpResponse:
    """GET: the question ("Cancel order 12?"). POST with `confirmed=yes`: the cancel. A POST
    without it (the list's button clicked without JavaScript, or before panel.js asked) gets
    the question too, so a cancel never happens unasked."""
    order = _get_order(request, order_id)
    if request.method == "GET" or request.POST.get("confirmed") != "yes":
        params = request.POST if request.method == "POST" else request.GET
        target = params.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            target = reverse("order_detail", args=[order.pk])
        context = {"order": order, "row": _row(order), "next_url": target}
        return render(request, "orders/cancel_confirm.html", context)
    try:
        order_cancel_request(user=request.user, order=order)
    except OrderError as exc:
        messages.error(
            request, _("Order {order_id}: {error}").format(order_id=order.pk, error=exc.message)
        )
    else:
        messages.success(
            request,
            _(
                "Cancellation of order {order_id} is requested; what was not delivered is "
                "refunded once the provider confirms."
            ).format(order_id=order.pk),
        )
    return _back(request, order)


# --- Drip-feed and subscriptions ---------------------------------------------------------------
# The upstream `status` answer carries no run or post counts (only status, start count, remains
# and charge: docs/orders.md), so both pages work them out from what the provider delivered.
@dataclass(frozen=True)
class DripFeedRow:
    row: OrderRow
    per_run: int  # the quantity typed: each run delivers it
    runs: int
    runs_done: int  # whole runs delivered, from the provider's remains
    interval: int  # minutes between runs
    next_run: datetime | None  # when the next run is due by the schedule; None once all are


def _param_int(order: Order, name: str) -> int | None:
    params = order.params if isinstance(order.params, dict) else {}
    value = parse_id(str(params.get(name, "")))
    return int(value) if value is not None else None


def drip_feed_row(order: Order, now: datetime) -> DripFeedRow:
    """Runs done = whole runs delivered (all of them once Completed); the next run is the
    first one of the schedule (placement + k x interval) still ahead and not delivered."""
    row = _row(order)
    runs = _param_int(order, "runs") or 1
    per_run = _param_int(order, "quantity") or max(order.quantity // runs, 1)
    interval = _param_int(order, "interval") or 0
    done = runs if order.status == Order.Status.COMPLETED else row.progress.delivered // per_run
    done = min(done, runs)
    next_run = None
    start = order.submitted_at
    if start is not None and not order.is_final and done < runs and interval:
        ahead = -((start - now) // timedelta(minutes=interval))  # ceil of the runs started
        step = max(done, ahead)
        if step < runs:
            next_run = start + step * timedelta(minutes=interval)
    return DripFeedRow(row, per_run, runs, done, interval, next_run)


@dataclass(frozen=True)
class SubscriptionRow:
    row: OrderRow
    username: str
    low: int  # units per post, min and max
    high: int
    posts: int | None  # new posts asked; None: unlimited
    old_posts: int
    posts_done: int  # posts surely served: delivered / max (all once Completed)
    delay: int  # minutes
    expiry: date | None


def subscription_row(order: Order) -> SubscriptionRow:
    row = _row(order)
    params = order.params if isinstance(order.params, dict) else {}
    high = _param_int(order, "max") or 1
    posts = _param_int(order, "posts")
    old_posts = _param_int(order, "old_posts") or 0
    done = row.progress.delivered // high
    if order.status == Order.Status.COMPLETED and posts is not None:
        done = posts + old_posts
    try:
        expiry = datetime.strptime(str(params.get("expiry", "")), EXPIRY_FORMAT).date()
    except ValueError:
        expiry = None
    return SubscriptionRow(
        row=row,
        username=str(params.get("username", order.link)),
        low=_param_int(order, "min") or 0,
        high=high,
        posts=posts,
        old_posts=old_posts,
        posts_done=done if posts is None else min(done, posts + old_posts),
        delay=_param_int(order, "delay") or 0,
        expiry=expiry,
    )


@customer_login_required
@require_GET
def drip_feed_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    orders = with_history(order_list_drip_feed_for_user(user=request.user))
    page = Paginator(orders, ORDERS_PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    context = {"page": page, "items": [drip_feed_row(o, now) for o in page.object_list]}
    return render(request, "orders/drip_feed.html", context)


@customer_login_required
@require_GET
def subscription_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    orders = with_history(order_list_subscriptions_for_user(user=request.user))
    page = Paginator(orders, ORDERS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "items": [subscription_row(o) for o in page.object_list]}
    return render(request, "orders/subscriptions.html", context)
