"""The customer's news pages (read state per customer) and the public site pages (Terms, FAQ,
Privacy, no login needed)."""

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.middleware import AuthenticatedHttpRequest, customer_login_required
from content.models import Announcement
from content.selectors import (
    announcement_get_visible,
    announcement_list_for_user,
    announcement_list_unread_for_user,
    site_page_get,
)
from content.services import announcement_mark_read

NEWS_PAGE_SIZE = 20


@customer_login_required
@require_GET
def news(request: AuthenticatedHttpRequest) -> HttpResponse:
    """All current news, pinned first. Those on the page are shown as new if they were unread
    when it opened, and are read from then on (the customer has seen them)."""
    now = timezone.now()
    items = announcement_list_for_user(user_id=request.user.pk, now=now)
    page = Paginator(items, NEWS_PAGE_SIZE).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    announcement_mark_read(
        user=request.user,
        announcement_ids=[a.pk for a in shown if not getattr(a, "is_read", False)],
        now=now,
    )
    return render(request, "content/news.html", {"page": page, "announcements": shown})


@customer_login_required
@require_GET
def news_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """One announcement; opening it marks it read."""
    now = timezone.now()
    try:
        announcement = announcement_get_visible(pk=pk, user_id=request.user.pk, now=now)
    except Announcement.DoesNotExist:
        raise Http404("No such news.") from None
    announcement_mark_read(user=request.user, announcement_ids=[announcement.pk], now=now)
    return render(request, "content/news_detail.html", {"announcement": announcement})


def _back(request: HttpRequest) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("news")
    return HttpResponseRedirect(target)


@customer_login_required
@require_POST
def news_mark_read(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The "Mark as read" button (on the home page): back to the page it was pressed on."""
    now = timezone.now()
    try:
        announcement_get_visible(pk=pk, user_id=request.user.pk, now=now)
    except Announcement.DoesNotExist:
        raise Http404("No such news.") from None
    announcement_mark_read(user=request.user, announcement_ids=[pk], now=now)
    return _back(request)


@customer_login_required
@require_POST
def news_mark_all_read(request: AuthenticatedHttpRequest) -> HttpResponse:
    now = timezone.now()
    unread = announcement_list_unread_for_user(user_id=request.user.pk, now=now)
    announcement_mark_read(
        user=request.user, announcement_ids=unread.values_list("pk", flat=True), now=now
    )
    return _back(request)


@login_not_required
@require_GET
def site_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Terms, FAQ or Privacy: what staff published, or the default text, for anyone."""
    return render(request, "content/site_page.html", {"page": site_page_get(slug=slug)})
