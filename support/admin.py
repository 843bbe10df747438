"""Support in the admin (docs/support.md): the ticket queue, and each ticket's page as a thread
with the customer's balance, recent orders and payments beside it. Staff answer there (a saved
reply fills the answer), write internal notes, assign the ticket, ask a refill or a cancel of
the ticket's orders (through orders.services) and close it; the queue closes or assigns a
selection. Every write goes through support.services."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.audit import audit_record, staff_user
from accounts.models import AdminAuditLog, User
from support.forms import IMAGE_ACCEPT
from support.models import SavedReply, Ticket, TicketAttachment, TicketMessage
from support.selectors import (
    attachment_get_for_staff,
    saved_reply_list_active,
    staff_list_for_assignment,
    ticket_customer_summary,
    ticket_get_for_staff,
    ticket_messages_for_staff,
)
from support.services import (
    BODY_MAX,
    TicketError,
    ticket_assign,
    ticket_close,
    ticket_close_many,
    ticket_order_request,
    ticket_reply,
)
from support.views import attachment_response


class StaffReplyForm(forms.Form):
    saved_reply = forms.ModelChoiceField(
        queryset=SavedReply.objects.none(), required=False, empty_label="— pick a saved reply —"
    )
    message = forms.CharField(
        max_length=BODY_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
    )
    internal = forms.BooleanField(
        label="Internal note (the customer never sees it)", required=False
    )
    attachment = forms.FileField(
        required=False,
        help_text="PNG or JPEG, at most 2 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": IMAGE_ACCEPT}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["saved_reply"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = saved_reply_list_active()


class AssignForm(forms.Form):
    assigned_to = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, empty_label="Nobody", label="Assigned to"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assigned_to"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = staff_list_for_assignment()


class WaitingFilter(admin.SimpleListFilter):
    """Tickets waiting for staff: new ones and those the customer wrote in last."""

    title = "waiting for staff"
    parameter_name = "waiting"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Waiting for staff"), ("mine", "Waiting, assigned to me")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        waiting = queryset.filter(status__in=[Ticket.Status.OPEN, Ticket.Status.CUSTOMER_REPLY])
        if self.value() == "yes":
            return waiting
        if self.value() == "mine":
            return waiting.filter(assigned_to=request.user)
        return queryset


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "subject",
        "customer",
        "kind",
        "status",
        "assigned_to",
        "last_message_at",
        "created_at",
    )
    list_display_links = ("id", "subject")
    list_filter = (WaitingFilter, "status", "kind", "assigned_to")
    search_fields = ("=id", "subject", "=customer__username", "=customer__email")
    search_help_text = "A ticket id, words of the subject, a customer's username or e-mail."
    list_select_related = ("customer", "assigned_to")
    raw_id_fields = ("customer", "payment", "assigned_to")
    actions = ("close_tickets", "assign_to_me")
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers open tickets; staff answer them

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a thread is a record of what was said

    @admin.action(description="Close the selected tickets", permissions=["change"])
    def close_tickets(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        closed = ticket_close_many(tickets=queryset, by=staff_user(request))
        self.message_user(request, f"{closed} ticket{'s' if closed != 1 else ''} closed.")

    @admin.action(description="Assign the selected tickets to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        me = staff_user(request)
        for ticket in queryset:
            ticket_assign(ticket=ticket, to=me, by=me)
        self.message_user(request, f"{queryset.count()} ticket(s) assigned to you.")

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path(
                "attachment/<int:attachment_id>/",
                self.admin_site.admin_view(self.attachment_view),
                name="support_ticket_attachment",
            )
        ]
        return urls + super().get_urls()

    def attachment_view(self, request: HttpRequest, attachment_id: int) -> FileResponse:
        if not self.has_view_permission(request):  # admin_view asks only is_staff
            raise PermissionDenied
        try:
            attachment = attachment_get_for_staff(attachment_id=attachment_id)
        except TicketAttachment.DoesNotExist:
            raise Http404("No such file.") from None
        return attachment_response(attachment)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The ticket's page is its thread (no model form: every change is a service call)."""
        try:
            ticket = ticket_get_for_staff(ticket_id=int(object_id))
        except (Ticket.DoesNotExist, ValueError):
            raise Http404("No such ticket.") from None
        if not self.has_view_or_change_permission(request, ticket):
            raise Http404("No such ticket.")
        reply = StaffReplyForm()
        if request.method == "POST" and self.has_change_permission(request, ticket):
            done, reply = self._post(request, ticket)
            if done is not None:
                return done
        return self._thread(request, ticket, reply)

    def _post(
        self, request: HttpRequest, ticket: Ticket
    ) -> tuple[HttpResponse | None, StaffReplyForm]:
        """One of the thread page's buttons. A write redirects back (so a reload never sends
        it twice); a refused reply comes back with what was typed and the error at its field."""
        again = HttpResponseRedirect(request.path)
        staff = staff_user(request)
        reply = StaffReplyForm(request.POST, request.FILES)
        try:
            if "use_saved" in request.POST:
                return None, self._fill_saved(reply, ticket)
            if "assign" in request.POST:
                self._assign(request, ticket, staff)
            elif "close" in request.POST:
                ticket_close(ticket=ticket, by=staff)
                messages.success(request, f"Ticket {ticket.pk} is closed.")
            elif "order_action" in request.POST:
                self._order_action(request, ticket, staff)
            elif "send" in request.POST and not self._send(request, ticket, staff, reply):
                return None, reply
            return again, reply
        except TicketError as exc:
            if exc.field in reply.fields and "send" in request.POST:
                reply.add_error(exc.field, exc.message)
                return None, reply
            messages.error(request, exc.message)
            return again, reply

    def _fill_saved(self, reply: StaffReplyForm, ticket: Ticket) -> StaffReplyForm:
        """ "Use": the saved reply's text goes after what is typed, nothing is sent."""
        if not reply.is_valid():
            return reply
        saved = reply.cleaned_data["saved_reply"]
        if saved is None:
            reply.add_error("saved_reply", "Pick a saved reply first.")
            return reply
        typed = reply.cleaned_data["message"].rstrip()
        text = saved.text_for(ticket.customer.username)
        data = dict(reply.data.items())
        data["message"] = f"{typed}\n\n{text}" if typed else text
        data["saved_reply"] = ""
        return StaffReplyForm(data)

    def _send(
        self, request: HttpRequest, ticket: Ticket, staff: User, reply: StaffReplyForm
    ) -> bool:
        if not reply.is_valid():
            return False
        internal = reply.cleaned_data["internal"]
        ticket_reply(
            ticket=ticket,
            author=staff,
            body=reply.cleaned_data["message"],
            attachment=reply.cleaned_data.get("attachment"),
            internal=internal,
        )
        if internal:
            messages.success(request, "Internal note saved (the customer does not see it).")
        else:
            messages.success(request, f"Answer sent to {ticket.customer.username}.")
        return True

    def _assign(self, request: HttpRequest, ticket: Ticket, staff: User) -> None:
        form = AssignForm(request.POST)
        if not form.is_valid():
            raise TicketError(None, "Pick an active member of staff.")
        to = form.cleaned_data["assigned_to"]
        ticket_assign(ticket=ticket, to=to, by=staff)
        messages.success(request, f"Assigned to {to.username if to else 'nobody'}.")

    def _order_action(self, request: HttpRequest, ticket: Ticket, staff: User) -> None:
        action, _, order_id = request.POST["order_action"].partition(":")
        if action not in ("refill", "cancel") or not order_id.isdigit():
            raise TicketError(None, "Unknown order action.")
        if not request.user.has_perm("orders.change_order"):
            raise TicketError(None, "Refill and cancel need the permission to change orders.")
        note = ticket_order_request(
            ticket=ticket,
            order_id=int(order_id),
            action="refill" if action == "refill" else "cancel",
            by=staff,
        )
        audit_record(
            actor=staff,
            action=f"ticket {action}",
            obj=ticket,
            summary=note.body,
            area=AdminAuditLog.Area.ORDER,
        )
        messages.success(request, note.body)

    def _thread(self, request: HttpRequest, ticket: Ticket, reply: StaffReplyForm) -> HttpResponse:
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": f"Ticket {ticket.pk}: {ticket.subject}",
            "subtitle": None,
            "opts": opts,
            "original": ticket,
            "ticket": ticket,
            "thread": ticket_messages_for_staff(ticket=ticket),
            "summary": ticket_customer_summary(ticket=ticket),
            "reply": reply,
            "assign": AssignForm(initial={"assigned_to": ticket.assigned_to_id}),
            "can_change": self.has_change_permission(request, ticket),
            "can_change_orders": self.has_change_permission(request, ticket)
            and request.user.has_perm("orders.change_order"),
            "changelist_url": reverse("admin:support_ticket_changelist"),
        }
        status = 400 if reply.is_bound and reply.errors else 200
        return TemplateResponse(request, "admin/support/ticket_thread.html", context, status=status)


@admin.register(SavedReply)
class SavedReplyAdmin(admin.ModelAdmin):
    list_display = ("title", "is_active", "position")
    list_editable = ("is_active", "position")
    search_fields = ("title", "body")


@admin.register(TicketMessage)
class TicketMessageAdmin(admin.ModelAdmin):
    """Read-only search over every message (e.g. a transaction id a customer wrote)."""

    list_display = ("id", "ticket", "author", "from_staff", "internal", "created_at")
    list_filter = ("from_staff", "internal")
    search_fields = ("body", "=ticket__id")
    list_select_related = ("ticket", "author")
    readonly_fields = ("ticket", "author", "from_staff", "internal", "body", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        message = TicketMessage.objects.filter(pk=object_id if object_id.isdigit() else 0).first()
        if message is None:
            raise Http404("No such message.")
        return redirect("admin:support_ticket_change", message.ticket_id)
