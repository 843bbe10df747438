"""The bell (in-panel notices, fetched with htmx), the notification settings page and the
signed one-click unsubscribe link of the mails (docs/notifications.md)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import NotificationPreferenceForm
from accounts.middleware import AuthenticatedHttpRequest
from accounts.models import Notification
from accounts.notifications import (
    email_wanted,
    events_for,
    notification_list_for_user,
    notification_mark_all_read,
    notification_mark_read,
    notification_preference_get,
    notification_preference_set,
    notification_unread_count,
    notification_unsubscribe,
    unsubscribe_read,
)

MENU_SIZE = 8
PAGE_SIZE = 30


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Which mails the user gets, and the balance under which they are told."""
    user = request.user
    pref = notification_preference_get(user=user)
    events = [(e, Notification.Event(e).label, email_wanted(pref, e)) for e in events_for(user)]
    form = NotificationPreferenceForm(
        request.POST or None,
        events=events,
        initial={"low_balance_threshold": pref.low_balance_threshold},
    )
    if request.method == "POST" and form.is_valid():
        notification_preference_set(
            user=user,
            email=form.email_choices(),
            low_balance_threshold=form.cleaned_data["low_balance_threshold"],
        )
        messages.success(request, _("Your notification settings are saved."))
        return redirect("notification_settings")
    status = 400 if form.errors else 200
    return render(request, "notifications/settings.html", {"form": form}, status=status)


@login_required
def notification_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Every notice of the user, newest first, a page at a time."""
    notices = notification_list_for_user(user=request.user)
    page = Paginator(notices, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "notifications/list.html", {"page": page, "notices": page})


@login_required
def notification_menu(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The bell's drop-down (htmx): the latest notices and the unread count."""
    return _menu(request)


def _menu(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "notices": list(notification_list_for_user(user=user)[:MENU_SIZE]),
        "unread": notification_unread_count(user=user),
    }
    return render(request, "notifications/_menu.html", context)


@login_required
@require_POST
def notification_open(request: AuthenticatedHttpRequest, notification_id: int) -> HttpResponse:
    """Mark one notice read and go where it points (the list when it points nowhere)."""
    notice = notification_mark_read(user=request.user, notification_id=notification_id)
    if notice is None:
        raise Http404("No such notification.")
    if notice.url and url_has_allowed_host_and_scheme(notice.url, allowed_hosts=None):
        return redirect(notice.url)
    return redirect("notifications")


@login_required
@require_POST
def notification_read_all(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Mark all the user's notices read: the menu again for htmx, else back to the list."""
    notification_mark_all_read(user=request.user)
    if request.headers.get("HX-Request"):
        return _menu(request)
    messages.success(request, _("All notifications are marked read."))
    return redirect("notifications")


@login_not_required
@csrf_exempt  # the signed token is the proof; mail clients POST it (RFC 8058) without a form
@require_http_methods(["GET", "POST"])
def notification_unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    """A mail's unsubscribe link, without login. GET asks (link scanners open links; they
    must not unsubscribe anyone); POST, the button or a mail client's one-click, does it."""
    found = unsubscribe_read(token)
    if found is None:
        return render(request, "notifications/unsubscribe.html", {"invalid": True}, status=400)
    user, event = found
    done = False
    if request.method == "POST":
        notification_unsubscribe(token=token)
        done = True
    context = {"event_label": Notification.Event(event).label, "done": done, "who": user}
    return render(request, "notifications/unsubscribe.html", context)
