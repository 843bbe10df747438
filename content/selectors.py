"""Reads of the news and the site pages, with the customer's read state annotated in the same
query (no query per announcement)."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet

from content.defaults import DEFAULT_PAGES
from content.models import Announcement, AnnouncementRead, SitePage, TermsAcceptance


def _visible_q(now: datetime) -> Q:
    return Q(visible_from__lte=now) & (Q(visible_until__isnull=True) | Q(visible_until__gt=now))


def announcement_list_visible(*, now: datetime) -> QuerySet[Announcement]:
    """The news customers see at `now`: pinned first, then the newest."""
    return Announcement.objects.filter(_visible_q(now)).order_by("-pinned", "-visible_from", "-id")


def announcement_list_for_user(*, user_id: int, now: datetime) -> QuerySet[Announcement]:
    """The visible news, each with `is_read` (this customer has read it), in one query."""
    read = AnnouncementRead.objects.filter(user_id=user_id, announcement_id=OuterRef("pk"))
    return announcement_list_visible(now=now).annotate(is_read=Exists(read))


def announcement_list_unread_for_user(*, user_id: int, now: datetime) -> QuerySet[Announcement]:
    """The visible news this customer has not read yet."""
    read = AnnouncementRead.objects.filter(user_id=user_id, announcement_id=OuterRef("pk"))
    return announcement_list_visible(now=now).filter(~Exists(read))


def announcement_unread_count(*, user_id: int, now: datetime) -> int:
    """How many visible announcements this customer has not read (the badge in the menu)."""
    return announcement_list_unread_for_user(user_id=user_id, now=now).count()


def announcement_get_visible(*, pk: int, user_id: int, now: datetime) -> Announcement:
    """One visible announcement with `is_read`; Announcement.DoesNotExist when it is not (or no
    longer, or not yet) visible."""
    return announcement_list_for_user(user_id=user_id, now=now).get(pk=pk)


@dataclass(frozen=True)
class PageContent:
    """A site page as shown: the published one, or the panel's default (`version` 0)."""

    slug: str
    title: str
    body: str
    version: int
    updated_at: datetime | None

    @property
    def is_default(self) -> bool:
        return self.version == 0


def site_page_get(*, slug: str) -> PageContent:
    """The published page `slug`, or the default text when staff have not written it yet."""
    page = SitePage.objects.filter(slug=slug).first()
    if page is not None:
        return PageContent(page.slug, page.title, page.body, page.version, page.updated_at)
    title, body = DEFAULT_PAGES[slug]
    return PageContent(slug, title, body.replace("{panel}", settings.PANEL_NAME), 0, None)


def terms_version_current() -> int:
    """The version of the terms a sign-up accepts now (0: the default text, none published)."""
    version = (
        SitePage.objects.filter(slug=SitePage.Slug.TERMS).values_list("version", flat=True).first()
    )
    return version or 0


def terms_acceptance_list_for_user(*, user_id: int) -> QuerySet[TermsAcceptance]:
    return TermsAcceptance.objects.filter(user_id=user_id).order_by("-accepted_at", "-id")
