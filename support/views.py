"""The customer's support pages: the ticket list, a new ticket, a ticket's thread (reply,
close) and attachment downloads.

Every read goes through support.selectors' *_for_user, so another customer's ticket or
attachment answers 404 exactly like one that does not exist; every write through
support.services."""

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.middleware import AuthenticatedHttpRequest, customer_login_required
from accounts.models import User
from support.forms import ReplyForm, TicketForm
from support.models import Ticket, TicketAttachment
from support.selectors import (
    attachment_get_for_user,
    payment_list_for_ticket_form,
    ticket_count_open,
    ticket_get_for_user,
    ticket_list_for_user,
    ticket_messages_for_customer,
)
from support.services import TicketError, ticket_close, ticket_create, ticket_reply

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PAGE_SIZE = 25
# The list's tabs: all, then each status.
TABS: "list[tuple[str, StrOrPromise]]" = [("all", gettext_lazy("All")), *Ticket.Status.choices]


def _get_ticket(request: AuthenticatedHttpRequest, ticket_id: int) -> Ticket:
    try:
        return ticket_get_for_user(user=request.user, ticket_id=ticket_id)
    except Ticket.DoesNotExist:
        raise Http404("No such ticket.") from None


def _error_to_form(form: forms.Form, exc: TicketError) -> None:
    """Show the service's refusal at its field (or above the form), keeping all that was typed."""
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


@customer_login_required
@require_GET
def ticket_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    tab = request.GET.get("status", "all")
    if tab not in dict(TABS):
        tab = "all"
    tickets = ticket_list_for_user(user=request.user, status=None if tab == "all" else tab)
    page = Paginator(tickets, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "tickets": page.object_list,
        "tabs": TABS,
        "tab": tab,
        "query": urlencode([("status", tab)]) + "&",
    }
    return render(request, "support/list.html", context)


def _initial(request: HttpRequest) -> dict[str, str]:
    """A new ticket's form, filled from the link that led here (?kind=order&orders=12 from an
    order's page)."""
    initial = {}
    kind = request.GET.get("kind", "")
    if kind in Ticket.Kind.values:
        initial["kind"] = kind
    orders = request.GET.get("orders", "")
    if orders.isdigit() and len(orders) < 19:
        initial.update(kind="order", orders=orders, subject=f"Order {orders}")
    return initial


@customer_login_required
@require_http_methods(["GET", "POST"])
def ticket_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    payments = list(payment_list_for_ticket_form(user=request.user))
    if request.method != "POST":
        form = TicketForm(initial=_initial(request), payments=payments)
        return _render_new(request, form)
    form = TicketForm(request.POST, request.FILES, payments=payments)
    if form.is_valid():
        try:
            ticket = ticket_create(
                customer=request.user,
                about=form.about(),
                subject=form.cleaned_data["subject"],
                body=form.cleaned_data["message"],
                attachment=form.cleaned_data.get("attachment"),
            )
        except TicketError as exc:
            _error_to_form(form, exc)
        else:
            messages.success(
                request,
                _("Ticket {ticket_id} is open: we answer here.").format(ticket_id=ticket.pk),
            )
            return redirect("ticket_detail", ticket_id=ticket.pk)
    return _render_new(request, form, status=400)


def _render_new(
    request: AuthenticatedHttpRequest, form: TicketForm, status: int = 200
) -> HttpResponse:
    context = {
        "form": form,
        "open_count": ticket_count_open(user=request.user),
        "max_open": settings.SUPPORT_MAX_OPEN_TICKETS,
        # A browser never sends a chosen file again: say so when the form comes back.
        "file_lost": bool(request.FILES) and form.is_bound,
    }
    return render(request, "support/new.html", context, status=status)


@customer_login_required
@require_http_methods(["GET", "POST"])
def ticket_detail(request: AuthenticatedHttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _get_ticket(request, ticket_id)
    form = ReplyForm()
    status = 200
    if request.method == "POST":
        form = ReplyForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                ticket_reply(
                    ticket=ticket,
                    author=request.user,
                    body=form.cleaned_data["message"],
                    attachment=form.cleaned_data.get("attachment"),
                )
            except TicketError as exc:
                _error_to_form(form, exc)
            else:
                messages.success(request, _("Your reply is sent."))
                return redirect("ticket_detail", ticket_id=ticket.pk)
        status = 400
    context = {
        "ticket": ticket,
        "thread": ticket_messages_for_customer(ticket=ticket),
        "form": form,
        "file_lost": bool(request.FILES) and form.is_bound,
    }
    return render(request, "support/detail.html", context, status=status)


@customer_login_required
@require_POST
def ticket_close_view(request: AuthenticatedHttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _get_ticket(request, ticket_id)
    if not ticket.is_closed:
        ticket_close(ticket=ticket, by=request.user)
        messages.success(request, _("Ticket {ticket_id} is closed.").format(ticket_id=ticket.pk))
    return redirect("ticket_detail", ticket_id=ticket.pk)


def attachment_response(attachment: TicketAttachment) -> FileResponse:
    """The file as a download, never shown inline: the type its bytes proved, nosniff, and a
    policy that lets nothing in it run even if a browser opened it."""
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("The file is gone.") from None
    response = FileResponse(
        handle, as_attachment=True, filename=attachment.name, content_type=attachment.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def ticket_attachment(request: AuthenticatedHttpRequest, attachment_id: int) -> FileResponse:
    """An attachment, for its ticket's customer and for staff only."""
    user: User = request.user
    try:
        attachment = attachment_get_for_user(user=user, attachment_id=attachment_id)
    except TicketAttachment.DoesNotExist:
        raise Http404("No such file.") from None
    return attachment_response(attachment)
